"""The frames stage: probe a media file, sample its frames, write thumbnails and catalog rows.

`extract_frames` is what the `frames` asset runs for one partition; it needs no Dagster. It writes
- `<warehouse>/frames/<media_id>/<seq>-<digest>.jpg` thumbnails (longest side `thumbnail_max_side`; named by
  their content, so a run never overwrites a picture the rows before it point at),
- the partition's rows of `frames` and `media` in the catalog, in one commit,
and clears the partition's `ingest_errors` row, then removes the thumbnails no row names any more.
Re-running it replaces exactly that partition's output; a crash at any point leaves the old rows with their
thumbnails or the new ones with theirs.
An audio file (kind 'audio') has no pictures: its `media` row comes from the audio probe (width and height
0, fps NULL, sampling 'audio') and it gets no frames and no thumbnails.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pyarrow as pa

from media_assets.errors import MediaReadError, storage_full_as_error
from media_assets.ids import MAX_FRAMES_PER_MEDIA, frame_id_for
from media_assets.media.audio import probe_audio
from media_assets.media.decoding import DecodedFrame, DecodeStats, Sampling, load_image, probe, sample_video
from media_assets.media.discovery import MediaFile
from media_assets.media.prefetch import prefetch
from media_assets.media.signals import (
    DUPLICATE_MAX_HASH_DISTANCE,
    ChangeMeter,
    grey,
    hash_distance,
    make_thumbnail,
    phash,
    sharpness,
)
from media_assets.store import catalog
from media_assets.store.adapters import forget_adapted_media
from media_assets.store.text_vectors import TextVectorStore
from media_assets.store.vectors import ID_COLUMNS, VectorStore
from media_assets.warehouse import Warehouse

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, float | None], None]  # (seconds decoded so far, duration or None)


@dataclass(frozen=True)
class FrameSettings:
    sampling: Sampling = Sampling()
    thumbnail_max_side: int = 512
    jpeg_quality: int = 85
    duplicate_max_distance: int = DUPLICATE_MAX_HASH_DISTANCE
    # the largest photo and video frame decoded, width × height (None: the environment's, see media.decoding)
    max_pixels: int | None = None
    max_video_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.thumbnail_max_side < 16:
            raise ValueError(f"thumbnail_max_side must be at least 16 px, got {self.thumbnail_max_side}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        for name in ("max_pixels", "max_video_pixels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 pixel, got {value}")


@dataclass
class FramesResult:
    media: dict
    frames: pa.Table
    stats: DecodeStats
    elapsed_s: float
    thumbnails: list[Path] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return len(self.frames)

    @property
    def duplicates(self) -> int:
        return int(self.media["duplicate_frames"])


def _frames_of(media_file: MediaFile, settings: FrameSettings, stats: DecodeStats, expected: int | None):
    if media_file.kind == "image":
        stats.frames_decoded = 1
        yield DecodedFrame(0, 0.0, load_image(media_file.path, settings.max_pixels))
    else:
        yield from sample_video(
            media_file.path, settings.sampling, stats, expected, max_pixels=settings.max_video_pixels
        )


def extract_frames(
    warehouse: Warehouse,
    media_file: MediaFile,
    settings: FrameSettings = FrameSettings(),
    *,
    run_id: str = "",
    progress: ProgressCallback | None = None,
) -> FramesResult:
    """Sample `media_file` and write its thumbnails and catalog rows; raises MediaReadError if it can't
    be read (after recording it in `ingest_errors` and removing the partition's old output)."""
    started = time.perf_counter()
    warehouse.ensure()
    media_id = media_file.media_id
    try:
        return _extract(warehouse, media_file, settings, run_id, progress, started)
    except MediaReadError as exc:
        purge_media(warehouse, media_id)
        record_ingest_error(warehouse, media_file, "frames", exc, run_id)
        raise


def _extract(warehouse, media_file, settings, run_id, progress, started) -> FramesResult:
    media_id = media_file.media_id
    if media_file.kind == "audio":
        return _audio_only(warehouse, media_file, run_id, started)
    info = probe(media_file.path, max_pixels=settings.max_pixels, max_video_pixels=settings.max_video_pixels)
    stats = DecodeStats()
    final_dir = warehouse.thumbnail_dir(media_id)
    final_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    meter = ChangeMeter()
    kept_hash: int | None = None
    kept_frame_id: int | None = None
    duplicates = 0
    last_report = time.monotonic()
    try:
        # decoding (OpenCV releases the GIL) runs ahead on its own thread while this one makes thumbnails
        for seq, frame in enumerate(prefetch(_frames_of(media_file, settings, stats, info.frame_count), depth=4)):
            if seq >= MAX_FRAMES_PER_MEDIA:
                raise MediaReadError(
                    media_file.path, f"more than {MAX_FRAMES_PER_MEDIA} sampled frames; sample less often"
                )
            thumb = make_thumbnail(frame.image, settings.thumbnail_max_side)
            grey_thumb = grey(thumb)
            frame_hash = phash(grey_thumb)
            change, pixel = meter.update(thumb, grey_thumb)
            frame_id = frame_id_for(media_id, seq)
            is_duplicate = (
                kept_hash is not None and hash_distance(frame_hash, kept_hash) <= settings.duplicate_max_distance
            )
            if is_duplicate:
                duplicates += 1
            else:
                kept_hash, kept_frame_id = frame_hash, frame_id
            ok, jpeg = cv2.imencode(".jpg", thumb, [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality])
            if not ok:
                raise MediaReadError(media_file.path, f"could not encode the thumbnail of frame {frame.index}")
            name = _write_thumbnail(final_dir, seq, jpeg.tobytes(), media_id)
            rows.append(
                {
                    "frame_id": frame_id,
                    "media_id": media_id,
                    "seq": seq,
                    "frame_index": frame.index,
                    "timestamp_s": frame.timestamp_s,
                    "width": frame.image.shape[1],
                    "height": frame.image.shape[0],
                    "thumbnail_path": f"frames/{media_id}/{name}",
                    "phash": frame_hash,
                    "sharpness": sharpness(grey_thumb),
                    "change_score": change,
                    "pixel_change": pixel,
                    "is_duplicate": is_duplicate,
                    "duplicate_of": kept_frame_id if is_duplicate else None,
                    "run_id": run_id,
                }
            )
            if progress is not None and time.monotonic() - last_report > 2.0:
                progress(frame.timestamp_s, info.duration_s)
                last_report = time.monotonic()
        if not rows:
            reason = "no decodable frames"
            if stats.undecodable:
                reason += f" ({stats.undecodable} frames failed to decode)"
            raise MediaReadError(media_file.path, reason)
    except BaseException:
        _keep_thumbnails(warehouse, media_id)  # the ones the partition's current rows name
        raise

    duration = info.duration_s
    if media_file.kind == "video" and stats.frames_decoded:
        frame_period = 1.0 / info.fps if info.fps else 0.0
        duration = stats.last_timestamp_s + frame_period
    media_row = {
        "media_id": media_id,
        "partition_key": media_file.partition_key,
        "path": str(media_file.path),
        "kind": media_file.kind,
        "size_bytes": media_file.size_bytes,
        "mtime_ns": media_file.mtime_ns,
        "container": info.container,
        "codec": info.codec,
        "width": rows[0]["width"] if media_file.kind == "image" else info.width,
        "height": rows[0]["height"] if media_file.kind == "image" else info.height,
        "fps": info.fps,
        "duration_s": duration,
        "frame_count": stats.frames_decoded + stats.undecodable if media_file.kind == "video" else 1,
        "frames_sampled": len(rows),
        "duplicate_frames": duplicates,
        "undecodable_frames": stats.undecodable,
        "sampling": settings.sampling.describe() if media_file.kind == "video" else "image",
        "run_id": run_id,
        "ingested_at": datetime.now(UTC),
    }
    frames_table = pa.Table.from_pylist(rows, schema=catalog.FRAMES_SCHEMA)
    try:
        catalog.replace_partitions(warehouse, media_id, {"frames": frames_table, "media": [media_row]})
    except BaseException:
        _keep_thumbnails(warehouse, media_id)  # the commit failed (a full disk): the old rows' thumbnails
        raise
    catalog.delete_partition(warehouse, media_id, ["ingest_errors"])
    _keep_thumbnails(warehouse, media_id, {Path(row["thumbnail_path"]).name for row in rows})
    thumbnails = [warehouse.root / row["thumbnail_path"] for row in rows]
    return FramesResult(media_row, frames_table, stats, time.perf_counter() - started, thumbnails)


def _audio_only(warehouse: Warehouse, media_file: MediaFile, run_id: str, started: float) -> FramesResult:
    """The media row of an audio file (from its audio probe), no frames; a file that was sampled before
    under the same key loses its old frames and thumbnails."""
    media_id = media_file.media_id
    info = probe_audio(media_file.path)
    media_row = {
        "media_id": media_id,
        "partition_key": media_file.partition_key,
        "path": str(media_file.path),
        "kind": "audio",
        "size_bytes": media_file.size_bytes,
        "mtime_ns": media_file.mtime_ns,
        "container": info.container,
        "codec": info.codec,
        "width": 0,
        "height": 0,
        "fps": None,
        "duration_s": info.duration_s,
        "frame_count": 0,
        "frames_sampled": 0,
        "duplicate_frames": 0,
        "undecodable_frames": 0,
        "sampling": "audio",
        "run_id": run_id,
        "ingested_at": datetime.now(UTC),
    }
    frames_table = catalog.FRAMES_SCHEMA.empty_table()
    catalog.replace_partitions(warehouse, media_id, {"frames": frames_table, "media": [media_row]})
    shutil.rmtree(warehouse.thumbnail_dir(media_id), ignore_errors=True)
    catalog.delete_partition(warehouse, media_id, ["ingest_errors"])
    return FramesResult(media_row, frames_table, DecodeStats(), time.perf_counter() - started)


def _write_thumbnail(folder: Path, seq: int, jpeg: bytes, media_id: int) -> str:
    """Write one thumbnail under a name made of its seq and its content (a temporary file renamed into place:
    never a half-written picture); returns the name."""
    name = f"{seq:06d}-{hashlib.blake2b(jpeg, digest_size=4).hexdigest()}.jpg"
    path = folder / name
    tmp = catalog.temp_path(path)
    try:
        with storage_full_as_error(f"thumbnails of media {media_id}", path):
            tmp.write_bytes(jpeg)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return name


def _keep_thumbnails(warehouse: Warehouse, media_id: int, names: set[str] | None = None) -> None:
    """Remove the media file's thumbnails other than `names` (default: those its current `frames` rows name),
    the temporary files of writers that are gone, and the staging folders an older version left."""
    folder = warehouse.thumbnail_dir(media_id)
    if names is None:
        current = catalog.read_partition(warehouse, "frames", media_id)
        names = set() if current is None else {Path(p).name for p in current["thumbnail_path"].to_pylist()}
    try:
        pictures = [entry.name for entry in os.scandir(folder) if entry.name.endswith(".jpg")]
    except FileNotFoundError:
        return
    for name in pictures:
        if name not in names:
            (folder / name).unlink(missing_ok=True)
    catalog.remove_dead_temps(folder)
    if not names:
        shutil.rmtree(folder, ignore_errors=True)
    for staging in warehouse.thumbnails_dir.glob(f".{media_id}.*"):
        shutil.rmtree(staging, ignore_errors=True)


def record_ingest_error(
    warehouse: Warehouse, media_file: MediaFile, stage: str, exc: BaseException, run_id: str = ""
) -> None:
    message = exc.reason if isinstance(exc, MediaReadError) else str(exc)
    catalog.replace_partition(
        warehouse,
        "ingest_errors",
        media_file.media_id,
        [
            {
                "media_id": media_file.media_id,
                "partition_key": media_file.partition_key,
                "path": str(media_file.path),
                "stage": stage,
                "error_type": type(exc).__name__,
                "message": message,
                "run_id": run_id,
                "failed_at": datetime.now(UTC),
            }
        ],
    )


def purge_media(warehouse: Warehouse, media_id: int, *, keep_errors: bool = False) -> None:
    """Remove everything derived from one media file: catalog rows, vectors (the adapted ones and the text
    vectors too), thumbnails, face crops. The global things built from them (the index, the clusters) are brought up
    to date by their own runs (`media_sensor` requests them after a deletion; the CLI runs them)."""
    tables = [t for t in catalog.PARTITIONED_TABLES if not (keep_errors and t == "ingest_errors")]
    catalog.delete_partition(warehouse, media_id, tables)
    for table in ID_COLUMNS:
        VectorStore(warehouse, table).delete_media(media_id)
    TextVectorStore(warehouse).delete_media(media_id)
    forget_adapted_media(warehouse, media_id)
    shutil.rmtree(warehouse.thumbnail_dir(media_id), ignore_errors=True)
    shutil.rmtree(warehouse.face_crop_dir(media_id), ignore_errors=True)
