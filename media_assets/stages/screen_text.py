"""The screen-text stage: the text on a media file's keyframes and slide changes (OCR) → `screen_text`.

Reads the partition's `frames` (times, thumbnails, perceptual hashes), `keyframes`, `shot_events` and
`shots` (the shots stage's) and the chosen frames' JPEG thumbnails; replaces the partition's `screen_text`
rows in one write: one row per line of text per stretch of time it stays on screen, in time order,
`text_id = media_id << 20 | n`, times in seconds, `box` the line's quadrilateral as fractions of the frame.

**Which frames.** The keyframes; the first sampled frame after each `shot_events` row (a slide change:
the event's own frame may still be mid-transition); and, when a shot's stretch before its first event
holds no keyframe, that stretch's middle frame (else the old slide would go unread). In a static shot,
every kept (non-duplicate) frame starts a stretch like an event: the frames stage keeps a frame only when
its perceptual hash moved, so a new slide under a still camera is read even when no event marked it
(events need semantic frame vectors); dynamic shots keep their keyframes only. A photo is one shot
with one keyframe. A file without keyframes rows: its kept (non-duplicate) frames. An audio file (no
frames): nothing, zero rows. Each chosen frame stands for time from the start of its stretch (the shot's
start or the event's time, if it is the first chosen frame there; else its own time) to the next chosen
frame's start or the shot's end; without shots, from its time to the next chosen frame's, the last to the
file's duration.

**The same slide held for minutes is read once.**
- A chosen frame whose perceptual hash is within `same_image_max_hash_distance` bits of one of the last
  `RECENT_IMAGES` frames OCR'd (a talk cuts to the speaker and back to the slide) is compared with it
  pixel by pixel (grey, 3x3 blur); when no pixel differs by more than `same_image_max_pixel_diff` grey
  levels it is not OCR'd (`frames_skipped_same_image`): it shows the same lines. The hash alone misses
  text edits (a changed word or title moves it 0-2 bits). Measured on rendered slides at 512 px: re-encodes
  of one slide (mp4v, H.264 CRF 23-35: ≤ 6; JPEG 60-95 with noise ±6: ≤ 14) against one-character edits
  (≥ 35 in 9-px text, ≥ 69 in 14-px text; 16-24 in 6-px text, which OCR reads with 1-2% errors anyway).
- Lines of consecutive chosen frames are matched one to one: a line whose normalised text (case-folded
  letters and digits) has the same digits as a line of the frame before and a character-level similarity
  (difflib ratio) of at least `same_text_similarity` with it continues that line's row, whose end moves
  on; any other line starts a row. A row keeps its first reading (frame, text, box, score). Digits must
  match because numbered slides differ in little else ('Part 1: results', 'Part 2: results': 0.92).

A thumbnail that cannot be read is skipped and counted (`unreadable_frames`); the rows on screen before
it may continue after it. No `frames` partition is a `MissingFramesError`.
"""

from __future__ import annotations

import bisect
import difflib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from media_assets.errors import MissingFramesError
from media_assets.ids import text_id_for
from media_assets.media.signals import DUPLICATE_MAX_HASH_DISTANCE, grey, hash_distance
from media_assets.models.ocr import TextLine, TextReader, TextReaderSettings
from media_assets.store import catalog
from media_assets.warehouse import Warehouse

ProgressCallback = Callable[[int, int], None]  # (chosen frames done, chosen frames in all)

# one wrong character in a 10-character line (letters and digits) is 0.90, so it still matches; a changed word
# is less ('Churn fell to 3.1%' / 'Churn rose to 3.1%': 0.77)
SAME_TEXT_SIMILARITY = 0.9
# grey levels after a 3x3 blur: re-encodes of a slide differ by ≤ 14 (≤ 6 through video codecs), a one-character
# edit in 9-px text by ≥ 35 (see the module docstring)
SAME_IMAGE_MAX_PIXEL_DIFF = 20
RECENT_IMAGES = 8  # frames OCR'd that a new frame is compared with: a talk cuts to the speaker and back to the slide
MAX_SAMPLES = 12  # frames with their lines in the result, for a contact sheet
EXCERPT_CHARS = 300


