"""The text_vectors stage: a media file's words → sentence vectors and the full-text index (`text_vectors`).

Reads what the speech and screen-text stages wrote for the file (`transcript_segments`, `screen_text`), cuts
it into the pieces a search should find, encodes them with one `TextEncoder`, and replaces the file's rows of
both kinds in `store.text_vectors` in one commit (which also indexes the new rows for full-text search).

- **Transcript windows.** A segment alone is often a few words ("yes.", "so the next one"), too little to
  embed with meaning and too short a moment to show; a whole talk is too much. A window is up to
  `window_segments` (3) consecutive segments spanning at most `max_window_s` (30 s: ≈ 80 spoken words, well
  inside MiniLM's 256 word pieces), and the next window starts `window_stride` (2) segments later, so
  consecutive windows share a segment and a sentence cut by a segment boundary is whole in one of them.
  Where the time limit cuts a window short, the next one starts at its last segment, so every segment is in
  a window. Segments the ASR itself calls silence (Whisper's rule: no_speech_prob > 0.6 and avg_logprob <
  -1.0, `drop_silence`) and empty ones are left out. `item_id` is the window's first segment_id.
- **Screen-text spans.** The lines read on one frame (`screen_text.frame_id`: the lines of one slide or
  caption, read together) become one row, in reading order (top to bottom, then left to right), from their
  earliest start to their latest end; a line held on screen over several keyframes is one `screen_text`
  row already. Lines below `min_screen_score` (the recogniser's confidence) and repeats of a line are left
  out; a frame with more than `max_screen_lines` lines (a dense slide) gives several rows. `item_id` is
  the first line's text_id.

A file with no transcript and no screen text gets no rows (its old ones are removed) and succeeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from media_assets.models.asr import is_silence
from media_assets.models.text import DEFAULT_BATCH_SIZE, TextEncoder
from media_assets.store import catalog
from media_assets.store.text_vectors import MAX_ROWS_PER_KIND, TextVectorStore, text_row_id
from media_assets.warehouse import Warehouse

KINDS_WRITTEN = ("transcript", "screen_text")


@dataclass(frozen=True)
class TextVectorSettings:
    """How transcripts and screen text are cut into the rows that are embedded (see the module docstring)."""

    window_segments: int = 3
    window_stride: int = 2
    max_window_s: float = 30.0
    drop_silence: bool = True
    min_screen_score: float = 0.5
    max_screen_lines: int = 12
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.window_segments, int) or self.window_segments < 1:
            raise ValueError(f"window_segments must be a whole number ≥ 1, got {self.window_segments!r}")
        if not isinstance(self.window_stride, int) or not 1 <= self.window_stride <= self.window_segments:
            raise ValueError(
                f"window_stride must be between 1 and window_segments ({self.window_segments}), "
                f"got {self.window_stride!r}"
            )
        if not (isinstance(self.max_window_s, (int, float)) and self.max_window_s > 0):
            raise ValueError(f"max_window_s must be a positive number of seconds, got {self.max_window_s!r}")
        if not (isinstance(self.min_screen_score, (int, float)) and 0 <= self.min_screen_score <= 1):
            raise ValueError(f"min_screen_score must be in [0, 1], got {self.min_screen_score!r}")
        if not isinstance(self.max_screen_lines, int) or self.max_screen_lines < 1:
            raise ValueError(f"max_screen_lines must be a whole number ≥ 1, got {self.max_screen_lines!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a whole number ≥ 1, got {self.batch_size!r}")


DEFAULT_TEXT_VECTOR_SETTINGS = TextVectorSettings()  # frozen: one shared instance is safe as a default


@dataclass
class TextVectorsResult:
    media_id: int
    rows: dict[str, int]  # kind → rows written
    segments: int  # transcript segments read (kept ones)
    screen_lines: int  # screen-text lines read (kept ones)
    dim: int
    model_id: str
    device: str
    elapsed_s: float
    samples: list[dict] = field(default_factory=list)  # a few rows written (kind, start_s, end_s, text)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def transcript_windows(segments: pa.Table | None, settings: TextVectorSettings = DEFAULT_TEXT_VECTOR_SETTINGS):
    """The windows of a file's transcript segments: dicts with item_id, start_s, end_s, text, segment_ids."""
    if segments is None or not len(segments):
        return []
    kept = []
    for row in segments.to_pylist():
        text = (row.get("text") or "").strip()
        if not text:
            continue
        if settings.drop_silence and is_silence(row.get("no_speech_prob"), row.get("avg_logprob")):
            continue
        kept.append({**row, "text": text})
    kept.sort(key=lambda r: (r["start_s"], r["segment_id"]))
    windows = []
    start = 0
    while start < len(kept):
        stop = start + 1
        while (
            stop < len(kept)
            and stop - start < settings.window_segments
            and kept[stop]["end_s"] - kept[start]["start_s"] <= settings.max_window_s
        ):
            stop += 1
        members = kept[start:stop]
        windows.append(
            {
                "item_id": int(members[0]["segment_id"]),
                "start_s": float(members[0]["start_s"]),
                "end_s": float(max(m["end_s"] for m in members)),
                "text": " ".join(m["text"] for m in members),
                "segment_ids": [int(m["segment_id"]) for m in members],
            }
        )
        if stop >= len(kept):
            break
        # the next window shares a segment with this one; a window cut short by time starts the next at its last
        start += max(1, min(settings.window_stride, stop - start - 1))
    return windows


