"""The transcripts stage: what is said in a media file, with its times → `transcript_segments`,
`transcript_words`.

`transcribe_media` is what the `transcripts` asset runs for one partition; it needs no Dagster.
Subtitles come first: a sidecar file (`talk.srt`, `talk.en.vtt`, ...) or else a text subtitle stream in
the container becomes the segments (`source = 'subtitles:<file name>'` or `'subtitles:stream #2 (eng)'`,
`model_id` the same name, no words: subtitles have no word times). People wrote them, so by default a file
with subtitles is not also run through speech recognition (`TranscriptSettings.asr_when_subtitles`). Without
subtitles, the main audio stream is decoded (16 kHz mono, `media.audio`) and transcribed (`models.asr`):
`source = 'asr'`, `model_id` the model's id or folder name, and one `transcript_words` row per word.

Segment ids are `media_id << 20 | n`, n in time order (`ids.segment_id_for`); times are seconds from the
file's start, the frames' clock. Re-running replaces exactly the partition's rows of both tables.

Nothing to transcribe is a success with zero rows and a `reason` (a photo, no audio stream, no speech
found by the VAD). An unreadable audio stream or a malformed subtitle file raises `MediaReadError` after
the partition's old transcript rows are removed, so nothing stale stays behind; a model that cannot load
raises `ModelLoadError` and leaves the old rows (the file is not at fault).

`store.transcripts` reads the stored rows back (for export, and for the stages that read transcripts).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from media_assets.errors import MediaReadError
from media_assets.ids import segment_id_for
from media_assets.media.audio import decode_audio, find_audio_stream
from media_assets.media.discovery import MediaFile
from media_assets.media.subtitles import SubtitleTrack, find_sidecars, read_embedded, read_subtitle_file
from media_assets.models.asr import DEVICES, SpeechRecognizer, Transcription
from media_assets.store import catalog
from media_assets.store.transcripts import ASR_SOURCE, SUBTITLES_PREFIX
from media_assets.warehouse import Warehouse

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, float], None]  # (seconds of audio transcribed, total seconds)

TRANSCRIPT_TABLES = ["transcript_segments", "transcript_words"]
EXCERPT_CHARS = 200  # enough for a person to recognise the file in the Dagster UI
PREVIEW_SEGMENTS = 10  # segments carried in the result for a preview table
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:[-_][a-z0-9]{2,8})*$")


@dataclass(frozen=True)
class TranscriptSettings:
    """How a file is transcribed. Equal settings share one loaded model per process."""

    model: str | None = None  # ASR model: Hub id / size or folder; None → models.asr.default_asr_model()
    device: str = "auto"  # 'auto' | 'cpu' | 'cuda'
    compute_type: str | None = None  # None → float16 on CUDA, int8 on the CPU
    language: str | None = None  # what is spoken ('en'); None → detected
    beam_size: int = 5  # Whisper's default beam
    use_subtitles: bool = True  # sidecar files and text subtitle streams become segments
    asr_when_subtitles: bool = False  # also run speech recognition on a file that has subtitles
    subtitle_language: str | None = None  # the subtitle track to prefer; None → `language`, then untagged

    def __post_init__(self) -> None:
        # language codes and the device are case-insensitive: stored lower case ('EN' → 'en', '' → None)
        for name in ("language", "subtitle_language"):
            value = getattr(self, name)
            object.__setattr__(self, name, value.strip().lower() or None if isinstance(value, str) else value)
        object.__setattr__(self, "device", str(self.device).strip().lower())
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {self.beam_size}")
        for name in ("language", "subtitle_language"):
            value = getattr(self, name)
            if value is not None and not _LANGUAGE.match(value):
                raise ValueError(f"{name} must be a language code like 'en' or 'pt-BR', got {value!r}")
        if self.model is not None and not self.model.strip():
            raise ValueError("model must be a Hub id, a size or a folder; use None for the default")


@dataclass
class TranscriptResult:
    """What one run did, for the Dagster UI."""

    media_id: int
    segments: int
    words: int
    language: str | None
    speech_s: float  # seconds of speech (the VAD's) or covered by subtitle cues
    duration_s: float  # of the audio (or of the audio stream as the container says, for subtitles)
    elapsed_s: float
    source: str  # 'asr', 'subtitles:<name>', both joined by ' + ', or '' when nothing was written
    model_id: str  # the ASR model ('' when it did not run)
    device: str  # where the ASR ran ('' when it did not)
    excerpt: str  # the first ~200 characters of the text
    reason: str = ""  # why there are no segments, when there are none
    subtitle_tracks: list[str] = field(default_factory=list)  # every track found, the chosen one first
    bad_audio_packets: int = 0  # audio packets that failed to decode (their time was silence)
    first_segments: list[dict] = field(default_factory=list)  # up to 10: start_s, end_s, text

    @property
    def x_realtime(self) -> float:
        """Seconds of media per second of work."""
        return self.duration_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


def transcribe_media(
    warehouse: Warehouse,
    media_file: MediaFile,
    settings: TranscriptSettings = TranscriptSettings(),
    *,
    recognizer: SpeechRecognizer | None = None,
    run_id: str = "",
    progress: ProgressCallback | None = None,
) -> TranscriptResult:
    """Transcribe one media file (subtitles first, else speech recognition) and replace its
    `transcript_segments` and `transcript_words` rows. `recognizer` overrides the settings' model."""
    started = time.perf_counter()
    warehouse.ensure()
    try:
        return _transcribe(warehouse, media_file, settings, recognizer, run_id, progress, started)
    except MediaReadError:
        catalog.delete_partition(warehouse, media_file.media_id, TRANSCRIPT_TABLES)
        raise


