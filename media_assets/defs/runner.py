"""Materialize the media partitions of a warehouse from Python (what `media-assets ingest` does).

Files are registered as `media_files` partitions in the warehouse's Dagster instance and each missing or
stale one is materialized by the `ingest_media` job in this process, so the runs, partitions and metadata
are the ones `dagster dev` shows afterwards. `repair` requests the runs `media-assets verify --repair` names.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import AssetKey, AssetSelection, DagsterEventType

from media_assets.definitions import build_definitions
from media_assets.defs import jobs
from media_assets.defs.instance import instance_for
from media_assets.defs.partitions import media_files
from media_assets.feedback.table import settled_seq
from media_assets.ids import media_id_for
from media_assets.media.discovery import MediaFile, scan_media
from media_assets.models.clip import ClipEncoder
from media_assets.search.index import IndexReader
from media_assets.stages.frames import purge_media
from media_assets.stages.verify import VerifyReport, verify_warehouse
from media_assets.store import catalog
from media_assets.store.adapters import current_version
from media_assets.store.text_vectors import TEXT_VECTORS, TextVectorStore
from media_assets.store.vectors import VectorStore
from media_assets.warehouse import Warehouse


@dataclass
class IngestPlan:
    files: list[MediaFile]
    to_run: list[MediaFile]
    up_to_date: list[str]
    deleted: list[str]


@dataclass
class IngestReport:
    plan: IngestPlan
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # partition key → reason
    index: str = ""  # what became of the HNSW index
    clusters: str = ""  # what became of the clusters
    elapsed_s: float = 0.0


def plan_ingest(warehouse: Warehouse, instance, model_id: str, *, force: bool = False) -> IngestPlan:
    """Which files need a run: new, changed since their catalog row, or without vectors of `model_id`."""
    files = list(scan_media(warehouse.media_root))
    recorded = catalog.recorded_signatures(warehouse)
    embedded: set[int] = set()
    dataset = VectorStore(warehouse).frame_vectors_dataset()
    if dataset is not None:
        table = dataset.to_table(columns=["media_id", "model_id"])
        embedded = {
            m
            for m, model in zip(table["media_id"].to_pylist(), table["model_id"].to_pylist(), strict=True)
            if model == model_id
        }
    to_run, up_to_date = [], []
    for media_file in files:
        fresh = recorded.get(media_file.partition_key) == media_file.signature and media_file.media_id in embedded
        (up_to_date.append(media_file.partition_key) if fresh and not force else to_run.append(media_file))
    present = {m.partition_key for m in files}
    deleted = sorted(set(instance.get_dynamic_partitions(media_files.name)) - present)
    return IngestPlan(files, to_run, up_to_date, deleted)


def _failure_reason(result) -> str:
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            user = getattr(event.step_failure_data, "user_failure_data", None)
            if user is not None and user.description:
                return user.description
            if error is not None:
                cause = error
                while cause.cause is not None:
                    cause = cause.cause
                return cause.message.strip().splitlines()[-1] if cause.message else error.message
    return "run failed"


def ingest(
    warehouse: Warehouse,
    *,
    clip_model: str = "",
    device: str = "auto",
    batch_size: int = 32,
    frames_config: dict | None = None,
    force: bool = False,
    on_start: Callable[[IngestPlan], None] | None = None,
    on_file: Callable[[MediaFile, bool, str], None] | None = None,
) -> IngestReport:
    """Register every media file as a partition and materialize the ones that need it."""
    started = time.perf_counter()
    warehouse.ensure()
    encoder = ClipEncoder.load(clip_model or None, device=device)  # fail early, and warm the per-process cache
    instance = instance_for(warehouse)
    plan = plan_ingest(warehouse, instance, encoder.model_id, force=force)
    registered = set(instance.get_dynamic_partitions(media_files.name))
    new_keys = [m.partition_key for m in plan.files if m.partition_key not in registered]
    if new_keys:
        instance.add_dynamic_partitions(media_files.name, new_keys)
    for key in plan.deleted:
        purge_media(warehouse, media_id_for(key))
        instance.delete_dynamic_partition(media_files.name, key)
    if on_start is not None:
        on_start(plan)
    report = IngestReport(plan)
    defs = build_definitions(
        str(warehouse.root),
        media_root=str(warehouse.media_root),
        clip_model=encoder.model_id,
        device=device,
        batch_size=batch_size,
    )
    job = defs.resolve_job_def("ingest_media")
    run_config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    if frames_config:
        run_config["ops"] = {"frames": {"config": frames_config}}
    for media_file in plan.to_run:
        result = job.execute_in_process(
            partition_key=media_file.partition_key,
            instance=instance,
            run_config=run_config,
            raise_on_error=False,
            tags={"media_assets/source": "cli"},
        )
        if result.success:
            report.succeeded.append(media_file.partition_key)
            reason = ""
        else:
            reason = _failure_reason(result)
            report.failed[media_file.partition_key] = reason
        if on_file is not None:
            on_file(media_file, result.success, reason)
    changed = bool(report.succeeded or plan.deleted)
    if changed and current_version(warehouse):
        _refresh_adapted(defs, instance, run_config["loggers"])
    report.index = _update_index(defs, instance, warehouse, run_config["loggers"])
    report.clusters = _update_clusters(defs, instance, warehouse, run_config["loggers"], changed)
    catalog.sync_catalog_file(warehouse)
    report.elapsed_s = time.perf_counter() - started
    return report


def _update_clusters(defs, instance, warehouse: Warehouse, loggers: dict, library_changed: bool) -> str:
    """Materialize `clusters` (and its checks) when shots or faces changed, or when there are none yet."""
    if not catalog.query(warehouse, "SELECT 1 FROM shots LIMIT 1").num_rows:
        return "no shots to cluster"
    if (
        not library_changed
        and not _pins_since_clustering(warehouse)
        and catalog.read_table(warehouse, "clusters").num_rows
    ):
        return "up to date"
    result = defs.resolve_job_def("cluster_library").execute_in_process(
        instance=instance, run_config={"loggers": loggers}, raise_on_error=False, tags={"media_assets/source": "cli"}
    )
    if not result.success:
        return f"update failed: {_failure_reason(result)}"
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION and not event.event_specific_data.passed:
            return f"updated, but check {event.event_specific_data.asset_check_key.name} failed"
    meta = result.asset_materializations_for_node("clusters")[0].metadata
    return (
        f"{meta['scene_clusters'].value} scene clusters ({meta['scene_noise'].value} shots in noise), "
        f"{meta['character_clusters'].value} character clusters ({meta['character_noise'].value} faces in noise)"
    )


def _refresh_adapted(defs, instance, loggers: dict) -> None:
    """With an embedding adapter current, new vectors go through it before the index and clusters read them."""
    result = defs.resolve_job_def("refresh_adapted").execute_in_process(
        instance=instance,
        run_config={"loggers": loggers},
        raise_on_error=False,
        tags={"media_assets/source": "cli"},
        asset_selection=[AssetKey("adapted_vectors")],
    )
    if not result.success:
        raise RuntimeError(f"re-deriving the adapted vectors failed: {_failure_reason(result)}")


def refresh_after_adapter_change(warehouse: Warehouse) -> str:
    """Run `refresh_adapted` (adapted vectors, index, clusters) for the adapter now current, e.g. after a rollback."""
    defs = build_definitions(str(warehouse.root), media_root=str(warehouse.media_root))
    result = defs.resolve_job_def("refresh_adapted").execute_in_process(
        instance=instance_for(warehouse),
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        raise_on_error=False,
        tags={"media_assets/source": "cli"},
    )
    return "refreshed" if result.success else f"refresh failed: {_failure_reason(result)}"


def learn_now(warehouse: Warehouse) -> list[str]:
    """Run `learn_from_feedback` on every feedback row written so far (what the feedback sensor requests
    once enough rows arrive): a candidate adapter, the gate's decision, and when promoted the adapted
    vectors, index and clusters. Returns lines that say what happened."""
    through = settled_seq(warehouse, settle_s=0.0)
    if through is None:
        return ["no feedback yet: nothing to learn from"]
    defs = build_definitions(str(warehouse.root), media_root=str(warehouse.media_root))
    result = defs.resolve_job_def("learn_from_feedback").execute_in_process(
        instance=instance_for(warehouse),
        run_config={
            "ops": {"embedding_adapter": {"config": {"through_seq": through}}},
            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
        },
        raise_on_error=False,
        tags={"media_assets/source": "cli"},
    )
    trained = result.asset_materializations_for_node("embedding_adapter")
    if not trained:
        return [f"training failed: {_failure_reason(result)}"]
    version = trained[0].metadata["version"].value
    gate = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.asset_check_key.name == "adapter_improves_held_out"
    ]
    lines = [
        f"candidate adapter version {version} trained on {trained[0].metadata['feedback_rows'].value} feedback rows"
    ]
    if gate:
        lines.append(f"gate: {gate[0].metadata['reason'].value}")
    if result.success:
        lines.append(
            f"adapter version {current_version(warehouse)} is current; adapted vectors, index and clusters refreshed"
        )
    elif gate and not gate[0].passed:
        lines.append(f"adapter version {current_version(warehouse)} stays current (0: none)")
    else:
        lines.append(f"the refresh failed: {_failure_reason(result)}")
    return lines


def _pins_since_clustering(warehouse: Warehouse) -> bool:
    row = catalog.query(
        warehouse,
        "SELECT (SELECT max(pinned_at) FROM cluster_pins) > "
        "coalesce((SELECT max(clustered_at) FROM clusters), '-infinity'::TIMESTAMPTZ) AS newer",
    ).to_pylist()[0]
    return bool(row["newer"])


def recluster(warehouse: Warehouse) -> str:
    """Run the `cluster_library` job now (e.g. after pinning), recorded in the warehouse's Dagster instance."""
    defs = build_definitions(str(warehouse.root), media_root=str(warehouse.media_root))
    loggers = {"console": {"config": {"log_level": "CRITICAL"}}}
    return _update_clusters(defs, instance_for(warehouse), warehouse, loggers, library_changed=True)


