"""Chapters through Dagster: a generated two-topic lecture (espeak-ng speech over two slides) goes through the
real ingest job — Whisper tiny.en, RapidOCR, all-MiniLM-L6-v2 — and gets a chapter boundary where the topic
changes, titled by the slides' headings; a silent montage of photographs gets groups of shots with an honest
description; the tiny causal LM rewrites summaries within its budget and, over it, leaves the extract and says
so; the exports (WebVTT chapters, YouTube lines, JSON) and the search over summaries work on what was made."""

from __future__ import annotations

import json

import pytest
import webvtt
from dagster import DagsterEventType, materialize
from mediagen import compose_speech, render_slide, shots_video, speech_samples, write_video_with_audio

from media_assets.definitions import build_definitions
from media_assets.defs.instance import instance_for
from media_assets.defs.partitions import media_files
from media_assets.demo.random_llm import write_random_causal_lm
from media_assets.ids import media_id_for
from media_assets.media.subtitles import to_youtube_chapters
from media_assets.search.client import SearchClient
from media_assets.store.chapters import chapters_as, read_chapters
from media_assets.store.text_vectors import TextVectorStore

DRILLING = [
    "The drilling rig stands on the north field.",
    "Each drill pipe is nine metres long and made of steel.",
    "The crew changes the drill bit when the rock gets harder.",
    "Mud is pumped down the pipe to cool the drill bit.",
    "The mud also carries the crushed rock back to the surface.",
    "A blowout preventer closes the well if the pressure rises.",
    "Drilling the well to full depth takes about three weeks.",
]
ORCHARD = [
    "Our apple orchard has four hundred trees.",
    "The trees are pruned every winter to let the light in.",
    "Bees from two hives pollinate the blossoms in spring.",
    "The apples are picked by hand in September.",
    "Bruised apples are pressed into cider the same day.",
    "The best apples are stored in a cold barn until March.",
    "This year the harvest of apples doubled.",
]
SLIDES = (("Drilling rigs", ["Pipes and bits", "Mud and pressure"]), ("Apple orchards", ["Pruning", "Harvest"]))
GAP_S, TOPIC_GAP_S = 0.8, 1.6  # between sentences; before the second topic (a pause, not a long silence)


def lecture(path, work):
    """Topic one then topic two, each sentence said once, the slide changing as topic two starts: the true
    boundary (s)."""
    pieces, at = [], 0.5
    for topic, sentences in enumerate((DRILLING, ORCHARD)):
        if topic:
            at += TOPIC_GAP_S - GAP_S
            boundary = at
        for sentence in sentences:
            pieces.append((at, sentence))
            at += len(speech_samples(sentence, work)) / 16_000 + GAP_S
    samples, _ = compose_speech(pieces, work, total_s=at + 1.0)
    slides = [render_slide(title, bullets, title_px=84, bullet_px=56) for title, bullets in SLIDES]
    write_video_with_audio(
        path, samples, seconds=at + 1.0, fps=2, pictures=lambda t: slides[0 if t < boundary - 0.5 else 1]
    )
    return boundary


def events(result, kind):
    return [e for e in result.all_events if e.event_type == kind]


def metadata(result, asset: str) -> dict:
    for e in events(result, DagsterEventType.ASSET_MATERIALIZATION):
        materialization = e.event_specific_data.materialization
        if materialization.asset_key.path[-1] == asset:
            return {k: v.value for k, v in materialization.metadata.items()}
    raise AssertionError(f"no materialization of {asset}")


def check(result, name: str):
    for e in events(result, DagsterEventType.ASSET_CHECK_EVALUATION):
        if e.event_specific_data.asset_check_key.name == name:
            return e.event_specific_data
    raise AssertionError(f"no evaluation of {name}")


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_clip):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("chapters") / "warehouse"
    work = tmp_path_factory.mktemp("speech")
    mp.setenv("MEDIA_ASSETS_WAREHOUSE", str(root))
    mp.setenv("MEDIA_ASSETS_CLIP_MODEL", str(tiny_clip))
    from media_assets.warehouse import Warehouse

    warehouse = Warehouse.at(root).ensure()
    boundary = lecture(warehouse.media_root / "lecture.mp4", work)
    shots_video(warehouse.media_root / "montage.mp4", ["astronaut", "coffee", "chelsea", "rocket"], 6.0, fps=10)
    instance = instance_for(warehouse)
    instance.add_dynamic_partitions(media_files.name, ["lecture.mp4", "montage.mp4"])
    defs = build_definitions(str(root), clip_model=str(tiny_clip))
    job = defs.resolve_job_def("ingest_media")
    runs = {
        "lecture.mp4": job.execute_in_process(
            partition_key="lecture.mp4",
            instance=instance,
            run_config={"ops": {"frames": {"config": {"sample_fps": 1}}}},
        ),
        "montage.mp4": job.execute_in_process(
            partition_key="montage.mp4",
            instance=instance,
            run_config={
                "ops": {
                    "frames": {"config": {"sample_fps": 2}},
                    "chapters": {"config": {"min_chapter_s": 8, "max_chapter_s": 14}},
                }
            },
        ),
    }
    yield warehouse, defs, instance, runs, boundary
    mp.undo()


