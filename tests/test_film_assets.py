"""Shots, faces and clusters through Dagster: the real definitions, jobs, metadata and asset checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from dagster import DagsterEventType, materialize
from mediagen import photo, write_video

from media_assets.definitions import build_definitions
from media_assets.defs.instance import instance_for
from media_assets.defs.partitions import media_files
from media_assets.feedback.pins import ClusterAnnotationError, name_cluster, pin_member
from media_assets.ids import media_id_for, shot_id_for
from media_assets.store import catalog
from media_assets.store.vectors import FACE_VECTORS, SHOT_VECTORS, VectorStore

FPS = 10.0


def framed(source: str, size: tuple[int, int] = (480, 270)) -> np.ndarray:
    """A photograph fitted into a 16:9 frame without distortion (faces keep their shape)."""
    width, height = size
    picture = photo(source, (height, height))
    frame = np.zeros((height, width, 3), np.uint8)
    left = (width - height) // 2
    frame[:, left : left + height] = picture
    return frame


def cuts_video(path, sources: list[str], seconds_each: float = 2.0):
    frames = []
    rng = np.random.default_rng(len(sources))
    for source in sources:
        image = framed(source)
        for _ in range(int(round(seconds_each * FPS))):  # sensor noise, so frames are not byte-identical
            frames.append(np.clip(image.astype(np.int16) + rng.integers(-2, 3, image.shape), 0, 255).astype(np.uint8))
    return write_video(path, frames, FPS)


def check_results(result) -> dict[str, object]:
    return {
        e.event_specific_data.asset_check_key.name: e.event_specific_data
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    }


def materialization(result, asset: str):
    events = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
        and e.event_specific_data.materialization.asset_key.path[-1] == asset
    ]
    assert events, f"no materialization of {asset}"
    return events[0]


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_clip):
    """Two videos and a photo where the astronaut recurs (a scene seen three times), built through the
    ingest job one partition at a time, then clustered by the cluster_library job."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("film") / "warehouse"
    mp.setenv("MEDIA_ASSETS_WAREHOUSE", str(root))
    mp.setenv("MEDIA_ASSETS_CLIP_MODEL", str(tiny_clip))
    from media_assets.warehouse import Warehouse

    warehouse = Warehouse.at(root).ensure()
    media = warehouse.media_root
    cuts_video(media / "a.mp4", ["astronaut", "coffee", "astronaut", "rocket"])
    cuts_video(media / "b.mp4", ["chelsea", "astronaut"])
    cv2.imwrite(str(media / "astronaut.png"), framed("astronaut"))
    instance = instance_for(warehouse)
    keys = ["a.mp4", "b.mp4", "astronaut.png"]
    instance.add_dynamic_partitions(media_files.name, keys)
    defs = build_definitions(str(root), clip_model=str(tiny_clip))
    config = {"ops": {"frames": {"config": {"sample_fps": 4.0}}}}
    ingests = {}
    for key in keys:
        ingests[key] = defs.resolve_job_def("ingest_media").execute_in_process(
            partition_key=key, instance=instance, run_config=config, raise_on_error=False
        )
        assert ingests[key].success, key
    clustered = defs.resolve_job_def("cluster_library").execute_in_process(instance=instance, raise_on_error=False)
    assert clustered.success
    yield warehouse, defs, instance, ingests, clustered
    mp.undo()


def shots_of(warehouse, key: str) -> list[dict]:
    return catalog.query(
        warehouse, "SELECT * FROM shots WHERE media_id = ? ORDER BY shot_index", [media_id_for(key)]
    ).to_pylist()


