"""Media discovery: which files under the media root are media, their partition keys and signatures.

A media file's partition key is its path relative to the media root, with `/` separators
(`clips/kitchen.mp4`): readable in the Dagster UI. Its `media_id` (`media_assets.ids`) is derived from
that key. `scan_media` lists the media files under a root, `diff_media` says what changed since the
signatures (size and mtime) a sensor or the catalog last recorded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from media_assets.ids import media_id_for

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
AUDIO_EXTENSIONS = frozenset({".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".oga", ".opus"})


def media_kind(path: str | os.PathLike) -> str | None:
    """'video', 'image', 'audio', or None for a file that is not media (by extension)."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    return None


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
    return MediaFile(
        partition_key_for(path, media_root), Path(os.path.abspath(path)), kind, stat.st_size, stat.st_mtime_ns
    )


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
    current: list[MediaFile],
    known_signatures: dict[str, str],
    registered: set[str],
    *,
    now_ns: int,
    settle_s: float = 2.0,
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
