"""Media made for tests: real photographs that scikit-image ships, videos written with OpenCV or PyAV."""

from __future__ import annotations

import fractions
from pathlib import Path

import cv2
import numpy as np


def photo(name: str = "astronaut", size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """A real photograph that scikit-image ships, as BGR at `size` (width, height)."""
    import skimage.data

    rgb = getattr(skimage.data, name)()
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    return cv2.resize(cv2.cvtColor(rgb[..., :3], cv2.COLOR_RGB2BGR), size, interpolation=cv2.INTER_AREA)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0, fourcc: str = "mp4v") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def shots_video(
    path: Path, sources: list[str], seconds_each: float = 2.0, fps: float = 30.0, size: tuple[int, int] = (320, 180)
) -> Path:
    """Hard cuts between still photographs."""
    frames = []
    for source in sources:
        image = photo(source, size)
        frames += [image] * int(round(seconds_each * fps))
    return write_video(path, frames, fps)


def write_vfr_video(path: Path, times: list[float], size: tuple[int, int] = (160, 120)) -> Path:
    """A variable-frame-rate MPEG-4 file whose frames sit at the given presentation times (PyAV)."""
    import av

    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), (i * 23) % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# -- sound ----------------------------------------------------------------------------------------------

SPEECH_RATE = 16_000  # Hz: the rate the generators below work at (the ASR's)


def espeak_wav(path: Path, text: str, *, words_per_minute: int = 150) -> Path:
    """`text` spoken by espeak-ng (the Debian package), as a WAV file."""
    import subprocess

    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-s", str(words_per_minute), "-w", str(path), text], check=True, capture_output=True)
    return path


def read_samples(path: Path, rate: int = SPEECH_RATE) -> np.ndarray:
    """A sound file's first audio stream as mono float32 at `rate` (PyAV)."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32)


def speech_samples(text: str, work_dir: Path, rate: int = SPEECH_RATE) -> np.ndarray:
    """`text` spoken by espeak-ng, as mono float32 samples at `rate`."""
    import zlib

    name = "".join(c if c.isalnum() else "_" for c in text)[:40]
    return read_samples(espeak_wav(work_dir / f"{name}-{zlib.crc32(text.encode()):08x}.wav", text), rate)


def speech_onset(samples: np.ndarray, rate: int = SPEECH_RATE, threshold: float = 0.02) -> float:
    """Seconds to the first sample louder than `threshold` (espeak-ng starts with a few ms of silence)."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    return float(loud[0]) / rate if len(loud) else 0.0


def compose_speech(
    pieces: list[tuple[float, str]], work_dir: Path, *, total_s: float | None = None, rate: int = SPEECH_RATE
) -> tuple[np.ndarray, list[float]]:
    """Sentences placed at known offsets in silence: `pieces` = [(offset_s, text), ...] in order. Returns
    the samples and each sentence's speech onset in seconds (offset + espeak-ng's leading silence)."""
    placed, onsets, end = [], [], 0
    for offset, text in pieces:
        speech = speech_samples(text, work_dir, rate)
        at = int(round(offset * rate))
        assert at >= end, f"{text!r} at {offset}s overlaps the sentence before it"
        placed.append((at, speech))
        onsets.append(at / rate + speech_onset(speech, rate))
        end = at + len(speech)
    total = max(end, int(round((total_s or 0) * rate)))
    samples = np.zeros(total, np.float32)
    for at, speech in placed:
        samples[at : at + len(speech)] = speech
    return samples, onsets


def write_wav(path: Path, samples: np.ndarray, rate: int = SPEECH_RATE) -> Path:
    """Mono float samples as a 16-bit PCM WAV file (the standard library's wave module)."""
    import wave

    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def _encode_audio(container, stream, samples: np.ndarray, rate: int, corrupt: float, rng) -> None:
    """Encode and mux mono float samples; a share `corrupt` (0..1) of the packets gets a garbage payload."""
    import av

    frame_size = stream.codec_context.frame_size or 1024
    pcm = np.clip(samples, -1.0, 1.0).astype(np.float32)
    fmt = stream.codec_context.format.name
    channels = stream.codec_context.channels
    chunks = [pcm[start : start + frame_size] for start in range(0, len(pcm), frame_size)]
    for index, chunk in enumerate(chunks):
        if fmt in ("s16", "s16p"):
            data = (chunk * 32767).astype(np.int16)
        elif fmt in ("s32", "s32p"):
            data = (chunk * 2147483647).astype(np.int32)
        else:
            data = chunk
        data = np.repeat(data[None, :], channels, axis=0) if fmt.endswith("p") else np.repeat(data, channels)[None]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=stream.layout.name)
        frame.sample_rate, frame.pts = rate, index * frame_size
        frame.time_base = fractions.Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(_garbled(packet, stream, rng) if rng.random() < corrupt else packet)
    for packet in stream.encode(None):
        container.mux(_garbled(packet, stream, rng) if rng.random() < corrupt else packet)


def _garbled(packet, stream, rng):
    """The packet with its payload replaced by random bytes (same size and times): a corrupt audio stream
    inside an intact container."""
    import av

    if packet.size == 0:
        return packet
    garbage = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
    garbage.pts, garbage.dts, garbage.duration = packet.pts, packet.dts, packet.duration
    garbage.time_base, garbage.stream = packet.time_base, stream
    return garbage


