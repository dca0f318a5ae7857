"""Face boxes in frame thumbnails, and the crops that go to CLIP.

Library code only (no Dagster, no catalog I/O): `FaceDetector.load(settings)` gives a per-process,
thread-safe detector; `detect(bgr)` returns `FaceBox`es in the analysed image's pixels; `crop_face`
cuts the square-ish crop with context that the faces asset embeds.

**Detectors.** `'haar'` (default) is OpenCV's bundled Viola-Jones frontal-face cascade: it ships inside
opencv-python, so it works offline with no model file. OpenCV 5 dropped `CascadeClassifier` and its
bundled cascades, which is why the project pins `opencv-python < 5`. `'yunet'` (`cv2.FaceDetectorYN`, a
small CNN) is the better detector (by its published results: turned and rotated faces, fewer false
faces; plus five landmarks) and is used when `model_path` names a YuNet `.onnx` file (OpenCV Zoo's
`face_detection_yunet_2023mar.onnx`); no such file is bundled, so it is optional. Its score is the
network's face probability, 0..1; the default threshold 0.9 is OpenCV Zoo's demo default and was *not*
calibrated here (no model on this machine).

**Which cascade.** Both `haarcascade_frontalface_default` and `haarcascade_frontalface_alt2` were
measured (`docs/calibration.md`); `alt2` is used: at equal recall it gives a fraction of the false faces, and
its confidence separates faces from texture, which `default`'s does not.

**Haar scoring.** One `detectMultiScale3(..., minNeighbors=0, outputRejectLevels=True)` pass returns the
raw windows that passed every stage with their *level weight*: the boosted sum of the last stage. The
windows are grouped here as OpenCV's `groupRectangles` does (eps 0.2; averaged box; small boxes inside
a larger, better supported box dropped), which also yields, per box, `neighbors` (how many raw windows
it merges) and the best level weight. `FaceBox.score` is that weight minus the last stage's threshold
(read from the cascade file), i.e. the margin by which the best window cleared the final stage: > 0,
faces about 2-4 with `alt2`. (The raw level weight of `alt2` is about 56 for a face because its last
threshold is 53.76; `default`'s threshold is -2.99, so its raw weights, e.g. 5.8 on the astronaut, are
margins of ~8.8.) A box is kept when `neighbors > min_neighbors` (OpenCV's meaning) and
`score >= min_score`.

**Calibration.** On scikit-image photographs (one face in 43 variants, 235 images without a face),
`min_neighbors = 4` and `min_score = 1.75` gave no false face and found the face in 42 of the 43
variants; histogram equalisation is on. The measurements, and what they do not cover, are in
`docs/calibration.md` (Faces). A custom cascade (`model_path`) needs its own thresholds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "HAAR_CASCADE",
    "HAAR_MIN_SCORE",
    "YUNET_MIN_SCORE",
    "FaceBox",
    "FaceDetector",
    "FaceDetectorError",
    "FaceSettings",
    "crop_face",
]

HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"
HAAR_MIN_SCORE = 1.75  # last-stage margin of alt2; calibrated on scikit-image photographs (docs/calibration.md)
YUNET_MIN_SCORE = 0.9  # OpenCV Zoo's default face probability threshold (not calibrated here)
DETECTORS = ("haar", "yunet")
_GROUP_EPS = 0.2  # OpenCV's detectMultiScale grouping tolerance


class FaceDetectorError(RuntimeError):
    """The face detector cannot be set up: unknown detector, or a missing or unreadable model file."""


@dataclass(frozen=True)
class FaceSettings:
    """How faces are detected; equal settings share one detector per process (`FaceDetector.load`).

    `min_score` defaults per detector (None → `HAAR_MIN_SCORE` 1.75 for haar, a last-stage margin;
    `YUNET_MIN_SCORE` 0.9 for yunet, a probability) and is always a float after construction.
    `scale_factor`, `min_neighbors` and `equalize` apply to haar only; `nms_threshold` to yunet only.
    """

    detector: str = "haar"
    model_path: str = ""
    min_size: int = 24
    min_score: float | None = None
    crop_margin: float = 0.25
    scale_factor: float = 1.1
    min_neighbors: int = 4
    equalize: bool = True
    nms_threshold: float = 0.3
    max_faces: int = 0  # keep only the best N boxes per image; 0 keeps all

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise FaceDetectorError(f"unknown face detector {self.detector!r}: use one of {', '.join(DETECTORS)}")
        if self.detector == "yunet" and not self.model_path:
            raise FaceDetectorError(
                "detector 'yunet' needs model_path: download face_detection_yunet_2023mar.onnx from OpenCV Zoo "
                "(https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet) and pass its path, "
                "or use detector 'haar', which needs no file"
            )
        if self.min_score is None:
            object.__setattr__(self, "min_score", HAAR_MIN_SCORE if self.detector == "haar" else YUNET_MIN_SCORE)
        object.__setattr__(self, "min_score", float(self.min_score))
        if not np.isfinite(self.min_score):
            raise ValueError(f"min_score must be a finite number, got {self.min_score}")
        if self.detector == "yunet" and not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score for yunet is a probability in 0..1, got {self.min_score}")
        if not isinstance(self.min_size, (int, np.integer)) or self.min_size < 1:
            raise ValueError(f"min_size must be a positive number of pixels, got {self.min_size!r}")
        if not 0.0 <= self.crop_margin <= 2.0:
            raise ValueError(
                f"crop_margin must be in 0..2 (fraction of the box added on each side), got {self.crop_margin}"
            )
        if not 1.01 <= self.scale_factor <= 2.0:
            raise ValueError(f"scale_factor must be in 1.01..2.0, got {self.scale_factor}")
        if self.min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, got {self.min_neighbors}")
        if not 0.0 < self.nms_threshold < 1.0:
            raise ValueError(f"nms_threshold must be in (0, 1), got {self.nms_threshold}")
        if self.max_faces < 0:
            raise ValueError(f"max_faces must be >= 0 (0 keeps all), got {self.max_faces}")


@dataclass(frozen=True)
class FaceBox:
    """A face in the analysed image, in pixels, always inside it.

    `score`: haar: the margin by which the box's best window cleared the cascade's last stage (faces
    about 2-4, default threshold 1.75); yunet: face probability 0..1. `neighbors`: haar only, how many
    raw windows were merged into the box (0 for yunet). `landmarks`: yunet only, five (x, y) points:
    right eye, left eye, nose tip, right and left mouth corner (as seen in the image).
    """

    x: int
    y: int
    width: int
    height: int
    score: float
    neighbors: int = 0
    landmarks: tuple[tuple[float, float], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"a face box needs a positive size, got {self.width}x{self.height}")

    def normalised(self, image_width: int, image_height: int) -> tuple[float, float, float, float]:
        """(x, y, width, height) as fractions of the image size, e.g. to map onto another resolution."""
        if image_width <= 0 or image_height <= 0:
            raise ValueError(f"image size must be positive, got {image_width}x{image_height}")
        return (self.x / image_width, self.y / image_height, self.width / image_width, self.height / image_height)

    def iou(self, other: FaceBox) -> float:
        """Intersection over union with another box (same image)."""
        return box_iou(self.as_tuple(), other.as_tuple())

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.width, self.height)


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, width, height) boxes (pixels or fractions alike)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _check_image(image: np.ndarray) -> np.ndarray:
    """Validate a detector input and return it as contiguous uint8 BGR or grey."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy image array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image (BGR or grey, 0..255), got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError(f"expected a grey (H, W) or BGR/BGRA (H, W, 3|4) image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image (shape {image.shape})")
    return np.ascontiguousarray(image)


