"""`media_sensor`: keeps the `media_files` partitions in step with the files under the media root."""


import json
import time

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from .. import catalog
from ..frames import purge_media
from ..media import diff_media, media_id_for, scan_media
from .assets import frame_embeddings, frames, media_files
from .film_assets import clusters_job, faces, shots
from .index_assets import index_job
from .resources import WarehouseResource

ingest_job = define_asset_job(
    "ingest_media",
    selection=[frames, frame_embeddings, shots, faces],
    partitions_def=media_files,
    description="Frames, CLIP embeddings, shots and faces of one media file.",
)


@sensor(
    jobs=[ingest_job, index_job, clusters_job],
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
        RunRequest(job_name=ingest_job.name, partition_key=key, run_key=f"{key}@{changes.signatures[key]}",
                   tags={"media_assets/reason": reason})
        for reason, keys in (("new", changes.new), ("changed", changes.changed))
        for key in keys
    ]
    if changes.deleted:
        # a deletion updates no asset the automation sensors watch: the index and the clusters would keep
        # the deleted file's frames and shots until some other change, so ask for their runs now
        gone = ",".join(sorted(changes.deleted))
        requests += [
            RunRequest(job_name=job.name, run_key=f"{job.name} after deleting {gone} @{time.time_ns()}",
                       tags={"media_assets/reason": "deleted"})
            for job in (index_job, clusters_job)
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
