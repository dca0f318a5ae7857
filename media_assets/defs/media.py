"""Per-media-file assets: `frames` (sampled frames, thumbnails, catalog rows) and `frame_embeddings`
(CLIP vectors in LanceDB). Each says what it is made from; the library says how."""

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from media_assets.defs.partitions import media_file_of, media_files
from media_assets.defs.resources import ClipEncoderResource, WarehouseResource
from media_assets.errors import MediaReadError
from media_assets.ids import media_id_for
from media_assets.media.decoding import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_VIDEO_PIXELS,
    MAX_PIXELS_ENV,
    MAX_VIDEO_PIXELS_ENV,
    Sampling,
)
from media_assets.media.previews import contact_sheet, evenly_spaced, markdown_image
from media_assets.media.signals import DUPLICATE_MAX_HASH_DISTANCE
from media_assets.stages.frame_embeddings import embed_frames
from media_assets.stages.frames import FrameSettings, extract_frames, record_ingest_error
from media_assets.store import catalog
from media_assets.store.vectors import VectorStore


class FramesConfig(Config):
    sample_fps: float = Field(default=1.0, gt=0, description="Frames kept per second of video")
    every_n_frames: int = Field(
        default=0, ge=0, description="If > 0, keep every Nth decoded frame instead of sampling by time"
    )
    thumbnail_max_side: int = Field(default=512, ge=16, description="Longest side of the JPEG thumbnails, px")
    duplicate_max_distance: int = Field(
        default=DUPLICATE_MAX_HASH_DISTANCE,
        ge=0,
        le=64,
        description="A frame whose perceptual hash is within this many bits of the last kept frame is a near-duplicate",
    )
    max_pixels: int = Field(
        default=0,
        ge=0,
        description="Largest photo read, width × height, checked in its header before decoding; "
        f"0: {MAX_PIXELS_ENV}, else {DEFAULT_MAX_PIXELS}",
    )
    max_video_pixels: int = Field(
        default=0,
        ge=0,
        description="Largest video frame read, width × height, checked in the container before sampling; "
        f"0: {MAX_VIDEO_PIXELS_ENV}, else {DEFAULT_MAX_VIDEO_PIXELS} (8192 × 4320)",
    )

    def settings(self) -> FrameSettings:
        sampling = (
            Sampling(every_n_frames=self.every_n_frames) if self.every_n_frames else Sampling(fps=self.sample_fps)
        )
        return FrameSettings(
            sampling,
            self.thumbnail_max_side,
            duplicate_max_distance=self.duplicate_max_distance,
            max_pixels=self.max_pixels or None,
            max_video_pixels=self.max_video_pixels or None,
        )


@asset(
    partitions_def=media_files,
    group_name="media",
    kinds={"opencv", "duckdb"},
    description="Probe the file into `media`, sample frames into `frames` with JPEG thumbnails, perceptual "
    "hashes, sharpness and change scores; near-duplicates are marked, not dropped.",
)
def frames(context: AssetExecutionContext, config: FramesConfig, warehouse: WarehouseResource) -> MaterializeResult:
    wh = warehouse.get()
    media_file = media_file_of(context, wh)

    def progress(done_s: float, total_s: float | None) -> None:
        share = f" ({done_s / total_s:.0%})" if total_s else ""
        context.log.info(f"{media_file.partition_key}: decoded {done_s:.0f}s{share}")

    try:
        result = extract_frames(wh, media_file, config.settings(), run_id=context.run_id, progress=progress)
    except MediaReadError as exc:
        raise Failure(description=str(exc), metadata={"path": str(media_file.path), "reason": exc.reason}) from exc

    media = result.media
    sample = evenly_spaced(result.frames.to_pylist(), 6)
    sheet = contact_sheet(
        [wh.root / row["thumbnail_path"] for row in sample],
        labels=[f"{row['timestamp_s']:.1f}s" for row in sample],
    )
    table = "| seq | time (s) | sharpness | change | duplicate |\n|---:|---:|---:|---:|:---:|\n" + "\n".join(
        f"| {r['seq']} | {r['timestamp_s']:.2f} | {r['sharpness']:.0f} | {r['change_score']:.3f} | "
        f"{'yes' if r['is_duplicate'] else ''} |"
        for r in sample
    )
    preview = (markdown_image(sheet, "sampled frames") + "\n\n" if sheet is not None else "") + table
    duration = media["duration_s"] or 0.0
    return MaterializeResult(
        metadata={
            "media_id": MetadataValue.int(media["media_id"]),
            "path": MetadataValue.path(media["path"]),
            "kind": media["kind"],
            "codec": media["codec"] or "",
            "size": f"{media['width']}x{media['height']}",
            "duration_s": MetadataValue.float(round(duration, 3)),
            "frames_sampled": MetadataValue.int(result.kept),
            "duplicates": MetadataValue.int(result.duplicates),
            "undecodable_frames": MetadataValue.int(result.stats.undecodable),
            "frames_decoded": MetadataValue.int(result.stats.frames_decoded),
            "sampling": media["sampling"],
            "elapsed_s": MetadataValue.float(round(result.elapsed_s, 3)),
            "x_realtime": MetadataValue.float(round(duration / result.elapsed_s, 1) if result.elapsed_s else 0.0),
            "preview": MetadataValue.md(preview),
        }
    )


