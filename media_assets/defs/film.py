"""Group `film`, the film-asset view of the library: `shots` and `faces` per media file, `clusters` over all
of them, and the checks that keep them honest. Thin: `stages.shots`, `stages.faces` and `stages.clusters`
do the work."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from media_assets.defs.automation import FACES_WHEN_SHOTS_CHANGE, INDEX_WHEN_VECTORS_CHANGE
from media_assets.defs.partitions import media_file_of, media_files
from media_assets.defs.resources import ClipEncoderResource, WarehouseResource
from media_assets.errors import MissingFramesError
from media_assets.media.previews import contact_sheet, evenly_spaced, markdown_image
from media_assets.models.faces import FaceDetector, FaceDetectorError, FaceSettings
from media_assets.models.shots import ShotSettings
from media_assets.stages import clusters as clusters_stage
from media_assets.stages.faces import find_faces
from media_assets.stages.frames import record_ingest_error
from media_assets.stages.shots import make_shot_list

_SHOT_DEFAULTS = ShotSettings()
_FACE_DEFAULTS = FaceSettings()


class ShotsConfig(Config):
    use_vectors: bool = Field(
        default=True, description="Fuse the frame vectors' semantic distance with the visual change signal"
    )
    static_max_motion: float = Field(
        default=_SHOT_DEFAULTS.static_max_motion,
        ge=0,
        description=(
            "A shot whose median in-shot pixel change (at ≤ 6 samples/s) is at most this is static (one keyframe), "
            "else dynamic (three)"
        ),
    )
    cut_delta: float = Field(
        default=_SHOT_DEFAULTS.cut_delta,
        gt=0,
        description="Visual evidence of a cut (change score over the local baseline)",
    )
    min_shot_s: float = Field(
        default=_SHOT_DEFAULTS.min_shot_s,
        ge=0,
        description="Boundaries closer than this to each other or to the ends are dropped, weakest first",
    )

    def settings(self) -> ShotSettings:
        return ShotSettings(
            static_max_motion=self.static_max_motion,
            cut_delta=self.cut_delta,
            strong_delta=max(_SHOT_DEFAULTS.strong_delta, self.cut_delta),
            min_shot_s=self.min_shot_s,
        )


@asset(
    partitions_def=media_files,
    deps=["frames", "frame_embeddings"],
    group_name="film",
    kinds={"numpy", "duckdb", "lancedb"},
    description="Shot boundaries (cuts, fades, dissolves) from the frames' change signals fused with the frame "
    "vectors; static/dynamic shots with keyframes, in-shot events, and shot vectors (mean of keyframe vectors).",
)
def shots(context: AssetExecutionContext, config: ShotsConfig, warehouse: WarehouseResource) -> MaterializeResult:
    wh = warehouse.get()
    media_file = media_file_of(context, wh)
    try:
        result = make_shot_list(
            wh, media_file.media_id, config.settings(), use_vectors=config.use_vectors, run_id=context.run_id
        )
    except (MissingFramesError, ValueError) as exc:
        record_ingest_error(wh, media_file, "shots", exc, context.run_id)
        raise Failure(description=f"{media_file.path}: {exc}") from exc
    thumbnails = {k["frame_id"]: k for k in result.keyframes}
    shown = evenly_spaced(list(thumbnails.values()), 12)
    sheet = contact_sheet(
        [wh.root / k["thumbnail_path"] for k in shown],
        labels=[f"{k['timestamp_s']:.1f}s {k['role']}" for k in shown],
    )
    table = (
        "| shot | start (s) | end (s) | kind | entered by | confidence | keyframes |\n"
        "|---:|---:|---:|:---|:---|---:|---:|\n"
        + "\n".join(
            f"| {s['shot_index']} | {s['start_s']:.2f} | {s['end_s']:.2f} | {s['kind']} | {s['transition']} | "
            f"{s['boundary_confidence']:.2f} | {s['keyframe_count']} |"
            for s in result.shots[:50]
        )
    )
    preview = (markdown_image(sheet, "keyframes") + "\n\n" if sheet is not None else "") + table
    return MaterializeResult(
        metadata={
            "media_id": MetadataValue.int(result.media_id),
            "shots": MetadataValue.int(len(result.shots)),
            "static_shots": MetadataValue.int(result.static_count),
            "dynamic_shots": MetadataValue.int(result.dynamic_count),
            "keyframes": MetadataValue.int(len(result.keyframes)),
            "events": MetadataValue.int(len(result.events)),
            "shot_vectors": MetadataValue.int(result.vectors_written),
            "used_frame_vectors": MetadataValue.bool(result.used_vectors),
            "frame_vectors_note": result.vectors_note,
            "settings": MetadataValue.json(result.settings),
            "elapsed_s": MetadataValue.float(round(result.elapsed_s, 3)),
            "keyframe_sheet": MetadataValue.md(preview),
        }
    )


class FacesConfig(Config):
    detector: str = Field(
        default=_FACE_DEFAULTS.detector, description="'haar' (OpenCV's bundled cascade) or 'yunet' (needs model_path)"
    )
    model_path: str = Field(
        default="", description="YuNet .onnx for detector='yunet'; for 'haar' an optional cascade .xml"
    )
    min_size: int = Field(default=_FACE_DEFAULTS.min_size, ge=8, description="Smallest face side in thumbnail pixels")
    min_score: float | None = Field(
        default=None,
        description=(
            "Smallest detector score kept; empty: the detector's calibrated default "
            "(haar: a margin over the cascade's last stage, 1.75; yunet: a probability, 0.9)"
        ),
    )
    crop_margin: float = Field(
        default=_FACE_DEFAULTS.crop_margin,
        ge=0,
        le=2,
        description="Context around the box in the CLIP crop, per side, as a fraction of the box",
    )

    def settings(self) -> FaceSettings:
        return FaceSettings(
            detector=self.detector,
            model_path=self.model_path,
            min_size=self.min_size,
            min_score=self.min_score,
            crop_margin=self.crop_margin,
        )


@asset(
    partitions_def=media_files,
    deps=[shots],
    group_name="film",
    pool="gpu",
    automation_condition=FACES_WHEN_SHOTS_CHANGE,
    kinds={"opencv", "pytorch", "lancedb"},
    description="Faces on each keyframe (OpenCV detector), above a minimum size and score; each crop embedded "
    "with the CLIP encoder into LanceDB `face_vectors`, boxes in `faces`.",
)
def faces(
    context: AssetExecutionContext, config: FacesConfig, warehouse: WarehouseResource, clip: ClipEncoderResource
) -> MaterializeResult:
    wh = warehouse.get()
    media_file = media_file_of(context, wh)
    try:
        settings = config.settings()
        result = find_faces(
            wh,
            media_file.media_id,
            FaceDetector.load(settings),
            clip.load(),
            crop_margin=settings.crop_margin,
            batch_size=clip.batch_size,
            run_id=context.run_id,
        )
    except (FaceDetectorError, ValueError) as exc:  # configuration: say so, do not blame the file
        raise Failure(description=f"faces: {exc}") from exc
    except MissingFramesError as exc:
        record_ingest_error(wh, media_file, "faces", exc, context.run_id)
        raise Failure(description=f"{media_file.path}: {exc}") from exc
    sheet = contact_sheet(
        [wh.root / f["crop_path"] for f in result.faces[:18]],
        tile_width=96,
        labels=[f"{f['score']:.1f}" for f in result.faces[:18]],
    )
    return MaterializeResult(
        metadata={
            "media_id": MetadataValue.int(result.media_id),
            "faces": MetadataValue.int(len(result.faces)),
            "keyframes_searched": MetadataValue.int(result.keyframes_searched),
            "unreadable_keyframes": MetadataValue.int(result.unreadable_keyframes),
            "detector": result.detector_id,
            "model_id": result.model_id,
            "elapsed_s": MetadataValue.float(round(result.elapsed_s, 3)),
            "crops": MetadataValue.md(markdown_image(sheet, "face crops") if sheet is not None else "no faces found"),
        }
    )


@asset(
    deps=[shots, faces, "adapted_vectors"],
    group_name="film",
    kinds={"scikit-learn", "duckdb"},
    automation_condition=INDEX_WHEN_VECTORS_CHANGE,
    description="Scene clusters over all shot vectors (HDBSCAN), character sub-clusters over the face vectors "
    "inside each scene, and the noise bucket. Ids stay stable across re-clustering (matched by membership); "
    "pins and names survive.",
)
def clusters(context, warehouse: WarehouseResource) -> MaterializeResult:
    wh = warehouse.get()
    report = clusters_stage.update_clusters(wh, run_id=context.run_id)
    context.log.info(report.summary())
    return MaterializeResult(
        metadata={
            "scene_clusters": MetadataValue.int(report.scene_clusters),
            "character_clusters": MetadataValue.int(report.character_clusters),
            "scene_noise": MetadataValue.int(report.scene_noise),
            "character_noise": MetadataValue.int(report.character_noise),
            "shots": MetadataValue.int(report.shots),
            "faces": MetadataValue.int(report.faces),
            "ids_kept": MetadataValue.int(report.ids_kept),
            "ids_new": MetadataValue.int(report.ids_new),
            "pins_applied": MetadataValue.int(report.pins_applied),
            "pins_stale": MetadataValue.int(report.pins_stale),
            "elapsed_s": MetadataValue.float(round(report.elapsed_s, 3)),
            "clusters": MetadataValue.md(clusters_stage.cluster_overview_markdown(wh, report)),
        }
    )


@asset_check(asset=clusters, description="Every shot is in exactly one scene cluster or in the noise bucket.")
def every_shot_in_one_scene(warehouse: WarehouseResource) -> AssetCheckResult:
    result = clusters_stage.check_shot_membership(warehouse.get())
    return AssetCheckResult(passed=result["passed"], severity=AssetCheckSeverity.ERROR, metadata=result["metadata"])


@asset_check(
    asset=clusters,
    description=(
        "Every face belongs to a shot that exists and is on one of its keyframes; "
        "every face has a cluster row (a character cluster or noise)."
    ),
)
def every_face_in_a_shot(warehouse: WarehouseResource) -> AssetCheckResult:
    result = clusters_stage.check_face_links(warehouse.get())
    return AssetCheckResult(passed=result["passed"], severity=AssetCheckSeverity.ERROR, metadata=result["metadata"])


@asset_check(
    asset=clusters,
    description=(
        "Clustering the unchanged library again, starting from the stored clusters, "
        "gives identical cluster ids and members."
    ),
)
def cluster_ids_stable(warehouse: WarehouseResource) -> AssetCheckResult:
    result = clusters_stage.check_stability(warehouse.get())
    return AssetCheckResult(passed=result["passed"], severity=AssetCheckSeverity.ERROR, metadata=result["metadata"])