def _update_index(defs, instance, warehouse: Warehouse, loggers: dict) -> str:
    """Materialize `hnsw_index` (and its recall check) when the vectors changed since it was built."""
    store = VectorStore(warehouse)
    if store.count() == 0:
        return "no vectors to index"
    index, reason = IndexReader(warehouse).get()
    if index is not None:
        return "up to date"
    result = defs.resolve_job_def("index_frames").execute_in_process(
        instance=instance, run_config={"loggers": loggers}, raise_on_error=False, tags={"media_assets/source": "cli"}
    )
    if not result.success:
        return f"update failed: {_failure_reason(result)}"
    checks = [
        e.event_specific_data for e in result.all_events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    recall = checks[0].metadata["recall"].value if checks else None
    return f"updated ({reason}); recall@10 {recall:.3f}" if recall is not None else f"updated ({reason})"


def repair(warehouse: Warehouse, report: VerifyReport, *, on_line: Callable[[str], None] | None = None) -> list[str]:
    """Request the runs that repair `report`'s problems (what `media-assets verify --repair` does), in this
    process and recorded in the warehouse's Dagster instance. First what no run does (purge the media whose
    file is gone, delete schema files the next write makes again); then one `ingest_media` run per partition
    with just the assets its problems name and what follows them in the job, with the models its stored vectors
    were made with and the sampling its `media` row records; then, after verifying again (the new vectors move
    the index and the adapted tables), `refresh_adapted`, `index_frames` and `cluster_library` as the problems
    ask. Returns one line per action. Problems no run can repair are left as they are."""
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if on_line is not None:
            on_line(line)

    loggers = {"console": {"config": {"log_level": "CRITICAL"}}}
    tags = {"media_assets/source": "cli", "media_assets/reason": "repair"}
    for fix in report.repairs():
        if fix.action == "purge":
            purge_media(warehouse, fix.media_id)
            say(f"purged media {fix.media_id}: its file is gone")
        elif fix.action == "delete_file":
            (warehouse.root / fix.target).unlink(missing_ok=True)
            catalog.ensure_tables(warehouse)
            say(f"wrote {fix.target} again")
    wanted: dict[str, set[str]] = {}
    for fix in report.repairs():
        if fix.action == "materialize":
            wanted.setdefault(fix.partition_key, set()).add(fix.target)
            if fix.clear == TEXT_VECTORS:
                TextVectorStore(warehouse).delete_media(fix.media_id)
            elif fix.clear:
                VectorStore(warehouse, fix.clear).delete_media(fix.media_id)
    frame_models, text_models = VectorStore(warehouse).model_ids(), TextVectorStore(warehouse).model_ids()
    defs = build_definitions(
        str(warehouse.root),
        media_root=str(warehouse.media_root),
        clip_model=frame_models[0] if len(frame_models) == 1 else "",
        text_model=text_models[0] if len(text_models) == 1 else "",
    )
    instance = instance_for(warehouse)
    if wanted:
        registered = set(instance.get_dynamic_partitions(media_files.name))
        missing = sorted(set(wanted) - registered)
        if missing:
            instance.add_dynamic_partitions(media_files.name, missing)
        job, graph = defs.resolve_job_def(jobs.ingest_job.name), defs.resolve_asset_graph()
        for key, assets in sorted(wanted.items()):
            selection = (AssetSelection.assets(*assets).downstream() & jobs.ingest_job.selection).resolve(graph)
            run_config: dict = {"loggers": loggers}
            if AssetKey("frames") in selection:
                run_config["ops"] = {"frames": {"config": _recorded_sampling(warehouse, media_id_for(key))}}
            result = job.execute_in_process(
                partition_key=key,
                asset_selection=sorted(selection, key=lambda k: k.to_user_string()),
                instance=instance,
                run_config=run_config,
                raise_on_error=False,
                tags=tags,
            )
            names = ", ".join(sorted(k.to_user_string() for k in selection))
            say(f"ingest_media {key} ({names}): " + ("ok" if result.success else f"failed: {_failure_reason(result)}"))
        report = verify_warehouse(warehouse)
    needed = {fix.target for fix in report.repairs() if fix.action == "job"}
    if "refresh_adapted" in needed:  # it makes the index and the clusters again too
        needed = {"refresh_adapted"}
    for name in [n for n in ("refresh_adapted", "index_frames", "cluster_library") if n in needed]:
        result = defs.resolve_job_def(name).execute_in_process(
            instance=instance, run_config={"loggers": loggers}, raise_on_error=False, tags=tags
        )
        say(f"{name}: " + ("ok" if result.success else f"failed: {_failure_reason(result)}"))
    return lines


def register_partitions(warehouse: Warehouse) -> int:
    """Add every media file of the catalog as a `media_files` partition of the warehouse's Dagster instance
    (after a restore: the instance is not in a backup). Returns how many were new to it."""
    keys = set(catalog.query(warehouse, "SELECT partition_key FROM media")["partition_key"].to_pylist())
    instance = instance_for(warehouse)
    new = sorted(keys - set(instance.get_dynamic_partitions(media_files.name)))
    if new:
        instance.add_dynamic_partitions(media_files.name, new)
    return len(new)


def _recorded_sampling(warehouse: Warehouse, media_id: int) -> dict:
    """The frames config a partition was sampled with, from its `media` row (the defaults if it has none)."""
    try:
        media = catalog.read_partition(warehouse, "media", media_id)
    except (OSError, ValueError):
        media = None
    sampling = media["sampling"][0].as_py() if media is not None and len(media) else ""
    name, _, value = (sampling or "").partition("=")
    try:
        if name == "fps":
            return {"sample_fps": float(value)}
        if name == "every":
            return {"every_n_frames": int(value)}
    except ValueError:
        pass
    return {}
