"""The frame index: our HNSW (`media_assets.hnsw`) over every stored frame vector, kept in step with LanceDB.

Files in `<warehouse>/index/`:
- `frames.hnsw`: the index (the versioned binary format documented in `media_assets.hnsw`);
- `frames.manifest.json`: what the index holds — the model id, the HNSW parameters, the LanceDB
  `frame_vectors` version it was built from, and per media file the run that wrote its vectors and how
  many there are. Both are written atomically (temporary file + rename); the index first, then the manifest.

`update_frame_index` builds the index the first time and afterwards applies only what changed since the
manifest: media files whose vectors were added, re-written (another run id) or removed. Their old rows are
tombstoned and their new vectors inserted; once tombstones pass `hnsw.COMPACT_TOMBSTONE_FRACTION` the
graph is rebuilt from the live rows. A missing, corrupt or mismatched index file (other model, other
dimension, truncated) is rebuilt from scratch, and the report says why.

The index is *current* when the manifest's LanceDB version is the table's latest version: the search
client uses it then, and exact search otherwise.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .hnsw import HNSWIndex, IndexFileError
from .media import FRAME_SEQ_BITS
from .vectors import VectorStore, vector_matrix
from .warehouse import Warehouse

INDEX_FILE = "frames.hnsw"
MANIFEST_FILE = "frames.manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class IndexParams:
    M: int = 16
    ef_construction: int = 200
    ef_search: int = 50
    seed: int = 0


@dataclass
class Manifest:
    model_id: str
    dim: int
    params: dict
    vectors_version: int
    media: dict[str, list]  # str(media_id) → [run_id, vector count]
    node_count: int
    live_count: int
    updated_at: str
    version: int = MANIFEST_VERSION
    vectors_table: str = "frame_vectors"  # or adapted_frame_vectors, when an adapter is current
    adapter_version: int = 0

    @classmethod
    def read(cls, path: Path) -> "Manifest | None":
        try:
            data = json.loads(path.read_text())
            if data.get("version") != MANIFEST_VERSION:
                return None
            return cls(**data)
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def write(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        os.replace(tmp, path)


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


def index_path(warehouse: Warehouse) -> Path:
    return warehouse.index_dir / INDEX_FILE


def manifest_path(warehouse: Warehouse) -> Path:
    return warehouse.index_dir / MANIFEST_FILE


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
    from .learning import current_version, serving_store

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
    for media_id, run_id in zip(media_ids.tolist(), run_ids.tolist()):
        entry = current.setdefault(str(media_id), [run_id, 0])
        entry[1] += 1

    manifest = Manifest.read(manifest_path(warehouse))
    index, reason = None, ""
    if manifest is None:
        reason = "no index yet" if not index_path(warehouse).exists() else "manifest missing or unreadable"
    elif manifest.vectors_table != store.name or manifest.adapter_version != adapter_version:
        reason = (f"the vectors to index are now {store.name} (adapter version {adapter_version}), the index holds "
                  f"{manifest.vectors_table} (adapter version {manifest.adapter_version})")
    elif manifest.model_id != model_id or manifest.dim != dim:
        reason = f"the vectors now come from {model_id} ({dim}-d), the index from {manifest.model_id} ({manifest.dim}-d)"
    elif manifest.params != asdict(params):
        reason = f"parameters changed from {manifest.params} to {asdict(params)}"
    else:
        try:
            index = HNSWIndex.load(index_path(warehouse), expected_dim=dim, expected_model_id=model_id, mmap=False)
        except (IndexFileError, FileNotFoundError) as exc:
            reason = f"index file unusable: {exc}"

    report = UpdateReport(mode="updated", reason="", params=asdict(params), model_id=model_id)
    if index is None:
        index = HNSWIndex(dim, M=params.M, ef_construction=params.ef_construction, ef_search=params.ef_search, seed=params.seed)
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

    if report.mode != "unchanged":
        index.save(index_path(warehouse), model_id=model_id)
    Manifest(
        model_id=model_id,
        dim=dim,
        params=asdict(params),
        vectors_version=int(version),
        media=current,
        node_count=int(index.ids.shape[0]),
        live_count=len(index),
        updated_at=datetime.now(timezone.utc).isoformat(),
        vectors_table=store.name,
        adapter_version=adapter_version,
    ).write(manifest_path(warehouse))
    report.node_count, report.live_count = int(index.ids.shape[0]), len(index)
    report.memory_bytes = index.memory_bytes()
    report.elapsed_s = time.perf_counter() - started
    return report


def measure_recall(warehouse: Warehouse, *, k: int = 10, sample: int = 200, ef: int | None = None, seed: int = 0) -> dict:
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


class IndexReader:
    """Hands the search client the index when it is present and current, else None with the reason.
    Thread-safe; re-reads the files only when the manifest changes."""

    def __init__(self, warehouse: Warehouse, check_interval_s: float = 1.0):
        self.warehouse = warehouse
        self.check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._index: HNSWIndex | None = None
        self._manifest_stamp: tuple | None = None
        self._manifest: Manifest | None = None
        self._checked_at = 0.0
        self._state: tuple[HNSWIndex | None, str] = (None, "not checked yet")

    def get(self) -> tuple[HNSWIndex | None, str]:
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at >= self.check_interval_s:
                self._state = self._check()
                self._checked_at = now
            return self._state

    def _check(self) -> tuple[HNSWIndex | None, str]:
        path = manifest_path(self.warehouse)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None, "there is no frame index yet (materialize hnsw_index)"
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._manifest_stamp:
            self._manifest = Manifest.read(path)
            self._index = None
            if self._manifest is not None:
                try:
                    self._index = HNSWIndex.load(
                        index_path(self.warehouse), expected_dim=self._manifest.dim, expected_model_id=self._manifest.model_id
                    )
                except (IndexFileError, FileNotFoundError) as exc:
                    self._manifest_stamp = stamp
                    return None, f"the frame index is unusable ({exc})"
            self._manifest_stamp = stamp
        if self._manifest is None or self._index is None:
            return None, "the frame index manifest is unreadable"
        from .learning import current_version

        adapter_version = current_version(self.warehouse)
        if self._manifest.adapter_version != adapter_version:
            return None, (f"the frame index is stale (built with adapter version {self._manifest.adapter_version}, "
                          f"now {adapter_version})")
        table = VectorStore(self.warehouse, self._manifest.vectors_table).table()
        latest = None if table is None else int(table.version)
        if latest != self._manifest.vectors_version:
            return None, f"the frame index is stale (built from vectors version {self._manifest.vectors_version}, now {latest})"
        return self._index, "current"

    @property
    def vectors_table(self) -> str | None:
        """The table the current index was built from."""
        return None if self._manifest is None else self._manifest.vectors_table