@asset(
    partitions_def=media_files,
    deps=[frames],
    group_name="media",
    pool="gpu",
    kinds={"pytorch", "lancedb"},
    description="CLIP image vectors of each kept (non-duplicate) frame, L2-normalised, in LanceDB "
    "`frame_vectors` keyed by frame_id with media_id, model_id and run_id.",
)
def frame_embeddings(
    context: AssetExecutionContext, warehouse: WarehouseResource, clip: ClipEncoderResource
) -> MaterializeResult:
    wh = warehouse.get()
    media_file = media_file_of(context, wh)
    try:
        encoder = clip.load()
        result = embed_frames(
            wh,
            media_file.media_id,
            encoder,
            batch_size=clip.batch_size,
            run_id=context.run_id,
            progress=lambda done, total: context.log.debug(f"embedded {done}/{total} frames"),
        )
    except Exception as exc:
        record_ingest_error(wh, media_file, "frame_embeddings", exc, context.run_id)
        raise Failure(description=f"{media_file.path}: embedding failed: {exc}") from exc
    return MaterializeResult(
        metadata={
            "media_id": MetadataValue.int(result.media_id),
            "vectors_written": MetadataValue.int(result.embedded),
            "skipped_duplicates": MetadataValue.int(result.skipped_duplicates),
            "unreadable_thumbnails": MetadataValue.int(result.unreadable_thumbnails),
            "model_id": result.model_id,
            "device": result.device,
            "dim": MetadataValue.int(result.dim),
            "batch_size": MetadataValue.int(clip.batch_size),
            "elapsed_s": MetadataValue.float(round(result.elapsed_s, 3)),
            "frames_per_s": MetadataValue.float(round(result.frames_per_second, 1)),
        }
    )


@asset_check(
    asset=frame_embeddings,
    description="Every kept frame of the run's media file has exactly one vector, all made by one model.",
)
def every_kept_frame_has_a_vector(context, warehouse: WarehouseResource) -> AssetCheckResult:
    wh = warehouse.get()
    partition_key = context.run.tags.get("dagster/partition")
    if partition_key is None:
        return AssetCheckResult(passed=True, metadata={"skipped": "the run has no media partition"})
    media_id = media_id_for(partition_key)
    frames_rows = catalog.read_partition(wh, "frames", media_id)
    kept = (
        set()
        if frames_rows is None
        else {
            row["frame_id"]
            for row in frames_rows.select(["frame_id", "is_duplicate"]).to_pylist()
            if not row["is_duplicate"]
        }
    )
    dataset = VectorStore(wh).frame_vectors_dataset()
    vector_ids: list[int] = []
    models: set[str] = set()
    if dataset is not None:
        table = dataset.to_table(columns=["frame_id", "model_id"], filter=f"media_id = {media_id}")
        vector_ids = table["frame_id"].to_pylist()
        models = set(table["model_id"].to_pylist())
    missing = kept - set(vector_ids)
    extra = set(vector_ids) - kept
    repeated = len(vector_ids) - len(set(vector_ids))
    return AssetCheckResult(
        passed=not missing and not extra and not repeated and len(models) <= 1,
        metadata={
            "partition": partition_key,
            "kept_frames": len(kept),
            "vectors": len(vector_ids),
            "frames_without_vector": len(missing),
            "vectors_without_kept_frame": len(extra),
            "repeated_frame_ids": repeated,
            "models": ", ".join(sorted(models)) or "none",
        },
    )
