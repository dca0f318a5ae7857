"""The HNSW frame index through Dagster: build, incremental update, rebuild of a damaged file, the
blocking recall check, and the search client's use of it (with exact search as the fallback)."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from dagster import DagsterEventType
from mediagen import photo, shots_video

from media_assets import SearchClient
from media_assets.definitions import build_definitions
from media_assets.defs.instance import instance_for
from media_assets.defs.partitions import media_files
from media_assets.ids import media_id_for
from media_assets.media.discovery import scan_media
from media_assets.models.hnsw import HNSWIndex
from media_assets.stages.frames import purge_media
from media_assets.store.index_files import Manifest, index_path, manifest_path
from media_assets.store.vectors import VectorStore


def events(result, kind):
    return [e.event_specific_data for e in result.all_events if e.event_type == kind]


def index_metadata(result) -> dict:
    materialized = events(result, DagsterEventType.ASSET_MATERIALIZATION)
    return {k: v.value for k, v in materialized[0].materialization.metadata.items()}


def recall_check(result):
    (check,) = events(result, DagsterEventType.ASSET_CHECK_EVALUATION)
    return check


@pytest.fixture
def library(warehouse, tiny_clip):
    sources = ["astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field"]
    for i in range(3):
        shots_video(warehouse.media_root / f"v{i}.mp4", sources[i:] + sources[:i], seconds_each=1.0)
    cv2.imwrite(str(warehouse.media_root / "p.png"), photo("immunohistochemistry"))
    instance = instance_for(warehouse)
    keys = [m.partition_key for m in scan_media(warehouse.media_root)]
    instance.add_dynamic_partitions(media_files.name, keys)
    defs = build_definitions(str(warehouse.root), clip_model=str(tiny_clip))
    ingest = defs.resolve_job_def("ingest_media")
    for key in keys:
        assert ingest.execute_in_process(partition_key=key, instance=instance).success
    return warehouse, instance, defs


def test_index_builds_then_applies_only_what_changed(library, caplog):
    warehouse, instance, defs = library
    index_job = defs.resolve_job_def("index_frames")
    client = SearchClient(warehouse)
    with caplog.at_level(logging.WARNING, logger="media_assets.search"):
        exact = client.search_image(photo("coffee"), k=5)
    assert "no frame index yet" in caplog.text

    first = index_job.execute_in_process(instance=instance)
    assert first.success
    meta = index_metadata(first)
    n_vectors = VectorStore(warehouse).count()
    assert meta["mode"] == "built" and meta["live_nodes"] == n_vectors == meta["nodes"] and meta["media_added"] == 4
    check = recall_check(first)
    assert check.passed and check.metadata["recall"].value >= 0.95

    # the search client now goes through the index, and agrees with exact search
    client.index.check_interval_s = 0
    assert client.index.get()[1] == "current"
    via_index = client.search_image(photo("coffee"), k=5)
    # the same hits (recurring pictures are exact ties, which either search may order either way)
    assert [h.similarity for h in via_index] == pytest.approx([h.similarity for h in exact], abs=1e-5)
    assert via_index[0].frame_id == exact[0].frame_id or via_index[0].similarity == pytest.approx(
        exact[1].similarity, abs=1e-5
    )

    # one partition re-materialized with other settings: only it is replaced in the index
    rerun = defs.resolve_job_def("ingest_media").execute_in_process(
        partition_key="v1.mp4", instance=instance, run_config={"ops": {"frames": {"config": {"sample_fps": 3.0}}}}
    )
    assert rerun.success
    assert "stale" in client.index.get()[1]
    second = index_job.execute_in_process(instance=instance)
    meta2 = index_metadata(second)
    assert meta2["mode"] == "updated" and (meta2["media_added"], meta2["media_changed"], meta2["media_removed"]) == (
        0,
        1,
        0,
    )
    assert meta2["vectors_deleted"] == 6 and meta2["vectors_added"] == VectorStore(warehouse).count() - (n_vectors - 6)
    assert meta2["live_nodes"] == VectorStore(warehouse).count()
    assert recall_check(second).passed

    # a media file removed: its vectors leave the index; nothing changed: nothing to do
    purge_media(warehouse, media_id_for("p.png"))
    third = index_metadata(index_job.execute_in_process(instance=instance))
    assert third["media_removed"] == 1 and third["vectors_deleted"] == 1
    assert index_metadata(index_job.execute_in_process(instance=instance))["mode"] == "unchanged"
    ids, _ = HNSWIndex.load(index_path(warehouse)).search(VectorStore(warehouse).load_all()[2][:1], k=50)
    assert media_id_for("p.png") not in set((ids[ids >= 0] >> 20).tolist())


def test_a_damaged_or_mismatched_index_file_is_rebuilt(library):
    warehouse, instance, defs = library
    index_job = defs.resolve_job_def("index_frames")
    assert index_job.execute_in_process(instance=instance).success
    path = index_path(warehouse)
    path.write_bytes(path.read_bytes()[:500])  # truncated
    client = SearchClient(warehouse)
    assert "unusable" in client.index.get()[1]  # the client falls back to exact search meanwhile
    assert len(client.search_text("rocket", k=3)) == 3
    rebuilt = index_job.execute_in_process(instance=instance)
    meta = index_metadata(rebuilt)
    assert meta["mode"] == "rebuilt" and "truncated" in meta["reason"]
    assert recall_check(rebuilt).passed


def test_the_recall_check_fails_a_bad_index(library):
    warehouse, instance, defs = library
    assert defs.resolve_job_def("index_frames").execute_in_process(instance=instance).success
    manifest = Manifest.read(manifest_path(warehouse))
    frame_ids, _, vectors = VectorStore(warehouse).load_all()
    scrambled = HNSWIndex(manifest.dim)
    scrambled.add(np.random.default_rng(0).standard_normal(vectors.shape).astype(np.float32), frame_ids)
    scrambled.save(index_path(warehouse), model_id=manifest.model_id)  # a valid file with the wrong graph
    from dagster import build_asset_check_context  # noqa: F401  (the check is a plain function too)

    from media_assets.defs.resources import WarehouseResource
    from media_assets.defs.search import hnsw_recall

    result = hnsw_recall(WarehouseResource(root=str(warehouse.root)))
    assert not result.passed
    assert result.metadata["recall"].value < 0.95 and "below the required 0.95" in result.description
