"""The warehouse's health in Dagster: the asset check `warehouse_is_consistent` and the schedule
`verify_warehouse_schedule` that evaluates it (daily at 04:00 by default, `MEDIA_ASSETS_VERIFY_CRON` changes
it; on by default) through the job `verify_warehouse`.

The check sits on `hnsw_index`, the last thing made from every vector, and asks whether the catalog, the vector
tables, the thumbnails, the index and the adapter registry agree (`stages.verify` says how). Problems of a
partition whose run is in progress right now, and the global ones while any other run is in progress, are
counted as in flight, not failed: they are what a run looks like halfway. It repairs nothing: `media-assets
verify --repair` requests the runs its metadata lists."""

import os

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    DagsterRunStatus,
    DefaultScheduleStatus,
    MetadataValue,
    RunsFilter,
    ScheduleDefinition,
    asset_check,
)

from media_assets.defs import jobs
from media_assets.defs.resources import WarehouseResource
from media_assets.stages.verify import Problem, verify_warehouse

VERIFY_CRON_ENV = "MEDIA_ASSETS_VERIFY_CRON"
DEFAULT_VERIFY_CRON = "0 4 * * *"  # daily, at an hour when few people ingest
RUNNING = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
SHOWN = 20  # problems listed in the metadata's table


@asset_check(
    asset="hnsw_index",
    name=jobs.WAREHOUSE_CHECK.name,
    description="The catalog, the vector tables, the thumbnails, the index and the adapter registry agree: every "
    "kept frame has one vector and one thumbnail, no vector lacks its row, the index covers the served vectors, "
    "the current adapter loads and the adapted tables match. Metadata: problems by kind, examples, and the "
    "partitions and jobs to re-materialize (media-assets verify --repair runs them).",
)
def warehouse_is_consistent(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    report = verify_warehouse(warehouse.get())
    busy_partitions, others_running = _in_flight(context)
    in_flight = [p for p in report.problems if _is_in_flight(p, busy_partitions, others_running)]
    problems = [p for p in report.problems if p not in in_flight]
    partitions: dict[str, set[str]] = {}
    for p in problems:
        if p.repair.action == "materialize":
            partitions.setdefault(p.repair.partition_key, set()).add(p.repair.target)
    runs = sorted({p.repair.target for p in problems if p.repair.action == "job"})
    kinds: dict[str, int] = {}
    for p in problems:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    description = (
        "the warehouse agrees with itself"
        if not problems
        else f"{len(problems)} problems ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})"
    )
    if in_flight:
        description += f"; {len(in_flight)} more in partitions or jobs being written now"
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "problems": MetadataValue.int(len(problems)),
            "problems_by_kind": MetadataValue.json(kinds),
            "partitions_to_rematerialize": MetadataValue.json({k: sorted(v) for k, v in sorted(partitions.items())}),
            "jobs_to_run": MetadataValue.json(runs),
            "needs_a_person": MetadataValue.int(sum(p.repair.action == "none" for p in problems)),
            "examples": MetadataValue.md(_table(problems[:SHOWN])),
            "in_flight": MetadataValue.int(len(in_flight)),
            "counts": MetadataValue.json(report.counts),
            "elapsed_s": MetadataValue.float(round(report.elapsed_s, 3)),
        },
    )


def _in_flight(context: AssetCheckExecutionContext) -> tuple[set[str], bool]:
    """The partitions of the other runs in progress, and whether any other run is in progress."""
    runs = [
        r for r in context.instance.get_runs(filters=RunsFilter(statuses=RUNNING)) if r.run_id != context.run.run_id
    ]
    return {r.tags["dagster/partition"] for r in runs if "dagster/partition" in r.tags}, bool(runs)


def _is_in_flight(problem: Problem, busy_partitions: set[str], others_running: bool) -> bool:
    if problem.partition_key is not None:
        return problem.partition_key in busy_partitions
    return others_running and problem.repair.action == "job"  # the index and adapted tables follow those runs


def _table(problems: list[Problem]) -> str:
    if not problems:
        return "no problems"
    lines = ["| partition | kind | detail | repair |", "|---|---|---|---|"]
    for p in problems:
        where = p.partition_key or (f"media {p.media_id}" if p.media_id is not None else "(warehouse)")
        detail = p.detail.replace("|", "\\|")
        lines.append(f"| {where} | {p.kind} | {detail} | {p.repair.describe()} |")
    return "\n".join(lines)


verify_warehouse_schedule = ScheduleDefinition(
    name="verify_warehouse_schedule",
    job=jobs.verify_job,
    cron_schedule=os.environ.get(VERIFY_CRON_ENV) or DEFAULT_VERIFY_CRON,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Evaluates warehouse_is_consistent (daily at 04:00 unless MEDIA_ASSETS_VERIFY_CRON says otherwise).",
)

SCHEDULES = [verify_warehouse_schedule]
