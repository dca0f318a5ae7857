"""A library made of chosen vectors: catalog rows and frame vectors for files that do not exist.

For tests and benchmarks of everything downstream of embedding (search, moments, clusters, the learning
loop) at sizes, or with a geometry, that real media cannot give offline.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from media_assets.ids import frame_id_for, media_id_for
from media_assets.store import catalog
from media_assets.store.vectors import VectorStore
from media_assets.warehouse import Warehouse


def write_synthetic_library(
    warehouse: Warehouse,
    vectors_by_file: dict[str, np.ndarray],
    *,
    step_s: float = 1.0,
    kinds: dict[str, str] | None = None,
    model_id: str = "synthetic",
) -> dict[str, int]:
    """Catalog rows (`media`, `frames`) and `frame_vectors` for files that do not exist, from given vectors:
    file `key` gets one sampled frame per row of `vectors_by_file[key]`, `step_s` apart. For tests and
    benchmarks of everything downstream of embedding (search, moments, clusters) at sizes or with
    structure real media cannot give. Returns partition key → media_id."""
    now = datetime.now(UTC)
    store = VectorStore(warehouse)
    ids = {}
    for key, vectors in vectors_by_file.items():
        vectors = np.asarray(vectors, dtype=np.float32)
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        media_id = media_id_for(key)
        kind = (kinds or {}).get(key, "video")
        count = len(vectors)
        frame_ids = [frame_id_for(media_id, seq) for seq in range(count)]
        catalog.replace_partition(
            warehouse,
            "media",
            media_id,
            [
                {
                    "media_id": media_id,
                    "partition_key": key,
                    "path": str(warehouse.media_root / key),
                    "kind": kind,
                    "size_bytes": 0,
                    "mtime_ns": 0,
                    "container": "synthetic",
                    "codec": "synthetic",
                    "width": 640,
                    "height": 360,
                    "fps": 1.0 / step_s if kind == "video" else None,
                    "duration_s": count * step_s if kind == "video" else 0.0,
                    "frame_count": count,
                    "frames_sampled": count,
                    "duplicate_frames": 0,
                    "undecodable_frames": 0,
                    "sampling": f"fps={1.0 / step_s:g}" if kind == "video" else "image",
                    "run_id": "synthetic",
                    "ingested_at": now,
                }
            ],
        )
        catalog.replace_partition(
            warehouse,
            "frames",
            media_id,
            [
                {
                    "frame_id": frame_id,
                    "media_id": media_id,
                    "seq": seq,
                    "frame_index": seq,
                    "timestamp_s": seq * step_s,
                    "width": 640,
                    "height": 360,
                    "thumbnail_path": f"frames/{media_id}/{seq:06d}.jpg",
                    "phash": 0,
                    "sharpness": 100.0,
                    "change_score": 0.0,
                    "pixel_change": 0.0,
                    "is_duplicate": False,
                    "duplicate_of": None,
                    "run_id": "synthetic",
                }
                for seq, frame_id in enumerate(frame_ids)
            ],
        )
        store.replace_media(
            media_id, np.asarray(frame_ids, dtype=np.int64), vectors, model_id=model_id, run_id="synthetic"
        )
        ids[key] = media_id
    return ids
