"""Subtitles: read SRT and WebVTT files and the text subtitle streams inside containers; write SRT, WebVTT,
plain text and JSON.

A media file's **sidecar** subtitles are files beside it with its base name: `talk.srt`, `talk.vtt`, or with
a language suffix, `talk.en.srt`, `talk.pt-BR.vtt` (`find_sidecars`). **Embedded** subtitles are text
streams in the container (`subrip`, `ass`/`ssa`, `mov_text`, `webvtt`; bitmap subtitles such as DVD or
PGS are images and are skipped), read with PyAV (`read_embedded`). Either way a track is a list of `Cue`s:
start and end in seconds from the file's start, and the text with its formatting removed (HTML-ish tags
like `<i>`, `<c.yellow>`, `<00:00:01.000>`; ASS override blocks like `{\\an8}`; entities like `&amp;`), one
string with `\\n` between the cue's lines.

Reading is forgiving where files in the wild differ (a UTF-8 BOM, CRLF or CR line ends, no final newline,
cp1252 text, cue numbers missing, `.` instead of `,` before the milliseconds, hours left out, cue settings
after the times) and strict where the file is not what it claims: a cue without a timing line, a time
that does not parse or a cue that ends before it starts is a `SubtitleFormatError` naming the file and
the line (a `MediaReadError`, so a stage reports it like any unreadable input).

Writing (`to_srt`, `to_vtt`, `to_txt`, `to_json`) takes anything with `start_s`, `end_s` and `text`
(cues, transcript segments, dicts of them); what it writes reads back to the same cues.

Chapters (`write_chapters`: anything with `start_s`, `end_s`, `title`) go out as a WebVTT chapters track
(one cue per chapter, its title the cue text: what `<track kind="chapters">` and players read), a YouTube
description block (`0:00 Title` lines; YouTube shows chapters when the first is at 0:00, there are at least
three and each is at least 10 s long) or JSON.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from media_assets.errors import MediaReadError

SUBTITLE_EXTENSIONS = (".srt", ".vtt")
# Text subtitle codecs by FFmpeg decoder name ('srt' is the subrip decoder's name in some builds).
TEXT_SUBTITLE_CODECS = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})
FORMATS = ("srt", "vtt", "txt", "json")
CHAPTER_FORMATS = ("json", "vtt", "youtube")

# HH:MM:SS,mmm or MM:SS.mmm (WebVTT leaves hours out below an hour; some SRT writers use '.')
_TIME = r"(?:(\d+):)?([0-5]?\d):([0-5]?\d)(?:[,.](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>|<\d+:\d+[^<>]*>")  # <i>, </font>, <c.yellow>, <00:01.000>
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")  # {\an8}, {\i1}
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")  # en, eng, pt-BR, zh_Hans


class SubtitleFormatError(MediaReadError):
    """A subtitle file is not valid SRT/WebVTT; the message names the file and the line."""

    def __init__(self, path: Path | str, line: int, reason: str):
        self.line = line
        super().__init__(path, f"line {line}: {reason}")


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str  # plain text; the cue's lines joined with '\n'


@dataclass(frozen=True)
class SubtitleTrack:
    """The cues of one subtitle file or stream."""

    cues: tuple[Cue, ...]
    language: str | None  # from the file name's suffix or the stream's tag; None when unknown
    source: str  # 'talk.en.srt', or 'stream #2 (eng)': what `transcript_segments.source` names
    codec: str  # 'srt' | 'vtt' for files; FFmpeg's codec name for streams


@dataclass(frozen=True)
class Sidecar:
    path: Path
    language: str | None  # 'en' for talk.en.srt; None for talk.srt


# -- reading ------------------------------------------------------------------------------------------


def _decode_text(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # every byte is a character: never fails


def _lines(text: str) -> list[str]:
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str | None) -> float:
    ms = int((millis or "0").ljust(3, "0"))
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + ms / 1000


def _timing(line: str, source: str, number: int) -> tuple[float, float]:
    match = _TIMING.match(line)
    if match is None:
        raise SubtitleFormatError(
            source, number, f"expected a timing line 'HH:MM:SS,mmm --> HH:MM:SS,mmm', got {line.strip()[:80]!r}"
        )
    groups = match.groups()
    start, end = _seconds(*groups[:4]), _seconds(*groups[4:])
    if end < start:
        raise SubtitleFormatError(source, number, f"the cue ends ({end:.3f}s) before it starts ({start:.3f}s)")
    return start, end


def clean_text(text: str) -> str:
    """A cue's text without formatting: tags, ASS override blocks and entities removed, `\\N` as a line
    break, blank lines and spaces at the ends of lines dropped."""
    text = _ASS_OVERRIDE.sub("", text).replace("\\N", "\n").replace("\\h", " ")
    text = html.unescape(_TAG.sub("", text))
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _blocks(lines: list[str]) -> Iterable[tuple[int, list[str]]]:
    """(1-based number of the block's first line, its lines) for each run of non-blank lines."""
    block: list[str] = []
    first = 0
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not block:
                first = number
            block.append(line)
        elif block:
            yield first, block
            block = []
    if block:
        yield first, block


def parse_srt(text: str, *, source: str = "<srt>") -> list[Cue]:
    """The cues of an SRT document, in file order (cues with no text are skipped). A block of text with
    neither a cue number nor a timing line after a cue is more of that cue's text (a blank line inside a
    cue, common in files made by hand)."""
    cues: list[Cue] = []
    for first, block in _blocks(_lines(text)):
        offset = 0
        if "-->" not in block[0]:
            if block[0].strip().isdigit() and len(block) > 1:
                offset = 1  # the cue number
            elif cues:
                last = cues[-1]
                cues[-1] = Cue(last.start_s, last.end_s, clean_text(last.text + "\n" + "\n".join(block)))
                continue
            else:
                raise SubtitleFormatError(
                    source, first, f"expected a cue number or a timing line, got {block[0].strip()[:80]!r}"
                )
        start, end = _timing(block[offset], source, first + offset)
        body = clean_text("\n".join(block[offset + 1 :]))
        if body:
            cues.append(Cue(start, end, body))
    return cues


def parse_vtt(text: str, *, source: str = "<vtt>") -> list[Cue]:
    """The cues of a WebVTT document, in file order (NOTE, STYLE and REGION blocks are skipped)."""
    lines = _lines(text)
    if not lines or not re.match(r"^WEBVTT(?:[ \t].*)?$", lines[0].rstrip()):
        head = lines[0].strip()[:80] if lines else ""
        raise SubtitleFormatError(source, 1, f"a WebVTT file starts with 'WEBVTT', got {head!r}")
    cues: list[Cue] = []
    for index, (first, block) in enumerate(_blocks(lines)):
        if index == 0:  # the WEBVTT line and its header; a cue right below it (no blank line) still counts
            timed = [i for i, line in enumerate(block) if "-->" in line]
            if not timed:
                continue
            first, block = first + timed[0], block[timed[0] :]
        keyword = block[0].split(maxsplit=1)[0] if block[0].split() else ""
        if keyword in ("NOTE", "STYLE", "REGION") and "-->" not in block[0]:
            continue
        offset = 0 if "-->" in block[0] else 1  # a cue identifier line
        if offset >= len(block) or "-->" not in block[offset]:
            raise SubtitleFormatError(
                source, first + offset if offset < len(block) else first, "a cue has no timing line ('... --> ...')"
            )
        start, end = _timing(block[offset], source, first + offset)
        body = clean_text("\n".join(block[offset + 1 :]))
        if body:
            cues.append(Cue(start, end, body))
    return cues


def read_subtitle_file(path: str | Path, *, language: str | None = None) -> SubtitleTrack:
    """An .srt or .vtt file as a track; SubtitleFormatError when it is malformed, MediaReadError when it
    cannot be read."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUBTITLE_EXTENSIONS:
        raise MediaReadError(path, f"not a subtitle file (expected {' or '.join(SUBTITLE_EXTENSIONS)})")
    try:
        text = _decode_text(path.read_bytes())
    except OSError as exc:
        raise MediaReadError(path, f"cannot read the subtitle file ({exc.strerror or exc})") from exc
    parse = parse_srt if suffix == ".srt" else parse_vtt
    cues = parse(text, source=str(path))
    return SubtitleTrack(tuple(cues), language, path.name, suffix.lstrip("."))


def find_sidecars(media_path: str | Path) -> list[Sidecar]:
    """Subtitle files beside `media_path` with its base name: `talk.srt`, `talk.vtt`, `talk.<lang>.srt`,
    `talk.<lang>.vtt` (case of the suffix ignored). The ones without a language come first, then by name."""
    media_path = Path(media_path)
    stem = media_path.stem
    found: list[Sidecar] = []
    try:
        entries = list(media_path.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.suffix.lower() not in SUBTITLE_EXTENSIONS or not entry.is_file():
            continue
        base = entry.name[: -len(entry.suffix)]
        if base == stem:
            found.append(Sidecar(entry, None))
        elif base.startswith(stem + ".") and _LANGUAGE.match(base[len(stem) + 1 :]):
            found.append(Sidecar(entry, base[len(stem) + 1 :]))
    return sorted(found, key=lambda s: (s.language is not None, s.path.name))


def _stream_language(stream) -> str | None:
    language = stream.language or (stream.metadata or {}).get("language")
    return language if language and language != "und" else None


def read_embedded(path: str | Path) -> list[SubtitleTrack]:
    """The text subtitle streams inside a container, as tracks (bitmap subtitle streams are skipped).
    A file without subtitle streams gives []; MediaReadError when the file or a stream cannot be read."""
    path = Path(path)
    try:
        container = av.open(str(path), "r")
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaReadError(path, f"not a readable media file (FFmpeg could not open it: {exc})") from exc
    try:
        streams = [
            s
            for s in container.streams.subtitles
            if s.codec_context is not None and (s.codec_context.name or "") in TEXT_SUBTITLE_CODECS
        ]
        if not streams:
            return []
        start_s = container.start_time / 1_000_000 if container.start_time is not None else 0.0
        cues: dict[int, list[Cue]] = {s.index: [] for s in streams}
        try:
            for packet in container.demux(streams):
                if packet.size == 0 or packet.pts is None or not packet.time_base:
                    continue
                start = float(packet.pts * packet.time_base) - start_s
                end = start + float((packet.duration or 0) * packet.time_base)
                for subtitle in packet.decode():
                    text = clean_text(_subtitle_text(subtitle))
                    if text:
                        cues[packet.stream.index].append(Cue(max(start, 0.0), max(end, start, 0.0), text))
        except av.error.FFmpegError as exc:
            raise MediaReadError(path, f"a subtitle stream cannot be read ({exc})") from exc
        tracks = []
        for stream in streams:
            language = _stream_language(stream)
            name = f"stream #{stream.index}" + (f" ({language})" if language else "")
            ordered = sorted(cues[stream.index], key=lambda c: (c.start_s, c.end_s))
            tracks.append(SubtitleTrack(tuple(ordered), language, name, stream.codec_context.name))
        return tracks
    finally:
        container.close()


def _subtitle_text(subtitle) -> str:
    """The text of one decoded subtitle rectangle: an ASS event's dialogue (FFmpeg hands every text codec
    over as ASS), or plain text."""
    for attribute in ("dialogue", "text"):
        value = getattr(subtitle, attribute, None)
        if value:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    ass = getattr(subtitle, "ass", b"")
    ass = ass.decode("utf-8", "replace") if isinstance(ass, bytes) else str(ass or "")
    return ass.split(",", 8)[-1] if ass.count(",") >= 8 else ass  # ReadOrder,Layer,Style,...,Effect,Text


# -- writing ------------------------------------------------------------------------------------------


def _field(item: Any, name: str):
    return item[name] if isinstance(item, Mapping) else getattr(item, name)


def _clock(seconds: float, separator: str) -> str:
    millis = max(int(round(seconds * 1000)), 0)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(item: Any) -> str:
    """The text as cue lines: no blank lines (a blank line ends a cue) and no '-->' (it starts one)."""
    lines = (" ".join(line.split()) for line in str(_field(item, "text")).split("\n"))
    return "\n".join(line.replace("-->", "->") for line in lines if line)


def to_srt(segments: Sequence[Any]) -> str:
    out = []
    for item in segments:
        text = _cue_text(item)
        if text:
            start, end = _clock(_field(item, "start_s"), ","), _clock(_field(item, "end_s"), ",")
            out.append(f"{len(out) + 1}\n{start} --> {end}\n{text}\n")
    return "\n".join(out)


def to_vtt(segments: Sequence[Any]) -> str:
    out = ["WEBVTT\n"]
    for item in segments:
        text = _cue_text(item)
        if text:
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            out.append(f"{_clock(_field(item, 'start_s'), '.')} --> {_clock(_field(item, 'end_s'), '.')}\n{text}\n")
    return "\n".join(out)


def to_txt(segments: Sequence[Any]) -> str:
    """One line per segment, no times."""
    lines = [" ".join(str(_field(item, "text")).split()) for item in segments]
    return "".join(f"{line}\n" for line in lines if line)


def to_json(segments: Sequence[Any], **fields: Any) -> str:
    """`{**fields, "segments": [...]}`: each segment as a dict (dataclasses and mappings alike)."""
    rows = [dict(item) if isinstance(item, Mapping) else dict(vars(item)) for item in segments]
    return json.dumps({**fields, "segments": rows}, ensure_ascii=False, indent=2, default=_jsonable) + "\n"


def _jsonable(value: Any):
    if hasattr(value, "__dataclass_fields__"):
        return dict(vars(value))
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def write_subtitles(segments: Sequence[Any], fmt: str, **fields: Any) -> str:
    """Segments as `fmt` ('srt' | 'vtt' | 'txt' | 'json'; `fields` go into the JSON only)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown transcript format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "json":
        return to_json(segments, **fields)
    return {"srt": to_srt, "vtt": to_vtt, "txt": to_txt}[fmt](segments)