def _transcribe(warehouse, media_file, settings, recognizer, run_id, progress, started) -> TranscriptResult:
    media_id = media_file.media_id
    segments: list[dict] = []  # rows without segment_id yet; words under "_words"
    sources: list[str] = []
    tracks: list[str] = []
    reason = ""
    language = None
    duration = speech = 0.0
    model_id = device = ""
    bad_packets = 0

    if media_file.kind == "image":
        reason = "a photo has no sound"
    else:
        if settings.use_subtitles:
            track, tracks = _subtitles(media_file, settings.subtitle_language or settings.language)
            if track is not None:
                source = SUBTITLES_PREFIX + track.source
                sources.append(source)
                language = track.language
                segments += [_cue_row(cue, track, source) for cue in track.cues]
                speech = _covered_seconds([(c.start_s, c.end_s) for c in track.cues])
                stream = find_audio_stream(media_file.path)
                duration = (stream.duration_s if stream else None) or max(c.end_s for c in track.cues)
        if not sources or settings.asr_when_subtitles:
            audio = decode_audio(media_file.path)
            if audio is None:
                reason = reason or "no audio stream"
            elif audio.duration_s == 0:
                reason = reason or "the audio stream is empty"
            else:
                bad_packets = audio.bad_packets
                duration = audio.duration_s
                if recognizer is None:
                    recognizer = SpeechRecognizer.load(settings.model, settings.device, settings.compute_type)
                model_id, device = recognizer.model_id, recognizer.device
                transcription = recognizer.transcribe(
                    audio.samples, settings.language, beam_size=settings.beam_size, progress=progress
                )
                asr_rows = _asr_rows(transcription, model_id)
                if asr_rows:
                    sources.append(ASR_SOURCE)
                    segments += asr_rows
                    language = language or transcription.language
                    speech = max(speech, transcription.speech_s)
                elif not sources:
                    reason = "no speech found (the voice activity detector kept nothing)"
                    if transcription.speech_s > 0:
                        reason = f"no words recognised in {transcription.speech_s:.1f}s the VAD kept as speech"

    segments.sort(key=lambda row: (row["start_s"], row["end_s"]))
    segment_rows, word_rows = [], []
    for n, row in enumerate(segments):
        segment_id = segment_id_for(media_id, n)
        words = row.pop("_words")
        segment_rows.append({**row, "segment_id": segment_id, "media_id": media_id, "run_id": run_id})
        word_rows += [{**word, "media_id": media_id, "segment_id": segment_id} for word in words]
    catalog.replace_partition(warehouse, "transcript_segments", media_id, segment_rows)
    catalog.replace_partition(warehouse, "transcript_words", media_id, word_rows)
    if progress is not None and duration:
        progress(duration, duration)
    log.info(
        "%s: %d segments, %d words from %s in %.1fs",
        media_file.partition_key,
        len(segment_rows),
        len(word_rows),
        " + ".join(sources) or f"nothing ({reason})",
        time.perf_counter() - started,
    )
    return TranscriptResult(
        media_id=media_id,
        segments=len(segment_rows),
        words=len(word_rows),
        language=language,
        speech_s=round(speech, 3),
        duration_s=round(duration, 3),
        elapsed_s=time.perf_counter() - started,
        source=" + ".join(sources),
        model_id=model_id,
        device=device,
        excerpt=excerpt(r["text"] for r in segment_rows),
        reason="" if segment_rows else reason or "nothing to transcribe",
        subtitle_tracks=tracks,
        bad_audio_packets=bad_packets,
        first_segments=[
            {"start_s": r["start_s"], "end_s": r["end_s"], "text": r["text"]} for r in segment_rows[:PREVIEW_SEGMENTS]
        ],
    )