def chapters_of(warehouse, key):
    return read_chapters(warehouse, media_id_for(key)).chapters


def test_the_lecture_is_cut_where_the_topic_changes_and_titled_by_its_slides(library):
    warehouse, _, _, runs, boundary = library
    assert runs["lecture.mp4"].success
    chapters = chapters_of(warehouse, "lecture.mp4")
    starts = [c["start_s"] for c in chapters[1:]]
    assert any(abs(s - boundary) <= 10 for s in starts), (starts, boundary)
    assert len(chapters) <= 3  # one topic change: at most one boundary besides it
    first = next(c for c in chapters if c["start_s"] <= 5)
    second = next(c for c in chapters if c["start_s"] <= boundary + 15 < c["end_s"])
    assert first["title"].lower() == "drilling rigs" and second["title"].lower() == "apple orchards"
    assert first["method"] == second["method"] == "extractive"
    assert "drill" in first["summary"].lower() and "apple" in second["summary"].lower()
    assert "apple" not in first["summary"].lower() and "drill" not in second["summary"].lower()
    assert check(runs["lecture.mp4"], "chapters_tile_the_file").passed

    meta = metadata(runs["lecture.mp4"], "chapters")
    assert meta["chapters"] == len(chapters) and meta["methods"] == {"extractive": len(chapters)}
    assert "Apple orchards" in meta["table_of_contents"] and meta["sentences_read"] >= 12
    assert meta["model_id"].endswith("all-MiniLM-L6-v2") and meta["llm_model_id"] == ""
    toc = read_chapters(warehouse, media_id_for("lecture.mp4"))
    assert toc.summary and toc.summary_method == "extractive"

    media_filter = f"kind = 'summary' AND media_id = {media_id_for('lecture.mp4')}"
    rows = TextVectorStore(warehouse).dataset().to_table(filter=media_filter).to_pylist()
    assert sorted(r["item_id"] for r in rows) == [c["chapter_id"] for c in chapters]


def test_a_silent_montage_gets_groups_of_shots_described_honestly(library):
    warehouse, _, _, runs, _ = library
    assert runs["montage.mp4"].success
    chapters = chapters_of(warehouse, "montage.mp4")
    assert 2 <= len(chapters) <= 3  # 24 s of four 6-s shots, chapters of 8-14 s
    shot_starts = {6.0, 12.0, 18.0}
    for chapter in chapters[1:]:
        assert min(abs(chapter["start_s"] - s) for s in shot_starts) <= 0.6  # cut at a shot, not mid-shot
        assert "shots" in chapter["sources"]
    for chapter in chapters:
        assert chapter["method"] == "visual" and "shot" in chapter["summary"]
        assert chapter["title"].startswith("Shot")
    assert check(runs["montage.mp4"], "chapters_tile_the_file").passed


def test_exports_parse_where_people_use_chapters(library, tmp_path):
    warehouse = library[0]
    media_id = media_id_for("lecture.mp4")
    chapters = chapters_of(warehouse, "lecture.mp4")
    track = tmp_path / "chapters.vtt"
    track.write_text(chapters_as(warehouse, media_id, "vtt"), encoding="utf-8")
    cues = webvtt.read(str(track))  # an independent WebVTT parser
    assert [c.text for c in cues] == [c["title"] for c in chapters]
    assert cues[0].start == "00:00:00.000" and [c.identifier for c in cues][:2] == ["chapter-1", "chapter-2"]
    hours, minutes, seconds = cues[-1].end.split(":")
    assert int(hours) * 3600 + int(minutes) * 60 + float(seconds) == pytest.approx(chapters[-1]["end_s"], abs=0.001)

    lines = chapters_as(warehouse, media_id, "youtube").splitlines()
    assert lines[0].startswith("0:00 ") and len(lines) == len(chapters)
    document = json.loads(chapters_as(warehouse, media_id, "json"))
    assert document["media_id"] == media_id and [c["title"] for c in document["chapters"]] == [
        c["title"] for c in chapters
    ]
    assert to_youtube_chapters([{"start_s": 3725.0, "end_s": 3800.0, "title": "Late"}]) == "1:02:05 Late\n"


