"""A media file's stored chapters read back: `read_chapters` (its table of contents and video summary) and
`chapters_as` (JSON, a WebVTT chapters track, or a YouTube description block): what the CLI's
`media-assets chapters`, the HTTP API's `GET /chapters/{media_id}` and the web page read. The chapters stage
writes the rows (`stages.chapters`)."""

from __future__ import annotations

from dataclasses import dataclass

from media_assets.media.subtitles import CHAPTER_FORMATS, write_chapters
from media_assets.store import catalog
from media_assets.warehouse import Warehouse

CHAPTER_FIELDS = (
    "chapter_id",
    "index",
    "start_s",
    "end_s",
    "title",
    "summary",
    "sources",
    "method",
    "model_id",
    "llm_s",
)


class ChaptersNotFoundError(LookupError):
    """The media file has no chapters in the catalog (its chapters were never materialized)."""


@dataclass
class Chapters:
    """A file's table of contents: its chapters in time order and the summary of the whole."""

    media_id: int
    partition_key: str
    path: str
    kind: str
    duration_s: float | None
    summary: str
    summary_method: str
    chapters: list[dict]

    def to_dict(self) -> dict:
        return {
            "media_id": self.media_id,
            "partition_key": self.partition_key,
            "path": self.path,
            "kind": self.kind,
            "duration_s": self.duration_s,
            "summary": self.summary,
            "summary_method": self.summary_method,
            "chapters": self.chapters,
        }


def read_chapters(warehouse: Warehouse, media_id: int) -> Chapters:
    """The stored chapters of `media_id`. Raises ChaptersNotFoundError when the file is unknown or its
    chapters were never made (a photo's zero chapters are an empty table of contents)."""
    media = catalog.read_partition(warehouse, "media", media_id)
    rows = catalog.read_partition(warehouse, "chapters", media_id)
    if media is None or not len(media):
        raise ChaptersNotFoundError(f"unknown media id {media_id}")
    if rows is None:
        raise ChaptersNotFoundError(f"media {media_id} has no chapters; materialize its chapters first")
    file = media.to_pylist()[0]
    summaries = catalog.read_partition(warehouse, "video_summaries", media_id)
    summary = summaries.to_pylist()[0] if summaries is not None and len(summaries) else {}
    chapters = [{k: row[k] for k in CHAPTER_FIELDS} for row in sorted(rows.to_pylist(), key=lambda r: r["index"])]
    return Chapters(
        media_id=int(media_id),
        partition_key=file["partition_key"],
        path=file["path"],
        kind=file["kind"],
        duration_s=file["duration_s"],
        summary=summary.get("summary") or "",
        summary_method=summary.get("method") or "",
        chapters=chapters,
    )


def chapters_as(warehouse: Warehouse, media_id: int, fmt: str) -> str:
    """The stored chapters of `media_id` as 'json', 'vtt' (a WebVTT chapters track) or 'youtube' text.
    ValueError for an unknown format, ChaptersNotFoundError when there are none stored."""
    if fmt not in CHAPTER_FORMATS:
        raise ValueError(f"unknown chapters format {fmt!r}; known: {', '.join(CHAPTER_FORMATS)}")
    toc = read_chapters(warehouse, media_id)
    fields = {k: v for k, v in toc.to_dict().items() if k != "chapters"}
    return write_chapters(toc.chapters, fmt, **fields)