def test_shots_follow_the_cuts_with_keyframes_and_vectors(library):
    warehouse, _, _, ingests, _ = library
    shots = shots_of(warehouse, "a.mp4")
    # cuts at 2, 4 and 6 s; ±1 sampled frame (0.25 s at 4 frames/s)
    assert len(shots) == 4
    assert [s["start_s"] for s in shots[1:]] == pytest.approx([2.0, 4.0, 6.0], abs=0.25)
    assert [s["transition"] for s in shots] == ["start", "cut", "cut", "cut"]
    assert all(s["kind"] == "static" and s["keyframe_count"] == 1 for s in shots)  # still pictures
    assert shots[-1]["end_s"] == pytest.approx(8.0, abs=0.01)
    keyframes = catalog.query(
        warehouse, "SELECT * FROM keyframes WHERE media_id = ? ORDER BY timestamp_s", [media_id_for("a.mp4")]
    ).to_pylist()
    assert [k["role"] for k in keyframes] == ["median"] * 4
    for shot, keyframe in zip(shots, keyframes, strict=True):
        assert keyframe["shot_id"] == shot["shot_id"] and shot["start_s"] <= keyframe["timestamp_s"] < shot["end_s"]
        assert (warehouse.root / keyframe["thumbnail_path"]).is_file()
    assert [s["shot_id"] for s in shots] == [shot_id_for(media_id_for("a.mp4"), i) for i in range(4)]

    # shot vectors: one per shot, the normalised mean of its keyframe vectors, from the frames' model
    ids, media_ids, vectors = VectorStore(warehouse, SHOT_VECTORS).load_all()
    assert sorted(ids.tolist()) == sorted(
        r["shot_id"] for r in catalog.query(warehouse, "SELECT shot_id FROM shots").to_pylist()
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    photo_shot = shots_of(warehouse, "astronaut.png")
    assert len(photo_shot) == 1 and photo_shot[0]["kind"] == "static"

    meta = materialization(ingests["a.mp4"], "shots").metadata
    assert meta["shots"].value == 4 and meta["static_shots"].value == 4 and meta["dynamic_shots"].value == 0
    # the test model (random weights) cannot tell these cuts apart: its vectors are checked and left out
    assert meta["used_frame_vectors"].value is False
    assert "clear visual boundaries (at least 0.150 needed)" in meta["frame_vectors_note"].value
    assert "data:image/jpeg;base64," in meta["keyframe_sheet"].value and "| 3 |" in meta["keyframe_sheet"].value


def test_faces_are_found_on_astronaut_keyframes_and_embedded(library):
    warehouse, _, _, ingests, _ = library
    faces = catalog.query(
        warehouse, "SELECT f.*, s.media_id AS shot_media FROM faces f JOIN shots s USING (shot_id) ORDER BY face_id"
    ).to_pylist()
    # the astronaut appears in shots 0 and 2 of a.mp4, shot 1 of b.mp4 and the photo: one face each
    by_media = {}
    for face in faces:
        by_media.setdefault(face["media_id"], []).append(face)
    assert {m: len(f) for m, f in by_media.items()} == {
        media_id_for("a.mp4"): 2,
        media_id_for("b.mp4"): 1,
        media_id_for("astronaut.png"): 1,
    }
    a_shots = shots_of(warehouse, "a.mp4")
    assert sorted(f["shot_id"] for f in by_media[media_id_for("a.mp4")]) == [
        a_shots[0]["shot_id"],
        a_shots[2]["shot_id"],
    ]
    for face in faces:
        assert 0 <= face["x"] < 1 and 0 < face["width"] < 0.5 and face["score"] > 0
        assert (warehouse.root / face["crop_path"]).is_file()
        # the face sits in the upper middle of the framed picture
        assert 0.35 < face["x"] + face["width"] / 2 < 0.65 and face["y"] + face["height"] / 2 < 0.5
    ids, _, _ = VectorStore(warehouse, FACE_VECTORS).load_all()
    assert sorted(ids.tolist()) == [f["face_id"] for f in faces]
    meta = materialization(ingests["astronaut.png"], "faces").metadata
    assert meta["faces"].value == 1 and meta["detector"].value.startswith("opencv-haar")


def test_clusters_group_the_recurring_scene_and_checks_pass(library):
    warehouse, _, _, _, clustered = library
    checks = check_results(clustered)
    assert set(checks) == {"every_shot_in_one_scene", "every_face_in_a_shot", "cluster_ids_stable"}
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}

    members = catalog.query(
        warehouse,
        "SELECT cm.*, s.media_id AS shot_media, s.shot_index FROM cluster_members cm "
        "JOIN shots s ON s.shot_id = cm.member_id "
        "WHERE cm.member_kind = 'shot'",
    ).to_pylist()
    assert len(members) == catalog.query(warehouse, "SELECT count(*) AS n FROM shots").to_pylist()[0]["n"]
    astronaut_shots = {
        shot_id_for(media_id_for("a.mp4"), 0),
        shot_id_for(media_id_for("a.mp4"), 2),
        shot_id_for(media_id_for("b.mp4"), 1),
        shot_id_for(media_id_for("astronaut.png"), 0),
    }
    astronaut_clusters = {m["cluster_id"] for m in members if m["member_id"] in astronaut_shots}
    assert len(astronaut_clusters) == 1 and None not in astronaut_clusters  # one scene, across 3 files
    scene = astronaut_clusters.pop()
    row = catalog.query(warehouse, "SELECT * FROM clusters WHERE cluster_id = ?", [scene]).to_pylist()[0]
    assert row["level"] == "scene" and row["size"] >= 4 and row["media_count"] == 3
    assert row["representative_frame_id"] in row["representative_frame_ids"]
    # the four astronaut faces are characters of that scene (or its noise), never of another scene
    faces = catalog.query(warehouse, "SELECT * FROM cluster_members WHERE member_kind = 'face'").to_pylist()
    assert len(faces) == 4 and {f["scene_id"] for f in faces} == {scene}

    meta = materialization(clustered, "clusters").metadata
    assert meta["scene_clusters"].value >= 1 and meta["shots"].value == len(members)
    assert meta["scene_noise"].value == sum(1 for m in members if m["is_noise"])
    overview = meta["clusters"].value
    assert "noise bucket" in overview and "data:image/jpeg;base64," in overview


