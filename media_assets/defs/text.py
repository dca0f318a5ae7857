"""Group `text`: what the warehouse hears and reads, per media file — `transcripts` (speech or subtitles →
timed segments and words), `screen_text` (OCR of keyframes and photos), `text_vectors` (sentence vectors
of transcript windows and screen text, with a full-text index) and `chapters` (a table of contents with titles
and summaries), and the checks that keep them honest. Thin: `stages.transcripts`, `stages.screen_text`,
`stages.text_vectors` and `stages.chapters` do the work."""

import dataclasses

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from media_assets.defs.automation import (
    CHAPTERS_WHEN_INPUTS_CHANGE,
    SCREEN_TEXT_WHEN_SHOTS_CHANGE,
    TEXT_VECTORS_WHEN_TEXT_CHANGES,
)
from media_assets.defs.partitions import media_file_of, media_files
from media_assets.defs.resources import (
    SpeechResource,
    SummaryModelResource,
    TextEncoderResource,
    WarehouseResource,
)
from media_assets.errors import MediaReadError, MissingFramesError, ModelLoadError
from media_assets.ids import media_id_for
from media_assets.media.previews import contact_sheet, markdown_image
from media_assets.models.chapters import ChapterSettings
from media_assets.stages import chapters as chapters_stage
from media_assets.stages import screen_text as screen_text_stage
from media_assets.stages import text_vectors as text_vectors_stage
from media_assets.stages import transcripts as transcripts_stage
from media_assets.stages.frames import record_ingest_error
from media_assets.store import catalog
from media_assets.store.text_vectors import TextVectorStore
from media_assets.store.transcripts import ASR_SOURCE

_SCREEN_TEXT_DEFAULTS = screen_text_stage.ScreenTextSettings()
SEGMENT_TOLERANCE_S = 0.05  # segment times are rounded by the ASR and containers: a 50 ms overlap is not one
BEYOND_END_S = 0.5  # a container's duration and its last packet disagree by a frame or so


class TranscriptsConfig(Config):
    language: str = Field(default="", description="What is spoken ('en'); empty: detected")
    use_subtitles: bool = Field(default=True, description="Sidecar .srt/.vtt files and text subtitle streams count")
    asr_when_subtitles: bool = Field(default=False, description="Also run speech recognition on a file with subtitles")
    beam_size: int = Field(default=5, ge=1, le=20, description="Whisper's beam width")

    def settings(self, speech: SpeechResource) -> transcripts_stage.TranscriptSettings:
        return transcripts_stage.TranscriptSettings(
            model=speech.model or None,
            device="cuda" if speech.device.startswith("cuda") else speech.device,  # CTranslate2: 'cuda', index 0
            language=self.language or None,
            beam_size=self.beam_size,
            use_subtitles=self.use_subtitles,
            asr_when_subtitles=self.asr_when_subtitles,
        )


def _segments_table(rows: list[dict]) -> str:
    return "| start (s) | end (s) | text |\n|---:|---:|:---|\n" + "\n".join(
        f"| {r['start_s']:.2f} | {r['end_s']:.2f} | {r['text'].replace('|', '/')} |" for r in rows
    )


@asset(
    partitions_def=media_files,
    deps=["frames"],
    group_name="text",
    pool="gpu",
    kinds={"ctranslate2", "duckdb"},
    description="Speech → timed segments and words (faster-whisper: VAD, word timestamps, language detection), or "
    "the file's subtitles (a sidecar .srt/.vtt, or a text subtitle stream) → `transcript_segments`, "
    "`transcript_words`. No audio, or only silence: no rows.",
)
def transcripts(
    context: AssetExecutionContext, config: TranscriptsConfig, warehouse: WarehouseResource, speech: SpeechResource
) -> MaterializeResult:
    wh = warehouse.get()
    media_file = media_file_of(context, wh)
    try:
        result = transcripts_stage.transcribe_media(
            wh,
            media_file,
            config.settings(speech),
            run_id=context.run_id,
            progress=lambda done, total: context.log.debug(f"transcribed {done:.0f}/{total or 0:.0f} s"),
        )
    except (MediaReadError, ModelLoadError, ValueError) as exc:
        record_ingest_error(wh, media_file, "transcripts", exc, context.run_id)
        raise Failure(description=f"{media_file.path}: {exc}") from exc
    return MaterializeResult(
        metadata={
            "media_id": MetadataValue.int(result.media_id),
            "segments": MetadataValue.int(result.segments),
            "words": MetadataValue.int(result.words),
            "language": result.language or "",
            "speech_s": MetadataValue.float(round(result.speech_s, 2)),
            "duration_s": MetadataValue.float(round(result.duration_s, 2)),
            "x_realtime": MetadataValue.float(round(result.x_realtime, 1)),
            "source": result.source,
            "model_id": result.model_id,
            "device": result.device,
            "elapsed_s": MetadataValue.float(round(result.elapsed_s, 3)),
            "excerpt": result.excerpt,
            "reason": result.reason,
            "segments_preview": MetadataValue.md(_segments_table(result.first_segments)),
        }
    )


