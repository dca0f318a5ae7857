"""Reading sound: find a file's audio stream, decode it for speech recognition, probe audio-only files.

Files are read with PyAV (FFmpeg's libraries inside the wheel; no ffmpeg program is needed), video files
and audio files alike. `decode_audio` turns the file's main audio stream (FFmpeg's "best" one) into
**16 kHz mono float32** samples in [-1, 1] (`SAMPLE_RATE`: the rate Whisper models are trained on), the
array `models.asr.SpeechRecognizer.transcribe` takes. Times are seconds from the file's start (the
container's start time), as the frames stage's presentation times are: an audio stream that begins later
than the video is padded with silence in front, and a gap in the stream (packets missing or undecodable)
is filled with silence, so sample `i` is always at `i / SAMPLE_RATE` s. Memory: 64 kB per second of sound
(230 MB an hour), since the recogniser wants the whole array.

Answers:
- no audio stream at all (a silent video, a photo): `decode_audio` returns None; this is a normal answer;
- a file FFmpeg cannot open, an audio codec it has no decoder for, a stream whose packets mostly fail to
  decode (more than `MAX_BAD_PACKET_FRACTION`) or that yields no sound although it has packets or says it
  has a duration: `MediaReadError(path, reason)`; a few bad packets inside a good stream are counted
  (`DecodedAudio.bad_packets`) and become silence; a stream with no packets at all gives no samples.

`probe_audio` is the media row's view of an audio-only file (container, codec, duration, rate, channels)
without decoding it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from media_assets.errors import MediaReadError
from media_assets.media.decoding import check_readable

SAMPLE_RATE = 16_000  # Hz: what Whisper models (and faster-whisper) expect
# A stream whose packets fail to decode more often than this is corrupt, not merely damaged in places.
MAX_BAD_PACKET_FRACTION = 0.1
# Gaps between decoded frames shorter than this are resampler rounding, not missing sound (seconds).
_GAP_TOLERANCE_S = 0.05
_PROGRESS_EVERY_S = 2.0  # wall-clock seconds between progress reports

ProgressCallback = Callable[[float, float | None], None]  # (seconds decoded so far, duration or None)


@dataclass(frozen=True)
class AudioStream:
    """A file's audio stream as its container describes it."""

    index: int  # the stream's index in the container (all streams counted)
    codec: str  # FFmpeg's decoder name: 'aac', 'mp3', 'pcm_s16le', 'flac', 'vorbis', 'opus', ...
    sample_rate: int
    channels: int
    language: str | None  # the stream's language tag, when it has one ('und' counts as none)
    duration_s: float | None  # from the stream or the container, when either says


@dataclass(frozen=True)
class DecodedAudio:
    """A file's audio, ready for the recogniser."""

    samples: np.ndarray  # float32, mono, SAMPLE_RATE Hz, [-1, 1]
    sample_rate: int
    stream: AudioStream
    packets: int  # packets of the stream that were read
    bad_packets: int  # packets that failed to decode (their time is silence)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class AudioProbe:
    """What the media row holds for an audio-only file."""

    container: str  # the file's suffix, like the video probe's ('wav', 'flac', 'mp3', 'm4a', ...)
    codec: str
    duration_s: float | None
    sample_rate: int
    channels: int


