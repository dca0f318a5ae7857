"""The README's and docs/'s examples run: every `media-assets sql "…"` line and every ```python block.

SQL: every `media-assets sql "…"` in a fenced block of README.md or docs/*.md (bash blocks included; the
placeholder `SELECT …` of the command tables is not an example) runs through the CLI on the demo warehouse.

Python: the ```python blocks of each file run in order, in one namespace per file, from the folder that
holds a copy of the demo warehouse named `warehouse` (so `SearchClient("warehouse")` and paths such as
`warehouse/media/photos/astronaut.jpg` work as they do from the repo root after `media-assets demo`). The
copy takes the blocks' feedback writes; the shared demo warehouse is never written. Blocks marked ```text
or ```pycon are illustrations and are not run. The prelude seeds each namespace with:

- `warehouse`: the copy's root folder, a str;
- `media_id`: a video's media id;
- `frame_id`: a kept (embedded) frame's id;
- `cluster_id`: the largest scene cluster (at least 3 shots);
- `shot_a`, `shot_b`: two shots of `cluster_id`;
- `shot_id`: a shot outside `cluster_id` (a noise shot when there is one);
- `into_cluster_id`, `from_cluster_id`: two other scene clusters (`from_cluster_id` has members).

After a file's blocks ran, the results the file promises are checked where that is cheap (`CHECKS`).

Names: every public name of `media_assets` (the list below) and every name a block imports from
`media_assets` can be imported from it, and the blocks import nothing else from the package root.

Also: the module tree in docs/architecture.md lists exactly the package's modules, the module paths the
docs name exist, and the links between the pages lead to a page and a heading that are there.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from media_assets.apps.cli import main
from media_assets.store.catalog import query
from media_assets.warehouse import Warehouse

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PUBLIC_API = [
    "Warehouse",
    "SearchClient",
    "SearchFilter",
    "SearchError",
    "UnknownIdError",
    "SearchHit",
    "SearchResults",
    "Moment",
    "MomentResults",
    "Timeline",
    "VideoHit",
    "VideoResults",
    "cosine_to_similarity",
    "FeedbackWriter",
    "FeedbackError",
    "pin_member",
    "name_cluster",
    "__version__",
]
SQL_EXAMPLE = re.compile(r'media-assets sql "((?:[^"\\]|\\.)*)"')
PLACEHOLDER = "SELECT …"


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """(language, first line number, code) of every fenced code block, in order."""
    blocks, fence, lang, start, body = [], None, "", 0, []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is None:
            match = re.match(r"(`{3,}|~{3,})\s*([^\s`]*)", stripped)
            if match:
                fence, lang, start, body = match.group(1), match.group(2).lower(), number + 1, []
        elif stripped.startswith(fence) and not stripped.strip(fence[0]):
            blocks.append((lang, start, "\n".join(body)))
            fence = None
        else:
            body.append(line)
    assert fence is None, f"a code block opened at line {start - 1} is never closed"
    return blocks


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def sql_examples() -> list[tuple[str, str]]:
    """(file:line, statement) of every `media-assets sql "…"` in a fenced block."""
    return [
        (f"{_name(path)}:{line + code[: match.start()].count(chr(10))}", match.group(1))
        for path in DOCS
        for _, line, code in fenced_blocks(path.read_text(encoding="utf-8"))
        for match in SQL_EXAMPLE.finditer(code)
        if match.group(1).strip() != PLACEHOLDER
    ]


def python_blocks(path: Path) -> list[tuple[int, str]]:
    return [(line, code) for lang, line, code in fenced_blocks(path.read_text(encoding="utf-8")) if lang == "python"]


SQL_EXAMPLES = sql_examples()
PYTHON_DOCS = [path for path in DOCS if python_blocks(path)]


def names_imported_from_the_package() -> set[str]:
    names = set()
    for path in DOCS:
        for _, code in python_blocks(path):
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.ImportFrom) and node.module == "media_assets" and node.level == 0:
                    names.update(alias.name for alias in node.names)
    return names


# -- SQL ------------------------------------------------------------------------------------------------


def test_the_docs_have_their_sql_examples():
    assert len(SQL_EXAMPLES) >= 8, SQL_EXAMPLES
    assert any(where.startswith("README.md") for where, _ in SQL_EXAMPLES)
    assert any(where.startswith("docs/warehouse.md") for where, _ in SQL_EXAMPLES)


@pytest.mark.parametrize("where, sql", SQL_EXAMPLES, ids=[where for where, _ in SQL_EXAMPLES])
def test_sql_example_runs(demo_warehouse, where, sql):
    root, _ = demo_warehouse
    result = CliRunner().invoke(main, ["sql", "--warehouse", str(root), sql])
    assert result.exit_code == 0, (where, sql, result.output)


# -- Python ---------------------------------------------------------------------------------------------


def _one(warehouse: Warehouse, sql: str, params: list | None = None):
    rows = query(warehouse, sql, params).to_pylist()
    assert rows, f"the demo warehouse has no row for: {sql}"
    return next(iter(rows[0].values()))


def prelude(warehouse: Warehouse) -> dict:
    """The ids the blocks use, taken from the warehouse (see the module docstring)."""
    cluster_id = _one(
        warehouse,
        "SELECT cluster_id FROM clusters WHERE level = 'scene' AND size >= 3 ORDER BY size DESC, cluster_id LIMIT 1",
    )
    members = [
        r["member_id"]
        for r in query(
            warehouse,
            "SELECT member_id FROM cluster_members WHERE member_kind = 'shot' AND cluster_id = ? ORDER BY member_id",
            [cluster_id],
        ).to_pylist()
    ]
    others = [
        r["cluster_id"]
        for r in query(
            warehouse,
            "SELECT c.cluster_id FROM clusters c WHERE c.level = 'scene' AND c.cluster_id <> ? "
            "AND EXISTS (SELECT 1 FROM cluster_members m WHERE m.cluster_id = c.cluster_id) ORDER BY c.cluster_id",
            [cluster_id],
        ).to_pylist()
    ]
    assert len(members) >= 3 and len(others) >= 2, (members, others)
    shot_id = _one(
        warehouse,
        "SELECT member_id FROM cluster_members WHERE member_kind = 'shot' AND cluster_id IS DISTINCT FROM ? "
        "ORDER BY is_noise DESC, member_id LIMIT 1",
        [cluster_id],
    )
    return {
        "warehouse": str(warehouse.root),
        "media_id": _one(warehouse, "SELECT media_id FROM media WHERE kind = 'video' ORDER BY partition_key LIMIT 1"),
        "frame_id": _one(warehouse, "SELECT frame_id FROM frames WHERE NOT is_duplicate ORDER BY frame_id LIMIT 1"),
        "cluster_id": cluster_id,
        "shot_a": members[0],
        "shot_b": members[1],
        "shot_id": shot_id,
        "into_cluster_id": others[0],
        "from_cluster_id": others[1],
    }


@pytest.fixture
def warehouse_copy(demo_warehouse, tmp_path, monkeypatch) -> Warehouse:
    """A copy of the demo warehouse at ./warehouse (the current folder is its parent)."""
    for name in (
        "MEDIA_ASSETS_WAREHOUSE",
        "MEDIA_ASSETS_MEDIA_ROOT",
        "MEDIA_ASSETS_VECTORS_URI",
        "MEDIA_ASSETS_TEXT_QUANTIZATION",
    ):
        monkeypatch.delenv(name, raising=False)
    root, _ = demo_warehouse
    shutil.copytree(root, tmp_path / "warehouse")
    monkeypatch.chdir(tmp_path)
    return Warehouse.at(tmp_path / "warehouse")


def _feedback_kinds(warehouse: Warehouse) -> Counter:
    return Counter(r["kind"] for r in query(warehouse, "SELECT kind FROM feedback").to_pylist())


def check_readme(ns: dict, warehouse: Warehouse, printed: str) -> None:
    hits = ns["hits"]
    assert len(hits) == 5 and all(0.0 <= h.similarity <= 1.0 for h in hits)
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    assert hits[0].partition_key in printed
    assert ns["videos"] and all(h.kind == "video" for h in ns["videos"])
    assert 1 <= len(ns["moments"]) <= 3 and all(m.start_s <= m.end_s for m in ns["moments"])
    assert ns["table"].height == 5


def check_search(ns: dict, warehouse: Warehouse, printed: str) -> None:
    from media_assets import MomentResults, SearchResults

    assert isinstance(ns["hits"], SearchResults) and len(ns["hits"]) == 10
    assert isinstance(ns["client"].moments("a cat", k=2), MomentResults)
    assert "k must be between 1 and 1000" in printed and "unknown frame id 42" in printed
    assert float(ns["similarity"]) == pytest.approx(0.65)
    assert len(ns["quick_hits"]) == 5
    assert _feedback_kinds(warehouse) == {"relevance": 1}


def check_learning(ns: dict, warehouse: Warehouse, printed: str) -> None:
    kinds = _feedback_kinds(warehouse)
    assert kinds["move"] == 1 and kinds["merge"] >= 1 and kinds["split"] == 2
    assert (
        kinds["same"] == 1 and kinds["relevance"] == 1 and set(kinds) == {"move", "merge", "split", "same", "relevance"}
    )
    assert ns["new_id"] > max(ns["cluster_id"], ns["into_cluster_id"], ns["from_cluster_id"])
    assert [r["member_id"] for r in ns["rows"]] == sorted([ns["shot_a"], ns["shot_b"]])
    assert "there is no shot with id 42" in printed


def check_film(ns: dict, warehouse: Warehouse, printed: str) -> None:
    name = _one(warehouse, "SELECT name FROM clusters WHERE cluster_id = ?", [ns["cluster_id"]])
    assert name == "the kitchen"
    assert _feedback_kinds(warehouse) == {"move": 2}
    assert query(warehouse, "SELECT * FROM current_pins").num_rows == 0  # pinned, then taken back


def check_warehouse(ns: dict, warehouse: Warehouse, printed: str) -> None:
    assert ns["embedded"] == ns["kept"] > 0
    assert ns["kinds"].to_pylist() == [{"kind": "image", "n": 6}, {"kind": "video", "n": 4}]


def check_http_api(ns: dict, warehouse: Warehouse, printed: str) -> None:
    assert ns["health"]["status"] == "ok" and ns["health"]["counts"]["media"] == 10
    assert len(ns["results"]) == 3 and all(0.0 <= r["similarity"] <= 1.0 for r in ns["results"])
    assert ns["thumbnail"].status_code == 200 and ns["thumbnail"].headers["content-type"] == "image/jpeg"
    assert (ns["bad_k"], ns["unknown"]) == (422, 404)


CHECKS = {
    "README.md": check_readme,
    "docs/search.md": check_search,
    "docs/learning.md": check_learning,
    "docs/film.md": check_film,
    "docs/warehouse.md": check_warehouse,
    "docs/http_api.md": check_http_api,
}


def test_the_docs_have_their_python_examples():
    assert set(CHECKS) <= {_name(path) for path in PYTHON_DOCS}
    assert sum(len(python_blocks(path)) for path in PYTHON_DOCS) >= len(CHECKS)


@pytest.mark.parametrize("path", PYTHON_DOCS, ids=[_name(path) for path in PYTHON_DOCS])
def test_python_examples_run(path, warehouse_copy, capsys):
    namespace = {"__name__": "docs_example", **prelude(warehouse_copy)}
    for line, code in python_blocks(path):
        where = f"{_name(path)}:{line}"
        try:
            exec(compile(code, where, "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"the Python block at {where} failed: {exc!r}") from exc
    check = CHECKS.get(_name(path))
    if check is not None:
        check(namespace, warehouse_copy, capsys.readouterr().out)


# -- the public API -------------------------------------------------------------------------------------


def test_the_docs_import_only_public_names_from_the_package():
    assert names_imported_from_the_package() <= set(PUBLIC_API)


@pytest.mark.parametrize("name", sorted(set(PUBLIC_API) | names_imported_from_the_package()))
def test_a_public_name_imports(name):
    namespace: dict = {}
    exec(f"from media_assets import {name}", namespace)
    assert namespace[name] is getattr(importlib.import_module("media_assets"), name)


# -- paths and links ------------------------------------------------------------------------------------


def documented_tree() -> set[str]:
    """The files and folders the tree in docs/architecture.md lists, relative to media_assets/."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = next(code for _, _, code in fenced_blocks(text) if code.startswith("media_assets/"))
    folder, listed = "", set()
    for line in tree.splitlines()[1:]:
        match = re.match(r"( +)(?:\d+ )?(\S+)", line)
        if not match or len(match.group(1)) not in (2, 4):
            continue  # a description's continuation line
        depth, name = len(match.group(1)), match.group(2)
        if depth == 2:
            folder = name if name.endswith("/") else ""
            if name.endswith(".py"):
                listed.add(name)
        elif name.endswith((".py", "/")):
            listed.add(folder + name)
    return listed