def companions(rows: list[dict], shot_id: int) -> set[int] | None:
    """The other shots in the shot's cluster (None when it is noise)."""
    cluster = next(r["cluster_id"] for r in rows if r["member_kind"] == "shot" and r["member_id"] == shot_id)
    if cluster is None:
        return None
    return {r["member_id"] for r in rows if r["member_kind"] == "shot" and r["cluster_id"] == cluster} - {shot_id}


def test_ids_names_and_pins_survive_reclustering(library):
    warehouse, defs, instance, _, _ = library
    job = defs.resolve_job_def("cluster_library")
    before = catalog.query(
        warehouse, "SELECT member_kind, member_id, cluster_id, is_noise FROM cluster_members ORDER BY ALL"
    ).to_pylist()
    scene = catalog.query(
        warehouse, "SELECT cluster_id FROM clusters WHERE level = 'scene' ORDER BY size DESC LIMIT 1"
    ).to_pylist()[0]["cluster_id"]

    name_cluster(warehouse, scene, "  astronaut portrait ")
    assert catalog.query(warehouse, "SELECT name FROM clusters WHERE cluster_id = ?", [scene]).to_pylist() == [
        {"name": "astronaut portrait"}
    ]

    again = job.execute_in_process(instance=instance, raise_on_error=False)
    assert again.success and all(c.passed for c in check_results(again).values())
    after = catalog.query(
        warehouse, "SELECT member_kind, member_id, cluster_id, is_noise FROM cluster_members ORDER BY ALL"
    ).to_pylist()
    assert after == before  # unchanged library: identical ids and memberships
    assert catalog.query(warehouse, "SELECT name FROM clusters WHERE cluster_id = ?", [scene]).to_pylist() == [
        {"name": "astronaut portrait"}
    ]

    # a person pins the coffee shot to the astronaut scene: it stays there, marked pinned
    coffee = shot_id_for(media_id_for("a.mp4"), 1)
    pin_member(warehouse, "shot", coffee, scene, source="test")
    pinned = job.execute_in_process(instance=instance, raise_on_error=False)
    assert pinned.success and all(c.passed for c in check_results(pinned).values())
    row = catalog.query(
        warehouse,
        "SELECT cluster_id, pinned, is_noise FROM cluster_members WHERE member_kind = 'shot' AND member_id = ?",
        [coffee],
    ).to_pylist()[0]
    assert row == {"cluster_id": scene, "pinned": True, "is_noise": False}
    assert materialization(pinned, "clusters").metadata["pins_applied"].value == 1

    # unpinning lets the algorithm decide again: the coffee shot is back with the shots it was with before
    # (under a new id if its old cluster vanished while it was pinned away: ids are never reused)
    pin_member(warehouse, "shot", coffee, None, source="test")
    job.execute_in_process(instance=instance, raise_on_error=False)
    after_unpin = catalog.query(
        warehouse, "SELECT member_kind, member_id, cluster_id, is_noise, pinned FROM cluster_members ORDER BY ALL"
    ).to_pylist()
    assert not any(r["pinned"] for r in after_unpin)
    assert companions(after_unpin, coffee) == companions(before, coffee)
    name_cluster(warehouse, scene, None)
    assert catalog.query(warehouse, "SELECT name FROM clusters WHERE cluster_id = ?", [scene]).to_pylist() == [
        {"name": None}
    ]


