"""Reading media: probe a file, sample frames from a video, load a photo upright.

Videos are read with OpenCV's FFmpeg backend. Sampling walks the stream with `grab()` (demux and decode,
no colour conversion) and calls `retrieve()` only for the frames it keeps, so skipped frames cost the decoder
alone. Timestamps come from each frame's presentation time (`CAP_PROP_POS_MSEC`), not from index / fps, so
variable-frame-rate files get correct times.

Photos are read with Pillow and turned upright by their EXIF Orientation tag.
All frames are returned as BGR uint8 arrays (OpenCV's order).

Hostile input: a picture costs memory by the pixels it declares, not by its bytes (a JPEG of a few
hundred bytes can declare 65 000 × 65 000). A photo's format is told by its content (magic bytes), its
declared size read from its header, and the pixel limit checked before a pixel is decoded; a video's frame
size is read from its container (`probe`) before sampling starts. Over the limit is a `PixelLimitError` (a
`MediaReadError`) naming the file, the declared width × height and the limit. The limits:
- photos and uploads: `MEDIA_ASSETS_MAX_PIXELS`, default 178 956 970 (≈179 MP, Pillow's own
  decompression-bomb limit): above every camera sensor on sale (the largest, 151 MP); decoding one at the
  limit holds about 10 bytes a pixel (Pillow's 4, the RGB and BGR arrays' 3 each), ≈1.8 GB;
- video frames: `MEDIA_ASSETS_MAX_VIDEO_PIXELS`, default 8192 × 4320 (DCI 8K, ≈35 MP): sampling holds
  several decoded frames at once (FFmpeg's frame threads, the prefetch queue), so the limit is lower.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from media_assets.errors import MediaReadError
from media_assets.media.discovery import media_kind

# After this many failed grabs in a row before the expected end of a stream we stop reading.
MAX_CONSECUTIVE_DECODE_FAILURES = 32

# The pixel limits (see the module docstring for why these numbers).
MAX_PIXELS_ENV = "MEDIA_ASSETS_MAX_PIXELS"
MAX_VIDEO_PIXELS_ENV = "MEDIA_ASSETS_MAX_VIDEO_PIXELS"
DEFAULT_MAX_PIXELS = 178_956_970  # 2 × PIL.Image.MAX_IMAGE_PIXELS as Pillow ships it
DEFAULT_MAX_VIDEO_PIXELS = 8192 * 4320

# The photo formats read, by the signature their content starts with, and the Pillow class that reads each
# one's header without decoding (Image.open would add Pillow's own bomb check, which warns below ours).
IMAGE_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP", "gif": "GIF", "bmp": "BMP", "tiff": "TIFF"}
_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)
_HEADER_READERS: dict[str, type[ImageFile.ImageFile]] = {
    "jpeg": JpegImagePlugin.JpegImageFile,
    "png": PngImagePlugin.PngImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "gif": GifImagePlugin.GifImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
}
# What other content is, to say so when it is not a photo (ISO media and RIFF files are told by their brand).
_OTHER_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (b"OggS", "an Ogg stream"),
    (b"fLaC", "a FLAC audio file"),
    (b"ID3", "an MP3 audio file"),
    (b"8BPS", "a Photoshop document"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (b"\x00\x00\x01\x00", "a Windows icon"),
)
_ISO_BRANDS = {b"heic": "a HEIC image", b"heix": "a HEIC image", b"mif1": "a HEIF image", b"avif": "an AVIF image"}
_RIFF_KINDS = {b"AVI ": "an AVI video", b"WAVE": "a WAV audio file"}


class PixelLimitError(MediaReadError):
    """A picture declares more pixels than the limit allows. A photo's header and a video's container are
    checked before anything is decoded; a video frame that outgrows its container is caught once decoded."""

    def __init__(self, path: Path | str, what: str, width: int, height: int, limit: int, setting: str):
        self.width, self.height, self.limit = width, height, limit
        super().__init__(
            path,
            f"{what} declares {width} × {height} pixels ({_megapixels(width * height)}), over the limit of "
            f"{limit:,} pixels ({_megapixels(limit)}; {setting} raises it)",
        )


def _megapixels(pixels: int) -> str:
    digits = ".2g" if pixels < 10**6 else ".1f" if pixels < 10**7 else ".0f"
    return f"{pixels / 1e6:{digits}} megapixels"


def _limit(value: int | None, env: str, default: int) -> int:
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"a pixel limit must be a positive whole number of pixels, got {value!r}")
        return value
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"{env} must be a positive whole number of pixels (width × height), got {raw!r}")
    return limit


def pixel_limit(value: int | None = None) -> int:
    """The largest photo (or upload), width × height: `value`, else $MEDIA_ASSETS_MAX_PIXELS, else the default."""
    return _limit(value, MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS)


def video_pixel_limit(value: int | None = None) -> int:
    """The largest video frame, width × height: `value`, else $MEDIA_ASSETS_MAX_VIDEO_PIXELS, else the default."""
    return _limit(value, MAX_VIDEO_PIXELS_ENV, DEFAULT_MAX_VIDEO_PIXELS)


def sniff_image_format(head: bytes) -> str | None:
    """The photo format (a key of IMAGE_FORMATS) the content's first bytes say, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((fmt for signature, fmt in _SIGNATURES if head.startswith(signature)), None)


def describe_content(head: bytes) -> str:
    """What content that is no photo is, as far as its first bytes tell: 'a PDF document', 'text', …"""
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12], "an MP4/QuickTime (ISO media) file")
    if head[:4] == b"RIFF":
        return _RIFF_KINDS.get(head[8:12], "a RIFF file")
    known = next((what for signature, what in _OTHER_SIGNATURES if head.startswith(signature)), None)
    if known is not None:
        return known
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "an SVG drawing (vector graphics)"
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # a character cut by the end of the sample
                return "text"
    return f"data of no known format (it starts with {head[:8].hex(' ')})"


