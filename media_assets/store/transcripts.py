"""A media file's stored transcript read back: `read_transcript` (segments in time order, each with its
words), `primary_source` (the one source an export or a reader uses when none is named: subtitles people
wrote, else the speech recogniser's), and `transcript_as` (SRT, WebVTT, text or JSON): what the CLI's
`media-assets transcript`, the HTTP API's `GET /transcript/{media_id}` and the chapters stage read. The
transcripts stage writes the rows (`stages.transcripts`)."""

from __future__ import annotations

from dataclasses import dataclass

from media_assets.media.subtitles import FORMATS, write_subtitles
from media_assets.store import catalog
from media_assets.warehouse import Warehouse

ASR_SOURCE = "asr"
SUBTITLES_PREFIX = "subtitles:"


class TranscriptNotFoundError(LookupError):
    """The media file has no transcript in the catalog (its transcripts were never materialized)."""


@dataclass
class Transcript:
    """A media file's stored transcript: segment rows in time order, each with its `words`."""

    media_id: int
    segments: list[dict]

    @property
    def sources(self) -> list[str]:
        return sorted({s["source"] for s in self.segments})

    @property
    def language(self) -> str | None:
        return next((s["language"] for s in self.segments if s["language"]), None)

    @property
    def text(self) -> str:
        return " ".join(s["text"] for s in self.segments)


def read_transcript(warehouse: Warehouse, media_id: int, *, source: str | None = None) -> Transcript:
    """The stored segments of `media_id` (each with `words`: its word rows), in time order.

    `source`: 'asr', 'subtitles' (any subtitle track) or an exact source; None → every segment. Raises
    TranscriptNotFoundError when the file was never transcribed (zero rows is an empty transcript)."""
    segments = catalog.read_partition(warehouse, "transcript_segments", media_id)
    if segments is None:
        raise TranscriptNotFoundError(f"media {media_id} has no transcript; materialize its transcripts first")
    words = catalog.read_partition(warehouse, "transcript_words", media_id)
    by_segment: dict[int, list[dict]] = {}
    for word in sorted(words.to_pylist() if words is not None else [], key=lambda w: (w["start_s"], w["end_s"])):
        by_segment.setdefault(word["segment_id"], []).append(
            {k: word[k] for k in ("start_s", "end_s", "word", "probability")}
        )
    rows = sorted(segments.to_pylist(), key=lambda r: (r["start_s"], r["end_s"], r["segment_id"]))
    if source is not None:
        rows = [r for r in rows if _source_matches(r["source"], source)]
    return Transcript(media_id, [{**r, "words": by_segment.get(r["segment_id"], [])} for r in rows])


def _source_matches(value: str, wanted: str) -> bool:
    if wanted == "subtitles":
        return value.startswith(SUBTITLES_PREFIX)
    return value == wanted


def primary_source(transcript: Transcript) -> str | None:
    """The source an export uses when none is named: a subtitle track (people wrote it), else 'asr'."""
    sources = transcript.sources
    subtitles = [s for s in sources if s.startswith(SUBTITLES_PREFIX)]
    return subtitles[0] if subtitles else (sources[0] if sources else None)


def transcript_as(warehouse: Warehouse, media_id: int, fmt: str, *, source: str | None = None) -> str:
    """The stored transcript of `media_id` as 'srt', 'vtt', 'txt' or 'json' text. One source is written:
    `source` ('asr', 'subtitles' or an exact source), or else `primary_source`. ValueError for an unknown
    format, TranscriptNotFoundError when the file was never transcribed."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown transcript format {fmt!r}; known: {', '.join(FORMATS)}")
    transcript = read_transcript(warehouse, media_id, source=source)
    chosen = primary_source(transcript)
    segments = [s for s in transcript.segments if chosen is None or s["source"] == chosen]
    if fmt != "json":
        return write_subtitles(segments, fmt)
    rows = [{k: v for k, v in s.items() if k not in ("media_id", "run_id")} for s in segments]
    language = next((s["language"] for s in segments if s["language"]), None)
    text = " ".join(s["text"] for s in segments)
    return write_subtitles(rows, "json", media_id=media_id, language=language, source=chosen, text=text)
