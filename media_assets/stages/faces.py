"""The faces stage: faces on a media file's keyframes, their crops and CLIP crop vectors.

Reads the partition's `keyframes` (the shots stage chose them) and their JPEG thumbnails (the frames
stage wrote them; longest side 512 px by default, so faces smaller than `FaceSettings.min_size` px there are
not looked for). Each face box that passes the detector's minimum size and score is cropped with some
context (`crop_margin`), saved as `faces/<media_id>/<face_id>.jpg` and embedded with the same CLIP
encoder as the frames. Rows go to the `faces` table (box as fractions of the frame and in thumbnail
pixels), vectors to LanceDB `face_vectors`. A frame that is a keyframe of a shot is searched once.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

import cv2
import numpy as np

from media_assets.errors import MissingFramesError
from media_assets.ids import face_id_for
from media_assets.models.clip import ClipEncoder
from media_assets.models.faces import FaceDetector, crop_face
from media_assets.store import catalog
from media_assets.store.vectors import FACE_VECTORS, VectorStore
from media_assets.warehouse import Warehouse


@dataclass
class FaceResult:
    media_id: int
    keyframes_searched: int
    unreadable_keyframes: int
    faces: list[dict]
    detector_id: str
    model_id: str
    elapsed_s: float


def find_faces(
    warehouse: Warehouse,
    media_id: int,
    detector: FaceDetector,
    encoder: ClipEncoder,
    *,
    crop_margin: float = 0.25,
    batch_size: int = 32,
    run_id: str = "",
) -> FaceResult:
    """Detect, crop and embed the faces on one media file's keyframes; replace its `faces` rows and
    `face_vectors`."""
    started = time.perf_counter()
    keyframes = catalog.read_partition(warehouse, "keyframes", media_id)
    if keyframes is None:
        raise MissingFramesError(f"media {media_id} has no keyframes in the catalog; materialize its shots first")
    seen: set[int] = set()
    rows, crops = [], []
    unreadable = 0
    crop_dir = warehouse.face_crop_dir(media_id)
    staging = crop_dir.with_name(f".{crop_dir.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for keyframe in sorted(keyframes.to_pylist(), key=lambda r: (r["timestamp_s"], r["frame_id"])):
        if keyframe["frame_id"] in seen:
            continue
        seen.add(keyframe["frame_id"])
        image = cv2.imread(str(warehouse.root / keyframe["thumbnail_path"]), cv2.IMREAD_COLOR)
        if image is None:
            unreadable += 1
            continue
        height, width = image.shape[:2]
        for box in detector.detect(image):
            face_id = face_id_for(media_id, len(rows))
            crop = crop_face(image, box, crop_margin)
            cv2.imwrite(str(staging / f"{face_id}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
            x, y, w, h = box.normalised(width, height)
            rows.append(
                {
                    "face_id": face_id,
                    "media_id": media_id,
                    "shot_id": keyframe["shot_id"],
                    "frame_id": keyframe["frame_id"],
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                    "box_px": [box.x, box.y, box.width, box.height],
                    "score": box.score,
                    "detector": detector.detector_id,
                    "crop_path": (crop_dir.relative_to(warehouse.root) / f"{face_id}.jpg").as_posix(),
                    "run_id": run_id,
                }
            )
            crops.append(crop)
    vectors = encoder.encode_images(crops, batch_size=batch_size)
    # crops first, then rows and vectors: a row never points at a crop that is not there yet
    shutil.rmtree(crop_dir, ignore_errors=True)
    staging.rename(crop_dir)
    catalog.replace_partition(warehouse, "faces", media_id, rows)
    VectorStore(warehouse, FACE_VECTORS).replace_media(
        media_id,
        np.asarray([r["face_id"] for r in rows], dtype=np.int64),
        vectors,
        model_id=encoder.model_id,
        run_id=run_id,
    )
    return FaceResult(
        media_id=media_id,
        keyframes_searched=len(seen) - unreadable,
        unreadable_keyframes=unreadable,
        faces=rows,
        detector_id=detector.detector_id,
        model_id=encoder.model_id,
        elapsed_s=time.perf_counter() - started,
    )
