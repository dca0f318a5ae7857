"""An in-memory copy of what search results need from the catalog, refreshed when the catalog changes.

Joining a few hundred frame ids with their media through DuckDB costs tens of milliseconds (a connection,
the views, a scan of the Parquet folders); a query budget of a few milliseconds cannot pay that per
search. `FrameLookup` keeps the `frames` and `media` columns a hit shows, sorted by `frame_id`, and answers
"these ids → these rows" with one `searchsorted`. It re-reads the tables when their folders changed (every
partition write is a rename into the folder, which moves the folder's mtime), checking at most once per
`check_interval_s`. Thread-safe.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from media_assets.store import catalog
from media_assets.warehouse import Warehouse


@dataclass(frozen=True)
class FrameTable:
    """Columns of every sampled frame, sorted by frame_id, with its media's columns alongside."""

    frame_id: np.ndarray  # int64, sorted
    media_id: np.ndarray  # int64
    seq: np.ndarray  # int32
    timestamp_s: np.ndarray  # float64
    vector_frame_id: np.ndarray  # int64: the frame itself, or the kept frame a duplicate repeats
    thumbnail_path: list[str]
    media: dict[int, dict]  # media_id -> {"path", "partition_key", "kind", "duration_s", "step_s", ...}

    @property
    def size(self) -> int:
        return len(self.frame_id)

    def rows_of(self, frame_ids: np.ndarray) -> np.ndarray:
        """Row of each id, -1 for ids not in the table."""
        frame_ids = np.asarray(frame_ids, dtype=np.int64)
        if not len(self.frame_id):
            return np.full(len(frame_ids), -1, np.int64)
        rows = np.searchsorted(self.frame_id, frame_ids)
        rows = np.minimum(rows, len(self.frame_id) - 1)
        return np.where(self.frame_id[rows] == frame_ids, rows, -1)

    def rows_of_media(self, media_id: int) -> np.ndarray:
        """Rows of one media file's frames in time order."""
        rows = np.flatnonzero(self.media_id == media_id)
        return rows[np.argsort(self.timestamp_s[rows], kind="stable")]


def _empty() -> FrameTable:
    z = np.zeros(0, np.int64)
    return FrameTable(z, z, np.zeros(0, np.int32), np.zeros(0), z, [], {})


class FrameLookup:
    def __init__(self, warehouse: Warehouse, check_interval_s: float = 1.0):
        self.warehouse = warehouse
        self.check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._table = _empty()
        self._stamp: tuple | None = None
        self._checked_at = -float("inf")

    def _folders_stamp(self) -> tuple:
        stamp = []
        for table in ("frames", "media"):
            try:
                stat = os.stat(catalog.table_dir(self.warehouse, table))
                stamp.append((stat.st_mtime_ns, stat.st_ino))
            except FileNotFoundError:
                stamp.append(None)
        return tuple(stamp)

    def get(self) -> FrameTable:
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at >= self.check_interval_s:
                self._checked_at = now
                stamp = self._folders_stamp()
                if stamp != self._stamp:
                    self._table = self._load()
                    self._stamp = stamp
            return self._table

    def refresh(self) -> FrameTable:
        with self._lock:
            self._checked_at = -float("inf")
        return self.get()

    def _load(self) -> FrameTable:
        frames = catalog.query(
            self.warehouse,
            "SELECT frame_id, media_id, seq, timestamp_s, coalesce(duplicate_of, frame_id) AS vector_frame_id, "
            "thumbnail_path "
            "FROM frames ORDER BY frame_id",
        )
        media_rows = catalog.query(
            self.warehouse, "SELECT media_id, path, partition_key, kind, duration_s, sampling, width, height FROM media"
        ).to_pylist()
        media_ids = frames["media_id"].to_numpy()
        timestamps = frames["timestamp_s"].to_numpy()
        media = {}
        for row in media_rows:
            row["step_s"] = _sampling_step(np.sort(timestamps[media_ids == row["media_id"]]))
            media[row["media_id"]] = row
        return FrameTable(
            frame_id=frames["frame_id"].to_numpy(),
            media_id=media_ids,
            seq=frames["seq"].to_numpy(),
            timestamp_s=timestamps,
            vector_frame_id=frames["vector_frame_id"].to_numpy(),
            thumbnail_path=frames["thumbnail_path"].to_pylist(),
            media=media,
        )


def _sampling_step(timestamps: np.ndarray) -> float | None:
    """Typical seconds between a file's sampled frames (None for a photo or a single frame)."""
    steps = np.diff(timestamps)
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else None