def _matches(language: str | None, wanted: str | None) -> bool:
    if not language or not wanted:
        return False
    language, wanted = language.lower().replace("_", "-"), wanted.lower().replace("_", "-")
    return (
        language == wanted
        or language.split("-")[0] == wanted.split("-")[0]
        or (len(language) == 3 and language[:2] == wanted.split("-")[0])  # 'eng' for 'en' (most codes)
    )


def _subtitles(media_file: MediaFile, wanted: str | None) -> tuple[SubtitleTrack | None, list[str]]:
    """(the track to use or None, the names of the tracks found: the chosen one first). Sidecars win over
    streams; among them the wanted language, then one without a language, then the first by name; a track
    without cues does not count. Only sidecars up to the chosen one are parsed."""
    sidecars = sorted(find_sidecars(media_file.path), key=lambda s: not _matches(s.language, wanted))
    names = [s.path.name for s in sidecars]
    for sidecar in sidecars:
        track = read_subtitle_file(sidecar.path, language=sidecar.language)
        if track.cues:
            return track, [track.source] + [n for n in names if n != track.source]
        log.info("%s has no cues; ignored", sidecar.path)
    embedded = sorted(read_embedded(media_file.path), key=lambda t: not _matches(t.language, wanted))
    names += [t.source for t in embedded]
    for track in embedded:
        if track.cues:
            return track, [track.source] + [n for n in names if n != track.source]
    return None, names


def _cue_row(cue, track: SubtitleTrack, source: str) -> dict:
    return {
        "start_s": cue.start_s,
        "end_s": cue.end_s,
        "text": " ".join(cue.text.split()),  # a cue's lines are layout, not meaning: one line of text
        "language": track.language,
        "avg_logprob": None,
        "no_speech_prob": None,
        "source": source,
        "model_id": track.source,
        "_words": [],
    }


def _asr_rows(transcription: Transcription, model_id: str) -> list[dict]:
    return [
        {
            "start_s": segment.start_s,
            "end_s": segment.end_s,
            "text": segment.text,
            "language": transcription.language,
            "avg_logprob": segment.avg_logprob,
            "no_speech_prob": segment.no_speech_prob,
            "source": ASR_SOURCE,
            "model_id": model_id,
            "_words": [
                {"start_s": w.start_s, "end_s": w.end_s, "word": w.word, "probability": w.probability}
                for w in segment.words
            ],
        }
        for segment in transcription.segments
    ]


def _covered_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of the spans (overlapping cues counted once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def excerpt(texts, limit: int = EXCERPT_CHARS) -> str:
    """The start of the text, cut at a word boundary near `limit` characters."""
    text = ""
    for piece in texts:
        text = f"{text} {piece}".strip() if text else piece.strip()
        if len(text) > limit:
            break
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(" ,.;:") + "…"
