"""Text on screen: the lines of text an image shows, found and read (OCR), for the screen_text stage.

Arrays in, lines out (no catalog, no Dagster). `TextReader.load(settings)` gives a reader loaded once per
process and settings (under a lock, like `ClipEncoder.load`); `reader.read(bgr)` returns `TextLine`s in
reading order: the text (whitespace collapsed), the recogniser's score (0..1) and the line's quadrilateral
in pixels and as fractions of the image. `reader.model_id` names the model files, for lineage.

**One interface.** An engine is a `TextReader` with `model_id` and `device` set and one method,
`read_lines` (everything it found); `read` calls it under the reader's lock and drops junk (`min_score`,
`min_chars`). Adding one:

    class TesseractReader(TextReader):
        def __init__(self, settings: TextReaderSettings):
            super().__init__(settings, model_id="tesseract:eng", device="cpu")

        def read_lines(self, bgr):
            return [TextLine.from_points(text, quad, score, bgr.shape[1], bgr.shape[0]) for ...]

    ENGINES["tesseract"] = TesseractReader  # TextReaderSettings(engine="tesseract")

**RapidOCR** (`engine='rapidocr'`, the default): the PP-OCRv6 small detector and recogniser its wheel
ships, through onnxruntime; no download is ever attempted (a missing model file is a `ModelLoadError`).
Device `cpu` by default; `auto` takes onnxruntime's CUDA provider when `get_available_providers()` lists
it, `cuda` insists on it. Its INFO lines at load and its warning on every image without text are quieted.
Changed from RapidOCR's defaults, both measured on 256 rendered slides (four fonts, light and dark,
720p and 1080p, as 512-px thumbnails: 6-14 px text):
- Detection runs at the image's own size (up to `det_max_side`), where RapidOCR scales the short side
  up to 736 px: the same character error rate (≤ 0.005 down to 8-px text, 0.014 vs 0.018 at 6 px), about
  2.4x faster (122 vs 291 ms a thumbnail on 2 CPU threads). With the classifier off as well, a keyframe
  costs a third of a bare `RapidOCR()` call (median 153 vs 497 ms, the two interleaved on a busy machine).
- No angle classifier (`use_angle_cls`): it turns upside-down lines, which frames and upright photos
  do not have; it costs a pass per line and can flip a good line.

**Junk.** On scikit-image's photographs (22 images, at 512 px and at 320x180) the recogniser reads
texture as single characters (up to '8' 0.92 on `coffee`, 'T' 0.75) and a few short strings (at most
0.69 here, 0.77 with RapidOCR's upscaled detection: '0000' on `camera`); the 272 lines of 64 rendered
slides score 0.905 and more (5th percentile 0.95). `min_score` 0.8 and `min_chars` 2 (letters or digits)
keep every slide line and no photo line.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from media_assets.errors import ModelLoadError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MIN_CHARS",
    "DEFAULT_MIN_SCORE",
    "ENGINES",
    "RapidTextReader",
    "TextLine",
    "TextReader",
    "TextReaderSettings",
    "resolve_device",
]

DEFAULT_MIN_SCORE = 0.8  # texture read as text (two or more characters) scores ≤ 0.77, slide lines ≥ 0.90
DEFAULT_MIN_CHARS = 2  # texture's best-scoring reads are one character ('8' 0.92, 'T' 0.75); a line needs two
DEVICES = ("cpu", "cuda", "auto")
_CUDA_PROVIDER = "CUDAExecutionProvider"


@dataclass(frozen=True)
class TextReaderSettings:
    """How text is read; equal settings share one reader per process (`TextReader.load`).

    `det_max_side`: the detector sees the image at its own size, scaled down only when its longest side
    is over this (the frames stage's thumbnails are 512 px). `threads`: onnxruntime's intra-op threads,
    0 for its default (all cores)."""

    engine: str = "rapidocr"
    device: str = "cpu"
    min_score: float = DEFAULT_MIN_SCORE
    min_chars: int = DEFAULT_MIN_CHARS
    det_max_side: int = 1024
    use_angle_cls: bool = False
    threads: int = 0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown OCR engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not 0.0 <= float(self.min_score) <= 1.0:
            raise ValueError(f"min_score is a recogniser score in 0..1, got {self.min_score}")
        object.__setattr__(self, "min_score", float(self.min_score))
        if not isinstance(self.min_chars, int) or self.min_chars < 0:
            raise ValueError(f"min_chars must be a whole number >= 0, got {self.min_chars!r}")
        if not isinstance(self.det_max_side, int) or not 64 <= self.det_max_side <= 4096:
            raise ValueError(f"det_max_side must be 64..4096 px, got {self.det_max_side!r}")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be a whole number >= 0 (0: onnxruntime's default), got {self.threads!r}")


@dataclass(frozen=True)
class TextLine:
    """One line of text in an image. `points`: its quadrilateral in pixels, clockwise from the top left
    ((x0, y0) .. (x3, y3)); `box`: the same 8 numbers as fractions of the image's width and height."""

    text: str
    score: float
    points: tuple[tuple[float, float], ...]
    box: tuple[float, ...]

    @classmethod
    def from_points(cls, text: str, points, score: float, width: int, height: int) -> TextLine:
        quad = np.asarray(points, dtype=np.float64).reshape(4, 2)
        fractions = np.clip(quad / (max(width, 1), max(height, 1)), 0.0, 1.0).reshape(-1)
        return cls(
            text=" ".join(str(text).split()),
            score=float(score),
            points=tuple((float(x), float(y)) for x, y in quad),
            box=tuple(float(v) for v in fractions),
        )


def resolve_device(device: str = "cpu") -> str:
    """'cpu' or 'cuda': `auto` is CUDA when onnxruntime has its CUDA provider here, else the CPU."""
    if device == "cpu":
        return "cpu"
    import onnxruntime

    has_cuda = _CUDA_PROVIDER in onnxruntime.get_available_providers()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device != "cuda":
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if not has_cuda:
        raise ModelLoadError(
            f"OCR device 'cuda' was asked for but onnxruntime has no {_CUDA_PROVIDER} here "
            f"(providers: {', '.join(onnxruntime.get_available_providers())}); install onnxruntime-gpu or use 'auto'"
        )
    return "cuda"


class TextReader(ABC):
    """Reads the lines of text in a BGR uint8 image. Get one with `TextReader.load(settings)`."""

    _cache: dict[TextReaderSettings, TextReader] = {}
    _cache_lock = threading.Lock()

    def __init__(self, settings: TextReaderSettings, *, model_id: str, device: str):
        self.settings = settings
        self.model_id = model_id
        self.device = device
        self._lock = threading.Lock()

    @classmethod
    def load(cls, settings: TextReaderSettings | None = None) -> TextReader:
        """The reader for `settings` (default: RapidOCR on the CPU), loaded once per process."""
        settings = settings or TextReaderSettings()
        key = replace(settings, device=resolve_device(settings.device))  # 'auto' shares the reader it resolves to
        with cls._cache_lock:
            if key not in cls._cache:
                started = time.perf_counter()
                reader = ENGINES[key.engine](key)
                log.info("loaded OCR %s on %s in %.1fs", reader.model_id, reader.device, time.perf_counter() - started)
                cls._cache[key] = reader
            return cls._cache[key]

    @abstractmethod
    def read_lines(self, bgr: np.ndarray) -> list[TextLine]:
        """Every line the engine found in `bgr` (HxWx3 uint8), in reading order, before any filtering."""

    def read(self, bgr: np.ndarray) -> list[TextLine]:
        """The lines of text in `bgr` (BGR uint8, HxWx3) that pass `min_score` and `min_chars`."""
        if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
            shape = getattr(bgr, "shape", None)
            raise ValueError(f"read takes a BGR uint8 image of shape HxWx3, got {type(bgr).__name__} {shape}")
        with self._lock:
            lines = self.read_lines(bgr)
        return [line for line in lines if self.keeps(line)]

    def keeps(self, line: TextLine) -> bool:
        """Whether a line passes the junk rules: score and how many letters or digits it has."""
        chars = sum(ch.isalnum() for ch in line.text)
        return line.score >= self.settings.min_score and chars >= self.settings.min_chars


class RapidTextReader(TextReader):
    """RapidOCR (PP-OCR models through onnxruntime); see the module docstring for the settings it uses."""

    def __init__(self, settings: TextReaderSettings):
        device = resolve_device(settings.device)
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise ModelLoadError(f"OCR engine 'rapidocr' is not installed: {exc}") from exc
        params = {
            "Global.log_level": "error",  # its INFO lines at load, and a warning for every image without text
            "Global.text_score": 0.0,  # `read` applies min_score, the same for every engine
            "Global.use_cls": settings.use_angle_cls,
            "Det.limit_type": "max",
            "Det.limit_side_len": settings.det_max_side,
            "EngineConfig.onnxruntime.use_cuda": device == "cuda",
            "EngineConfig.onnxruntime.intra_op_num_threads": settings.threads or -1,
        }
        try:
            engine = RapidOCR(params=params)
            files = {"det": _model_file(engine.cfg.Det, engine.cfg.Global.model_root_dir)}
            files["rec"] = _model_file(engine.cfg.Rec, engine.cfg.Global.model_root_dir)
            if settings.use_angle_cls:
                files["cls"] = _model_file(engine.cfg.Cls, engine.cfg.Global.model_root_dir)
            for task, path in files.items():
                if not path.is_file():
                    raise ModelLoadError(
                        f"RapidOCR's {task} model {path} is not there (the rapidocr {_rapidocr_version()} wheel "
                        "ships it; nothing is downloaded here): reinstall rapidocr"
                    )
                engine.cfg[task.capitalize()].model_path = str(path)
            engine(_warm_up_image())  # loads the sessions now: errors surface here, the first read is not slow
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"cannot load RapidOCR ({type(exc).__name__}): {exc}") from exc
        super().__init__(settings, model_id="rapidocr:" + "+".join(p.name for p in files.values()), device=device)
        self.engine = engine

    def read_lines(self, bgr: np.ndarray) -> list[TextLine]:
        output = self.engine(bgr)
        boxes, texts, scores = (getattr(output, name, None) for name in ("boxes", "txts", "scores"))
        if boxes is None or texts is None or scores is None:
            return []
        height, width = bgr.shape[:2]
        return [
            TextLine.from_points(text, box, score, width, height)
            for box, text, score in zip(boxes, texts, scores, strict=True)
            if str(text).strip()
        ]


def _model_file(section, model_root) -> Path:
    """The model file RapidOCR picks for a config section (det, rec, cls): its wheel's file of that name."""
    from rapidocr.inference_engine.base import FileInfo, InferSession

    if section.get("model_path"):
        return Path(section.model_path)
    info = InferSession.get_model_url(
        FileInfo(
            engine_type=section.engine_type,
            ocr_version=section.ocr_version,
            task_type=section.task_type,
            lang_type=section.lang_type,
            model_type=section.model_type,
        )
    )
    return Path(model_root) / Path(info["model_dir"]).name


def _warm_up_image() -> np.ndarray:
    image = np.full((64, 256, 3), 255, np.uint8)
    cv2.putText(image, "Warm up 42", (8, 44), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2, cv2.LINE_AA)
    return image


ENGINES: dict[str, type[TextReader]] = {"rapidocr": RapidTextReader}


def _rapidocr_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("rapidocr")
    except metadata.PackageNotFoundError:
        return "(unknown version)"
