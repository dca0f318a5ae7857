"""The warehouse hears and reads, through Dagster: a generated talk (espeak-ng speech over rendered slides)
goes through the real ingest job — transcripts with real Whisper tiny.en, screen text with RapidOCR, text
vectors with the real all-MiniLM-L6-v2 — and the fused search finds what was said, what was shown, and both.
Also: a silent video, a video with no audio stream, an audio file, a sidecar subtitle file, and a corrupt
audio stream that fails only its own asset."""

from __future__ import annotations

import pytest
from dagster import DagsterEventType
from mediagen import compose_speech, render_slide, write_audio, write_video_with_audio

from media_assets.definitions import build_definitions
from media_assets.defs.instance import instance_for
from media_assets.defs.partitions import media_files
from media_assets.ids import media_id_for
from media_assets.search.client import SearchClient
from media_assets.store import catalog
from media_assets.store.text_vectors import TextVectorStore
from media_assets.store.vectors import VectorStore

SLIDE_S = 10.0  # each slide is shown this long; the talk has two
SAID_FIRST = "The drilling rig stands on the north field."
SAID_SECOND = "Our harvest of apples doubled this autumn."
SHOWN_FIRST = ("Safety briefing", ["Helmets at all times", "Report every incident"])
SHOWN_SECOND = ("Orchard results", ["Apples up by half", "Pears unchanged"])