def test_bad_annotations_are_refused_with_a_reason(library):
    warehouse = library[0]
    scene = catalog.query(warehouse, "SELECT cluster_id FROM clusters WHERE level = 'scene' LIMIT 1").to_pylist()[0][
        "cluster_id"
    ]
    face = catalog.query(warehouse, "SELECT face_id FROM faces LIMIT 1").to_pylist()[0]["face_id"]
    shot = shot_id_for(media_id_for("a.mp4"), 0)
    pins_before = catalog.read_table(warehouse, "feedback").num_rows
    with pytest.raises(ClusterAnnotationError, match="no shot with id 12345"):
        pin_member(warehouse, "shot", 12345, scene)
    with pytest.raises(ClusterAnnotationError, match="no cluster with id 999999"):
        pin_member(warehouse, "shot", shot, 999999)
    with pytest.raises(ClusterAnnotationError, match="can only go to a character cluster"):
        pin_member(warehouse, "face", face, scene)
    with pytest.raises(ClusterAnnotationError, match="member_kind must be one of"):
        pin_member(warehouse, "frame", shot, scene)
    with pytest.raises(ClusterAnnotationError, match="at most 200 characters"):
        name_cluster(warehouse, scene, "x" * 201)
    with pytest.raises(ClusterAnnotationError, match="must be an integer"):
        name_cluster(warehouse, "3", "kitchen")
    assert catalog.read_table(warehouse, "feedback").num_rows == pins_before


def test_checks_catch_a_broken_membership(library):
    warehouse = library[0]
    from media_assets.stages.clusters import check_face_links, check_shot_membership, check_stability

    members = catalog.read_table(warehouse, "cluster_members")
    shots = [m for m in members.to_pylist() if m["member_kind"] == "shot"]
    faces = [m for m in members.to_pylist() if m["member_kind"] == "face"]
    try:
        catalog.replace_table(warehouse, "cluster_members", faces + shots[1:])  # a shot lost
        assert check_shot_membership(warehouse)["metadata"]["unassigned"] == 1
        catalog.replace_table(warehouse, "cluster_members", faces + shots + shots[:1])  # a shot twice
        result = check_shot_membership(warehouse)
        assert result["passed"] is False and result["metadata"]["in_several"] == 1
        catalog.replace_table(warehouse, "cluster_members", faces[1:] + shots)  # a face lost
        result = check_face_links(warehouse)
        assert result["passed"] is False and result["metadata"]["faces_unassigned"] == 1
        # the stored clustering is not what clustering the unchanged library gives (a member moved by hand)
        catalog.replace_table(warehouse, "cluster_members", members)
        clustered = next(m for m in shots if m["cluster_id"] is not None)
        moved = [m | ({"cluster_id": None, "is_noise": True} if m is clustered else {}) for m in shots]
        catalog.replace_table(warehouse, "cluster_members", faces + moved)
        result = check_stability(warehouse)
        assert result["passed"] is False and result["metadata"]["members_changed"] == 1
        assert f"shot:{clustered['member_id']}" in result["metadata"]["first_changed"]
    finally:
        catalog.replace_table(warehouse, "cluster_members", members)
    assert check_shot_membership(warehouse)["passed"] and check_face_links(warehouse)["passed"]
    assert check_stability(warehouse)["passed"]
    # a face whose shot is gone
    faces_table = catalog.read_partition(warehouse, "faces", media_id_for("a.mp4"))
    try:
        broken = [f | {"shot_id": f["shot_id"] + 999} for f in faces_table.to_pylist()]
        catalog.replace_partition(warehouse, "faces", media_id_for("a.mp4"), broken)
        result = check_face_links(warehouse)
        assert result["passed"] is False and result["metadata"]["faces_without_shot"] == len(broken) > 0
    finally:
        catalog.replace_partition(warehouse, "faces", media_id_for("a.mp4"), faces_table)
    assert check_face_links(warehouse)["passed"]