@asset_check(
    asset=transcripts,
    description="Every transcript segment ends after it starts; speech-recognised segments lie inside their file's "
    "duration and do not overlap (subtitle cues may: two speakers; they are counted, not failed).",
)
def segments_inside_the_file_and_apart(context, warehouse: WarehouseResource) -> AssetCheckResult:
    partition_key = context.run.tags.get("dagster/partition")
    wh = warehouse.get()
    where = "WHERE m.partition_key = ?" if partition_key else ""
    rows = catalog.query(
        wh,
        f"""SELECT t.media_id, m.partition_key, m.duration_s, t.source, t.segment_id, t.start_s, t.end_s,
                   lag(t.end_s) OVER (PARTITION BY t.media_id, t.source ORDER BY t.start_s, t.segment_id)
                       AS previous_end
            FROM transcript_segments t JOIN media m USING (media_id) {where}""",
        [partition_key] if partition_key else None,
    ).to_pylist()
    outside = [r for r in rows if r["start_s"] < 0 or (r["duration_s"] and r["end_s"] > r["duration_s"] + BEYOND_END_S)]
    backwards = [r for r in rows if r["end_s"] < r["start_s"]]
    overlapping = [
        r for r in rows if r["previous_end"] is not None and r["start_s"] < r["previous_end"] - SEGMENT_TOLERANCE_S
    ]
    asr = ASR_SOURCE
    bad = [r for r in outside + overlapping if r["source"] == asr] + backwards
    return AssetCheckResult(
        passed=not bad,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "segments_checked": MetadataValue.int(len(rows)),
            "outside_the_file": MetadataValue.int(sum(r["source"] == asr for r in outside)),
            "ending_before_they_start": MetadataValue.int(len(backwards)),
            "overlapping": MetadataValue.int(sum(r["source"] == asr for r in overlapping)),
            "subtitle_cues_overlapping_or_past_the_end": MetadataValue.int(
                sum(r["source"] != asr for r in outside + overlapping)
            ),
            "examples": MetadataValue.json(
                [{k: r[k] for k in ("partition_key", "segment_id", "start_s", "end_s")} for r in bad[:5]]
            ),
        },
    )


class ScreenTextConfig(Config):
    min_score: float = Field(
        default=_SCREEN_TEXT_DEFAULTS.ocr.min_score,
        ge=0,
        le=1,
        description="Lines the recogniser is less sure of than this are dropped",
    )
    same_text_similarity: float = Field(
        default=_SCREEN_TEXT_DEFAULTS.same_text_similarity,
        gt=0,
        le=1,
        description="A line on consecutive keyframes this similar (characters) is one row with a time span",
    )

    def settings(self) -> screen_text_stage.ScreenTextSettings:
        defaults = _SCREEN_TEXT_DEFAULTS
        return screen_text_stage.ScreenTextSettings(
            ocr=dataclasses.replace(defaults.ocr, min_score=self.min_score),
            same_text_similarity=self.same_text_similarity,
        )