def talk(path, work_dir):
    """Two slides, 10 s each; a sentence said at 1 s (first slide) and at 12 s (second slide)."""
    samples, onsets = compose_speech([(1.0, SAID_FIRST), (12.0, SAID_SECOND)], work_dir, total_s=2 * SLIDE_S)
    slides = [render_slide(*shown, title_px=84, bullet_px=56) for shown in (SHOWN_FIRST, SHOWN_SECOND)]
    write_video_with_audio(
        path, samples, seconds=2 * SLIDE_S, fps=5, pictures=lambda t: slides[min(int(t // SLIDE_S), 1)]
    )
    return onsets


def check_results(result) -> dict[str, object]:
    return {
        e.event_specific_data.asset_check_key.name: e.event_specific_data
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    }


def metadata(result, asset: str) -> dict:
    for e in result.all_events:
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = e.event_specific_data.materialization
            if materialization.asset_key.path[-1] == asset:
                return {k: v.value for k, v in materialization.metadata.items()}
    raise AssertionError(f"no materialization of {asset}")


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_clip):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("text") / "warehouse"
    work = tmp_path_factory.mktemp("speech")
    mp.setenv("MEDIA_ASSETS_WAREHOUSE", str(root))
    mp.setenv("MEDIA_ASSETS_CLIP_MODEL", str(tiny_clip))
    from media_assets.warehouse import Warehouse

    warehouse = Warehouse.at(root).ensure()
    media = warehouse.media_root
    onsets = talk(media / "talk.mp4", work)
    silence, _ = compose_speech([], work, total_s=3.0)
    write_video_with_audio(media / "silent.mp4", silence, seconds=3.0)
    write_video_with_audio(media / "mute.mp4", None, seconds=3.0)
    speech, _ = compose_speech([(0.5, "Welcome to the lighthouse podcast.")], work, total_s=4.0)
    write_audio(media / "podcast.flac", speech)
    write_video_with_audio(media / "subtitled.mp4", None, seconds=4.0)
    (media / "subtitled.srt").write_text("1\n00:00:00,500 --> 00:00:02,500\nThe glacier is melting fast.\n")
    write_video_with_audio(media / "broken.mp4", speech, seconds=4.0, corrupt_audio=1.0)
    keys = ["talk.mp4", "silent.mp4", "mute.mp4", "podcast.flac", "subtitled.mp4", "broken.mp4"]
    instance = instance_for(warehouse)
    instance.add_dynamic_partitions(media_files.name, keys)
    defs = build_definitions(str(root), clip_model=str(tiny_clip))
    config = {"ops": {"frames": {"config": {"sample_fps": 2.0}}}}
    runs = {
        key: defs.resolve_job_def("ingest_media").execute_in_process(
            partition_key=key, instance=instance, run_config=config, raise_on_error=False
        )
        for key in keys
    }
    yield warehouse, runs, onsets
    mp.undo()


def segments_of(warehouse, key):
    return catalog.query(
        warehouse, "SELECT * FROM transcript_segments WHERE media_id = ? ORDER BY start_s", [media_id_for(key)]
    ).to_pylist()


def test_the_talk_is_transcribed_with_its_words_at_the_right_times(library):
    warehouse, runs, onsets = library
    assert runs["talk.mp4"].success
    meta = metadata(runs["talk.mp4"], "transcripts")
    assert meta["segments"] >= 2 and meta["language"] == "en" and meta["source"] == "asr"
    assert meta["x_realtime"] > 1 and "drilling" in meta["excerpt"].lower()
    words = catalog.query(
        warehouse,
        "SELECT word, start_s FROM transcript_words WHERE media_id = ? ORDER BY start_s",
        [media_id_for("talk.mp4")],
    ).to_pylist()
    first = {w["word"].strip(" .,").lower(): w["start_s"] for w in words}
    assert first["drilling"] == pytest.approx(onsets[0] + 0.3, abs=0.5)  # "The drilling": the second word
    assert first["harvest"] == pytest.approx(onsets[1] + 0.55, abs=0.5)  # "Our harvest"
    checks = check_results(runs["talk.mp4"])
    assert checks["segments_inside_the_file_and_apart"].passed
    assert checks["every_text_row_has_a_vector"].passed


def test_the_slides_are_read_once_each_with_their_time_spans(library):
    warehouse, runs, _ = library
    meta = metadata(runs["talk.mp4"], "screen_text")
    assert meta["frames_read"] >= 2 and meta["lines"] >= 4
    rows = catalog.query(
        warehouse,
        "SELECT text, start_s, end_s FROM screen_text WHERE media_id = ? ORDER BY start_s, text",
        [media_id_for("talk.mp4")],
    ).to_pylist()
    texts = {r["text"].lower(): r for r in rows}
    assert "safety briefing" in texts and "orchard results" in texts
    assert texts["safety briefing"]["end_s"] <= SLIDE_S + 0.6 and texts["orchard results"]["start_s"] >= SLIDE_S - 0.6
    assert sum(t == "safety briefing" for t in texts) == 1  # one row for the slide held 10 s
    assert "![frames with their text]" in meta["contact_sheet"]


def test_text_vectors_hold_the_transcript_and_the_screen_text(library):
    warehouse, runs, _ = library
    meta = metadata(runs["talk.mp4"], "text_vectors")
    assert meta["transcript_rows"] >= 1 and meta["screen_text_rows"] >= 2 and meta["dim"] == 384
    rows = TextVectorStore(warehouse).dataset().to_table(filter=f"media_id = {media_id_for('talk.mp4')}").to_pylist()
    assert {r["kind"] for r in rows} == {"transcript", "screen_text", "summary"}  # summary: the chapters' rows


def test_search_finds_what_was_said_what_was_shown_and_where(library):
    warehouse, _, onsets = library
    client = SearchClient(warehouse)
    said = client.search("drilling rig", mode="speech", k=3)
    assert said[0].partition_key == "talk.mp4" and said[0].start_s <= onsets[0] + 1 <= said[0].end_s + 1
    assert "**drilling**" in said[0].why[0].marked.lower()
    shown = client.search("safety briefing", mode="screen_text", k=3)
    assert shown[0].partition_key == "talk.mp4" and shown[0].start_s < SLIDE_S
    balanced = client.search("orchard results", mode="balanced", k=3)  # shown, and apples are said too
    best = balanced[0]
    assert best.partition_key == "talk.mp4" and {"screen_text", "keyword"} <= set(best.modalities)
    assert best.why[0].modality in ("screen_text", "keyword") and best.why[0].start_s >= SLIDE_S - 1
    assert best.start_s <= best.why[0].start_s <= best.end_s
    podcast = client.search("lighthouse", mode="keyword", k=3)
    assert podcast[0].partition_key == "podcast.flac" and podcast[0].thumbnail_path is None
    inside = client.search_in(media_id_for("talk.mp4"), "apples", mode="speech", k=3)
    assert inside and all(m.partition_key == "talk.mp4" for m in inside)


def test_silence_and_no_audio_stream_give_no_transcript_and_succeed(library):
    warehouse, runs, _ = library
    for key in ("silent.mp4", "mute.mp4"):
        assert runs[key].success, key
        assert segments_of(warehouse, key) == []
        assert metadata(runs[key], "transcripts")["reason"]


def test_an_audio_file_is_media_with_a_transcript_and_no_frames(library):
    warehouse, runs, _ = library
    assert runs["podcast.flac"].success
    media = catalog.query(warehouse, "SELECT * FROM media WHERE partition_key = 'podcast.flac'").to_pylist()[0]
    assert media["kind"] == "audio" and media["frames_sampled"] == 0
    assert "lighthouse" in " ".join(s["text"] for s in segments_of(warehouse, "podcast.flac")).lower()


def test_a_sidecar_subtitle_file_is_the_transcript(library):
    warehouse, runs, _ = library
    assert runs["subtitled.mp4"].success
    segments = segments_of(warehouse, "subtitled.mp4")
    assert [s["text"] for s in segments] == ["The glacier is melting fast."]
    assert segments[0]["source"] == "subtitles:subtitled.srt" and segments[0]["start_s"] == pytest.approx(0.5)


def test_a_corrupt_audio_stream_fails_only_the_transcript(library):
    warehouse, runs, _ = library
    run = runs["broken.mp4"]
    assert not run.success
    failed = {e.step_key for e in run.all_events if e.event_type == DagsterEventType.STEP_FAILURE}
    assert failed == {"transcripts"}
    media_id = media_id_for("broken.mp4")
    assert VectorStore(warehouse).dataset().count_rows(f"media_id = {media_id}") > 0  # frames and vectors stay
    error = catalog.query(warehouse, "SELECT * FROM ingest_errors WHERE media_id = ?", [media_id]).to_pylist()
    assert error and error[0]["stage"] == "transcripts" and "broken.mp4" in error[0]["path"]
    assert segments_of(warehouse, "broken.mp4") == []


def test_the_transcript_exports_through_the_api_and_the_cli(library):
    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from media_assets.apps.cli import main
    from media_assets.apps.server import create_app

    warehouse, _, _ = library
    media_id = media_id_for("talk.mp4")
    with TestClient(create_app(warehouse)) as http:
        body = http.get(f"/transcript/{media_id}").json()
        assert body["source"] == "asr" and "drilling" in body["segments"][0]["text"].lower()
        assert body["segments"][0]["words"][1]["word"].strip().lower() == "drilling"
        vtt = http.get(f"/transcript/{media_id}", params={"format": "vtt"})
        assert vtt.headers["content-type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT")
        assert http.get("/transcript/12345").status_code == 404
        assert http.get(f"/transcript/{media_id}", params={"format": "doc"}).status_code == 422
        fused = http.get("/search", params={"q": "drilling rig", "mode": "speech", "k": 3}).json()
        assert fused["results"][0]["partition_key"] == "talk.mp4" and "drilling" in fused["results"][0]["matched_words"]
        audio = http.get(f"/video/{media_id_for('podcast.flac')}")
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/flac"
    runner = CliRunner()
    srt = runner.invoke(main, ["transcript", "talk.mp4", "--format", "srt", "--warehouse", str(warehouse.root)])
    assert srt.exit_code == 0 and srt.output.startswith("1\n00:00:0") and "-->" in srt.output
    missing = runner.invoke(main, ["transcript", "nothere.mp4", "--warehouse", str(warehouse.root)])
    assert missing.exit_code == 1 and "error: nothere.mp4: not in the warehouse" in missing.output
    found = runner.invoke(main, ["search", "lighthouse", "--mode", "keyword", "--warehouse", str(warehouse.root)])
    assert found.exit_code == 0 and "podcast.flac" in found.output and "**Lighthouse**" in found.output
