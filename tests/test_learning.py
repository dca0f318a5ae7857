"""The learning loop: feedback rows (library, client, HTTP), the feedback sensor and its cursor, the
`learn_from_feedback` job (candidate adapter → blocking gate → promotion → adapted vectors, index, clusters)
through Dagster, the gate refusing an adapter trained on shuffled labels, and rollback.

The library is synthetic and labelled: 60 one-shot files in 6 "scenes", each shot's vector mixing its
scene's direction with one of 3 "styles" (lighting, grade) drawn independently of the scene, so the base
vectors only partly group the scenes (a shot of another scene in the same style is often nearer), plus 30
files of other content no feedback touches. 128-d: the vectors do not come from the test's CLIP, which only
encodes relevance queries."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner
from dagster import DagsterEventType, SkipReason, build_sensor_context, materialize
from fastapi.testclient import TestClient

from media_assets.apps.cli import main as cli
from media_assets.apps.server import create_app
from media_assets.definitions import build_definitions
from media_assets.defs.instance import instance_for
from media_assets.defs.learning import promoted_adapter
from media_assets.defs.resources import WarehouseResource
from media_assets.defs.sensors import feedback_sensor
from media_assets.demo.synthetic_library import write_synthetic_library
from media_assets.feedback import table as feedback
from media_assets.feedback.table import FeedbackError, FeedbackWriter
from media_assets.ids import shot_id_for
from media_assets.models.clusters import clustering_scores
from media_assets.search.client import SearchClient
from media_assets.stages import adapter as adapter_stage
from media_assets.stages.shots import make_shot_list
from media_assets.store import adapters, catalog
from media_assets.store.index_files import Manifest, manifest_path
from media_assets.store.vectors import VectorStore
from media_assets.warehouse import Warehouse

SCENES, STYLES, SHOTS_PER_SCENE, FRAMES_PER_SHOT, DIM = 6, 3, 10, 4, 128


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def write_labelled_library(warehouse: Warehouse, seed: int = 0) -> dict[int, int]:
    """The library of the module docstring with its shots and clusters; returns shot id → true scene."""
    rng = np.random.default_rng(seed)
    shared, scenes, styles = (
        unit(rng.normal(size=DIM)),
        unit(rng.normal(size=(SCENES, DIM))),
        unit(rng.normal(size=(STYLES, DIM))),
    )
    vectors, scene_of = {}, {}
    for scene in range(SCENES):
        for k in range(SHOTS_PER_SCENE):
            look = np.sqrt(0.25) * shared + np.sqrt(0.2) * scenes[scene] + np.sqrt(0.3) * styles[rng.integers(STYLES)]
            look = look + np.sqrt(0.25) * unit(rng.normal(size=DIM))
            vectors[f"scene{scene}/shot{k}.mp4"] = unit(look + 0.03 * rng.normal(size=(FRAMES_PER_SHOT, DIM)))
            scene_of[f"scene{scene}/shot{k}.mp4"] = scene
    others = unit(rng.normal(size=(30, DIM)))
    for j in range(30):
        vectors[f"other/{j}.mp4"] = unit(
            np.sqrt(0.25) * shared + np.sqrt(0.5) * others[j] + np.sqrt(0.25) * unit(rng.normal(size=(8, DIM)))
        )
    ids = write_synthetic_library(warehouse, vectors)
    for media_id in ids.values():
        make_shot_list(warehouse, media_id)
    return {shot_id_for(ids[key], 0): scene for key, scene in scene_of.items()}


def scene_clusters(warehouse: Warehouse, truth: dict[int, int]) -> dict[int, list[int]]:
    """Scene cluster id → true scenes of its labelled members."""
    rows = catalog.query(
        warehouse, "SELECT cluster_id, member_id FROM cluster_members WHERE member_kind = 'shot' AND NOT is_noise"
    ).to_pylist()
    out: dict[int, list[int]] = {}
    for r in rows:
        if r["member_id"] in truth:
            out.setdefault(r["cluster_id"], []).append(truth[r["member_id"]])
    return out


def give_feedback(warehouse: Warehouse, truth: dict[int, int], *, seed: int = 1, shuffled: bool = False) -> int:
    """A person's corrections: 60 same/different judgements of shot pairs, and moves of about half the shots
    into the cluster that holds most of their scene. `shuffled`: the same judgements with the scenes
    permuted at random (wrong labels the system cannot tell from right ones). Returns rows written."""
    rng = np.random.default_rng(seed)
    label = dict(truth)
    if shuffled:
        permuted = rng.permutation(list(truth.values()))
        label = dict(zip(truth, permuted.tolist(), strict=True))
    writer = FeedbackWriter(warehouse, source="test")
    shots = sorted(truth)
    written = 0
    for _ in range(60):
        a, b = rng.choice(shots, 2, replace=False)
        (writer.same if label[a] == label[b] else writer.different)("shot", int(a), int(b))
        written += 1
    cluster_of_scene = {
        Counter(scenes).most_common(1)[0][0]: cluster for cluster, scenes in scene_clusters(warehouse, truth).items()
    }
    for shot in shots:
        if label[shot] in cluster_of_scene and rng.random() < 0.6:
            writer.move("shot", int(shot), int(cluster_of_scene[label[shot]]))
            written += 1
    return written


@pytest.fixture(scope="module")
def clustered(tmp_path_factory, tiny_clip):
    """The labelled library, clustered by the `cluster_library` job, before any feedback (copied by tests)."""
    root = tmp_path_factory.mktemp("learning") / "warehouse"
    warehouse = Warehouse.at(root).ensure()
    truth = write_labelled_library(warehouse)
    defs = build_definitions(str(root), clip_model=str(tiny_clip))
    assert defs.resolve_job_def("cluster_library").execute_in_process(instance=instance_for(warehouse)).success
    return root, truth


@pytest.fixture
def library(clustered, tmp_path, monkeypatch, tiny_clip):
    """A private copy of the clustered library (with its Dagster instance), pointed at by the environment."""
    source, truth = clustered
    root = tmp_path / "warehouse"
    shutil.copytree(source, root)
    monkeypatch.setenv("MEDIA_ASSETS_WAREHOUSE", str(root))
    monkeypatch.setenv("MEDIA_ASSETS_CLIP_MODEL", str(tiny_clip))
    monkeypatch.setattr(feedback, "SETTLE_S", 0.0)
    warehouse = Warehouse.at(root)
    return warehouse, build_definitions(str(root), clip_model=str(tiny_clip)), truth


def check_evaluations(result) -> dict:
    return {
        e.event_specific_data.asset_check_key.name: e.event_specific_data
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    }


def materialized(result) -> set[str]:
    return {
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
    }


def scene_scores(warehouse: Warehouse, truth: dict[int, int], leave_out: set[int] = frozenset()) -> dict:
    """Purity and NMI of the scene clusters over the labelled shots (noise is a label of its own)."""
    rows = catalog.query(
        warehouse, "SELECT member_id, cluster_id, is_noise FROM cluster_members WHERE member_kind = 'shot'"
    ).to_pylist()
    cluster_of = {r["member_id"]: None if r["is_noise"] else r["cluster_id"] for r in rows}
    shots = [shot for shot in sorted(truth) if shot not in leave_out]
    return clustering_scores([truth[s] for s in shots], [cluster_of[s] for s in shots])


# -- feedback rows ------------------------------------------------------------------------------------


def test_feedback_is_validated_and_nothing_invalid_is_written(library):
    warehouse, _, truth = library
    writer = FeedbackWriter(warehouse, source="test")
    shot = min(truth)
    scene = catalog.query(
        warehouse, "SELECT cluster_id FROM clusters WHERE level = 'scene' ORDER BY cluster_id LIMIT 1"
    ).to_pylist()[0]["cluster_id"]
    frame = catalog.query(warehouse, "SELECT frame_id FROM frames ORDER BY frame_id LIMIT 1").to_pylist()[0]["frame_id"]
    refused = {
        "unknown shot": lambda: writer.move("shot", 12345, scene),
        "frames are not moved": lambda: writer.move("frame", frame, scene),
        "unknown cluster": lambda: writer.move("shot", shot, 999_999),
        "not an id": lambda: writer.move("shot", "12", scene),
        "bool is not an id": lambda: writer.same("shot", True, shot),
        "pair with itself": lambda: writer.same("shot", shot, shot),
        "unknown kind of member": lambda: writer.different("scene", shot, shot + 1),
        "empty query": lambda: writer.relevance("  ", frame, True),
        "relevant must be a bool": lambda: writer.relevance("a kitchen", frame, "yes"),
        "unknown frame": lambda: writer.relevance("a kitchen", 12345, True),
        "merge into itself": lambda: writer.merge(scene, scene),
        "split of strangers": lambda: writer.split(scene, "shot", [12345]),
    }
    for what, call in refused.items():
        with pytest.raises(FeedbackError):
            call()
            pytest.fail(what)
    assert catalog.read_table(warehouse, "feedback").num_rows == 0

    moved = writer.move("shot", shot, scene)
    same = writer.same("shot", shot, shot + 1 if shot + 1 in truth else max(truth))
    judged = writer.relevance("a kitchen at night", frame, False)
    rows = catalog.query(
        warehouse, "SELECT feedback_id, seq, kind, source, created_at FROM feedback ORDER BY seq"
    ).to_pylist()
    assert [r["kind"] for r in rows] == ["move", "same", "relevance"]
    assert [r["feedback_id"] for r in rows] == [moved["feedback_id"], same["feedback_id"], judged["feedback_id"]]
    assert all(r["source"] == "test" and r["created_at"] is not None for r in rows)
    assert len({r["seq"] for r in rows}) == 3
    # the move is a pin the clusters stage honours
    assert catalog.query(warehouse, "SELECT member_id, cluster_id FROM current_pins").to_pylist() == [
        {"member_id": shot, "cluster_id": scene}
    ]
    # the search client writes through the same API
    assert SearchClient(warehouse).feedback.relevance("a kitchen", frame, True)["source"] == "python"

    # a split's new cluster takes members at once (before the next clustering makes it)
    members = catalog.query(
        warehouse,
        "SELECT member_id FROM cluster_members WHERE cluster_id = ? AND member_kind = 'shot' ORDER BY member_id",
        [scene],
    ).to_pylist()
    new_id, _ = writer.split(scene, "shot", [members[0]["member_id"]])
    other = next(s for s in sorted(truth) if s not in {m["member_id"] for m in members})
    assert writer.move("shot", other, new_id)["cluster_id"] == new_id
    with pytest.raises(FeedbackError, match=f"there is no cluster with id {new_id + 1}"):
        writer.move("shot", other, new_id + 1)


def test_feedback_through_the_http_api(library):
    warehouse, _, truth = library
    clusters = catalog.query(
        warehouse, "SELECT cluster_id, size FROM clusters WHERE level = 'scene' ORDER BY size DESC"
    ).to_pylist()
    big, other = clusters[0]["cluster_id"], clusters[1]["cluster_id"]
    members = catalog.query(
        warehouse, "SELECT member_id FROM cluster_members WHERE cluster_id = ? ORDER BY member_id", [big]
    ).to_pylist()
    frame = catalog.query(warehouse, "SELECT frame_id FROM frames ORDER BY frame_id LIMIT 1").to_pylist()[0]["frame_id"]
    a, b = sorted(truth)[:2]
    with TestClient(create_app(warehouse)) as http:
        assert (
            http.post(
                "/feedback/pair", json={"member_kind": "shot", "member_id": a, "other_member_id": b, "same": False}
            ).status_code
            == 201
        )
        assert (
            http.post("/feedback/relevance", json={"query": "rocket", "frame_id": frame, "relevant": True}).status_code
            == 201
        )
        split = http.post(
            "/feedback/split", json={"cluster_id": big, "member_kind": "shot", "member_ids": [members[0]["member_id"]]}
        )
        assert split.status_code == 201
        new_cluster = split.json()["cluster_id"]
        assert new_cluster > max(c["cluster_id"] for c in clusters)
        merged = http.post("/feedback/merge", json={"into_cluster_id": big, "from_cluster_id": other})
        assert merged.status_code == 201
        # refused: unknown ids are 404, wrong kinds and values 422, and nothing is written
        before = catalog.read_table(warehouse, "feedback").num_rows
        assert (
            http.post(
                "/feedback/pair", json={"member_kind": "shot", "member_id": a, "other_member_id": 7, "same": True}
            ).status_code
            == 404
        )
        assert (
            http.post(
                "/feedback/pair", json={"member_kind": "galaxy", "member_id": a, "other_member_id": b, "same": True}
            ).status_code
            == 422
        )
        assert (
            http.post("/feedback/relevance", json={"query": "", "frame_id": frame, "relevant": True}).status_code == 422
        )
        assert http.post("/feedback/relevance", json={"query": "x", "frame_id": 3, "relevant": True}).status_code == 404
        assert http.post("/feedback/merge", json={"into_cluster_id": big, "from_cluster_id": big}).status_code == 422
        assert catalog.read_table(warehouse, "feedback").num_rows == before
        listed = http.get("/feedback").json()
    kinds = (
        Counter(r["kind"] for r in listed["rows"]) if isinstance(listed, dict) else Counter(r["kind"] for r in listed)
    )
    assert kinds["different"] == 1 and kinds["relevance"] == 1 and kinds["split"] == 1 and kinds["merge"] >= 1


WRITER = """
import sys
from media_assets.feedback.table import FeedbackWriter
from media_assets.warehouse import Warehouse
writer = FeedbackWriter(Warehouse.at(sys.argv[1]), source=sys.argv[2])
for shot in sys.argv[4:]:
    writer.move("shot", int(shot), int(sys.argv[3]))
