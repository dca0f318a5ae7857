"""The Dagster instance of a warehouse: its storage lives in `<warehouse>/dagster/`.

`dagster dev` run from the repo root reads the repo's `dagster.yaml`, which puts the same storage at
`warehouse/dagster/`; the CLI opens the instance of any warehouse with `instance_for`, so runs started from
the CLI are the runs the UI shows.
"""

from pathlib import Path

from dagster import DagsterInstance

from media_assets.warehouse import Warehouse

# Kept equal to the instance settings of the repo's dagster.yaml (a test compares them); storage paths are
# not set here because the instance's home folder *is* <warehouse>/dagster.
INSTANCE_YAML = """\
# The Dagster instance of this warehouse (written by media-assets). Storage defaults to this folder.
concurrency:
  pools:
    # assets in the `gpu` pool (frame embeddings, faces, transcripts) run one at a time, and so do those in the
    # `llm` pool (chapters: the summary model, when one is configured); no other pool is used
    default_limit: 1
    granularity: op
  runs:
    tag_concurrency_limits:
      # learn_from_feedback and refresh_adapted (tagged so) run one at a time: the adapter and the vectors,
      # index and clusters made from it change in one run at once
      - key: media_assets/adapter
        limit: 1
telemetry:
  enabled: false
"""


def instance_for(warehouse: Warehouse) -> DagsterInstance:
    home: Path = warehouse.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return DagsterInstance.from_config(str(home))
