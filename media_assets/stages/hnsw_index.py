"""The hnsw_index stage: our HNSW (`models.hnsw`) over every stored frame vector, kept in step with LanceDB.

It writes `<warehouse>/index/frames.hnsw` and its manifest (`store.index_files`: paths, what the manifest
records); the search client reads them through `search.index`.

`update_frame_index` builds the index the first time and afterwards applies only what changed since the
manifest: media files whose vectors were added, re-written (another run id) or removed. Their old rows are
tombstoned and their new vectors inserted; once tombstones pass `hnsw.COMPACT_TOMBSTONE_FRACTION` the
graph is rebuilt from the live rows. A missing, corrupt or mismatched index file (other model, other
dimension, truncated) is rebuilt from scratch, and the report says why.

`measure_recall` is the blocking check's measurement: recall@k against exact search over the stored vectors.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np

from media_assets.errors import storage_full_as_error
from media_assets.ids import FRAME_SEQ_BITS
from media_assets.models.hnsw import HNSWIndex, IndexFileError
from media_assets.store.adapters import current_version, serving_store
from media_assets.store.catalog import remove_dead_temps
from media_assets.store.index_files import Manifest, index_path, manifest_path
from media_assets.store.vectors import VectorStore, vector_matrix
from media_assets.warehouse import Warehouse


@dataclass(frozen=True)
class IndexParams:
    M: int = 16
    ef_construction: int = 200
    ef_search: int = 50
    seed: int = 0


@dataclass
class UpdateReport:
    mode: str  # "built", "rebuilt", "updated", "unchanged"
    reason: str
    added_media: int = 0
    changed_media: int = 0
    removed_media: int = 0
    vectors_added: int = 0
    vectors_deleted: int = 0
    compacted: bool = False
    node_count: int = 0
    live_count: int = 0
    memory_bytes: int = 0
    elapsed_s: float = 0.0
    params: dict = field(default_factory=dict)
    model_id: str = ""


def _snapshot(store: VectorStore):
    """The frame_vectors table at one version: (version, frame_ids, media_ids, run_ids, vectors, model ids)."""
    table = store.table()
    if table is None:
        return None
    dataset = table.to_lance()
    data = dataset.to_table(columns=["frame_id", "media_id", "run_id", "model_id", "vector"])
    vectors = vector_matrix(data)
    return (
        dataset.version,
        data["frame_id"].to_numpy(),
        data["media_id"].to_numpy(),
        np.asarray(data["run_id"].to_pylist(), dtype=object),
        vectors,
        sorted(set(data["model_id"].to_pylist())),
    )


def update_frame_index(warehouse: Warehouse, params: IndexParams = IndexParams()) -> UpdateReport:
    """Bring `index/frames.hnsw` in step with the frame vectors (see the module docstring)."""
    started = time.perf_counter()
    warehouse.index_dir.mkdir(parents=True, exist_ok=True)
    store = serving_store(warehouse)
    adapter_version = current_version(warehouse) if store.name != "frame_vectors" else 0
    snapshot = _snapshot(store)
    if snapshot is None or not len(snapshot[1]):
        raise ValueError("there are no frame vectors to index yet; materialize frame_embeddings first")
    version, frame_ids, media_ids, run_ids, vectors, models = snapshot
    if len(models) != 1:
        raise ValueError(f"frame_vectors mixes models {models}; re-embed with one model before indexing")
    model_id, dim = models[0], vectors.shape[1]

    current: dict[str, list] = {}
    for media_id, run_id in zip(media_ids.tolist(), run_ids.tolist(), strict=True):
        entry = current.setdefault(str(media_id), [run_id, 0])
        entry[1] += 1

    manifest = Manifest.read(manifest_path(warehouse))
    index, reason = None, ""
    if manifest is None:
        reason = "no index yet" if not index_path(warehouse).exists() else "manifest missing or unreadable"
    elif manifest.vectors_table != store.name or manifest.adapter_version != adapter_version:
        reason = (
            f"the vectors to index are now {store.name} (adapter version {adapter_version}), the index holds "
            f"{manifest.vectors_table} (adapter version {manifest.adapter_version})"
        )
    elif manifest.model_id != model_id or manifest.dim != dim:
        reason = (
            f"the vectors now come from {model_id} ({dim}-d), the index from {manifest.model_id} ({manifest.dim}-d)"
        )
    elif manifest.params != asdict(params):
        reason = f"parameters changed from {manifest.params} to {asdict(params)}"
    else:
        try:
            index = HNSWIndex.load(index_path(warehouse), expected_dim=dim, expected_model_id=model_id, mmap=False)
        except (IndexFileError, FileNotFoundError) as exc:
            reason = f"index file unusable: {exc}"

    report = UpdateReport(mode="updated", reason="", params=asdict(params), model_id=model_id)
    if index is None:
        index = HNSWIndex(
            dim, M=params.M, ef_construction=params.ef_construction, ef_search=params.ef_search, seed=params.seed
        )
        index.add(vectors, frame_ids)
        report.mode = "built" if reason in ("no index yet",) else "rebuilt"
        report.reason = reason
        report.added_media = len(current)
        report.vectors_added = len(frame_ids)
    else:
        old = manifest.media
        added = [m for m in current if m not in old]
        changed = [m for m in current if m in old and old[m] != current[m]]
        removed = [m for m in old if m not in current]
        touched = np.array([int(m) for m in added + changed + removed], dtype=np.int64)
        if len(touched):
            # delete by media id, not by remembered frame ids: idempotent even if a crash left the
            # index newer than its manifest
            indexed_media = index.ids >> FRAME_SEQ_BITS
            report.vectors_deleted = index.delete(index.ids[np.isin(indexed_media, touched)])
            fresh = np.isin(media_ids, np.array([int(m) for m in added + changed], dtype=np.int64))
            if fresh.any():
                index.add(vectors[fresh], frame_ids[fresh])
            report.vectors_added = int(fresh.sum())
        report.added_media, report.changed_media, report.removed_media = len(added), len(changed), len(removed)
        if not len(touched) and manifest.vectors_version == version:
            report.mode, report.reason = "unchanged", "nothing changed since the last update"
        else:
            report.reason = f"{len(added)} media added, {len(changed)} re-embedded, {len(removed)} removed"
        if index.needs_compaction:
            index.compact()
            report.compacted = True

    for stale in (index_path(warehouse), manifest_path(warehouse)):  # what a killed update left half-written
        remove_dead_temps(warehouse.index_dir, stale.name)
    if report.mode != "unchanged":
        with storage_full_as_error("the frame index", index_path(warehouse)):
            index.save(index_path(warehouse), model_id=model_id)
    Manifest(
        model_id=model_id,
        dim=dim,
        params=asdict(params),
        vectors_version=int(version),
        media=current,
        node_count=int(index.ids.shape[0]),
        live_count=len(index),
        updated_at=datetime.now(UTC).isoformat(),
        vectors_table=store.name,
        adapter_version=adapter_version,
    ).write(manifest_path(warehouse))
    report.node_count, report.live_count = int(index.ids.shape[0]), len(index)
    report.memory_bytes = index.memory_bytes()
    report.elapsed_s = time.perf_counter() - started
    return report


def measure_recall(
    warehouse: Warehouse, *, k: int = 10, sample: int = 200, ef: int | None = None, seed: int = 0
) -> dict:
    """recall@k of the index against exact search over the LanceDB vectors, with `sample` stored
    vectors as queries. Ties count: a returned frame is a hit if its exact similarity reaches the
    k-th exact similarity (recurring identical pictures make exact ties)."""
    manifest = Manifest.read(manifest_path(warehouse))
    if manifest is None:
        raise ValueError("no frame index to check")
    index = HNSWIndex.load(index_path(warehouse), expected_dim=manifest.dim, expected_model_id=manifest.model_id)
    frame_ids, _, vectors = VectorStore(warehouse, manifest.vectors_table).load_all()
    rng = np.random.default_rng(seed)
    queries = vectors[rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False)]
    k_eff = min(k, len(vectors))
    exact_sims = queries @ vectors.T
    kth = -np.sort(-exact_sims, axis=1)[:, k_eff - 1]
    sim_of = {int(f): i for i, f in enumerate(frame_ids.tolist())}
    found_ids, _ = index.search(queries, k=k_eff, ef=ef)
    hits = 0
    for q, row in enumerate(found_ids):
        for frame_id in row:
            column = sim_of.get(int(frame_id))
            if column is not None and exact_sims[q, column] >= kth[q] - 1e-6:
                hits += 1
    return {
        "recall": hits / (len(queries) * k_eff),
        "queries": len(queries),
        "k": k_eff,
        "ef_search": ef or index.ef_search,
    }