def screen_text_spans(lines: pa.Table | None, settings: TextVectorSettings = DEFAULT_TEXT_VECTOR_SETTINGS):
    """The rows of a file's screen text: the lines read on one frame together, in reading order, as dicts with
    item_id, start_s, end_s, text, text_ids."""
    if lines is None or not len(lines):
        return []
    by_frame: dict[int, list[dict]] = {}
    for row in lines.to_pylist():
        text = " ".join((row.get("text") or "").split())
        score = row.get("score")
        if not text or (score is not None and score < settings.min_screen_score):
            continue
        by_frame.setdefault(int(row["frame_id"]), []).append({**row, "text": text})
    spans = []
    for frame_lines in by_frame.values():
        frame_lines.sort(key=_reading_order)
        seen, unique = set(), []
        for line in frame_lines:
            if line["text"].lower() not in seen:
                seen.add(line["text"].lower())
                unique.append(line)
        for first in range(0, len(unique), settings.max_screen_lines):
            members = unique[first : first + settings.max_screen_lines]
            spans.append(
                {
                    "item_id": int(members[0]["text_id"]),
                    "start_s": float(min(m["start_s"] for m in members)),
                    "end_s": float(max(m["end_s"] for m in members)),
                    "text": "\n".join(m["text"] for m in members),
                    "text_ids": [int(m["text_id"]) for m in members],
                }
            )
    spans.sort(key=lambda s: (s["start_s"], s["item_id"]))
    return spans


def _reading_order(line: dict) -> tuple[float, float, int]:
    """Top to bottom, then left to right: the line box's top-left corner (lines without a box last)."""
    box = line.get("box")
    if box is None or len(box) < 8 or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in box):
        return (math.inf, math.inf, int(line["text_id"]))
    xs, ys = box[0::2], box[1::2]
    return (round(min(ys), 2), min(xs), int(line["text_id"]))  # lines within 1% of the height are one row


def embed_texts(
    warehouse: Warehouse,
    media_id: int,
    encoder: TextEncoder | Callable[[], TextEncoder],
    *,
    settings: TextVectorSettings = DEFAULT_TEXT_VECTOR_SETTINGS,
    run_id: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> TextVectorsResult:
    """Embed one file's transcript windows and screen-text spans and replace its rows in `text_vectors`.
    `encoder` may be a function that loads one: it is called only when the file has text."""
    started = time.perf_counter()
    segments = catalog.read_partition(warehouse, "transcript_segments", media_id)
    lines = catalog.read_partition(warehouse, "screen_text", media_id)
    pieces = {"transcript": transcript_windows(segments, settings), "screen_text": screen_text_spans(lines, settings)}
    rows = []
    for kind, items in pieces.items():
        if len(items) > MAX_ROWS_PER_KIND:
            raise ValueError(f"media {media_id} has {len(items)} {kind} rows; at most {MAX_ROWS_PER_KIND} are stored")
        for index, item in enumerate(items):
            rows.append(
                {
                    "text_id": text_row_id(media_id, kind, index),
                    "kind": kind,
                    "item_id": item["item_id"],
                    "start_s": item["start_s"],
                    "end_s": item["end_s"],
                    "text": item["text"],
                }
            )
    if not rows:  # nothing said or shown: no rows, and no model to load
        TextVectorStore(warehouse).delete_media(media_id, kinds=KINDS_WRITTEN)
        return TextVectorsResult(
            media_id=media_id,
            rows={kind: 0 for kind in pieces},
            segments=0,
            screen_lines=0,
            dim=0,
            model_id="",
            device="",
            elapsed_s=time.perf_counter() - started,
        )
    if callable(encoder) and not isinstance(encoder, TextEncoder):
        encoder = encoder()
    texts = [row["text"] for row in rows]
    chunks = []
    for first in range(0, len(texts), settings.batch_size):
        chunks.append(encoder.encode(texts[first : first + settings.batch_size], batch_size=settings.batch_size))
        if progress is not None:
            progress(min(first + settings.batch_size, len(texts)), len(texts))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)
    TextVectorStore(warehouse).replace_media(
        media_id, rows, vectors, kinds=KINDS_WRITTEN, model_id=encoder.model_id, run_id=run_id
    )
    return TextVectorsResult(
        media_id=media_id,
        rows={kind: len(items) for kind, items in pieces.items()},
        segments=len({s for w in pieces["transcript"] for s in w["segment_ids"]}),
        screen_lines=sum(len(s["text_ids"]) for s in pieces["screen_text"]),
        dim=encoder.dim,
        model_id=encoder.model_id,
        device=encoder.device,
        elapsed_s=time.perf_counter() - started,
        samples=[{k: row[k] for k in ("kind", "start_s", "end_s", "text")} for row in rows[:5]],
    )
