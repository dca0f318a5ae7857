"""The chapters stage: a media file's transcript, screen text and shots → its table of contents.

`make_chapters` is what the `chapters` asset runs for one partition; it needs no Dagster. It reads what the
stages before it wrote — `media` (the duration), the transcript (`store.transcripts`: one source, subtitles
people wrote before the recogniser's), `screen_text`, `shots` and `shot_events`, and for chapters without
words the names people gave the scene and character clusters (`clusters`, `cluster_members`) and the `faces`
— and writes three things for the file, each replaced whole:

- `chapters`: consecutive parts that tile the file from 0 to its duration (`models.chapters.find_chapters`:
  TextTiling depth over the sentences' vectors, slide changes, shot cuts and silences, under the minimum and
  maximum chapter length), each with a title and a summary;
- `video_summaries`: one row, the chapters' summaries condensed;
- `text_vectors` rows of kind `summary`, one per chapter (its title and summary, embedded by the same sentence
  encoder as the transcript and screen text, in the same full-text index), which `SearchClient.search_summaries`
  searches.

**Sentences.** Each transcript segment is split into sentences (`models.summaries.split_sentences`); a
sentence's time is its share of the segment's span, by characters. Segments the recogniser itself calls silence
(`models.asr.is_silence`) are left out. The sentences' vectors drive both the topic boundaries and the summaries,
so the text is encoded once.

**Titles.** The heading of the chapter's first slide when it has one (`slide_heading`: the tallest line at the
top of the slide), else the chapter's key phrases (tf·idf against the file's other chapters). **Summaries** are
extractive by default: the central, non-redundant sentences of what is said and shown in the chapter (centroid +
MMR over their vectors, screen-text lines weighted `screen_text_weight`), at most `max_summary_tokens` tokens as
the sentence encoder's tokenizer counts them, in time order. With a `SummaryModel` (a causal LM), the extract is
rewritten by it within `llm_budget_s` per chapter; over the budget or failing, the chapter keeps its extract and
`method` says so. A chapter without words gets an honest description from what the warehouse knows (its
shots, their kinds, the scene and character names, faces): `method = 'visual'`.

A photo gets no chapters (zero rows, success); so does a file without a known duration. A missing `media` row
is a `MissingFramesError` (the frames stage writes it).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from media_assets.errors import MissingFramesError
from media_assets.ids import text_id_for
from media_assets.models.asr import is_silence
from media_assets.models.chapters import ChapterSettings, Segment, find_chapters, slide_changes
from media_assets.models.summaries import (
    MAX_SUMMARY_TOKENS,
    SummaryModel,
    chapter_title,
    extractive_summary,
    key_phrases,
    slide_heading,
    split_sentences,
    summary_text,
    visual_description,
)
from media_assets.models.text import DEFAULT_BATCH_SIZE, TextEncoder
from media_assets.store import catalog
from media_assets.store.text_vectors import MAX_ROWS_PER_KIND, TextVectorStore, text_row_id
from media_assets.store.transcripts import TranscriptNotFoundError, primary_source, read_transcript
from media_assets.warehouse import Warehouse

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (chapters summarised, chapters in all)

SUMMARY_KIND = "summary"
CHAPTER_TABLES = ["chapters", "video_summaries"]
EXTRACTIVE, ABSTRACTIVE, VISUAL = "extractive", "abstractive", "visual"
OVER_BUDGET, LLM_FAILED = "extractive (LLM over budget)", "extractive (LLM failed)"
# a screen-text line held on screen for less of the chapter than this does not count as shown in it
MIN_LINE_OVERLAP_S = 1.0
# a slide first read this long before a chapter's start is the chapter's slide (its boundary snapped to the slide
# change, and the frame read first may be the sampled frame just before it); a slide not appearing in a chapter
# titles it only when on screen for this share of it
SLIDE_LEAD_S = 1.0
# a segment ending mid-sentence continues into the next segment starting within this many seconds
JOIN_GAP_S = 2.0
HELD_SLIDE_SHARE = 0.5


@dataclass(frozen=True)
class ChaptersSettings:
    """How chapters are cut and summarised (see the module docstring)."""

    segmentation: ChapterSettings = field(default_factory=ChapterSettings)
    max_summary_tokens: int = MAX_SUMMARY_TOKENS
    screen_text_weight: float = 0.5
    llm_budget_s: float = 30.0
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.max_summary_tokens, int) or self.max_summary_tokens < 8:
            raise ValueError(f"max_summary_tokens must be a whole number ≥ 8, got {self.max_summary_tokens!r}")
        if not (isinstance(self.screen_text_weight, (int, float)) and 0 <= self.screen_text_weight <= 1):
            raise ValueError(f"screen_text_weight must be in [0, 1], got {self.screen_text_weight!r}")
        if not (isinstance(self.llm_budget_s, (int, float)) and self.llm_budget_s > 0):
            raise ValueError(f"llm_budget_s must be a positive number of seconds, got {self.llm_budget_s!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a whole number ≥ 1, got {self.batch_size!r}")


DEFAULT_CHAPTERS_SETTINGS = ChaptersSettings()


@dataclass
class ChaptersResult:
    media_id: int
    chapters: list[dict]  # the rows written to `chapters`
    video_summary: str
    video_method: str
    sentences: int  # transcript sentences read
    screen_lines: int  # distinct screen-text lines read
    model_id: str  # the sentence encoder ('' when the file has no words)
    device: str
    llm_model_id: str  # '' without a summary model
    llm_s: float  # time the summary model took, in all
    elapsed_s: float
    reason: str = ""  # why there are no chapters, when there are none
    boundary_sources: dict[str, int] = field(default_factory=dict)  # source → boundaries it took part in

    @property
    def methods(self) -> dict[str, int]:
        return dict(Counter(c["method"] for c in self.chapters))


@dataclass
class _Unit:
    """A sentence said or a line shown: what is encoded once and summarised."""

    start_s: float
    end_s: float
    text: str
    spoken: bool


def make_chapters(
    warehouse: Warehouse,
    media_id: int,
    encoder: TextEncoder | Callable[[], TextEncoder],
    *,
    settings: ChaptersSettings = DEFAULT_CHAPTERS_SETTINGS,
    summary_model: SummaryModel | Callable[[], SummaryModel] | None = None,
    run_id: str = "",
    progress: ProgressCallback | None = None,
) -> ChaptersResult:
    """Cut one file into chapters, title and summarise them, and replace its `chapters`, `video_summaries` and
    summary text vectors. `encoder` and `summary_model` may be functions that load one: the encoder is called
    only when the file has words, the summary model only when a chapter has an extract to rewrite."""
    started = time.perf_counter()
    media = catalog.read_partition(warehouse, "media", media_id)
    if media is None or not len(media):
        raise MissingFramesError(f"media {media_id} has no media row; materialize its frames first")
    media_row = media.to_pylist()[0]
    duration = media_row.get("duration_s")
    if media_row["kind"] == "image" or not duration or not np.isfinite(duration) or duration <= 0:
        _write(warehouse, media_id, [], None, None, [], settings, run_id)
        reason = "a photo has no chapters" if media_row["kind"] == "image" else "the file's duration is unknown"
        return ChaptersResult(media_id, [], "", "", 0, 0, "", "", "", 0.0, time.perf_counter() - started, reason)
    duration = float(duration)

    sentences = _sentences(warehouse, media_id, duration)
    lines = _screen_lines(warehouse, media_id)
    shots = _rows(warehouse, "shots", media_id, order="start_s")
    events = _rows(warehouse, "shot_events", media_id, order="time_s")
    units = sentences + [_Unit(line["start_s"], line["end_s"], line["text"], False) for line in _distinct(lines)]

    loaded: list[TextEncoder] = []

    def text_encoder() -> TextEncoder:
        if not loaded:
            loaded.append(encoder() if callable(encoder) and not isinstance(encoder, TextEncoder) else encoder)
        return loaded[0]

    vectors = text_encoder().encode([u.text for u in units], batch_size=settings.batch_size) if units else None
    spoken = np.array([u.spoken for u in units], dtype=bool)
    sentence_vectors = vectors[spoken] if vectors is not None else np.zeros((0, 1), np.float32)

    changes = _slide_changes(lines, events)
    cuts = [(float(s["start_s"]), float(s["boundary_confidence"] or 0.0)) for s in shots if s["shot_index"] > 0]
    segments = find_chapters(
        duration,
        sentence_starts=np.array([u.start_s for u in sentences], dtype=np.float64),
        sentence_ends=np.array([u.end_s for u in sentences], dtype=np.float64),
        sentence_vectors=sentence_vectors,
        slide_changes=changes,
        shot_boundaries=cuts,
        settings=settings.segmentation,
    )

    count_tokens = _token_counter(loaded[0] if loaded else None)
    contents = [_content(segment, units, lines) for segment in segments]
    corpus = [[units[i].text for i in indices] for indices, _ in contents]
    model, llm_model_id, llm_total = None, "", 0.0
    extracts: list[list[int]] = []  # per chapter with words: the units its summary took
    wordless = any(not indices for indices, _ in contents)
    names = _names_by_shot(warehouse, media_id) if wordless else {}
    faces = _faces_by_shot(warehouse, media_id) if wordless else {}
    rows = []
    for index, (segment, (indices, chapter_lines)) in enumerate(zip(segments, contents, strict=True)):
        chapter_id = text_id_for(media_id, index)
        heading = _heading(chapter_lines, segment)
        row = {
            "chapter_id": chapter_id,
            "media_id": media_id,
            "index": index,
            "start_s": segment.start_s,
            "end_s": segment.end_s,
            "sources": list(segment.sources),
            "llm_s": None,
            "run_id": run_id,
        }
        if not indices:
            in_shots = [s for s in shots if _overlap(s["start_s"], s["end_s"], segment) > 0]
            scene_names, character_names = _cluster_names(in_shots, names)
            row["title"] = chapter_title(heading, scene_names or character_names) or _shots_title(in_shots, index)
            row["summary"] = visual_description(
                duration_s=segment.end_s - segment.start_s,
                shot_kinds=[s["kind"] for s in in_shots],
                scene_names=scene_names,
                character_names=character_names,
                faces=sum(faces.get(s["shot_id"], 0) for s in in_shots),
            )
            row["method"], row["model_id"] = VISUAL, ""
        else:
            row["title"] = chapter_title(heading, key_phrases(corpus[index], corpus)) or f"Part {index + 1}"
            weights = [1.0 if units[i].spoken else settings.screen_text_weight for i in indices]
            texts = [_closed(units[i].text) for i in indices]
            chosen = extractive_summary(
                texts,
                vectors[indices],
                max_tokens=settings.max_summary_tokens,
                count_tokens=count_tokens,
                weights=weights,
            )
            row["summary"] = summary_text(
                texts, chosen, max_tokens=settings.max_summary_tokens, count_tokens=count_tokens
            )
            extracts.append([indices[i] for i in chosen])
            row["method"], row["model_id"] = EXTRACTIVE, text_encoder().model_id
            if summary_model is not None:
                if model is None:
                    model = summary_model() if callable(summary_model) else summary_model
                    llm_model_id = model.model_id
                llm_total += _rewrite(row, model, settings)
        rows.append(row)
        if progress is not None:
            progress(index + 1, len(segments))

    if any(row["method"] == ABSTRACTIVE for row in rows):  # condense what the model wrote
        video_summary, video_method = _video_summary(rows, text_encoder(), count_tokens, settings), ABSTRACTIVE
    elif extracts:  # condense the extracts: their sentences' vectors are there already
        chosen_units = [i for extract in extracts for i in extract]
        texts = [_closed(units[i].text) for i in chosen_units]
        picked = extractive_summary(
            texts, vectors[chosen_units], max_tokens=settings.max_summary_tokens, count_tokens=count_tokens
        )
        video_summary = summary_text(texts, picked, max_tokens=settings.max_summary_tokens, count_tokens=count_tokens)
        video_method = EXTRACTIVE
    else:  # no words: described like a visual chapter
        video_summary = visual_description(duration_s=duration, shot_kinds=[s["kind"] for s in shots])
        video_method = VISUAL
    vector_rows = _summary_rows(media_id, rows)
    if vector_rows:  # a file without words has its descriptions embedded too: scene and character names are words
        text_encoder()
    summary_row = {
        "media_id": media_id,
        "summary": video_summary,
        "chapters": len(rows),
        "method": video_method,
        "model_id": loaded[0].model_id if loaded else "",
        "run_id": run_id,
    }
    _write(warehouse, media_id, rows, summary_row, loaded[0] if loaded else None, vector_rows, settings, run_id)
    sources = Counter(source for s in segments[1:] for source in s.sources)
    return ChaptersResult(
        media_id=media_id,
        chapters=rows,
        video_summary=video_summary,
        video_method=video_method,
        sentences=len(sentences),
        screen_lines=len(units) - len(sentences),
        model_id=loaded[0].model_id if loaded else "",
        device=loaded[0].device if loaded else "",
        llm_model_id=llm_model_id,
        llm_s=llm_total,
        elapsed_s=time.perf_counter() - started,
        boundary_sources=dict(sources),
    )


# -- reading ---------------------------------------------------------------------------------------------------


def _rows(warehouse: Warehouse, table: str, media_id: int, *, order: str) -> list[dict]:
    data = catalog.read_partition(warehouse, table, media_id)
    return sorted(data.to_pylist(), key=lambda r: r[order]) if data is not None else []


def _sentences(warehouse: Warehouse, media_id: int, duration: float) -> list[_Unit]:
    """The transcript's sentences (one source), each timed by its share of its segment's span. A segment that
    stops mid-sentence (the recogniser cut it at a pause) continues into the next one when that starts within
    `JOIN_GAP_S`: the two pieces are one sentence."""
    try:
        transcript = read_transcript(warehouse, media_id)
    except TranscriptNotFoundError:
        return []
    source = primary_source(transcript)
    units: list[_Unit] = []
    for segment in transcript.segments:
        if segment["source"] != source or is_silence(segment.get("no_speech_prob"), segment.get("avg_logprob")):
            continue
        start, end = max(0.0, float(segment["start_s"])), min(duration, float(segment["end_s"]))
        if end <= start:
            continue
        pieces = split_sentences(segment["text"] or "")
        share = (end - start) / (sum(len(p) for p in pieces) or 1)
        at = 0
        for number, piece in enumerate(pieces):
            piece_start, piece_end = start + share * at, start + share * (at + len(piece))
            at += len(piece)
            previous = units[-1] if units else None
            if number == 0 and previous is not None and _open(previous.text) and start - previous.end_s <= JOIN_GAP_S:
                units[-1] = _Unit(previous.start_s, piece_end, f"{previous.text} {piece}", True)
            else:
                units.append(_Unit(piece_start, piece_end, piece, True))
    return units


def _open(text: str) -> bool:
    """Whether a sentence piece stops before its end (no closing mark)."""
    return not text.rstrip(" \"'”’)]").endswith((".", "!", "?", "…"))


def _screen_lines(warehouse: Warehouse, media_id: int) -> list[dict]:
    lines = _rows(warehouse, "screen_text", media_id, order="start_s")
    return [{**line, "text": " ".join((line["text"] or "").split())} for line in lines if (line["text"] or "").strip()]


def _distinct(lines: list[dict]) -> list[dict]:
    """One line per text (case-folded) and time span: a line read again later (a slide shown twice) counts again."""
    seen: set[tuple[str, float]] = set()
    out = []
    for line in lines:
        key = (line["text"].lower(), round(line["start_s"], 1))
        if key not in seen:
            seen.add(key)
            out.append(line)
    return out


def _slide_changes(lines: list[dict], events: list[dict]) -> list[tuple[float, float]]:
    """Where the text on screen changed (the readings of each frame compared in time order) and the shots stage's
    in-shot events (a slide change under a still camera), one strength per time."""
    by_frame: dict[int, list[dict]] = {}
    for line in lines:
        by_frame.setdefault(int(line["frame_id"]), []).append(line)
    readings = sorted(
        ((min(x["start_s"] for x in group), [x["text"] for x in group]) for group in by_frame.values()),
        key=lambda reading: reading[0],
    )
    changes = dict(slide_changes(readings))
    for event in events:
        time_s, score = float(event["time_s"]), float(event["score"] or 0.0)
        near = next((t for t in changes if abs(t - time_s) <= 1.0), None)
        if near is None:
            changes[time_s] = score
        else:
            changes[near] = max(changes[near], score)
    return sorted(changes.items())


def _names_by_shot(warehouse: Warehouse, media_id: int) -> dict[int, list[tuple[str, str]]]:
    """shot_id → (level, name) of the named clusters its shot and faces belong to ({} before any clustering)."""
    try:
        rows = catalog.query(
            warehouse,
            """SELECT m.shot_id, m.level, c.name FROM cluster_members m JOIN clusters c USING (cluster_id)
               WHERE m.media_id = ? AND c.name IS NOT NULL ORDER BY m.shot_id, m.level, c.name""",
            [int(media_id)],
        ).to_pylist()
    except Exception as exc:  # the global tables may not exist yet; names are a nicety
        log.debug("no cluster names for media %s: %s", media_id, exc)
        return {}
    names: dict[int, list[tuple[str, str]]] = {}
    for row in rows:
        names.setdefault(int(row["shot_id"]), []).append((row["level"], row["name"]))
    return names


def _faces_by_shot(warehouse: Warehouse, media_id: int) -> dict[int, int]:
    faces = catalog.read_partition(warehouse, "faces", media_id)
    return dict(Counter(int(f["shot_id"]) for f in faces.to_pylist())) if faces is not None else {}


# -- one chapter -----------------------------------------------------------------------------------------------


def _overlap(start_s: float, end_s: float, segment: Segment) -> float:
    return min(end_s, segment.end_s) - max(start_s, segment.start_s)


def _content(segment: Segment, units: list[_Unit], lines: list[dict]) -> tuple[list[int], list[dict]]:
    """The units said or shown in the chapter (indices into `units`, by time) and its screen-text lines."""
    indices = []
    for i, unit in enumerate(units):
        if unit.spoken:  # a sentence belongs to the chapter its middle falls in
            inside = segment.start_s <= (unit.start_s + unit.end_s) / 2 < segment.end_s
        else:  # a line to every chapter it is on screen in for a while
            inside = _overlap(unit.start_s, unit.end_s, segment) >= min(MIN_LINE_OVERLAP_S, unit.end_s - unit.start_s)
        if inside:
            indices.append(i)
    indices.sort(key=lambda i: (units[i].start_s, not units[i].spoken))
    shown = [line for line in lines if _overlap(line["start_s"], line["end_s"], segment) > 0]
    return indices, shown


def _heading(lines: list[dict], segment: Segment) -> str | None:
    """The heading of the chapter's slide: the first slide that appears in it (a boundary snaps to the moment a
    slide appears, so one shown from up to `SLIDE_LEAD_S` before its start counts, and one appearing in its
    last `SLIDE_LEAD_S` is the next chapter's), else the slide held over most of it (a chapter cut inside a
    long slide). A slide of the chapter before, still on screen for its first second, is neither."""
    frames: dict[int, list[dict]] = {}
    for line in lines:
        frames.setdefault(int(line["frame_id"]), []).append(line)
    first_shown = {frame: min(x["start_s"] for x in group) for frame, group in frames.items()}
    appearing = [f for f in frames if segment.start_s - SLIDE_LEAD_S <= first_shown[f] < segment.end_s - SLIDE_LEAD_S]
    if appearing:
        chosen = min(appearing, key=lambda f: (first_shown[f], f))
    else:
        held = {f: max(_overlap(x["start_s"], x["end_s"], segment) for x in group) for f, group in frames.items()}
        chosen = max(held, key=lambda f: (held[f], -f), default=None)
        if chosen is None or held[chosen] < HELD_SLIDE_SHARE * (segment.end_s - segment.start_s):
            return None
    slide = [(x["text"], x["box"]) for x in frames[chosen] if x["box"] is not None]
    return slide_heading(slide) if slide else None


def _cluster_names(shots: list[dict], names: dict[int, list[tuple[str, str]]]) -> tuple[list[str], list[str]]:
    scenes, characters = [], []
    for shot in shots:
        for level, name in names.get(int(shot["shot_id"]), []):
            target = scenes if level == "scene" else characters
            if name not in target:
                target.append(name)
    return scenes, characters


def _shots_title(shots: list[dict], index: int) -> str:
    if not shots:
        return f"Part {index + 1}"
    first, last = shots[0]["shot_index"] + 1, shots[-1]["shot_index"] + 1
    return f"Shot {first}" if first == last else f"Shots {first}–{last}"


def _closed(text: str) -> str:
    """A sentence or a screen line as a summary holds it: a line without a closing mark gets a full stop."""
    text = text.strip()
    return text if not text or text[-1] in ".!?…:;" else f"{text}."


def _rewrite(row: dict, model: SummaryModel, settings: ChaptersSettings) -> float:
    """Let the summary model rewrite the chapter's extract; keep the extract when it is over budget or fails."""
    try:
        generated = model.summarize(
            row["summary"],
            title=row["title"],
            budget_s=settings.llm_budget_s,
            max_new_tokens=settings.max_summary_tokens,
        )
    except Exception as exc:  # a model that cannot generate must not lose the chapter
        log.warning("the summary model failed on chapter %s: %s", row["chapter_id"], exc)
        row["method"] = LLM_FAILED
        return 0.0
    row["llm_s"] = generated.elapsed_s
    if generated.over_budget:
        row["method"] = OVER_BUDGET
    elif not generated.text.strip():
        row["method"] = LLM_FAILED
    else:
        row["summary"], row["method"], row["model_id"] = generated.text.strip(), ABSTRACTIVE, model.model_id
    return generated.elapsed_s


