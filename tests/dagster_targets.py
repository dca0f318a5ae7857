"""Jobs that Dagster can reconstruct in other processes (the multiprocess executor needs an importable
target), and a launcher: `python dagster_targets.py PARTITION_KEY` runs one partition of `ingest_media`
with the multiprocess executor in the warehouse named by the environment, as a run launched by the
Dagster daemon would."""

import sys

from media_assets.definitions import build_definitions


def ingest_job_from_env():
    """The real `ingest_media` job over the warehouse and model named by the environment."""
    return build_definitions().resolve_job_def("ingest_media")


def main(partition_key: str) -> int:
    from dagster import execute_job, reconstructable

    from media_assets.defs.instance import instance_for
    from media_assets.warehouse import Warehouse

    instance = instance_for(Warehouse.at())
    with execute_job(
        reconstructable(ingest_job_from_env), instance=instance, tags={"dagster/partition": partition_key}
    ) as result:
        return 0 if result.success else 1


if __name__ == "__main__":  # the executor's child processes import this module again: run only here
    sys.exit(main(sys.argv[1]))
