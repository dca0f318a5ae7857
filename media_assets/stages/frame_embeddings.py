"""The frame_embeddings stage: CLIP vectors of a media file's kept (non-duplicate) frames → LanceDB.

Reads what the frames stage wrote (the partition's `frames` rows and their thumbnails), encodes the
thumbnails, and replaces the partition's rows in `frame_vectors` in one commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from media_assets.errors import MissingFramesError
from media_assets.models.clip import ClipEncoder
from media_assets.store import catalog
from media_assets.store.vectors import VectorStore
from media_assets.warehouse import Warehouse


@dataclass
class EmbeddingResult:
    media_id: int
    frames_total: int
    embedded: int
    skipped_duplicates: int
    unreadable_thumbnails: int
    elapsed_s: float
    model_id: str
    device: str
    dim: int

    @property
    def frames_per_second(self) -> float:
        return self.embedded / self.elapsed_s if self.elapsed_s > 0 else 0.0


def embed_frames(
    warehouse: Warehouse,
    media_id: int,
    encoder: ClipEncoder,
    *,
    batch_size: int = 32,
    run_id: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> EmbeddingResult:
    started = time.perf_counter()
    frames = catalog.read_partition(warehouse, "frames", media_id)
    if frames is None:
        raise MissingFramesError(f"media {media_id} has no frames in the catalog; materialize its frames first")
    kept = frames.filter(pc.invert(frames["is_duplicate"]))
    frame_ids = kept["frame_id"].to_numpy()
    paths = [warehouse.root / p for p in kept["thumbnail_path"].to_pylist()]
    vectors, unreadable = encoder.encode_image_files(paths, batch_size=batch_size, progress=progress)
    if unreadable:
        frame_ids = np.delete(frame_ids, unreadable)
    VectorStore(warehouse).replace_media(media_id, frame_ids, vectors, model_id=encoder.model_id, run_id=run_id)
    return EmbeddingResult(
        media_id=media_id,
        frames_total=len(frames),
        embedded=len(frame_ids),
        skipped_duplicates=len(frames) - len(kept),
        unreadable_thumbnails=len(unreadable),
        elapsed_s=time.perf_counter() - started,
        model_id=encoder.model_id,
        device=encoder.device,
        dim=encoder.dim,
    )
