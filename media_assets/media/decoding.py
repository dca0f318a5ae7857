"""Reading media: probe a file, sample frames from a video, load a photo upright.

Videos are read with OpenCV's FFmpeg backend. Sampling walks the stream with `grab()` (demux and decode,
no colour conversion) and calls `retrieve()` only for the frames it keeps, so skipped frames cost the decoder
alone. Timestamps come from each frame's presentation time (`CAP_PROP_POS_MSEC`), not from index / fps, so
variable-frame-rate files get correct times.

Photos are read with Pillow and turned upright by their EXIF Orientation tag.
All frames are returned as BGR uint8 arrays (OpenCV's order).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from media_assets.errors import MediaReadError
from media_assets.media.discovery import media_kind

# After this many failed grabs in a row before the expected end of a stream we stop reading.
MAX_CONSECUTIVE_DECODE_FAILURES = 32


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video to keep: `fps` frames per second of presentation time, or every Nth
    decoded frame when `every_n_frames` is set."""

    fps: float = 1.0
    every_n_frames: int | None = None

    def __post_init__(self) -> None:
        if self.every_n_frames is not None:
            if self.every_n_frames < 1:
                raise ValueError(f"every_n_frames must be >= 1, got {self.every_n_frames}")
        elif not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"sampling fps must be a positive number, got {self.fps}")

    def describe(self) -> str:
        return f"every={self.every_n_frames}" if self.every_n_frames else f"fps={self.fps:g}"


@dataclass
class Probe:
    """What the container says about a file, before decoding."""

    kind: str
    container: str
    codec: str | None
    width: int
    height: int
    fps: float | None
    frame_count: int | None
    duration_s: float | None


@dataclass(frozen=True)
class DecodedFrame:
    index: int  # decoded frame number in the file (0 for a photo)
    timestamp_s: float
    image: np.ndarray  # BGR uint8, upright


@dataclass
class DecodeStats:
    frames_decoded: int = 0
    undecodable: int = 0
    last_timestamp_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def check_readable(path: Path) -> None:
    """MediaReadError unless `path` is a non-empty regular file this process can read."""
    if not path.exists():
        raise MediaReadError(path, "file does not exist")
    if not path.is_file():
        raise MediaReadError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise MediaReadError(path, "file is empty (0 bytes)")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise MediaReadError(path, f"cannot read file ({exc.strerror or exc})") from exc


def _fourcc_name(value: float) -> str | None:
    code = int(value)
    if code <= 0:
        return None
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    if not text.isprintable():
        return None
    return text.strip().lower() or None


def _open_video(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise MediaReadError(path, "not a readable video (FFmpeg could not open the container or find a video stream)")
    return capture


def probe(path: str | Path) -> Probe:
    """Container facts of a video or photo; raises MediaReadError for what cannot be read."""
    path = Path(path)
    kind = media_kind(path)
    if kind is None:
        raise MediaReadError(path, f"unsupported file type {path.suffix!r}")
    check_readable(path)
    container = path.suffix.lower().lstrip(".")
    if kind == "image":
        image = load_image(path)
        return Probe("image", container, _image_format(path), image.shape[1], image.shape[0], None, 1, None)
    capture = _open_video(path)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or None
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        codec = _fourcc_name(capture.get(cv2.CAP_PROP_FOURCC))
    finally:
        capture.release()
    if width <= 0 or height <= 0:
        raise MediaReadError(path, "video stream has no frame size (no decodable video stream)")
    frame_count = count if count > 0 else None
    duration = frame_count / fps if frame_count and fps else None
    return Probe("video", container, codec, width, height, fps, frame_count, duration)


def _image_format(path: Path) -> str | None:
    try:
        with Image.open(path) as im:
            return (im.format or "").lower() or None
    except Exception:
        return None


def load_image(path: str | Path) -> np.ndarray:
    """A photo as an upright BGR uint8 array (EXIF Orientation applied; first frame of multi-frame files)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            upright = ImageOps.exif_transpose(im)
            rgb = np.asarray(upright.convert("RGB"))
    except UnidentifiedImageError as exc:
        raise MediaReadError(path, "not a readable image (unknown or corrupt format)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaReadError(path, f"image data is corrupt or truncated ({exc})") from exc
    if rgb.size == 0:
        raise MediaReadError(path, "image has no pixels")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def sample_video(
    path: str | Path, sampling: Sampling, stats: DecodeStats, expected_frames: int | None = None
) -> Iterator[DecodedFrame]:
    """Yield the kept frames of a video in order; `stats` is filled in as it goes.

    With `sampling.fps`, a frame is kept when its presentation time reaches the next multiple of
    1/fps (the first decoded frame is always kept). Frames that fail to decode before the stream's
    expected end are skipped and counted in `stats.undecodable`.
    """
    path = Path(path)
    capture = _open_video(path)
    period = None if sampling.every_n_frames else 1.0 / sampling.fps
    next_time = 0.0
    index = -1
    failures_in_row = 0
    try:
        while True:
            if not capture.grab():
                index += 1
                if (
                    expected_frames is not None
                    and index < expected_frames
                    and failures_in_row < MAX_CONSECUTIVE_DECODE_FAILURES
                ):
                    failures_in_row += 1
                    stats.undecodable += 1
                    continue
                if failures_in_row:
                    # the failures were the end of the stream after all, not bad frames inside it
                    stats.undecodable -= failures_in_row
                break
            failures_in_row = 0
            index += 1
            stats.frames_decoded += 1
            timestamp = max(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0, 0.0)
            stats.last_timestamp_s = timestamp
            if period is None:
                keep = index % sampling.every_n_frames == 0
            else:
                keep = timestamp + 1e-6 >= next_time
            if not keep:
                continue
            ok, image = capture.retrieve()
            if not ok or image is None:
                stats.undecodable += 1
                continue
            if period is not None:
                next_time = (math.floor(timestamp / period + 1e-6) + 1) * period
            yield DecodedFrame(index, timestamp, image)
    finally:
        capture.release()