@asset(
    partitions_def=media_files,
    deps=["shots"],
    group_name="text",
    automation_condition=SCREEN_TEXT_WHEN_SHOTS_CHANGE,
    kinds={"onnx", "duckdb"},
    description="Text on screen: OCR (RapidOCR, PP-OCR models) of each keyframe, each slide change and each photo → "
    "`screen_text` lines with box and score; the same slide held over consecutive keyframes is read once and kept "
    "as one row with its time span.",
)
def screen_text(
    context: AssetExecutionContext, config: ScreenTextConfig, warehouse: WarehouseResource
) -> MaterializeResult:
    wh = warehouse.get()
    media_file = media_file_of(context, wh)
    try:
        result = screen_text_stage.read_screen_text(
            wh,
            media_file.media_id,
            config.settings(),
            run_id=context.run_id,
            progress=lambda done, total: context.log.debug(f"read {done}/{total} frames"),
        )
    except (MissingFramesError, ModelLoadError, ValueError) as exc:
        record_ingest_error(wh, media_file, "screen_text", exc, context.run_id)
        raise Failure(description=f"{media_file.path}: {exc}") from exc
    shown = result.samples[:6]
    sheet = contact_sheet([path for path, _ in shown], labels=[" / ".join(lines)[:40] for _, lines in shown])
    lines_table = "| frame | lines read |\n|:---|:---|\n" + "\n".join(
        f"| {path.name} | {' / '.join(lines)[:200].replace('|', '/')} |" for path, lines in shown
    )
    preview = (markdown_image(sheet, "frames with their text") + "\n\n" if sheet is not None else "") + lines_table
    return MaterializeResult(
        metadata={
            "media_id": MetadataValue.int(result.media_id),
            "lines": MetadataValue.int(result.lines),
            "distinct_texts": MetadataValue.int(result.distinct_texts),
            "frames_chosen": MetadataValue.int(result.frames_chosen),
            "frames_read": MetadataValue.int(result.frames_read),
            "frames_skipped_same_image": MetadataValue.int(result.frames_skipped_same_image),
            "unreadable_frames": MetadataValue.int(result.unreadable_frames),
            "model_id": result.model_id,
            "device": result.device,
            "elapsed_s": MetadataValue.float(round(result.elapsed_s, 3)),
            "excerpt": result.excerpt,
            "contact_sheet": MetadataValue.md(preview),
        }
    )


@asset(
    partitions_def=media_files,
    deps=[transcripts, screen_text],
    group_name="text",
    automation_condition=TEXT_VECTORS_WHEN_TEXT_CHANGES,
    kinds={"pytorch", "lancedb"},
    description="Sentence vectors (all-MiniLM-L6-v2 by default) of transcript windows (a few segments with overlap) "
    "and of the screen text read together on one span → LanceDB `text_vectors`, with a full-text (BM25) index.",
)
def text_vectors(
    context: AssetExecutionContext, warehouse: WarehouseResource, text_encoder: TextEncoderResource
) -> MaterializeResult:
    wh = warehouse.get()
    media_file = media_file_of(context, wh)
    try:
        result = text_vectors_stage.embed_texts(
            wh,
            media_file.media_id,
            text_encoder.load,  # loaded only when the file has text
            settings=dataclasses.replace(
                text_vectors_stage.DEFAULT_TEXT_VECTOR_SETTINGS, batch_size=text_encoder.batch_size
            ),
            run_id=context.run_id,
        )
    except (ModelLoadError, ValueError) as exc:
        record_ingest_error(wh, media_file, "text_vectors", exc, context.run_id)
        raise Failure(description=f"{media_file.path}: text embedding failed: {exc}") from exc
    samples = "| kind | start (s) | end (s) | text |\n|:---|---:|---:|:---|\n" + "\n".join(
        f"| {r['kind']} | {r['start_s']:.2f} | {r['end_s']:.2f} | {r['text'][:120].replace('|', '/')} |"
        for r in result.samples
    )
    return MaterializeResult(
        metadata={
            "media_id": MetadataValue.int(result.media_id),
            "rows": MetadataValue.int(result.total),
            **{f"{kind}_rows": MetadataValue.int(n) for kind, n in result.rows.items()},
            "segments_read": MetadataValue.int(result.segments),
            "screen_lines_read": MetadataValue.int(result.screen_lines),
            "dim": MetadataValue.int(result.dim),
            "model_id": result.model_id,
            "device": result.device,
            "elapsed_s": MetadataValue.float(round(result.elapsed_s, 3)),
            "samples": MetadataValue.md(samples),
        }
    )