"""


def test_concurrent_writers_lose_nothing(library):
    """Four processes (as the server, the CLI and notebooks would be) write 10 moves each at once."""
    warehouse, _, truth = library
    cluster = catalog.query(warehouse, "SELECT cluster_id FROM clusters WHERE level = 'scene' LIMIT 1").to_pylist()[0][
        "cluster_id"
    ]
    shots = sorted(truth)[:40]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(warehouse.root), f"writer-{i}", str(cluster), *map(str, shots[i::4])]
        )
        for i in range(4)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    rows = catalog.query(warehouse, "SELECT source, member_id FROM feedback").to_pylist()
    assert len(rows) == 40 and sorted(r["member_id"] for r in rows) == shots
    assert Counter(r["source"] for r in rows) == {f"writer-{i}": 10 for i in range(4)}
    assert catalog.query(warehouse, "SELECT count(DISTINCT feedback_id) AS n FROM feedback").to_pylist()[0]["n"] == 40


# -- the sensor ---------------------------------------------------------------------------------------


def test_feedback_sensor_requests_a_run_and_moves_its_cursor_past_what_the_run_sees(library, monkeypatch):
    warehouse, _, truth = library
    resources = {"warehouse": WarehouseResource(root=str(warehouse.root))}
    instance = instance_for(warehouse)

    def tick(cursor):
        with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
            result = feedback_sensor(context)
            return result, context.cursor

    result, cursor = tick(None)
    assert "0 new settled feedback rows" in result.skip_message and cursor is None
    writer = FeedbackWriter(warehouse, source="test")
    shots = sorted(truth)
    for a, b in zip(shots[:3], shots[1:4], strict=False):
        writer.different("shot", a, b)
    result, cursor = tick(None)
    assert "3 new settled feedback rows; a retraining needs 5" in result.skip_message and cursor is None
    for a, b in zip(shots[4:6], shots[5:7], strict=False):
        writer.same("shot", a, b)
    result, cursor = tick(None)
    through = max(catalog.read_table(warehouse, "feedback")["seq"].to_pylist())
    assert result.run_key == f"feedback-through-{through}-5"
    assert result.run_config == {"ops": {"embedding_adapter": {"config": {"through_seq": through}}}}
    assert json.loads(cursor) == {"through": through, "rows": 5}
    # nothing new: no second request; rows not yet settled are not counted (nor passed by the cursor)
    result, same_cursor = tick(cursor)
    assert "0 new settled" in result.skip_message and same_cursor == cursor
    monkeypatch.setattr(feedback, "SETTLE_S", 3600.0)
    for shot in shots[10:16]:
        writer.different("shot", shot, shots[0])
    result, same_cursor = tick(cursor)
    assert "0 new settled" in result.skip_message and same_cursor == cursor
    monkeypatch.setattr(feedback, "SETTLE_S", 0.0)
    monkeypatch.setenv("MEDIA_ASSETS_FEEDBACK_MIN_ROWS", "6")
    result, cursor = tick(cursor)
    second_through = result.run_config["ops"]["embedding_adapter"]["config"]["through_seq"]
    assert second_through > through and json.loads(cursor) == {"through": second_through, "rows": 11}

    # rows that land behind the cursor after its tick (a slow write, a clock stepped back) are not lost:
    # they count as new at the next tick and the run it requests trains on them (every row up to its seq)
    late = [
        feedback._row(
            "different",
            "test",
            second_through - 1000 - i,
            feedback._clock()[1],
            member_kind="shot",
            member_id=shots[20 + i],
            other_member_id=shots[0],
        )
        for i in range(6)
    ]
    for row in late:
        catalog.append_rows(warehouse, "feedback", [row])
    result, cursor = tick(cursor)
    assert result.tags["media_assets/late_feedback_rows"] == "6" and json.loads(cursor)["rows"] == 17
    trains_on = feedback.feedback_rows(
        warehouse, through_seq=result.run_config["ops"]["embedding_adapter"]["config"]["through_seq"]
    )
    assert {r["feedback_id"] for r in late} <= set(trains_on["feedback_id"].to_pylist())
    # a cursor written as a bare seq (before the row count was kept) still reads
    result, _ = tick(str(second_through))
    assert isinstance(result, SkipReason) or result.run_config


# -- the loop through Dagster -------------------------------------------------------------------------


def test_feedback_trains_an_adapter_the_gate_promotes_and_everything_downstream_follows(library):
    warehouse, defs, truth = library
    instance = instance_for(warehouse)
    give_feedback(warehouse, truth)
    moved = {r["member_id"] for r in catalog.query(warehouse, "SELECT member_id FROM current_pins").to_pylist()}
    before = scene_scores(warehouse, truth, moved)
    through = feedback.settled_seq(warehouse)
    result = defs.resolve_job_def("learn_from_feedback").execute_in_process(
        instance=instance,
        run_config={"ops": {"embedding_adapter": {"config": {"through_seq": through}}}},
        raise_on_error=False,
    )
    assert result.success
    gate = check_evaluations(result)["adapter_improves_held_out"]
    assert gate.passed and gate.metadata["reason"].value.startswith("promoted: held-out map@10")
    held = gate.metadata["held_out"].value
    assert held["candidate"]["primary"] >= held["none"]["primary"] + 0.02
    assert materialized(result) >= {
        "embedding_adapter",
        "promoted_adapter",
        "adapted_vectors",
        "hnsw_index",
        "clusters",
    }

    # version 1 on disk with its feedback range and base model; the adapters table lists it
    assert adapters.current_version(warehouse) == 1
    meta = adapter_stage.candidate_metadata(warehouse, 1)
    assert meta["feedback_through_seq"] == through and meta["base_model_id"] == "synthetic"
    assert (warehouse.models_dir / "adapters" / "v0001" / "adapter.json").exists()
    rows = catalog.query(
        warehouse, "SELECT version, status, held_out_metric_name FROM adapters ORDER BY recorded_at"
    ).to_pylist()
    assert rows == [
        {"version": 1, "status": "candidate", "held_out_metric_name": "map@10"},
        {"version": 1, "status": "promoted", "held_out_metric_name": "map@10"},
    ]

    # every vector row records the adapter that made it; index and clusters read the adapted vectors
    frames = VectorStore(warehouse).count()
    adapted = (
        VectorStore(warehouse, "adapted_frame_vectors")
        .table()
        .to_lance()
        .to_table(columns=["frame_id", "adapter_version"])
    )
    assert adapted.num_rows == frames and set(adapted["adapter_version"].to_pylist()) == {1}
    assert set(
        VectorStore(warehouse, "adapted_shot_vectors").table().to_lance().to_table()["adapter_version"].to_pylist()
    ) == {1}
    manifest = Manifest.read(manifest_path(warehouse))
    assert manifest.vectors_table == "adapted_frame_vectors" and manifest.adapter_version == 1
    after = scene_scores(warehouse, truth, moved)  # the shots nobody moved: better grouped by the adapter alone
    assert after["nmi"] > before["nmi"]

    # search applies the adapter to queries and searches the adapted vectors
    client = SearchClient(warehouse)
    store, adapter = client._serving()
    assert store.name == "adapted_frame_vectors" and adapter is not None
    base_query = VectorStore(warehouse).load_all()[2][0]
    np.testing.assert_allclose(client.query_vector(base_query), adapter.apply(base_query[None, :])[0], atol=1e-6)
    some_frame = int(VectorStore(warehouse).load_all()[0][0])
    hits = client.similar_frames(some_frame, k=5)
    assert len(hits) == 5
    # the HTTP API answers from the adapted vectors too: the same neighbours, the same scores
    with TestClient(create_app(warehouse)) as http:
        served = http.get(f"/similar/frame/{some_frame}", params={"k": 5}).json()["results"]
    assert [h["frame_id"] for h in served] == [h.frame_id for h in hits]
    assert [h["similarity"] for h in served] == pytest.approx([h.similarity for h in hits])

    # rollback: one command; the adapted vectors go, the index and clusters follow the base vectors again
    outcome = CliRunner().invoke(cli, ["adapter", "rollback", "--warehouse", str(warehouse.root)])
    assert outcome.exit_code == 0, outcome.output
    assert "adapter version 0 is current; refreshed" in outcome.output
    assert adapters.current_version(warehouse) == 0
    assert VectorStore(warehouse, "adapted_frame_vectors").table() is None
    manifest = Manifest.read(manifest_path(warehouse))
    assert manifest.vectors_table == "frame_vectors" and manifest.adapter_version == 0
    assert SearchClient(warehouse)._serving()[1] is None
    listing = CliRunner().invoke(cli, ["adapter", "list", "--warehouse", str(warehouse.root)])
    assert "current adapter version: 0" in listing.output and "rollback from version 1" in listing.output
    # and forward again to version 1
    assert CliRunner().invoke(cli, ["adapter", "rollback", "1", "--warehouse", str(warehouse.root)]).exit_code == 0
    assert adapters.current_version(warehouse) == 1
    assert Manifest.read(manifest_path(warehouse)).adapter_version == 1

    # adapted_vectors_automation: once a file's frame vectors change (a new or re-embedded file), the
    # adapted vectors are asked for again (Dagster's own evaluator; the update reported as the ingest run would)
    from dagster import AssetKey, AssetMaterialization, evaluate_automation_conditions

    from media_assets.defs.partitions import media_files

    key = AssetKey("adapted_vectors")
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    quiet = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert quiet.get_num_requested(key) == 0
    partition = "other/0.mp4"
    instance.add_dynamic_partitions(media_files.name, [partition])
    instance.report_runless_asset_event(AssetMaterialization("frame_embeddings", partition=partition))
    changed = evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
    assert changed.get_num_requested(key) == 1


def test_the_gate_refuses_an_adapter_trained_on_shuffled_labels(library):
    warehouse, defs, truth = library
    give_feedback(warehouse, truth, shuffled=True)
    clusters_before = catalog.read_table(warehouse, "clusters")
    result = defs.resolve_job_def("learn_from_feedback").execute_in_process(
        instance=instance_for(warehouse),
        run_config={"ops": {"embedding_adapter": {"config": {"through_seq": feedback.settled_seq(warehouse)}}}},
        raise_on_error=False,
    )
    gate = check_evaluations(result)["adapter_improves_held_out"]
    assert not gate.passed and gate.metadata["reason"].value.startswith("not promoted")
    assert (
        gate.metadata["candidate_version"].value == "v1"
        and gate.metadata["compared_with_version"].value == "none (base model)"
    )
    # the run stops at the gate: nothing downstream changed
    assert materialized(result) == {"embedding_adapter"}
    assert adapters.current_version(warehouse) == 0
    assert VectorStore(warehouse, "adapted_frame_vectors").table() is None
    assert catalog.read_table(warehouse, "clusters").equals(clusters_before)
    assert catalog.query(warehouse, "SELECT status FROM adapters").to_pylist() == [{"status": "candidate"}]
    # materializing promoted_adapter on its own (the UI allows it) does not get the refused candidate past its gate
    alone = materialize(
        [promoted_adapter],
        instance=instance_for(warehouse),
        raise_on_error=False,
        resources={"warehouse": WarehouseResource(root=str(warehouse.root))},
    )
    assert not alone.success and adapters.current_version(warehouse) == 0
    failure = next(e for e in alone.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "nothing promoted" in failure.event_specific_data.error.message


def test_only_a_candidate_its_gate_passed_against_the_adapter_in_service_is_promoted(library, monkeypatch):
    warehouse, _, truth = library
    give_feedback(warehouse, truth)
    through = feedback.settled_seq(warehouse)
    first = adapter_stage.train_candidate(warehouse, through_seq=through, run_id="run-a")
    second = adapter_stage.train_candidate(warehouse, through_seq=through, run_id="run-b")
    assert (first.version, second.version) == (1, 2) and first.decision["promote"] and second.decision["promote"]
    assert (
        adapter_stage.candidate_of_run(warehouse, "run-a") == 1
        and adapter_stage.candidate_of_run(warehouse, "run-b") == 2
    )
    # held-out items are only what people said: the clustering's companions always train
    assert (
        first.metadata["companion_items"] > 0
        and first.metadata["held_out_items"] < first.metadata["items"] - first.metadata["companion_items"]
    )
    adapter_stage.promote(warehouse, 1, reason="test", run_id="run-a")
    # version 2 was judged against no adapter; version 1 is in service now: its judgement is stale
    with pytest.raises(adapter_stage.LearningError, match="judged against version 0, but version 1 is current"):
        adapter_stage.promote(warehouse, 2, reason="test", run_id="run-b")
    assert adapters.current_version(warehouse) == 1
    # a refused candidate is never promoted by the gate's path
    meta_path = adapters.version_dir(warehouse, 2) / "adapter.json"
    manifest = json.loads(meta_path.read_text())
    manifest["metadata"]["decision"] = {"promote": False, "reason": "not promoted: test"}
    meta_path.write_text(json.dumps(manifest))
    with pytest.raises(adapter_stage.LearningError, match="did not pass its gate: not promoted: test"):
        adapter_stage.promote(warehouse, 2, reason="test")
    with pytest.raises(adapter_stage.LearningError, match="trained no adapter version"):
        adapter_stage.candidate_of_run(warehouse, "run-c")

    # rollbacks step back one promoted version at a time, then say there is nothing left
    adapter_stage.promote(warehouse, 2, reason="chosen by a person", gate=False)
    assert adapter_stage.rollback(warehouse) == 1
    assert adapter_stage.rollback(warehouse) == 0
    with pytest.raises(adapter_stage.LearningError, match="nothing to roll back"):
        adapter_stage.rollback(warehouse)

    # an adapter is only applied to vectors of the model it was trained for
    adapter_stage.promote(warehouse, 1, reason="again", gate=False)
    assert adapter_stage.write_adapted_vectors(warehouse)["adapted_frame_vectors"] > 0
    assert adapters.serving_store(warehouse).name == "adapted_frame_vectors"
    # a deleted file leaves the adapted tables too, and they stay served
    from media_assets.ids import media_id_of_frame
    from media_assets.stages.frames import purge_media

    gone = media_id_of_frame(int(VectorStore(warehouse).load_all()[0][0]))
    rows_before = VectorStore(warehouse, "adapted_frame_vectors").count()
    purge_media(warehouse, gone)
    assert gone not in set(VectorStore(warehouse, "adapted_frame_vectors").load_all()[1].tolist())
    assert VectorStore(warehouse, "adapted_frame_vectors").count() < rows_before
    assert adapters.serving_store(warehouse).name == "adapted_frame_vectors"
    monkeypatch.setattr(adapter_stage, "current_model_ids", lambda _: ["openai/clip-vit-large-patch14"])
    with pytest.raises(adapter_stage.LearningError, match="trained for vectors of 'synthetic'"):
        adapter_stage.write_adapted_vectors(warehouse)
    assert VectorStore(warehouse, "adapted_frame_vectors").table() is None  # dropped, not left stale
    assert adapters.serving_store(warehouse).name == "frame_vectors"
    with pytest.raises(adapter_stage.LearningError, match="openai/clip-vit-large-patch14"):
        adapter_stage.rollback(warehouse, 2)


def test_two_runs_training_at_once_never_share_a_version(library):
    import threading

    warehouse, _, _ = library
    taken, threads = [], []
    for _ in range(8):
        threads.append(threading.Thread(target=lambda: taken.append(adapter_stage._reserve_version(warehouse))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(1, 9))
    assert adapter_stage.latest_candidate(warehouse) == 0  # reserved, none saved yet


def test_too_little_feedback_fails_the_run_with_a_reason(library):
    warehouse, defs, truth = library
    outcome = CliRunner().invoke(cli, ["learn", "--warehouse", str(warehouse.root)])
    assert outcome.exit_code == 0 and "no feedback yet" in outcome.output
    FeedbackWriter(warehouse, source="test").same("shot", *sorted(truth)[:2])
    result = defs.resolve_job_def("learn_from_feedback").execute_in_process(
        instance=instance_for(warehouse), raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "more feedback is needed" in failure.event_specific_data.error.message
    outcome = CliRunner().invoke(cli, ["learn", "--warehouse", str(warehouse.root)])
    assert (
        "training failed: cannot train on the feedback" in outcome.output
        and "more feedback is needed" in outcome.output
    )
    assert (
        adapters.current_version(warehouse) == 0 and not (warehouse.models_dir / "adapters" / "current.json").exists()
    )