def _to_grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


def _to_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image


def _last_stage_threshold(path: Path) -> float:
    """The final stage threshold of a cascade file (new `cascade` format or the old Haar format)."""
    try:
        storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as error:
        raise FaceDetectorError(f"cannot read cascade {path}: {error}") from error
    try:
        root = storage.getNode("cascade")
        if root.empty():
            root = storage.getFirstTopLevelNode()
        stages = root.getNode("stages")
        if not stages.empty() and stages.size() > 0:
            last = stages.at(stages.size() - 1)
            for key in ("stageThreshold", "stage_threshold"):
                node = last.getNode(key)
                if not node.empty():
                    return float(node.real())
    finally:
        storage.release()
    raise FaceDetectorError(f"cannot read the last stage threshold from cascade {path}: is it an OpenCV cascade .xml?")


_Group = tuple[tuple[int, int, int, int], int, float]  # box, merged windows, best level weight


def _group_windows(rects: np.ndarray, weights: np.ndarray, min_neighbors: int) -> list[_Group]:
    """OpenCV's groupRectangles (eps 0.2): cluster similar windows, average them, drop clusters with
    `min_neighbors` or fewer windows and small boxes inside a better supported larger one. Returns
    (box, windows, best weight) per group."""
    n = len(rects)
    if n == 0:
        return []
    r = rects.astype(np.int64)
    x1, y1, w, h = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
    x2, y2 = x1 + w, y1 + h
    labels = np.full(n, -1, dtype=np.int64)
    count = 0
    for seed in range(n):
        if labels[seed] >= 0:
            continue
        labels[seed] = count
        stack = [seed]
        while stack:
            k = stack.pop()
            delta = _GROUP_EPS * (np.minimum(w, w[k]) + np.minimum(h, h[k])) * 0.5
            similar = (
                (np.abs(x1 - x1[k]) <= delta)
                & (np.abs(y1 - y1[k]) <= delta)
                & (np.abs(x2 - x2[k]) <= delta)
                & (np.abs(y2 - y2[k]) <= delta)
                & (labels < 0)
            )
            new = np.flatnonzero(similar)
            labels[new] = count
            stack.extend(new.tolist())
        count += 1
    groups = []
    for label in range(count):
        members = labels == label
        size = int(members.sum())
        box = tuple(int(v) for v in r[members].sum(axis=0) // size)  # OpenCV truncates the average too
        groups.append((box, size, float(weights[members].max())))
    kept = [g for g in groups if g[1] > min_neighbors]
    result = []
    for box, size, weight in kept:
        inside = False
        for other, other_size, _ in kept:
            if other is box:
                continue
            dx, dy = int(round(other[2] * _GROUP_EPS)), int(round(other[3] * _GROUP_EPS))
            if (
                box[0] >= other[0] - dx
                and box[1] >= other[1] - dy
                and box[0] + box[2] <= other[0] + other[2] + dx
                and box[1] + box[3] <= other[1] + other[3] + dy
                and (other_size > max(3, size) or size < 3)
            ):
                inside = True
                break
        if not inside:
            result.append((box, size, weight))
    return result


def _clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def _finish(boxes: list[FaceBox], settings: FaceSettings) -> list[FaceBox]:
    """Filter by size and score, suppress overlaps (best score wins), sort by score then position."""
    candidates = [b for b in boxes if min(b.width, b.height) >= settings.min_size and b.score >= settings.min_score]
    candidates.sort(key=lambda b: (-b.score, b.x, b.y, b.width, b.height))
    kept: list[FaceBox] = []
    for box in candidates:
        overlaps = False
        for better in kept:
            a, c = box.as_tuple(), better.as_tuple()
            inter = max(0, min(a[0] + a[2], c[0] + c[2]) - max(a[0], c[0])) * max(
                0, min(a[1] + a[3], c[1] + c[3]) - max(a[1], c[1])
            )
            # IoU over the threshold, or one box mostly inside the other (a face inside a bigger face)
            if box_iou(a, c) > settings.nms_threshold or inter >= 0.6 * min(a[2] * a[3], c[2] * c[3]):
                overlaps = True
                break
        if not overlaps:
            kept.append(box)
    if settings.max_faces:
        kept = kept[: settings.max_faces]
    return kept


class FaceDetector:
    """A loaded face detector. Get one with `FaceDetector.load(settings)`; `detect` may be called from
    several threads at once (each thread gets its own OpenCV object, which is not thread-safe)."""

    _cache: dict[FaceSettings, FaceDetector] = {}
    _cache_lock = threading.Lock()

    def __init__(self, settings: FaceSettings) -> None:
        self.settings = settings
        self._local = threading.local()
        if settings.detector == "haar":
            path = Path(settings.model_path) if settings.model_path else Path(cv2.data.haarcascades) / HAAR_CASCADE
            if not path.is_file():
                raise FaceDetectorError(
                    f"Haar cascade file not found: {path}. Leave model_path empty to use OpenCV's bundled "
                    f"{HAAR_CASCADE} (needs opencv-python < 5), or pass the path of a cascade .xml"
                )
            self._path = path
            self._new_native()  # fail now, not on the first frame
            self._stage_threshold = _last_stage_threshold(path)
            self.detector_id = f"opencv-haar:{path.stem}"
        else:
            path = Path(settings.model_path)
            if not path.is_file():
                raise FaceDetectorError(
                    f"YuNet model file not found: {path}. Download face_detection_yunet_2023mar.onnx from OpenCV Zoo "
                    "(https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet) and set model_path "
                    "to it, or use detector 'haar'"
                )
            self._path = path
            self._new_native()
            self.detector_id = f"yunet:{path.name}"

    @classmethod
    def load(cls, settings: FaceSettings = FaceSettings()) -> FaceDetector:
        """The process's detector for `settings` (created once; failures are not cached)."""
        if not isinstance(settings, FaceSettings):
            raise TypeError(f"expected FaceSettings, got {type(settings).__name__}")
        with cls._cache_lock:
            detector = cls._cache.get(settings)
            if detector is None:
                detector = cls(settings)
                cls._cache[settings] = detector
            return detector

    def __repr__(self) -> str:
        settings = self.settings
        return f"FaceDetector({self.detector_id!r}, min_score={settings.min_score}, min_size={settings.min_size})"

    def _new_native(self):
        if self.settings.detector == "haar":
            try:
                cascade = cv2.CascadeClassifier(str(self._path))
            except (cv2.error, SystemError):  # unparsable files raise instead of giving an empty cascade
                cascade = None
            if cascade is None or cascade.empty():
                raise FaceDetectorError(
                    f"OpenCV could not load the Haar cascade {self._path}: it is not a cascade .xml "
                    "(leave model_path empty for the bundled one)"
                )
            native = cascade
        else:
            try:
                native = cv2.FaceDetectorYN.create(
                    str(self._path), "", (320, 320), self.settings.min_score, self.settings.nms_threshold, 5000
                )
            except cv2.error as error:
                raise FaceDetectorError(
                    f"OpenCV could not load the YuNet model {self._path} ({str(error).strip().splitlines()[-1]}). "
                    "It must be a YuNet .onnx such as face_detection_yunet_2023mar.onnx from OpenCV Zoo; "
                    "re-download it if it is truncated, or use detector 'haar'"
                ) from error
            if native is None:
                raise FaceDetectorError(f"OpenCV could not create a YuNet detector from {self._path}")
        self._local.native = native
        return native

    def _native(self):
        native = getattr(self._local, "native", None)
        return native if native is not None else self._new_native()

    def detect(self, bgr: np.ndarray) -> list[FaceBox]:
        """Faces in a uint8 BGR, BGRA or grey image: boxes at least `min_size` px on the short side and
        `min_score`, overlaps suppressed, sorted by score (best first) then x, y."""
        image = _check_image(bgr)
        if self.settings.detector == "haar":
            boxes = self._detect_haar(image)
        else:
            boxes = self._detect_yunet(image)
        return _finish(boxes, self.settings)

    def _detect_haar(self, image: np.ndarray) -> list[FaceBox]:
        settings = self.settings
        grey = _to_grey(image)
        if settings.equalize:
            grey = cv2.equalizeHist(grey)
        height, width = grey.shape
        if min(height, width) < settings.min_size:
            return []
        rects, _levels, weights = self._native().detectMultiScale3(
            grey,
            scaleFactor=settings.scale_factor,
            minNeighbors=0,  # grouped below, keeping each box's window count and best level weight
            minSize=(settings.min_size, settings.min_size),
            outputRejectLevels=True,
        )
        rects = np.asarray(rects, dtype=np.int32).reshape(-1, 4)
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        boxes = []
        for (x, y, w, h), windows, weight in _group_windows(rects, weights, settings.min_neighbors):
            clipped = _clip_box(x, y, w, h, width, height)
            if clipped is not None:
                boxes.append(FaceBox(*clipped, score=weight - self._stage_threshold, neighbors=windows))
        return boxes

    def _detect_yunet(self, image: np.ndarray) -> list[FaceBox]:
        bgr = np.ascontiguousarray(_to_bgr(image))
        height, width = bgr.shape[:2]
        native = self._native()
        native.setInputSize((width, height))
        _ok, faces = native.detect(bgr)
        boxes = []
        for row in faces if faces is not None else ():
            clipped = _clip_box(row[0], row[1], row[2], row[3], width, height)
            if clipped is not None:
                points = tuple((float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5))
                boxes.append(FaceBox(*clipped, score=float(row[14]), landmarks=points))
        return boxes


def crop_face(bgr: np.ndarray, box: FaceBox, margin: float = 0.25) -> np.ndarray:
    """The face with context for CLIP: a square of side `max(width, height) * (1 + 2 * margin)` around
    the box's centre, clipped to the image (so square-ish at borders), as a copy. Never empty: a box
    that does not overlap the image raises ValueError."""
    image = _check_image(bgr)
    if not 0.0 <= margin <= 2.0 or not np.isfinite(margin):
        raise ValueError(f"margin must be in 0..2 (fraction of the box added on each side), got {margin}")
    height, width = image.shape[:2]
    side = max(box.width, box.height) * (1.0 + 2.0 * margin)
    cx, cy = box.x + box.width / 2.0, box.y + box.height / 2.0
    clipped = _clip_box(cx - side / 2.0, cy - side / 2.0, side, side, width, height)
    if clipped is None:
        raise ValueError(f"face box {box.as_tuple()} lies outside the {width}x{height} image")
    x, y, w, h = clipped
    return image[y : y + h, x : x + w].copy()