@asset_check(
    asset=text_vectors,
    description="Every transcript window and screen-text span of the run's file has exactly one text vector, all "
    "made by one model.",
)
def every_text_row_has_a_vector(context, warehouse: WarehouseResource) -> AssetCheckResult:
    partition_key = context.run.tags.get("dagster/partition")
    if partition_key is None:
        return AssetCheckResult(passed=True, metadata={"skipped": "the run has no media partition"})
    wh = warehouse.get()
    media_id = media_id_for(partition_key)
    settings = text_vectors_stage.DEFAULT_TEXT_VECTOR_SETTINGS
    segments = catalog.read_partition(wh, "transcript_segments", media_id)
    lines = catalog.read_partition(wh, "screen_text", media_id)
    expected = {("transcript", w["item_id"]) for w in text_vectors_stage.transcript_windows(segments, settings)}
    expected |= {("screen_text", s["item_id"]) for s in text_vectors_stage.screen_text_spans(lines, settings)}
    dataset = TextVectorStore(wh).dataset()
    kinds = ", ".join(f"'{kind}'" for kind in text_vectors_stage.KINDS_WRITTEN)  # summaries are the chapters' rows
    stored = (
        dataset.to_table(
            columns=["kind", "item_id", "model_id"], filter=f"media_id = {int(media_id)} AND kind IN ({kinds})"
        ).to_pylist()
        if dataset is not None
        else []
    )
    keys = [(r["kind"], r["item_id"]) for r in stored]
    missing = sorted(expected - set(keys))
    extra = sorted(set(keys) - expected)
    duplicated = len(keys) - len(set(keys))
    models = sorted({r["model_id"] for r in stored})
    passed = not missing and not extra and not duplicated and len(models) <= 1
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "expected": MetadataValue.int(len(expected)),
            "stored": MetadataValue.int(len(keys)),
            "duplicated": MetadataValue.int(duplicated),
            "missing": MetadataValue.json([list(k) for k in missing[:10]]),
            "without_a_row": MetadataValue.json([list(k) for k in extra[:10]]),
            "models": MetadataValue.json(models),
        },
    )


_CHAPTER_DEFAULTS = chapters_stage.DEFAULT_CHAPTERS_SETTINGS
_SEGMENTATION_DEFAULTS = ChapterSettings()
TILE_TOLERANCE_S = 0.01  # chapter times are floats written as they were computed: a gap this small is none


