"""Media discovery: which files under the media root are media, their partition keys and stable ids.

A media file's partition key is its path relative to the media root, with `/` separators
(`clips/kitchen.mp4`): readable in the Dagster UI. Its `media_id` is a stable 43-bit integer derived
from that key, so the same file keeps its id across re-materializations and every table joins on it.
Frame ids are `media_id << FRAME_SEQ_BITS | seq` (seq = the frame's position among the file's sampled
frames), so `frame_id >> 20` gives back the media id in SQL too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

MEDIA_ID_BITS = 43
FRAME_SEQ_BITS = 20
MAX_FRAMES_PER_MEDIA = 1 << FRAME_SEQ_BITS


def media_kind(path: str | os.PathLike) -> str | None:
    """'video', 'image', or None for a file that is not media (by extension)."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return None


def media_id_for(partition_key: str) -> int:
    """Stable id of a media file from its partition key (its path relative to the media root)."""
    digest = hashlib.blake2b(partition_key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - MEDIA_ID_BITS)


def frame_id_for(media_id: int, seq: int) -> int:
    if not 0 <= seq < MAX_FRAMES_PER_MEDIA:
        raise ValueError(f"frame sequence number {seq} is outside [0, {MAX_FRAMES_PER_MEDIA})")
    return (media_id << FRAME_SEQ_BITS) | seq


def media_id_of_frame(frame_id: int) -> int:
    return frame_id >> FRAME_SEQ_BITS


def shot_id_for(media_id: int, shot_index: int) -> int:
    """Shot ids share the frame ids' layout: `media_id << 20 | shot_index`."""
    return frame_id_for(media_id, shot_index)


def face_id_for(media_id: int, face_index: int) -> int:
    """Face ids share the frame ids' layout: `media_id << 20 | face_index` (faces numbered per file)."""
    return frame_id_for(media_id, face_index)


@dataclass(frozen=True)
class MediaFile:
    """One media file under the media root, as seen by a scan (no decoding)."""

    partition_key: str
    path: Path
    kind: str
    size_bytes: int
    mtime_ns: int

    @property
    def media_id(self) -> int:
        return media_id_for(self.partition_key)

    @property
    def signature(self) -> str:
        """Changes when the file's content likely changed (size or modification time)."""
        return file_signature(self.size_bytes, self.mtime_ns)


def file_signature(size_bytes: int, mtime_ns: int) -> str:
    return f"{size_bytes}:{mtime_ns}"


def partition_key_for(path: Path, media_root: Path) -> str:
    """The path relative to the media root (the link itself, not its target, for a symlink)."""
    return Path(os.path.abspath(path)).relative_to(media_root.resolve()).as_posix()


def stat_media_file(path: Path, media_root: Path) -> MediaFile:
    kind = media_kind(path)
    if kind is None:
        raise ValueError(f"{path} is not a media file (unknown extension {path.suffix!r})")
    stat = path.stat()
    return MediaFile(partition_key_for(path, media_root), Path(os.path.abspath(path)), kind, stat.st_size, stat.st_mtime_ns)


def scan_media(media_root: Path) -> Iterator[MediaFile]:
    """Media files below `media_root`, sorted by partition key. Hidden files and folders are skipped;
    symlinks that lead outside the media root are not followed."""
    root = media_root.resolve()
    if not root.is_dir():
        return
    found: list[MediaFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or media_kind(name) is None:
                continue
            path = Path(dirpath) / name
            try:
                if not path.resolve().is_relative_to(root):
                    continue
                found.append(stat_media_file(path, root))
            except OSError:
                continue  # vanished or unreadable between listing and stat: the next scan sees it
    found.sort(key=lambda m: m.partition_key)
    yield from found


@dataclass
class MediaChanges:
    """What a scan found against what was known: partition keys to add, re-run, and drop."""

    new: list[str]
    changed: list[str]
    deleted: list[str]
    settling: list[str]
    signatures: dict[str, str]  # key → signature of every file now present (the next known state)


def diff_media(
    current: list[MediaFile], known_signatures: dict[str, str], registered: set[str], *, now_ns: int, settle_s: float = 2.0
) -> MediaChanges:
    """Compare a scan with the last known state.

    - new: present, not a registered partition yet;
    - changed: registered, and its size/mtime differs from the known signature (or none is known);
    - deleted: registered, no longer present;
    - settling: modified less than `settle_s` ago (maybe still being copied in): left for a later scan.
    """
    new, changed, settling = [], [], []
    signatures: dict[str, str] = {}
    present = set()
    for media_file in current:
        key = media_file.partition_key
        present.add(key)
        if now_ns - media_file.mtime_ns < settle_s * 1e9:
            settling.append(key)
            if key in known_signatures:
                signatures[key] = known_signatures[key]
            continue
        signatures[key] = media_file.signature
        if key not in registered:
            new.append(key)
        elif known_signatures.get(key) != media_file.signature:
            changed.append(key)
    deleted = sorted(registered - present)
    return MediaChanges(new, changed, deleted, settling, signatures)
