"""The sensors: `media_sensor` keeps the `media_files` partitions in step with the files under the media
root; `feedback_sensor` requests a retraining when enough new feedback has settled. (The automation
sensors are in `automation`.)"""

import json
import os
import time
from dataclasses import dataclass

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from media_assets.defs import jobs
from media_assets.defs.partitions import media_files
from media_assets.defs.resources import WarehouseResource
from media_assets.feedback.table import settled_seqs
from media_assets.ids import media_id_for
from media_assets.media.discovery import diff_media, scan_media
from media_assets.stages.frames import purge_media
from media_assets.store import catalog


@sensor(
    jobs=[jobs.ingest_job, jobs.index_job, jobs.clusters_job],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Scans the media root: new files become partitions and are ingested, changed files "
    "(size or mtime) are re-ingested, deleted files leave the catalog, the vectors and the partitions "
    "(and the index and clusters are brought up to date). The cursor holds each file's last seen "
    "signature, so a tick only requests what changed.",
)
def media_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    wh = warehouse.get()
    if context.cursor:
        known = json.loads(context.cursor)
    else:  # first tick: what the catalog already holds is known (e.g. ingested from the CLI)
        known = catalog.recorded_signatures(wh)
    registered = set(context.instance.get_dynamic_partitions(media_files.name))
    changes = diff_media(list(scan_media(wh.media_root)), known, registered, now_ns=time.time_ns())
    for key in changes.deleted:
        purge_media(wh, media_id_for(key))
    requests = [
        RunRequest(
            job_name=jobs.ingest_job.name,
            partition_key=key,
            run_key=f"{key}@{changes.signatures[key]}",
            tags={"media_assets/reason": reason},
        )
        for reason, keys in (("new", changes.new), ("changed", changes.changed))
        for key in keys
    ]
    if changes.deleted:
        # a deletion updates no asset the automation sensors watch: the index and the clusters would keep
        # the deleted file's frames and shots until some other change, so ask for their runs now
        gone = ",".join(sorted(changes.deleted))
        requests += [
            RunRequest(
                job_name=job.name,
                run_key=f"{job.name} after deleting {gone} @{time.time_ns()}",
                tags={"media_assets/reason": "deleted"},
            )
            for job in (jobs.index_job, jobs.clusters_job)
        ]
    partition_requests = []
    if changes.new:
        partition_requests.append(media_files.build_add_request(changes.new))
    if changes.deleted:
        partition_requests.append(media_files.build_delete_request(changes.deleted))
    cursor = json.dumps(changes.signatures, sort_keys=True)
    if not requests and not partition_requests:
        note = f"; {len(changes.settling)} file(s) still being written" if changes.settling else ""
        return SensorResult(skip_reason=SkipReason(f"no new, changed or deleted media{note}"), cursor=cursor)
    context.log.info(
        f"{len(changes.new)} new, {len(changes.changed)} changed, {len(changes.deleted)} deleted media files"
    )
    return SensorResult(run_requests=requests, dynamic_partitions_requests=partition_requests, cursor=cursor)


# how many new feedback rows start a retraining (MEDIA_ASSETS_FEEDBACK_MIN_ROWS overrides)
DEFAULT_MIN_NEW_ROWS = 5


def min_new_rows() -> int:
    value = os.environ.get("MEDIA_ASSETS_FEEDBACK_MIN_ROWS", "")
    return int(value) if value.strip() else DEFAULT_MIN_NEW_ROWS


@sensor(
    job=jobs.learning_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=f"Requests a learn_from_feedback run once at least {DEFAULT_MIN_NEW_ROWS} new feedback rows "
    "(MEDIA_ASSETS_FEEDBACK_MIN_ROWS) have settled; the cursor moves only past rows that run trains on.",
)
def feedback_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    wh = warehouse.get()
    cursor = FeedbackCursor.parse(context.cursor)
    seqs = settled_seqs(wh)  # every row at or before the newest settled one (all settled, by definition)
    through = seqs[-1] if seqs else None
    # rows after the cursor, and rows that landed behind it after its tick (a write slower than the settling
    # time, a clock that stepped back): the table is append-only, so more rows at or before the cursor's seq
    # than it counted are late ones, and they count as new
    after = sum(1 for seq in seqs if cursor.through is None or seq > cursor.through)
    late = max(0, (len(seqs) - after) - cursor.rows)
    new_rows = after + late
    needed = min_new_rows()
    if new_rows < needed:
        return SkipReason(f"{new_rows} new settled feedback rows; a retraining needs {needed}")
    # the run trains on every row up to `through`, the late ones included
    context.update_cursor(FeedbackCursor(through, len(seqs)).dump())
    return RunRequest(
        run_key=f"feedback-through-{through}-{len(seqs)}",
        run_config={"ops": {"embedding_adapter": {"config": {"through_seq": through}}}},
        tags={"media_assets/feedback_rows": str(new_rows), "media_assets/late_feedback_rows": str(late)},
    )


@dataclass(frozen=True)
class FeedbackCursor:
    """`feedback_sensor`'s cursor: the seq the last requested run trains through, and how many rows had a seq
    at or before it when it was requested."""

    through: int | None = None
    rows: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "FeedbackCursor":
        if not text:
            return cls()
        if text.strip().isdigit():  # the cursor as earlier versions wrote it: a seq alone
            return cls(int(text), 0)
        value = json.loads(text)
        return cls(int(value["through"]), int(value["rows"]))

    def dump(self) -> str:
        return json.dumps({"through": self.through, "rows": self.rows})


SENSORS = [media_sensor, feedback_sensor]