def test_clusters_automation_requests_a_run_when_shots_change(library):
    """`clusters_automation` (and the index's) through Dagster's own evaluator: nothing while nothing
    changed, one request once a file's shots were re-materialized, nothing again after clustering."""
    from dagster import AssetKey, evaluate_automation_conditions

    warehouse, defs, instance, _, _ = library
    key = AssetKey("clusters")
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    quiet = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert quiet.get_num_requested(key) == 0
    run = defs.resolve_job_def("ingest_media").execute_in_process(
        partition_key="b.mp4", instance=instance, run_config={"ops": {"frames": {"config": {"sample_fps": 4.0}}}}
    )
    assert run.success
    changed = evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
    assert changed.get_num_requested(key) == 1 and changed.get_num_requested(AssetKey("hnsw_index")) == 1
    assert changed.get_num_requested(AssetKey("faces")) == 0  # the ingest run found them after the shots
    assert defs.resolve_job_def("cluster_library").execute_in_process(instance=instance).success
    settled = evaluate_automation_conditions(defs=defs, instance=instance, cursor=changed.cursor)
    assert settled.get_num_requested(key) == 0

    # the shots of one file re-materialized alone (other settings, from the UI): its faces follow
    from dagster import materialize

    shots_only = materialize(
        [defs.resolve_assets_def("shots")],
        partition_key="b.mp4",
        instance=instance,
        run_config={"ops": {"shots": {"config": {"min_shot_s": 0.75}}}},
    )
    assert shots_only.success
    followed = evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
    assert followed.get_num_requested(AssetKey("faces")) == 1


def test_removing_a_file_removes_its_shots_faces_and_vectors(library, tmp_path):
    warehouse = library[0]
    from media_assets.stages.frames import purge_media

    media_id = media_id_for("astronaut.png")
    kept = {
        t: catalog.read_partition(warehouse, t, media_id) for t in ("media", "frames", "shots", "keyframes", "faces")
    }
    shot_vectors = VectorStore(warehouse, SHOT_VECTORS).count()
    purge_media(warehouse, media_id)
    for table in ("shots", "keyframes", "faces"):
        assert catalog.read_partition(warehouse, table, media_id) is None
    assert VectorStore(warehouse, SHOT_VECTORS).count() == shot_vectors - 1
    assert media_id not in set(VectorStore(warehouse, FACE_VECTORS).load_all()[1].tolist())
    assert not warehouse.face_crop_dir(media_id).exists()
    assert kept["faces"] is not None and len(kept["faces"]) == 1


