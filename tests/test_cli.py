"""The `media-assets` command line: demo, ingest, search, sql, status, and one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from mediagen import shots_video

from media_assets.apps.cli import main
from media_assets.defs.instance import instance_for
from media_assets.defs.partitions import media_files
from media_assets.store import catalog
from media_assets.warehouse import Warehouse


def cli(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def test_demo_builds_a_warehouse_the_dagster_instance_knows(demo_warehouse):
    root, output = demo_warehouse
    assert "ingested 10 files, 0 failed" in output
    assert "frame_vectors" in output and "ingest_errors         0" in output
    warehouse = Warehouse.at(root)
    truth = json.loads((warehouse.media_root / "ground_truth.json").read_text())
    assert len(truth["videos"]) >= 3 and len(truth["images"]) >= 4
    instance = instance_for(warehouse)
    partitions = set(instance.get_dynamic_partitions(media_files.name))
    assert len(partitions) == 10 and "clips/newsroom.mp4" in partitions
    runs = instance.get_runs()
    assert all(r.is_success for r in runs)
    assert sorted(r.job_name for r in runs) == ["cluster_library", "index_frames"] + ["ingest_media"] * 10
    assert "HNSW index: updated" in output and "recall@10 1.000" in output
    assert "scene clusters" in output and "noise bucket:" in output
    assert (root / "catalog.duckdb").exists()


def test_demo_shots_match_the_ground_truth(demo_warehouse):
    root, _ = demo_warehouse
    warehouse = Warehouse.at(root)
    truth = json.loads((warehouse.media_root / "ground_truth.json").read_text())
    tolerance = 0.25 + 1e-6  # ±1 sampled frame at the demo's 4 frames/s
    found = missed = extra = 0
    kinds = []  # (true transition, detected transition) of each boundary found
    for video in truth["videos"]:
        expected = video["boundaries"]
        rows = catalog.query(
            warehouse,
            "SELECT s.start_s, s.transition FROM shots s JOIN media m USING (media_id) "
            "WHERE m.partition_key = ? AND s.shot_index > 0 ORDER BY 1",
            [video["file"]],
        ).to_pylist()
        for boundary in expected:
            near = [r for r in rows if abs(boundary["time"] - r["start_s"]) <= tolerance]
            if near:
                found += 1
                kinds.append((boundary["type"], near[0]["transition"]))
            else:
                missed += 1
        extra += sum(1 for r in rows if not any(abs(b["time"] - r["start_s"]) <= tolerance for b in expected))
    assert found >= 1 and missed == 0 and extra == 0, (found, missed, extra)
    # and each is the kind of transition it is: a cut, a fade through black, a dissolve
    assert {"cut", "fade", "dissolve"} <= {true for true, _ in kinds}
    assert all(true == detected for true, detected in kinds), repr(kinds)
    # each photo is one static shot with its one keyframe
    photos = catalog.query(
        warehouse,
        "SELECT count(*) AS n FROM shots JOIN media USING (media_id) "
        "WHERE media.kind = 'image' AND shots.kind = 'static'",
    ).to_pylist()[0]["n"]
    assert photos == len(truth["images"])
    clusters = cli("clusters", "list", "--warehouse", root)
    assert clusters.exit_code == 0 and "noise bucket:" in clusters.output


def test_ingest_again_finds_everything_up_to_date(demo_warehouse, tiny_clip):
    root, _ = demo_warehouse
    result = cli("ingest", "--warehouse", root, "--clip-model", tiny_clip)
    assert result.exit_code == 0, result.output
    assert "0 to ingest, 10 up to date" in result.output and "HNSW index: up to date" in result.output
    assert "clusters: up to date" in result.output


def test_search_prints_a_table_or_json(demo_warehouse):
    root, _ = demo_warehouse
    table = cli("search", "--warehouse", root, "a cat on a sofa", "-k", 3)
    assert table.exit_code == 0, table.output
    assert "similarity" in table.output and len(table.output.strip().splitlines()) == 4
    lines = cli("search", "--warehouse", root, "a cat on a sofa", "-k", 3, "--json").output.strip().splitlines()
    hits = [json.loads(line) for line in lines]
    assert len(hits) == 3 and all(0 <= h["similarity"] <= 1 for h in hits)
    image = cli("search", "--warehouse", root, "--image", hits[0]["thumbnail_path"], "-k", 1, "--json")
    assert json.loads(image.output)["similarity"] == pytest.approx(1.0, abs=1e-3)
    similar = cli("search", "--warehouse", root, "--similar-to", hits[0]["frame_id"], "-k", 2, "--json")
    assert similar.exit_code == 0 and len(similar.output.strip().splitlines()) == 2


def test_sql_reaches_the_catalog_and_the_vectors(demo_warehouse):
    root, _ = demo_warehouse
    result = cli("sql", "--warehouse", root, "SELECT kind, count(*) AS n FROM media GROUP BY kind ORDER BY kind")
    assert result.exit_code == 0, result.output
    assert "image" in result.output and "video" in result.output
    joined = cli(
        "sql",
        "--warehouse",
        root,
        "--csv",
        "SELECT count(*) AS n FROM frames f JOIN frame_vectors v USING (frame_id) WHERE NOT f.is_duplicate",
    )
    kept = cli("sql", "--warehouse", root, "--csv", "SELECT count(*) FROM frames WHERE NOT is_duplicate")
    assert joined.output.splitlines()[1] == kept.output.splitlines()[1] != "0"


def test_status_lists_failed_files(tmp_path, tiny_clip):
    media = tmp_path / "my-media"
    shots_video(media / "ok.mp4", ["astronaut"], seconds_each=1.0)
    (media / "bad.webm").write_bytes(b"nope")
    root = tmp_path / "wh"
    result = cli("ingest", "--warehouse", root, "--media", media, "--clip-model", tiny_clip)
    assert result.exit_code == 1
    assert "failed: bad.webm" in result.output and "ingested 1 files, 1 failed" in result.output
    status = cli("status", "--warehouse", root)
    assert status.exit_code == 0 and "failed: bad.webm [frames] not a readable video" in status.output
    # the media root is remembered for later commands and for the Dagster code location
    assert Warehouse.at(root).media_root == media.resolve()


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "   "], "the text query is empty"),
        (["search", "cat", "-k", "0"], "k must be between 1 and 1000"),
        (["search", "cat", "--image", "x.jpg"], "exactly one of"),
        (["sql", "SELEC 1"], "syntax error"),
        (["search", "--similar-to", "42"], "unknown frame id 42"),
    ],
)
def test_errors_are_one_line(demo_warehouse, args, message):
    root, _ = demo_warehouse
    result = cli(*args[:1], "--warehouse", root, *args[1:])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and message in result.output
    assert "Traceback" not in result.output


def test_a_missing_warehouse_is_an_error(tmp_path):
    result = cli("status", "--warehouse", tmp_path / "nowhere")
    assert result.exit_code == 1 and "no warehouse at" in result.output


def test_make_test_model_writes_a_loadable_checkpoint(tmp_path):
    result = cli("make-test-model", tmp_path / "m", "--size", "tiny")
    assert result.exit_code == 0 and "MEDIA_ASSETS_CLIP_MODEL" in result.output
    from media_assets.models.clip import ClipEncoder

    assert ClipEncoder.load(str(tmp_path / "m"), device="cpu").dim == 32