def _token_counter(encoder: TextEncoder | None) -> Callable[[str], int]:
    tokenizer = getattr(getattr(encoder, "model", None), "tokenizer", None)
    if tokenizer is None:
        from media_assets.models.summaries import approximate_tokens

        return approximate_tokens
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _video_summary(rows, encoder, count_tokens, settings) -> str:
    """The chapters' abstractive summaries condensed into one by the same extractive rule."""
    sentences = [s for r in rows if r["method"] != VISUAL for s in split_sentences(r["summary"])]
    if not sentences:
        return ""
    vectors = encoder.encode(sentences, batch_size=settings.batch_size)
    chosen = extractive_summary(sentences, vectors, max_tokens=settings.max_summary_tokens, count_tokens=count_tokens)
    return summary_text(sentences, chosen, max_tokens=settings.max_summary_tokens, count_tokens=count_tokens)


# -- writing ---------------------------------------------------------------------------------------------------


def _summary_rows(media_id: int, rows: list[dict]) -> list[dict]:
    if len(rows) > MAX_ROWS_PER_KIND:
        raise ValueError(f"media {media_id} has {len(rows)} chapters; at most {MAX_ROWS_PER_KIND} are stored")
    return [
        {
            "text_id": text_row_id(media_id, SUMMARY_KIND, row["index"]),
            "kind": SUMMARY_KIND,
            "item_id": row["chapter_id"],
            "start_s": row["start_s"],
            "end_s": row["end_s"],
            "text": f"{row['title']}. {row['summary']}" if row["title"] else row["summary"],
        }
        for row in rows
        if (row["summary"] or row["title"]).strip()
    ]


def _write(warehouse, media_id, rows, summary_row, encoder, vector_rows, settings, run_id) -> None:
    catalog.replace_partition(warehouse, "chapters", media_id, rows)
    catalog.replace_partition(warehouse, "video_summaries", media_id, [summary_row] if summary_row else [])
    store = TextVectorStore(warehouse)
    if not vector_rows or encoder is None:
        store.delete_media(media_id, kinds=(SUMMARY_KIND,))
        return
    vectors = encoder.encode([r["text"] for r in vector_rows], batch_size=settings.batch_size)
    store.replace_media(media_id, vector_rows, vectors, kinds=(SUMMARY_KIND,), model_id=encoder.model_id, run_id=run_id)
