"""The HTTP API fuzzed from its own OpenAPI schema with Schemathesis, in process (ASGI, no network).

Every operation the schema lists gets the schema's examples, Schemathesis' coverage cases (each parameter at
and past its bounds, missing, of the wrong type) and `MAX_EXAMPLES` generated requests, valid and invalid
alike, on a small warehouse (two videos and a photo). Two checks: no response is a server error (5xx), and
every response whose status the schema declares matches the body schema it declares. The run is
deterministic (a fixed seed, Hypothesis derandomized, no example database). The cases tried per operation are
printed (`pytest -s`) and written to `$TMPDIR/media_assets_fuzz_cases.json`.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from test_server import build_small_warehouse

from media_assets.apps.server import create_app

MAX_EXAMPLES = 25  # generated requests per operation, on top of the examples and coverage cases
SEED = 17
CASES_FILE = Path(tempfile.gettempdir()) / "media_assets_fuzz_cases.json"
CASES: Counter[str] = Counter()

CONFIG = {
    "seed": SEED,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all", "database": "none"},
    "phases": {"stateful": {"enabled": False}},
}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, tiny_clip):
    warehouse = build_small_warehouse(tmp_path_factory.mktemp("fuzz") / "warehouse", tiny_clip)
    app = create_app(warehouse)  # in-process access: open, as a TestClient calls it
    yield schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis.Config.from_dict(CONFIG))
    total = sum(CASES.values())
    CASES_FILE.write_text(json.dumps({"total": total, "per_operation": dict(sorted(CASES.items()))}, indent=1))
    print(f"\nSchemathesis tried {total} cases over {len(CASES)} operations (seed {SEED}); see {CASES_FILE}")
    for label, count in sorted(CASES.items()):
        print(f"  {count:5d}  {label}")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_the_api_holds_to_its_schema(case):
    CASES[case.operation.label] += 1
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