def test_the_architecture_tree_lists_every_module():
    package = ROOT / "media_assets"
    modules = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if "__pycache__" not in path.parts and (path.name != "__init__.py" or path.parent == package)
    }
    listed = documented_tree()
    assert {name for name in listed if name.endswith(".py")} == modules
    assert all((package / name).is_dir() for name in listed if name.endswith("/") and name.count("/") > 1)


def test_the_module_paths_the_docs_name_exist():
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for name in set(re.findall(r"\bmedia_assets(?:\.\w+)+", text)):
            parts = name.split(".")
            while len(parts) > 1 and importlib.util.find_spec(".".join(parts)) is None:
                parts.pop()  # an attribute of a module (media_assets.store.catalog.query)
            assert len(parts) > 1, f"{_name(path)} names {name}, which is no module"
        for name in set(re.findall(r"\bmedia_assets/[\w/]*(?:\.py|/)", text)):
            assert (ROOT / name).exists(), f"{_name(path)} names {name}, which is not there"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_links_between_the_pages_lead_somewhere():
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            page = (path.parent / target).resolve() if target else path
            assert page.is_file(), f"{_name(path)} links to {target}, which is not there"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)
                assert anchor in {_anchor(h) for h in headings}, f"{_name(path)} links to {target}#{anchor}"