def _webp_size(head: bytes) -> tuple[int, int] | None:
    """A WebP's canvas from its first chunk (read here: Pillow's WebP reader allocates the canvas as it opens)."""
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(head) >= 30:
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


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


def probe(path: str | Path, *, max_pixels: int | None = None, max_video_pixels: int | None = None) -> Probe:
    """Container facts of a video or photo; raises MediaReadError for what cannot be read, PixelLimitError for
    a photo over `max_pixels` or a video whose frames are over `max_video_pixels` (None: the environment's
    limits, see `pixel_limit()` and `video_pixel_limit()`)."""
    path = Path(path)
    kind = media_kind(path)
    if kind is None:
        raise MediaReadError(path, f"unsupported file type {path.suffix!r}")
    check_readable(path)
    container = path.suffix.lower().lstrip(".")
    if kind == "image":
        image, fmt = _load_image(path, max_pixels)
        return Probe("image", container, fmt, image.shape[1], image.shape[0], None, 1, None)
    limit = video_pixel_limit(max_video_pixels)
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
    if width * height > limit:
        raise PixelLimitError(path, "the video stream", width, height, limit, _VIDEO_SETTING)
    frame_count = count if count > 0 else None
    duration = frame_count / fps if frame_count and fps else None
    return Probe("video", container, codec, width, height, fps, frame_count, duration)


_IMAGE_SETTING = f"{MAX_PIXELS_ENV} or the frames config's max_pixels"
_VIDEO_SETTING = f"{MAX_VIDEO_PIXELS_ENV} or the frames config's max_video_pixels"
_ACCEPTED = ", ".join(IMAGE_FORMATS.values())


def load_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """A photo as an upright BGR uint8 array (EXIF Orientation applied; first frame of multi-frame files).

    The format is told by the content, not the name. PixelLimitError when the header declares more than
    `max_pixels` (None: `pixel_limit()`), before anything is decoded; MediaReadError for anything else that
    cannot be read."""
    return _load_image(Path(path), max_pixels)[0]


def decode_image(data: bytes, name: str, max_pixels: int | None = None) -> np.ndarray:
    """`load_image` of bytes in memory (an upload); errors name `name`."""
    return _read_image(io.BytesIO(data), name, max_pixels, MAX_PIXELS_ENV)[0]


def _load_image(path: Path, max_pixels: int | None) -> tuple[np.ndarray, str]:
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise MediaReadError(path, f"cannot read file ({exc.strerror or exc})") from exc
    with fh:
        return _read_image(fh, path, max_pixels, _IMAGE_SETTING)


def _read_image(fh, name: Path | str, max_pixels: int | None, setting: str) -> tuple[np.ndarray, str]:
    """(upright BGR pixels, format) of the photo in the binary file `fh`."""
    limit = pixel_limit(max_pixels)
    head = fh.read(64)
    fmt = sniff_image_format(head)
    if fmt is None:
        raise MediaReadError(name, f"not an image: the content is {describe_content(head)}, not {_ACCEPTED}")
    label = IMAGE_FORMATS[fmt]
    if fmt == "webp" and (size := _webp_size(head)) is not None:
        _check_pixels(name, label, *size, limit, setting)
    fh.seek(0)
    try:
        image = _HEADER_READERS[fmt](fh)  # reads the header only: size, mode, EXIF; no pixel yet
    except Image.DecompressionBombError as exc:
        raise MediaReadError(name, f"Pillow refuses it as a decompression bomb ({exc})") from exc
    except (SyntaxError, OSError, ValueError, EOFError) as exc:
        raise MediaReadError(name, f"not a readable {label} image (corrupt or truncated header: {exc})") from exc
    try:
        _check_pixels(name, label, *image.size, limit, setting)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except Image.DecompressionBombError as exc:  # Pillow's own limit, when ours was set above it
        raise MediaReadError(name, f"Pillow refuses it as a decompression bomb ({exc})") from exc
    except (OSError, ValueError, SyntaxError, EOFError, UnidentifiedImageError) as exc:
        raise MediaReadError(name, f"{label} image data is corrupt or truncated ({exc})") from exc
    finally:
        image.close()
    if rgb.size == 0:
        raise MediaReadError(name, "image has no pixels")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), fmt


def _check_pixels(name: Path | str, label: str, width: int, height: int, limit: int, setting: str) -> None:
    if width * height > limit:
        raise PixelLimitError(name, f"the {label} image", width, height, limit, setting)


def sample_video(
    path: str | Path,
    sampling: Sampling,
    stats: DecodeStats,
    expected_frames: int | None = None,
    *,
    max_pixels: int | None = None,
) -> Iterator[DecodedFrame]:
    """Yield the kept frames of a video in order; `stats` is filled in as it goes.

    With `sampling.fps`, a frame is kept when its presentation time reaches the next multiple of
    1/fps (the first decoded frame is always kept). Frames that fail to decode before the stream's
    expected end are skipped and counted in `stats.undecodable`. A kept frame larger than `max_pixels`
    (None: `video_pixel_limit()`) is a PixelLimitError: `probe` checks the size the container declares, and
    this catches a stream that grows after its start.
    """
    path = Path(path)
    limit = video_pixel_limit(max_pixels)
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
            if image.shape[0] * image.shape[1] > limit:
                what = f"frame {index} of the video"
                raise PixelLimitError(path, what, image.shape[1], image.shape[0], limit, _VIDEO_SETTING)
            if period is not None:
                next_time = (math.floor(timestamp / period + 1e-6) + 1) * period
            yield DecodedFrame(index, timestamp, image)
    finally:
        capture.release()