def test_a_pin_follows_its_shot_through_a_reingest_that_renumbers_shots(tmp_path, monkeypatch, tiny_clip):
    """Shot ids are positional: when a file changes (here: a new first shot), the pinned shot gets another
    id and its old id names another shot. The pin row's anchor (file and time span) takes the pin to the
    shot that was pinned; once that shot is gone, the pin is stale and applies to nothing."""
    from media_assets.feedback.pins import pin_member
    from media_assets.warehouse import Warehouse

    root = tmp_path / "warehouse"
    monkeypatch.setenv("MEDIA_ASSETS_WAREHOUSE", str(root))
    monkeypatch.setenv("MEDIA_ASSETS_CLIP_MODEL", str(tiny_clip))
    warehouse = Warehouse.at(root).ensure()
    media = warehouse.media_root
    cuts_video(media / "c.mp4", ["coffee", "astronaut", "rocket"])
    cuts_video(media / "d.mp4", ["astronaut", "chelsea", "astronaut"])
    instance = instance_for(warehouse)
    defs = build_definitions(str(root), clip_model=str(tiny_clip))
    config = {"ops": {"frames": {"config": {"sample_fps": 4.0}}}}

    def ingest(key):
        instance.add_dynamic_partitions(media_files.name, [key])
        assert (
            defs.resolve_job_def("ingest_media")
            .execute_in_process(partition_key=key, instance=instance, run_config=config)
            .success
        )

    def recluster():
        result = defs.resolve_job_def("cluster_library").execute_in_process(instance=instance)
        assert all(c.passed for c in check_results(result).values())
        return materialization(result, "clusters").metadata

    for key in ("c.mp4", "d.mp4"):
        ingest(key)
    recluster()
    c_id = media_id_for("c.mp4")
    rocket = shots_of(warehouse, "c.mp4")[2]
    assert (rocket["start_s"], rocket["end_s"]) == pytest.approx((4.0, 6.0), abs=0.3)
    target = catalog.query(
        warehouse,
        "SELECT cluster_id FROM cluster_members WHERE member_kind = 'shot' AND member_id = ?",
        [shot_id_for(media_id_for("d.mp4"), 1)],
    ).to_pylist()[0]["cluster_id"]
    assert target is not None
    pin_member(warehouse, "shot", rocket["shot_id"], target)
    assert recluster()["pins_applied"].value == 1
    from media_assets.feedback import table as feedback

    rocket_frame = catalog.query(
        warehouse,
        "SELECT frame_id FROM frames WHERE media_id = ? AND timestamp_s BETWEEN 4.5 AND 5.5 ORDER BY frame_id LIMIT 1",
        [c_id],
    ).to_pylist()[0]["frame_id"]
    feedback.record_relevance(warehouse, "a rocket", rocket_frame, relevant=True)

    # the file changes: a new first shot, so the rocket shot is index 3 now and index 2 is the astronaut
    cuts_video(media / "c.mp4", ["chelsea", "coffee", "astronaut", "rocket"])
    ingest("c.mp4")
    moved = shots_of(warehouse, "c.mp4")
    assert moved[2]["shot_id"] == rocket["shot_id"] and moved[2]["start_s"] == pytest.approx(
        4.0, abs=0.3
    )  # the old id: another shot
    meta = recluster()
    members = {
        r["member_id"]: r
        for r in catalog.query(warehouse, "SELECT * FROM cluster_members WHERE member_kind = 'shot'").to_pylist()
    }
    assert members[moved[3]["shot_id"]]["pinned"] and members[moved[3]["shot_id"]]["cluster_id"] == target
    assert not members[moved[2]["shot_id"]]["pinned"]
    assert meta["pins_applied"].value == 1 and meta["pins_stale"].value == 0
    # the relevance judgement follows its frame too: to a rocket frame, now 2 s later
    (judged,), counts = feedback.resolved_rows(warehouse, kinds=("relevance",))
    time_s = catalog.query(
        warehouse, "SELECT timestamp_s FROM frames WHERE frame_id = ?", [judged["member_id"]]
    ).to_pylist()[0]["timestamp_s"]
    assert judged["member_id"] != rocket_frame and 6.0 <= time_s < 8.0 and counts["moved"] == 1

    # the rocket shot is cut from the file: the pin is stale, nothing else is pinned in its place
    cuts_video(media / "c.mp4", ["chelsea", "coffee"])
    ingest("c.mp4")
    meta = recluster()
    assert meta["pins_applied"].value == 0 and meta["pins_stale"].value == 1
    assert feedback.resolved_rows(warehouse, kinds=("relevance",)) == (
        [],
        {"kept": 0, "moved": 0, "stale": 1, "unanchored": 0},
    )
    assert not any(r["pinned"] for r in catalog.query(warehouse, "SELECT pinned FROM cluster_members").to_pylist())
    assert (
        catalog.query(warehouse, "SELECT count(*) AS n FROM shots WHERE media_id = ?", [c_id]).to_pylist()[0]["n"] == 2
    )