def to_vtt_chapters(chapters: Sequence[Any]) -> str:
    """A WebVTT chapters track: one cue per chapter, identified `chapter-<n>`, its title as the text."""
    out = ["WEBVTT\n"]
    for number, item in enumerate(chapters, 1):
        title = " ".join(str(_field(item, "title") or f"Chapter {number}").split()).replace("-->", "->")
        title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        start, end = _clock(_field(item, "start_s"), "."), _clock(_field(item, "end_s"), ".")
        out.append(f"chapter-{number}\n{start} --> {end}\n{title}\n")
    return "\n".join(out)


def _youtube_clock(seconds: float, hours: bool) -> str:
    total = max(int(seconds), 0)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def to_youtube_chapters(chapters: Sequence[Any]) -> str:
    """`0:00 Title` lines (`1:02:03 Title` in files of an hour or more), as a YouTube description holds them."""
    hours = any(_field(item, "end_s") >= 3600 for item in chapters)
    lines = []
    for number, item in enumerate(chapters, 1):
        title = " ".join(str(_field(item, "title") or f"Chapter {number}").split())
        lines.append(f"{_youtube_clock(_field(item, 'start_s'), hours)} {title}")
    return "".join(f"{line}\n" for line in lines)


def write_chapters(chapters: Sequence[Any], fmt: str, **fields: Any) -> str:
    """Chapters as `fmt` ('json' | 'vtt' | 'youtube'; `fields` go into the JSON only)."""
    if fmt not in CHAPTER_FORMATS:
        raise ValueError(f"unknown chapters format {fmt!r}; known: {', '.join(CHAPTER_FORMATS)}")
    if fmt == "json":
        rows = [dict(item) if isinstance(item, Mapping) else dict(vars(item)) for item in chapters]
        return json.dumps({**fields, "chapters": rows}, ensure_ascii=False, indent=2, default=_jsonable) + "\n"
    return to_vtt_chapters(chapters) if fmt == "vtt" else to_youtube_chapters(chapters)