def test_summaries_are_searchable(library):
    warehouse = library[0]
    client = SearchClient(warehouse)
    hits = client.search_summaries("harvesting fruit trees", k=3)
    assert hits and hits[0].partition_key == "lecture.mp4" and "apple" in hits[0].title.lower()
    assert hits[0].why.cosine is not None and 0 < hits[0].similarity <= 1
    keyword = client.search_summaries("drill", k=3)
    assert "drill" in keyword[0].why.matched and keyword[0].index == 0
    assert "**" in keyword[0].why.marked
    assert client.search_summaries("drill", filters=None, k=3).to_arrow().num_rows == len(keyword)


def test_the_api_and_the_cli_serve_the_chapters(library, tmp_path):
    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from media_assets.apps.cli import main
    from media_assets.apps.server import create_app

    warehouse = library[0]
    media_id = media_id_for("lecture.mp4")
    chapters = chapters_of(warehouse, "lecture.mp4")
    with TestClient(create_app(warehouse)) as http:
        toc = http.get(f"/chapters/{media_id}").json()
        assert [c["title"] for c in toc["chapters"]] == [c["title"] for c in chapters] and toc["summary"]
        assert "path" not in toc and toc["video_url"] == f"/video/{media_id}"
        track = http.get(f"/chapters/{media_id}", params={"format": "vtt"})
        assert track.headers["content-type"].startswith("text/vtt") and track.text.startswith("WEBVTT")
        assert http.get(f"/chapters/{media_id}", params={"format": "youtube"}).text.startswith("0:00 ")
        assert http.get("/chapters/12345").status_code == 404
        assert http.get(f"/chapters/{media_id}", params={"format": "pdf"}).status_code == 422
        found = http.get("/summaries", params={"q": "apple harvest", "k": 2}).json()["results"]
        assert found[0]["title"].lower() == "apple orchards" and found[0]["thumbnail_url"].startswith("/frame/")
        assert "**apple" in found[0]["why"]["marked"].lower() and "media_path" not in found[0]
        assert http.get("/summaries", params={"q": ""}).status_code == 422

    root = str(warehouse.root)
    shown = CliRunner().invoke(main, ["chapters", "lecture.mp4", "--warehouse", root])
    assert shown.exit_code == 0, shown.output
    assert f"lecture.mp4: {len(chapters)} chapters" in shown.output and "Apple orchards  [extractive]" in shown.output
    out = tmp_path / "lecture.vtt"
    written = CliRunner().invoke(main, ["chapters", "lecture.mp4", "--format", "vtt", "-o", out, "--warehouse", root])
    assert written.exit_code == 0 and out.read_text(encoding="utf-8") == chapters_as(warehouse, media_id, "vtt")
    missing = CliRunner().invoke(main, ["chapters", "nothing.mp4", "--warehouse", root])
    assert missing.exit_code == 1 and missing.output.startswith("error:")


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    return write_random_causal_lm(tmp_path_factory.mktemp("llm") / "tiny-llm")


def rechapter(library, tiny_llm, budget_s: float):
    warehouse, _, instance, _, _ = library
    defs = build_definitions(str(warehouse.root), summary_model=str(tiny_llm), device="cpu")
    return materialize(
        [defs.resolve_assets_def("chapters")],
        partition_key="lecture.mp4",
        instance=instance,
        run_config={"ops": {"chapters": {"config": {"llm_budget_s": budget_s}}}},
    )


def test_the_summary_model_rewrites_within_its_budget_and_over_it_the_extract_stays(library, tiny_llm):
    warehouse = library[0]
    before = chapters_of(warehouse, "lecture.mp4")
    extract = {c["index"]: c["summary"] for c in before}

    over = rechapter(library, tiny_llm, 1e-4)
    assert over.success
    chapters = chapters_of(warehouse, "lecture.mp4")
    assert {c["method"] for c in chapters} == {"extractive (LLM over budget)"}
    assert {c["index"]: c["summary"] for c in chapters} == extract  # the extract, kept
    meta = metadata(over, "chapters")
    assert meta["llm_model_id"] == str(tiny_llm) and meta["llm_s"] > 0

    within = rechapter(library, tiny_llm, 60.0)
    assert within.success
    chapters = chapters_of(warehouse, "lecture.mp4")
    assert {c["method"] for c in chapters} == {"abstractive"}
    assert all(c["model_id"] == str(tiny_llm) and c["llm_s"] > 0 for c in chapters)
    assert [(c["start_s"], c["title"]) for c in chapters] == [(c["start_s"], c["title"]) for c in before]