@dataclass(frozen=True)
class ScreenTextSettings:
    """How the stage reads a file's screen text. `ocr` chooses and tunes the reader (`TextReader.load`)."""

    ocr: TextReaderSettings = TextReaderSettings()
    same_text_similarity: float = SAME_TEXT_SIMILARITY
    same_image_max_hash_distance: int = DUPLICATE_MAX_HASH_DISTANCE
    same_image_max_pixel_diff: int = SAME_IMAGE_MAX_PIXEL_DIFF

    def __post_init__(self) -> None:
        if not isinstance(self.ocr, TextReaderSettings):
            raise ValueError(f"ocr must be a TextReaderSettings, got {type(self.ocr).__name__}")
        if not 0.0 < self.same_text_similarity <= 1.0:
            raise ValueError(f"same_text_similarity must be in (0, 1], got {self.same_text_similarity}")
        if not isinstance(self.same_image_max_hash_distance, int) or not -1 <= self.same_image_max_hash_distance <= 64:
            raise ValueError(
                "same_image_max_hash_distance must be -1 (never skip a frame) .. 64 bits, "
                f"got {self.same_image_max_hash_distance!r}"
            )
        if not isinstance(self.same_image_max_pixel_diff, int) or not 0 <= self.same_image_max_pixel_diff <= 255:
            raise ValueError(
                f"same_image_max_pixel_diff must be 0..255 grey levels, got {self.same_image_max_pixel_diff!r}"
            )


@dataclass
class ScreenTextResult:
    media_id: int
    frames_chosen: int
    frames_read: int  # OCR'd
    frames_skipped_same_image: int
    unreadable_frames: int
    lines: int  # rows written
    distinct_texts: int
    elapsed_s: float
    model_id: str
    device: str
    excerpt: str  # the first distinct texts, for the run's metadata
    samples: list[tuple[Path, list[str]]] = field(default_factory=list)  # (thumbnail, its lines), ≤ MAX_SAMPLES


@dataclass
class _Chosen:
    seq: int
    frame_id: int
    timestamp_s: float
    thumbnail_path: str
    phash: int | None
    start_s: float = 0.0
    end_s: float = 0.0


@dataclass
class _Read:
    """A frame OCR'd: its hash, its blurred grey thumbnail and the lines read on it."""

    phash: int | None
    blurred: np.ndarray
    lines: list[TextLine]


def read_screen_text(
    warehouse: Warehouse,
    media_id: int,
    settings: ScreenTextSettings = ScreenTextSettings(),
    *,
    reader: TextReader | None = None,
    run_id: str = "",
    progress: ProgressCallback | None = None,
) -> ScreenTextResult:
    """Read the text on one media file's keyframes and slide changes; replace its `screen_text` rows."""
    started = time.perf_counter()
    frames = catalog.read_partition(warehouse, "frames", media_id)
    if frames is None:
        raise MissingFramesError(f"media {media_id} has no frames in the catalog; materialize its frames first")
    chosen = _choose_frames(warehouse, media_id, frames.sort_by("seq").to_pylist())
    if reader is None and chosen:  # an audio file has nothing to read: no model to load
        reader = TextReader.load(settings.ocr)

    rows: list[dict] = []
    on_screen: list[tuple[dict, str]] = []  # rows of the last readable chosen frame, with their normalised text
    recent: list[_Read] = []  # the last frames OCR'd, newest first
    read = skipped = unreadable = 0
    samples: list[tuple[Path, list[str]]] = []
    for done, frame in enumerate(chosen):
        path = warehouse.root / frame.thumbnail_path
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            unreadable += 1
        else:
            blurred = cv2.GaussianBlur(grey(image), (3, 3), 0)
            same = next((r for r in recent if _same_image(frame.phash, blurred, r, settings)), None)
            if same is not None:
                lines = same.lines
                skipped += 1
            else:
                lines = reader.read(image)
                read += 1
                recent = [_Read(frame.phash, blurred, lines), *recent[: RECENT_IMAGES - 1]]
                if len(samples) < MAX_SAMPLES and lines:
                    samples.append((path, [line.text for line in lines]))
            on_screen = _follow(lines, on_screen, frame, rows, settings.same_text_similarity, reader.model_id, run_id)
        if progress is not None:
            progress(done + 1, len(chosen))

    rows.sort(key=lambda row: row["start_s"])  # already in order of first reading; stable
    for n, row in enumerate(rows):
        row["text_id"], row["media_id"] = text_id_for(media_id, n), media_id
    catalog.replace_partition(warehouse, "screen_text", media_id, rows)
    distinct = list(dict.fromkeys(row["text"] for row in rows))
    return ScreenTextResult(
        media_id=media_id,
        frames_chosen=len(chosen),
        frames_read=read,
        frames_skipped_same_image=skipped,
        unreadable_frames=unreadable,
        lines=len(rows),
        distinct_texts=len(distinct),
        elapsed_s=time.perf_counter() - started,
        model_id=reader.model_id if reader is not None else "",
        device=reader.device if reader is not None else "",
        excerpt=_excerpt(distinct),
        samples=samples,
    )


