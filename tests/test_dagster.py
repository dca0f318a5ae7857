"""End to end through Dagster: the real definitions, resources, job, asset check and sensor."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
from dagster import DagsterEventType, build_sensor_context
from mediagen import photo, shots_video

from media_assets import SearchClient
from media_assets.definitions import build_definitions
from media_assets.defs.instance import instance_for
from media_assets.defs.partitions import media_files
from media_assets.defs.resources import WarehouseResource
from media_assets.defs.sensors import media_sensor
from media_assets.ids import media_id_for
from media_assets.store import catalog
from media_assets.store.index_files import Manifest, manifest_path
from media_assets.store.sql import open_catalog
from media_assets.store.vectors import VectorStore


def make_library(warehouse):
    root = warehouse.media_root
    shots_video(root / "clips" / "cuts.mp4", ["astronaut", "chelsea", "coffee"], seconds_each=2.0)
    shots_video(root / "still.avi", ["rocket"], seconds_each=3.0)
    (root / "photos").mkdir()
    cv2.imwrite(str(root / "photos" / "cat.png"), photo("chelsea"))
    (root / "broken.mp4").write_bytes(b"this is text, not a video")
    (root / "empty.jpg").touch()
    age(root)


def age(*paths, seconds: float = 60.0):
    """Files dropped into the media folder count as settled once they are a little old. A folder ages
    every file below it."""
    then = time.time() - seconds
    for path in paths:
        for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
            os.utime(file, (then, then))


def run_partition(job, instance, key):
    return job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)


def materializations(result, asset: str):
    return [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
        and e.event_specific_data.materialization.asset_key.path[-1] == asset
    ]


def failure_message(result) -> str:
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert failures, "expected a failed step"
    data = failures[0].step_failure_data
    return (data.user_failure_data.description if data.user_failure_data else "") or data.error.message


def test_ingest_job_materializes_each_partition_and_fails_only_bad_files(warehouse, tiny_clip):
    make_library(warehouse)
    instance = instance_for(warehouse)
    defs = build_definitions(str(warehouse.root), clip_model=str(tiny_clip))
    job = defs.resolve_job_def("ingest_media")

    # the sensor registers the partitions and requests one run per file
    context = build_sensor_context(
        instance=instance, resources={"warehouse": WarehouseResource(root=str(warehouse.root))}
    )
    result = media_sensor(context)
    keys = sorted(r.partition_key for r in result.run_requests)
    assert keys == ["broken.mp4", "clips/cuts.mp4", "empty.jpg", "photos/cat.png", "still.avi"]
    instance.add_dynamic_partitions(media_files.name, result.dynamic_partitions_requests[0].partition_keys)

    outcomes = {key: run_partition(job, instance, key) for key in keys}
    assert {k for k, r in outcomes.items() if r.success} == {"clips/cuts.mp4", "photos/cat.png", "still.avi"}
    assert "broken.mp4" in failure_message(outcomes["broken.mp4"]) and "not a readable video" in failure_message(
        outcomes["broken.mp4"]
    )
    assert "empty (0 bytes)" in failure_message(outcomes["empty.jpg"])

    frames_md = materializations(outcomes["clips/cuts.mp4"], "frames")[0].metadata
    assert frames_md["frames_sampled"].value == 6 and frames_md["duplicates"].value == 3
    assert frames_md["undecodable_frames"].value == 0 and frames_md["kind"].value == "video"
    assert "data:image/jpeg;base64," in frames_md["preview"].value
    embed_md = materializations(outcomes["clips/cuts.mp4"], "frame_embeddings")[0].metadata
    assert embed_md["vectors_written"].value == 3 and embed_md["skipped_duplicates"].value == 3
    assert embed_md["model_id"].value == str(tiny_clip) and embed_md["device"].value == "cpu"

    checks = [e for e in outcomes["still.avi"].all_events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    passed = {e.event_specific_data.asset_check_key.name: e.event_specific_data.passed for e in checks}
    assert passed == {
        "every_kept_frame_has_a_vector": True,
        "segments_inside_the_file_and_apart": True,
        "every_text_row_has_a_vector": True,
        "chapters_tile_the_file": True,
    }

    errors = catalog.query(warehouse, "SELECT partition_key, stage, message FROM ingest_errors ORDER BY 1").to_pylist()
    assert [(e["partition_key"], e["stage"]) for e in errors] == [("broken.mp4", "frames"), ("empty.jpg", "frames")]
    assert VectorStore(warehouse).count() == 3 + 1 + 1  # kept frames: 3 shots, 1 still, 1 photo

    # lineage: every vector names its file, model and run
    rows = (
        open_catalog(warehouse, with_vectors=True)
        .execute(
            "SELECT m.partition_key, v.model_id, v.run_id FROM frame_vectors v JOIN frames f USING (frame_id) "
            "JOIN media m ON m.media_id = f.media_id"
        )
        .fetchall()
    )
    assert {r[0] for r in rows} == {"clips/cuts.mp4", "still.avi", "photos/cat.png"}
    assert {r[1] for r in rows} == {str(tiny_clip)}
    assert {r[2] for r in rows if r[0] == "still.avi"} == {outcomes["still.avi"].run_id}

    # the UI sees the same partitions and their materializations
    assert set(instance.get_dynamic_partitions(media_files.name)) == set(keys)
    hits = SearchClient(warehouse).search_image(photo("rocket"), k=1)
    assert hits[0].partition_key == "still.avi"

    # re-materializing one partition replaces its rows and leaves the others alone
    before = catalog.query(
        warehouse, "SELECT * FROM frames WHERE media_id <> ? ORDER BY frame_id", [media_id_for("still.avi")]
    )
    vectors_before = VectorStore(warehouse).count()
    again = job.execute_in_process(
        partition_key="still.avi",
        instance=instance,
        run_config={"ops": {"frames": {"config": {"sample_fps": 2.0, "duplicate_max_distance": 0}}}},
    )
    assert again.success
    n_still = catalog.query(
        warehouse, "SELECT count(*) AS n FROM frames WHERE media_id = ?", [media_id_for("still.avi")]
    ).to_pylist()[0]["n"]
    assert n_still == 6
    assert (
        catalog.query(
            warehouse, "SELECT * FROM frames WHERE media_id <> ? ORDER BY frame_id", [media_id_for("still.avi")]
        )
        == before
    )
    still_vectors = (
        open_catalog(warehouse, with_vectors=True)
        .execute(
            "SELECT count(*), count(DISTINCT frame_id) FROM frame_vectors WHERE media_id = ?",
            [media_id_for("still.avi")],
        )
        .fetchone()
    )
    kept = catalog.query(
        warehouse,
        "SELECT count(*) AS n FROM frames WHERE media_id = ? AND NOT is_duplicate",
        [media_id_for("still.avi")],
    ).to_pylist()[0]["n"]
    assert still_vectors[0] == still_vectors[1] == kept
    assert VectorStore(warehouse).count() == vectors_before - 1 + kept


def test_media_sensor_follows_new_changed_and_deleted_files(warehouse, tiny_clip):
    root = warehouse.media_root
    shots_video(root / "a.mp4", ["astronaut", "coffee"], seconds_each=1.0)
    cv2.imwrite(str(root / "b.jpg"), photo("chelsea"))
    age(root)
    instance = instance_for(warehouse)
    defs = build_definitions(str(warehouse.root), clip_model=str(tiny_clip))
    job = defs.resolve_job_def("ingest_media")
    resources = {"warehouse": WarehouseResource(root=str(warehouse.root))}

    def tick(cursor):
        result = media_sensor(build_sensor_context(instance=instance, cursor=cursor, resources=resources))
        for request in result.dynamic_partitions_requests or []:
            if request.__class__.__name__ == "AddDynamicPartitionsRequest":
                instance.add_dynamic_partitions(media_files.name, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(media_files.name, key)
        for request in result.run_requests or []:
            if request.job_name == "ingest_media":
                assert run_partition(job, instance, request.partition_key).success
            else:
                assert defs.resolve_job_def(request.job_name).execute_in_process(instance=instance).success
        return result

    first = tick(None)
    assert sorted(r.partition_key for r in first.run_requests) == ["a.mp4", "b.jpg"]
    assert {r.job_name for r in first.run_requests} == {"ingest_media"}
    assert defs.resolve_job_def("cluster_library").execute_in_process(instance=instance).success
    assert {r.tags["media_assets/reason"] for r in first.run_requests} == {"new"}

    # nothing changed: nothing requested, the cursor stays
    second = tick(first.cursor)
    assert not second.run_requests and second.skip_reason is not None
    assert json.loads(second.cursor) == json.loads(first.cursor)

    # a file still being copied in is left for a later tick
    shots_video(root / "c.mp4", ["rocket"], seconds_each=1.0)
    settling = tick(second.cursor)
    assert not settling.run_requests and "still being written" in settling.skip_reason.skip_message
    age(root / "c.mp4")

    # a new file and a changed file
    cv2.imwrite(str(root / "b.jpg"), photo("coffee"))
    age(root / "b.jpg", seconds=30)
    third = tick(settling.cursor)
    requested = {r.partition_key: r.tags["media_assets/reason"] for r in third.run_requests}
    assert requested == {"b.jpg": "changed", "c.mp4": "new"}
    assert SearchClient(warehouse).search_image(photo("coffee"), k=1)[0].partition_key == "b.jpg"

    # a deleted file leaves the catalog, the vectors, the thumbnails and the partitions
    a_id = media_id_for("a.mp4")
    assert warehouse.thumbnail_dir(a_id).exists()
    assert (
        catalog.query(warehouse, "SELECT count(*) AS n FROM cluster_members WHERE media_id = ?", [a_id]).to_pylist()[0][
            "n"
        ]
        > 0
    )
    (root / "a.mp4").unlink()
    fourth = tick(third.cursor)
    # the index and the clusters are asked to follow (a deletion updates no asset automation watches)
    assert sorted(r.job_name for r in fourth.run_requests) == ["cluster_library", "index_frames"]
    assert {r.tags["media_assets/reason"] for r in fourth.run_requests} == {"deleted"}
    assert (
        catalog.query(warehouse, "SELECT count(*) AS n FROM cluster_members WHERE media_id = ?", [a_id]).to_pylist()[0][
            "n"
        ]
        == 0
    )
    manifest = Manifest.read(manifest_path(warehouse))
    assert str(a_id) not in manifest.media and manifest.vectors_version == VectorStore(warehouse).table().version
    assert "a.mp4" not in instance.get_dynamic_partitions(media_files.name)
    assert (
        catalog.query(warehouse, "SELECT count(*) AS n FROM frames WHERE media_id = ?", [a_id]).to_pylist()[0]["n"] == 0
    )
    assert (
        catalog.query(warehouse, "SELECT count(*) AS n FROM media WHERE media_id = ?", [a_id]).to_pylist()[0]["n"] == 0
    )
    assert a_id not in set(VectorStore(warehouse).load_all()[1].tolist())
    assert not warehouse.thumbnail_dir(a_id).exists()
    assert "a.mp4" not in json.loads(fourth.cursor)

    # a fresh cursor (say, the sensor was reset) trusts what the catalog holds and requests nothing
    assert not tick(None).run_requests


def test_definitions_load_as_dagster_dev_loads_them():
    from media_assets.definitions import defs

    repo = defs.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} == {
        "frames",
        "frame_embeddings",
        "hnsw_index",
        "shots",
        "faces",
        "clusters",
        "transcripts",
        "screen_text",
        "text_vectors",
        "chapters",
        "feedback",
        "embedding_adapter",
        "promoted_adapter",
        "adapted_vectors",
    }
    for sensor in (
        "media_sensor",
        "index_automation",
        "clusters_automation",
        "text_automation",
        "feedback_sensor",
        "adapted_vectors_automation",
    ):
        assert repo.get_sensor_def(sensor) is not None
    assert {j.name for j in repo.get_all_jobs()} >= {
        "ingest_media",
        "index_frames",
        "cluster_library",
        "learn_from_feedback",
        "refresh_adapted",
    }
    assert defs.resolve_assets_def("frame_embeddings").op.pool == "gpu"
    assert defs.resolve_assets_def("faces").op.pool == "gpu"
    assert defs.resolve_assets_def("chapters").op.pool == "llm"


def test_a_warehouses_instance_has_the_repos_concurrency_settings():
    """`instance_for` writes the same pools and run limits as the repo's dagster.yaml (which `dagster dev` reads),
    so the CLI's runs and the UI's are limited alike."""
    import yaml

    from media_assets.defs.instance import INSTANCE_YAML

    repo = yaml.safe_load((Path(__file__).resolve().parent.parent / "dagster.yaml").read_text())
    written = yaml.safe_load(INSTANCE_YAML)
    assert written["concurrency"] == repo["concurrency"]
    assert written["telemetry"] == repo["telemetry"]