def _open(path: Path):
    check_readable(path)
    try:
        return av.open(str(path), "r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaReadError(path, f"not a readable media file (FFmpeg could not open it: {exc})") from exc


def _audio_stream(container):
    if not container.streams.audio:
        return None
    try:
        return container.streams.best("audio") or container.streams.audio[0]
    except Exception:  # best() asks FFmpeg to rank the streams; any trouble there: the first one is fine
        return container.streams.audio[0]


def _describe(container, stream) -> AudioStream:
    context = stream.codec_context
    if context is None:  # FFmpeg has no decoder for this codec
        return AudioStream(stream.index, "unknown", 0, 0, None, None)
    duration = None
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE: microseconds
    language = stream.language if stream.language and stream.language != "und" else None
    return AudioStream(
        index=stream.index,
        codec=context.name or "unknown",
        sample_rate=int(context.sample_rate or 0),
        channels=int(context.channels or 0),
        language=language,
        duration_s=duration if duration is not None and duration > 0 else None,
    )


def find_audio_stream(path: str | Path) -> AudioStream | None:
    """The file's main audio stream, or None when it has none; MediaReadError when the file cannot be
    opened at all."""
    path = Path(path)
    container = _open(path)
    try:
        stream = _audio_stream(container)
        return None if stream is None else _describe(container, stream)
    finally:
        container.close()


def probe_audio(path: str | Path) -> AudioProbe:
    """Container facts of an audio-only file (no decoding: the duration comes from the container, or from
    the packets' durations when it says none). MediaReadError when it cannot be opened or has no audio."""
    path = Path(path)
    container = _open(path)
    try:
        stream = _audio_stream(container)
        if stream is None:
            raise MediaReadError(path, "no audio stream in the file")
        info = _describe(container, stream)
        if info.codec == "unknown" or not info.sample_rate:
            raise MediaReadError(path, "the audio stream has no codec or sample rate FFmpeg knows")
        duration = info.duration_s
        if duration is None:
            duration = _duration_from_packets(path, container, stream)
    finally:
        container.close()
    return AudioProbe(path.suffix.lower().lstrip("."), info.codec, duration, info.sample_rate, info.channels)


def _duration_from_packets(path: Path, container, stream) -> float | None:
    end = 0.0
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.error.FFmpegError as exc:
        raise MediaReadError(path, f"the audio stream cannot be read ({exc})") from exc
    return end or None


def decode_audio(
    path: str | Path, *, sample_rate: int = SAMPLE_RATE, progress: ProgressCallback | None = None
) -> DecodedAudio | None:
    """The file's main audio stream as mono float32 at `sample_rate`; None when the file has no audio
    stream. Raises MediaReadError for a file or stream that cannot be read (see the module docstring)."""
    path = Path(path)
    container = _open(path)
    try:
        stream = _audio_stream(container)
        if stream is None:
            return None
        info = _describe(container, stream)
        if stream.codec_context is None:
            raise MediaReadError(path, f"no decoder for the audio codec of stream #{info.index}")
        start_s = container.start_time / 1_000_000 if container.start_time is not None else 0.0
        writer = _SampleWriter(sample_rate)
        packets = bad = 0
        first_error = ""
        last_report = time.monotonic()
        try:
            for packet in container.demux(stream):
                flush = packet.size == 0 and packet.pts is None  # the empty packet at the end drains the decoder
                packets += 0 if flush else 1
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    bad += 0 if flush else 1
                    first_error = first_error or str(exc)
                    continue
                for frame in frames:
                    writer.add(frame, start_s)
                if progress is not None and time.monotonic() - last_report > _PROGRESS_EVERY_S:
                    progress(writer.seconds, info.duration_s)
                    last_report = time.monotonic()
        except av.error.FFmpegError as exc:  # demuxing itself failed: the container is damaged here
            if writer.seconds == 0:
                raise MediaReadError(path, f"the audio stream cannot be read ({exc})") from exc
            first_error = first_error or str(exc)
            bad += 1
        if packets and (bad == packets or bad > MAX_BAD_PACKET_FRACTION * packets):
            raise MediaReadError(
                path,
                f"the audio stream ({info.codec}, stream #{info.index}) is corrupt: {bad} of {packets} packets "
                f"failed to decode (first error: {first_error})",
            )
        samples = writer.finish()
        if len(samples) == 0 and (packets or info.duration_s or not info.sample_rate):
            raise MediaReadError(
                path,
                f"the audio stream ({info.codec}, stream #{info.index}) has no decodable sound "
                f"({packets} packets read"
                + (f", the container says {info.duration_s:.1f}s)" if info.duration_s else ")"),
            )
    finally:
        container.close()
    if progress is not None:
        progress(len(samples) / sample_rate, info.duration_s)
    return DecodedAudio(samples, sample_rate, info, packets, bad)


class _SampleWriter:
    """Resamples decoded frames to mono float32 and lays them out on the timeline (gaps → silence)."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.chunks: list[np.ndarray] = []
        self.written = 0  # samples so far, from the file's time 0 (a negative start is trimmed at the end)
        self.offset: int | None = None  # sample position of the first decoded frame
        self.resampler = None
        self.setup: tuple | None = None

    @property
    def seconds(self) -> float:
        return max(self.written, 0) / self.sample_rate

    def _resampler_for(self, frame):
        setup = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.resampler is None or setup != self.setup:
            if self.resampler is not None:  # the stream changed format mid-way: drain the old resampler
                self._append(self.resampler.resample(None))
            self.resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
            self.setup = setup
        return self.resampler

    def add(self, frame, start_s: float) -> None:
        resampler = self._resampler_for(frame)
        if frame.pts is not None and frame.time_base:
            at = round((float(frame.pts * frame.time_base) - start_s) * self.sample_rate)
            if self.offset is None:
                self.offset = at
                self.written = at  # may be < 0 (encoder priming before time 0): trimmed in finish()
            elif at - self.written > _GAP_TOLERANCE_S * self.sample_rate:
                self._append(resampler.resample(None))  # drain, then fill the gap with silence
                self.resampler = None
                resampler = self._resampler_for(frame)
                gap = at - self.written
                if gap > 0:
                    self.chunks.append(np.zeros(gap, np.float32))
                    self.written += gap
        elif self.offset is None:
            self.offset = self.written = 0
        self._append(resampler.resample(frame))

    def _append(self, frames) -> None:
        for out in frames:
            samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            self.chunks.append(samples)
            self.written += len(samples)

    def finish(self) -> np.ndarray:
        if self.resampler is not None:
            self._append(self.resampler.resample(None))
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        offset = self.offset or 0
        if offset > 0:  # the sound starts after time 0: silence in front
            samples = np.concatenate([np.zeros(offset, np.float32), samples])
        elif offset < 0:
            samples = samples[-offset:]
        np.clip(samples, -1.0, 1.0, out=samples)
        if not np.isfinite(samples).all():
            samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
        return np.ascontiguousarray(samples, dtype=np.float32)