class ChaptersConfig(Config):
    min_chapter_s: float = Field(default=0.0, ge=0, description="Shortest chapter (s); 0: from the file's length")
    max_chapter_s: float = Field(default=0.0, ge=0, description="Longest chapter (s); 0: from the file's length")
    max_summary_tokens: int = Field(
        default=_CHAPTER_DEFAULTS.max_summary_tokens, ge=8, le=1024, description="Longest summary, in tokens"
    )
    llm_budget_s: float = Field(
        default=_CHAPTER_DEFAULTS.llm_budget_s,
        gt=0,
        description="Time the summary model may take per chapter; over it, the chapter keeps its extractive summary",
    )

    def settings(self, batch_size: int) -> chapters_stage.ChaptersSettings:
        segmentation = dataclasses.replace(
            _SEGMENTATION_DEFAULTS, min_chapter_s=self.min_chapter_s or None, max_chapter_s=self.max_chapter_s or None
        )
        return dataclasses.replace(
            _CHAPTER_DEFAULTS,
            segmentation=segmentation,
            max_summary_tokens=self.max_summary_tokens,
            llm_budget_s=self.llm_budget_s,
            batch_size=batch_size,
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _chapters_table(rows: list[dict]) -> str:
    return "| # | start | end | title | method | summary |\n|---:|---:|---:|:---|:---|:---|\n" + "\n".join(
        f"| {r['index'] + 1} | {_clock(r['start_s'])} | {_clock(r['end_s'])} | {r['title'].replace('|', '/')} "
        f"| {r['method']} | {r['summary'][:160].replace('|', '/')} |"
        for r in rows
    )


@asset(
    partitions_def=media_files,
    deps=[transcripts, screen_text, "shots"],
    group_name="text",
    pool="llm",
    automation_condition=CHAPTERS_WHEN_INPUTS_CHANGE,
    kinds={"pytorch", "duckdb", "lancedb"},
    description="Chapters: topic segments from the transcript's meaning over time (TextTiling on sentence vectors), "
    "slide changes, shot cuts and silences, with titles (slide headings, key phrases) and summaries (extractive, or "
    "a causal LM's within a time budget) → `chapters`, `video_summaries`, summary rows in `text_vectors`. No words: "
    "groups of shots, described from what the warehouse knows.",
)
def chapters(
    context: AssetExecutionContext,
    config: ChaptersConfig,
    warehouse: WarehouseResource,
    text_encoder: TextEncoderResource,
    summary_model: SummaryModelResource,
) -> MaterializeResult:
    wh = warehouse.get()
    media_file = media_file_of(context, wh)
    try:
        result = chapters_stage.make_chapters(
            wh,
            media_file.media_id,
            text_encoder.load,  # loaded only when the file has words
            settings=config.settings(text_encoder.batch_size),
            summary_model=summary_model.load if summary_model.configured else None,
            run_id=context.run_id,
            progress=lambda done, total: context.log.debug(f"summarised {done}/{total} chapters"),
        )
    except (MissingFramesError, ModelLoadError, ValueError) as exc:
        record_ingest_error(wh, media_file, "chapters", exc, context.run_id)
        raise Failure(description=f"{media_file.path}: {exc}") from exc
    return MaterializeResult(
        metadata={
            "media_id": MetadataValue.int(result.media_id),
            "chapters": MetadataValue.int(len(result.chapters)),
            "methods": MetadataValue.json(result.methods),
            "boundaries_from": MetadataValue.json(result.boundary_sources),
            "sentences_read": MetadataValue.int(result.sentences),
            "screen_lines_read": MetadataValue.int(result.screen_lines),
            "video_summary": result.video_summary,
            "model_id": result.model_id,
            "device": result.device,
            "llm_model_id": result.llm_model_id,
            "llm_s": MetadataValue.float(round(result.llm_s, 3)),
            "elapsed_s": MetadataValue.float(round(result.elapsed_s, 3)),
            "reason": result.reason,
            "table_of_contents": MetadataValue.md(_chapters_table(result.chapters)),
        }
    )


@asset_check(
    asset=chapters,
    description="The chapters of each file with a duration tile it: the first starts at 0, each starts where the "
    "one before ends, the last ends at the file's duration, none is empty, and they are numbered 0, 1, … in order.",
)
def chapters_tile_the_file(context, warehouse: WarehouseResource) -> AssetCheckResult:
    partition_key = context.run.tags.get("dagster/partition")
    wh = warehouse.get()
    where = "WHERE m.partition_key = ?" if partition_key else ""
    rows = catalog.query(
        wh,
        f"""SELECT m.partition_key, m.kind, m.duration_s, c.index, c.start_s, c.end_s
            FROM media m LEFT JOIN chapters c USING (media_id) {where} ORDER BY m.partition_key, c.index""",
        [partition_key] if partition_key else None,
    ).to_pylist()
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(row["partition_key"], []).append(row)
    problems = []
    for key, file_rows in by_file.items():
        duration, kind = file_rows[0]["duration_s"], file_rows[0]["kind"]
        parts = [r for r in file_rows if r["index"] is not None]
        if kind == "image" or not duration:
            if parts:
                problems.append({"partition_key": key, "problem": f"{len(parts)} chapters in a file without a length"})
            continue
        if not parts:
            problems.append({"partition_key": key, "problem": "no chapters"})
            continue
        if [r["index"] for r in parts] != list(range(len(parts))):
            problems.append({"partition_key": key, "problem": "chapters not numbered 0, 1, … in time order"})
        if abs(parts[0]["start_s"]) > TILE_TOLERANCE_S:
            problems.append({"partition_key": key, "problem": f"the first chapter starts at {parts[0]['start_s']}"})
        if abs(parts[-1]["end_s"] - duration) > TILE_TOLERANCE_S:
            problems.append({"partition_key": key, "problem": f"the last ends at {parts[-1]['end_s']}, not {duration}"})
        for before, after in zip(parts, parts[1:], strict=False):
            if abs(after["start_s"] - before["end_s"]) > TILE_TOLERANCE_S:
                gap = "a gap" if after["start_s"] > before["end_s"] else "an overlap"
                problems.append({"partition_key": key, "problem": f"{gap} at {before['end_s']:.2f} s"})
        problems += [
            {"partition_key": key, "problem": f"chapter {r['index']} is empty"}
            for r in parts
            if r["end_s"] <= r["start_s"]
        ]
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "files_checked": MetadataValue.int(len(by_file)),
            "chapters_checked": MetadataValue.int(sum(r["index"] is not None for r in rows)),
            "problems": MetadataValue.int(len(problems)),
            "examples": MetadataValue.json(problems[:10]),
        },
    )