def _choose_frames(warehouse: Warehouse, media_id: int, frames: list[dict]) -> list[_Chosen]:
    """The frames to read, in time order, each with the stretch of time it stands for (see the module
    docstring). `frames`: the partition's `frames` rows in `seq` order."""
    if not frames:
        return []
    by_id = {row["frame_id"]: row for row in frames}
    by_seq = {row["seq"]: row for row in frames}
    keyframes = _rows(warehouse, "keyframes", media_id)
    media = _rows(warehouse, "media", media_id)
    duration = media[0]["duration_s"] if media else None
    end_of_file = _end_of_file(frames, duration)
    if not keyframes:
        kept = [row for row in frames if not row["is_duplicate"]] or frames[:1]
        return _spans_without_shots([_chosen(row) for row in kept], end_of_file)

    shots = sorted(_rows(warehouse, "shots", media_id), key=lambda shot: shot["start_seq"])
    events = sorted(_rows(warehouse, "shot_events", media_id), key=lambda event: event["time_s"])
    seqs = {by_id[k["frame_id"]]["seq"] for k in keyframes if k["frame_id"] in by_id}
    if not shots:
        for event in events:
            if event["frame_id"] in by_id:
                seq = by_id[event["frame_id"]]["seq"]
                seqs.add(seq + 1 if seq + 1 in by_seq else seq)
        return _spans_without_shots([_chosen(by_seq[seq]) for seq in sorted(seqs)], end_of_file)

    starts = [shot["start_seq"] for shot in shots]

    def shot_index(seq: int) -> int:
        return max(bisect.bisect_right(starts, seq) - 1, 0)

    boundaries: dict[int, list[tuple[int, float]]] = {}  # shot index → [(first seq, start time)] of its stretches
    for index, shot in enumerate(shots):
        boundaries[index] = [(shot["start_seq"], shot["start_s"])]
    for event in events:
        row = by_id.get(event["frame_id"])
        if row is None:
            continue
        boundaries[shot_index(row["seq"])].append((row["seq"], event["time_s"]))
    # In a static shot (slides, a screen recording, a whiteboard) every kept frame is a visible change the
    # shot detector does not cut on — the frames stage keeps a frame only when its perceptual hash moved
    # from the last kept one — so each starts a stretch too: a new slide under a still camera is read even
    # when no event marked it (events need semantic frame vectors). Dynamic shots keep their keyframes only:
    # there almost every frame is kept, and reading them all would cost a recogniser call per sampled frame.
    for index, shot in enumerate(shots):
        if shot.get("kind") != "static":
            continue
        for seq in range(shot["start_seq"] + 1, shot["end_seq"] + 1):
            row = by_seq.get(seq)
            if row is not None and not row["is_duplicate"]:
                boundaries[index].append((seq, row["timestamp_s"]))
    for index, shot in enumerate(shots):
        stretches = sorted(dict(sorted(boundaries[index], reverse=True)).items())
        boundaries[index] = stretches
        for n, (first, _) in enumerate(stretches[1:], start=1):  # a slide change: the frame after its first
            last = stretches[n + 1][0] - 1 if n + 1 < len(stretches) else shot["end_seq"]
            seqs.add(first + 1 if first + 1 <= last else first)
        if len(stretches) > 1:  # the old slide before the first change needs a frame of its own
            first, last = stretches[0][0], stretches[1][0] - 1
            if last >= first and not any(first <= seq <= last for seq in seqs):
                seqs.add((first + last) // 2)

    chosen = [_chosen(by_seq[seq]) for seq in sorted(seqs) if seq in by_seq]
    shot_of = [shot_index(frame.seq) for frame in chosen]
    for i, frame in enumerate(chosen):  # the first chosen frame of a stretch stands for it from its start
        stretches = boundaries[shot_of[i]]
        n = max(bisect.bisect_right([first for first, _ in stretches], frame.seq) - 1, 0)
        stretch_first, stretch_start = stretches[n]
        if i == 0 or chosen[i - 1].seq < stretch_first:
            frame.start_s = stretch_start
    for i, frame in enumerate(chosen):  # ... up to where the next one starts, or the end of the shot
        if i + 1 < len(chosen) and shot_of[i + 1] == shot_of[i]:
            frame.end_s = chosen[i + 1].start_s
        else:
            frame.end_s = max(shots[shot_of[i]]["end_s"], frame.start_s)
    return chosen


def _rows(warehouse: Warehouse, table: str, media_id: int) -> list[dict]:
    data = catalog.read_partition(warehouse, table, media_id)
    return data.to_pylist() if data is not None else []


def _chosen(row: dict) -> _Chosen:
    return _Chosen(
        seq=row["seq"],
        frame_id=row["frame_id"],
        timestamp_s=row["timestamp_s"],
        thumbnail_path=row["thumbnail_path"],
        phash=row["phash"],
        start_s=row["timestamp_s"],
    )


def _end_of_file(frames: list[dict], duration: float | None) -> float:
    """The file's duration when known, else the last frame's time plus the sampling step."""
    last = frames[-1]["timestamp_s"]
    if duration is not None and duration >= last:
        return float(duration)
    steps = [b["timestamp_s"] - a["timestamp_s"] for a, b in zip(frames, frames[1:], strict=False)]
    return last + (statistics.median(steps) if steps else 0.0)


def _spans_without_shots(chosen: list[_Chosen], end_of_file: float) -> list[_Chosen]:
    for frame, after in zip(chosen, [*chosen[1:], None], strict=True):
        frame.end_s = after.timestamp_s if after is not None else max(end_of_file, frame.timestamp_s)
    return chosen


def _same_image(frame_hash: int | None, blurred: np.ndarray, earlier: _Read, settings: ScreenTextSettings) -> bool:
    """Whether a frame shows what an earlier frame OCR'd showed: close hashes, then no pixel far off."""
    if frame_hash is None or earlier.phash is None or blurred.shape != earlier.blurred.shape:
        return False
    if hash_distance(int(frame_hash), int(earlier.phash)) > settings.same_image_max_hash_distance:
        return False
    return int(cv2.absdiff(blurred, earlier.blurred).max()) <= settings.same_image_max_pixel_diff


def normalise(text: str) -> str:
    """What two readings of a line are compared on: its letters and digits, case-folded."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def text_similarity(a: str, b: str) -> float:
    """Character-level similarity of two normalised texts, 0..1 (difflib's ratio); 0 when their digits
    differ: 'Part 1' and 'Part 2', 12% and 13% are different lines, not a slip of the recogniser."""
    if a == b:
        return 1.0
    if [ch for ch in a if ch.isdigit()] != [ch for ch in b if ch.isdigit()]:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _follow(
    lines: list[TextLine],
    on_screen: list[tuple[dict, str]],
    frame: _Chosen,
    rows: list[dict],
    similarity: float,
    model_id: str,
    run_id: str,
) -> list[tuple[dict, str]]:
    """Continue the rows whose line this frame still shows (best matches first, one to one), start a row
    for each other line; returns the rows on screen in this frame."""
    keys = [normalise(line.text) or line.text for line in lines]
    pairs = []
    for i, key in enumerate(keys):
        for j, (_, other) in enumerate(on_screen):
            score = text_similarity(key, other)
            if score >= similarity:
                pairs.append((-score, i, j))
    matched: dict[int, dict] = {}
    taken: set[int] = set()
    for _, i, j in sorted(pairs):
        if i not in matched and j not in taken:
            matched[i] = on_screen[j][0]
            taken.add(j)
    now = []
    for i, (line, key) in enumerate(zip(lines, keys, strict=True)):
        row = matched.get(i)
        if row is not None:
            row["end_s"] = max(row["end_s"], frame.end_s)
        else:
            row = {
                "text_id": None,
                "media_id": None,
                "frame_id": frame.frame_id,
                "start_s": frame.start_s,
                "end_s": frame.end_s,
                "text": line.text,
                "box": list(line.box),
                "score": line.score,
                "model_id": model_id,
                "run_id": run_id,
            }
            rows.append(row)
        now.append((row, key))
    return now


def _excerpt(texts: list[str]) -> str:
    excerpt = " · ".join(texts)
    return excerpt if len(excerpt) <= EXCERPT_CHARS else excerpt[: EXCERPT_CHARS - 1].rstrip() + "…"