# FFmpeg's own Vorbis encoder is 'experimental' (refused by default): Ogg files get Opus
_AUDIO_CODECS = {".flac": "flac", ".ogg": "libopus", ".oga": "libopus", ".opus": "libopus", ".m4a": "aac"}
_AUDIO_FORMATS = {"flac": "s16", "libopus": "flt", "aac": "fltp"}
_ENCODE_RATES = {"libopus": 48_000, "aac": 44_100}  # rates the encoders accept


def write_audio(path: Path, samples: np.ndarray, rate: int = SPEECH_RATE, *, corrupt: float = 0.0) -> Path:
    """Mono float samples as an audio-only file, the codec chosen by the suffix (.wav .flac .ogg .opus
    .m4a), with PyAV. `corrupt`: the share of packets whose payload is replaced by random bytes (1: all)."""
    import av

    if path.suffix.lower() == ".wav" and not corrupt:
        return write_wav(path, samples, rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = _AUDIO_CODECS.get(path.suffix.lower(), "pcm_s16le")
    samples, rate = _at_rate(samples, rate, _ENCODE_RATES.get(codec, rate))
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        stream.codec_context.format = _AUDIO_FORMATS.get(codec, "s16")
        _encode_audio(container, stream, samples, rate, corrupt, rng)
    return path


def _at_rate(samples: np.ndarray, rate: int, wanted: int) -> tuple[np.ndarray, int]:
    if rate == wanted:
        return samples, rate
    times = np.arange(int(len(samples) * wanted / rate)) / wanted
    return np.interp(times, np.arange(len(samples)) / rate, samples).astype(np.float32), wanted


def write_video_with_audio(
    path: Path,
    samples: np.ndarray | None,
    rate: int = SPEECH_RATE,
    *,
    seconds: float | None = None,
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    corrupt_audio: float = 0.0,
    subtitles: Path | None = None,
    subtitle_language: str | None = None,
    pictures=None,
) -> Path:
    """A video (grey frames that brighten over time, MPEG-4 Part 2) with `samples` as its AAC audio track,
    in the container the suffix names (.mp4, .mkv, .mov). `samples` None: no audio stream. `corrupt_audio`:
    the share of audio packets whose payload is replaced by random bytes (1: all). `subtitles`: an
    .srt file muxed in as a subtitle stream (copied, not re-encoded; .mkv), tagged `subtitle_language`."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    if seconds is None:
        seconds = len(samples) / rate if samples is not None else 2.0
    if pictures is not None:
        height, width = pictures(0.0).shape[:2]
        size = (width - width % 2, height - height % 2)
    width, height = size
    frames = max(int(round(seconds * fps)), 1)
    source = av.open(str(subtitles)) if subtitles is not None else None
    try:
        with av.open(str(path), "w") as container:
            video = container.add_stream("mpeg4", rate=fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            if pictures is not None:
                video.bit_rate = 4_000_000  # text stays legible (the encoder's default blurs small glyphs)
            audio = None
            if samples is not None:
                audio = container.add_stream("aac", rate=44_100, layout="mono")
            text = None
            if source is not None:
                text = container.add_stream_from_template(source.streams.subtitles[0])
                if subtitle_language:
                    text.metadata["language"] = subtitle_language
            for i in range(frames):
                if pictures is not None:
                    rgb = np.ascontiguousarray(pictures(i / fps)[:height, :width, ::-1])
                else:
                    level = int(40 + 180 * i / max(frames - 1, 1))
                    rgb = np.full((height, width, 3), level, np.uint8)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                for packet in video.encode(frame):
                    container.mux(packet)
            for packet in video.encode(None):
                container.mux(packet)
            if audio is not None:
                resampled, audio_rate = _at_rate(samples, rate, 44_100)
                _encode_audio(container, audio, resampled, audio_rate, corrupt_audio, np.random.default_rng(7))
            if text is not None:
                for packet in source.demux(source.streams.subtitles[0]):
                    if packet.dts is None:
                        continue
                    packet.stream = text
                    container.mux(packet)
    finally:
        if source is not None:
            source.close()
    return path


# -- text on screen -------------------------------------------------------------------------------------


def render_slide(
    title: str,
    bullets: list[str],
    *,
    size: tuple[int, int] = (1280, 720),
    thumbnail: int = 512,
    title_px: int = 56,
    bullet_px: int = 36,
    dark: bool = False,
) -> np.ndarray:
    """A presentation slide (a title and bullet lines) drawn with Pillow's bundled font at `size` (width,
    height), as BGR scaled like the frames stage's thumbnails (longest side `thumbnail`, area averaging)."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    scale = width / 1280  # the font sizes are for a 1280-px-wide slide
    background, ink = ((20, 24, 40), (240, 240, 240)) if dark else ((250, 250, 245), (30, 30, 30))
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    draw.text(
        (int(width * 0.06), int(height * 0.08)),
        title,
        font=ImageFont.load_default(size=round(title_px * scale)),
        fill=ink,
    )
    y = int(height * 0.08 + 2.2 * title_px * scale)
    font = ImageFont.load_default(size=round(bullet_px * scale))
    for bullet in bullets:
        draw.text((int(width * 0.085), y), "\u2022 " + bullet, font=font, fill=ink)
        y += int(2 * bullet_px * scale)
    bgr = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
    factor = thumbnail / max(width, height)
    if factor >= 1:
        return bgr
    return cv2.resize(bgr, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)
