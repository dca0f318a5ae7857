"""The search client's view of the HNSW index: the index when it is present and current, else why not.

The index is *current* when its manifest was built from the latest version of the vectors it serves (the
LanceDB table's version) with the adapter now current; the client then searches it, and otherwise falls
back to exact search, logging the reason (missing, stale or unusable).
"""

from __future__ import annotations

import threading
import time

from media_assets.models.hnsw import HNSWIndex, IndexFileError
from media_assets.store.adapters import current_version
from media_assets.store.index_files import Manifest, index_path, manifest_path
from media_assets.store.vectors import VectorStore
from media_assets.warehouse import Warehouse


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
                        index_path(self.warehouse),
                        expected_dim=self._manifest.dim,
                        expected_model_id=self._manifest.model_id,
                    )
                except (IndexFileError, FileNotFoundError) as exc:
                    self._manifest_stamp = stamp
                    return None, f"the frame index is unusable ({exc})"
            self._manifest_stamp = stamp
        if self._manifest is None or self._index is None:
            return None, "the frame index manifest is unreadable"
        adapter_version = current_version(self.warehouse)
        if self._manifest.adapter_version != adapter_version:
            return None, (
                f"the frame index is stale (built with adapter version {self._manifest.adapter_version}, "
                f"now {adapter_version})"
            )
        table = VectorStore(self.warehouse, self._manifest.vectors_table).table()
        latest = None if table is None else int(table.version)
        if latest != self._manifest.vectors_version:
            return (
                None,
                f"the frame index is stale (built from vectors version {self._manifest.vectors_version}, now {latest})",
            )
        return self._index, "current"

    @property
    def vectors_table(self) -> str | None:
        """The table the current index was built from."""
        return None if self._manifest is None else self._manifest.vectors_table
