"""Browser playback: a video a browser cannot decode gets a WebM (VP8) playback copy, made once.

Browsers play H.264/AV1 in MP4 and VP8/VP9/AV1 in WebM; MPEG-4 Part 2 (`mp4v`, what OpenCV writes and
what old cameras made), Motion-JPEG AVI and most Matroska files they do not. `playable_path` returns the
original file when a browser can play it, else a playback copy under `warehouse/playback/<media_id>.webm`:
the same frames and timestamps (same frame rate, so seeking to a time shows the same moment), scaled to at
most 480 lines, without sound (OpenCV writes no audio; the original stays available). The copy is made on
first request, written under a temporary name and renamed into place, and re-made when the file changes
(its name carries the file's size and mtime).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2

from media_assets.warehouse import Warehouse

PROXY_MAX_HEIGHT = 480
# (container, codec) pairs as the probe records them that browsers play natively
_WEB_CODECS = {"h264", "avc1", "av01", "vp80", "vp8", "vp90", "vp9"}
_WEB_CONTAINERS = {"mp4", "m4v", "mov", "webm"}

_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


class PlaybackError(RuntimeError):
    pass


def browser_can_play(media: dict) -> bool:
    if media["kind"] != "video":
        return True
    return (media.get("container") or "").lower() in _WEB_CONTAINERS and (
        media.get("codec") or ""
    ).lower() in _WEB_CODECS


def proxy_path(warehouse: Warehouse, media: dict) -> Path:
    return warehouse.root / "playback" / f"{media['media_id']}-{media['size_bytes']}-{media['mtime_ns']}.webm"


def playable_path(warehouse: Warehouse, media: dict) -> tuple[Path, str]:
    """(path, MIME type) of something a browser can play for this `media` row."""
    source = Path(media["path"])
    if browser_can_play(media):
        return source, ""
    target = proxy_path(warehouse, media)
    if target.is_file():
        return target, "video/webm"
    with _locks_guard:
        lock = _locks.setdefault(int(media["media_id"]), threading.Lock())
    with lock:
        if not target.is_file():
            _write_proxy(source, target)
            for stale in target.parent.glob(f"{media['media_id']}-*.webm"):
                if stale != target:
                    stale.unlink(missing_ok=True)
    return target, "video/webm"


def _write_proxy(source: Path, target: Path) -> None:
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise PlaybackError(f"{source}: cannot be opened to make a playback copy")
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if height > PROXY_MAX_HEIGHT:
            width, height = round(width * PROXY_MAX_HEIGHT / height / 2) * 2, PROXY_MAX_HEIGHT
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.stem}.{os.getpid()}.{threading.get_ident()}.partial.webm")
        writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"VP80"), fps, (width, height))
        if not writer.isOpened():
            raise PlaybackError("this OpenCV build cannot write VP8 WebM; play the original instead")
        written = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                if frame.shape[0] != height or frame.shape[1] != width:
                    frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
                writer.write(frame)
                written += 1
        finally:
            writer.release()
        if not written:
            partial.unlink(missing_ok=True)
            raise PlaybackError(f"{source}: no frame could be decoded for a playback copy")
        os.replace(partial, target)
    finally:
        capture.release()