def test_a_slide_change_inside_a_shot_is_an_event_through_dagster(tmp_path, monkeypatch, tiny_clip):
    """A lecture-like still whose text changes at 5 s: the pictures barely change (no cut), the frame vectors
    jump. The vectors stand in for what CLIP sees (the test model's random weights see nothing): they are
    written for the partition as `frame_embeddings` would, then the `shots` asset runs through Dagster."""
    from media_assets.warehouse import Warehouse

    root = tmp_path / "warehouse"
    monkeypatch.setenv("MEDIA_ASSETS_WAREHOUSE", str(root))
    monkeypatch.setenv("MEDIA_ASSETS_CLIP_MODEL", str(tiny_clip))
    warehouse = Warehouse.at(root).ensure()

    def slide_with(lines):
        picture = np.full((270, 480, 3), 235, np.uint8)
        for i, (text, scale) in enumerate(lines):
            cv2.putText(picture, text, (40, 70 + 55 * i), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 2)
        return picture

    # the same template, other bullets: change score 0.05 (no cut), perceptual hashes 16 bits apart (not a
    # near-duplicate, so both slides are embedded)
    slide = slide_with([("Lecture 3: optics", 1.0), ("- lenses", 0.8)])
    changed = slide_with([("Lecture 3: optics", 1.0), ("- mirrors and prisms", 0.8), ("- total reflection", 0.8)])
    frames = [slide] * int(5 * FPS) + [changed] * int(5 * FPS)
    write_video(warehouse.media_root / "lecture.mp4", frames, FPS)
    instance = instance_for(warehouse)
    instance.add_dynamic_partitions(media_files.name, ["lecture.mp4"])
    defs = build_definitions(str(root), clip_model=str(tiny_clip))
    config = {"ops": {"frames": {"config": {"sample_fps": 4.0}}}}
    assert (
        defs.resolve_job_def("ingest_media")
        .execute_in_process(partition_key="lecture.mp4", instance=instance, run_config=config)
        .success
    )
    assert len(shots_of(warehouse, "lecture.mp4")) == 1  # the pictures alone: one shot, no event

    media_id = media_id_for("lecture.mp4")
    rows = catalog.query(
        warehouse,
        "SELECT frame_id, timestamp_s FROM frames WHERE media_id = ? AND NOT is_duplicate ORDER BY seq",
        [media_id],
    ).to_pylist()
    rng = np.random.default_rng(0)
    topic_a, topic_b = rng.standard_normal(32), rng.standard_normal(32)
    vectors = np.stack(
        [(topic_a if r["timestamp_s"] < 5.0 else topic_b) + 0.05 * rng.standard_normal(32) for r in rows]
    )
    VectorStore(warehouse).replace_media(
        media_id, np.array([r["frame_id"] for r in rows]), vectors, model_id="stand-in"
    )
    result = materialize([defs.resolve_assets_def("shots")], partition_key="lecture.mp4", instance=instance)
    assert result.success
    meta = materialization(result, "shots").metadata
    assert meta["shots"].value == 1 and meta["events"].value == 1 and meta["used_frame_vectors"].value is True
    (event,) = catalog.query(warehouse, "SELECT * FROM shot_events WHERE media_id = ?", [media_id]).to_pylist()
    assert (
        event["time_s"] == pytest.approx(5.0, abs=0.25)
        and event["shot_id"] == shots_of(warehouse, "lecture.mp4")[0]["shot_id"]
    )
    assert shots_of(warehouse, "lecture.mp4")[0]["event_count"] == 1
