"""`media-assets verify`, `backup` and `restore`, and the asset check `warehouse_is_consistent`.

One small warehouse (a video with a face and a photo, media outside the warehouse) is built once through Dagster
and copied for each test that breaks it. Each break is reported with its kind, its partition and what repairs it;
`--repair` repairs what runs can, through Dagster, and verify is clean after; a backup wiped and restored gives the
same rows, vectors and answers; a backup taken while a partition is written verifies clean when restored; old
backups rotate out; a changed byte makes the restore refuse.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import cv2
import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from dagster import DagsterEventType
from mediagen import photo, shots_video

from media_assets.apps.cli import main
from media_assets.definitions import build_definitions
from media_assets.defs.instance import instance_for
from media_assets.defs.runner import ingest
from media_assets.ids import media_id_for
from media_assets.media.discovery import scan_media
from media_assets.search.client import SearchClient
from media_assets.search.index import IndexReader
from media_assets.stages.frames import FrameSettings, extract_frames
from media_assets.stages.verify import verify_warehouse
from media_assets.store import catalog
from media_assets.store.backup import (
    MANIFEST,
    BackupError,
    backup_warehouse,
    check_backup,
    list_backups,
    restore_warehouse,
)
from media_assets.store.vectors import FRAME_VECTORS, SHOT_VECTORS, VectorStore
from media_assets.warehouse import Warehouse

VIDEO, PHOTO = "b.mp4", "cat.png"


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_clip) -> Warehouse:
    """A video (two shots, a face) and a photo, ingested as `media-assets ingest` does; media outside the warehouse."""
    root = tmp_path_factory.mktemp("verify")
    library = root / "library"
    shots_video(library / VIDEO, ["rocket", "astronaut"], seconds_each=1.0, size=(512, 512))
    cv2.imwrite(str(library / PHOTO), photo("chelsea", (400, 300)))
    warehouse = Warehouse.at(root / "warehouse", media_root=library).ensure()
    warehouse.remember_media_root()
    report = ingest(warehouse, clip_model=str(tiny_clip), device="cpu", frames_config={"sample_fps": 2.0})
    assert not report.failed and len(report.succeeded) == 2, report.failed
    return Warehouse.at(warehouse.root)


def copy_of(warehouse: Warehouse, tmp_path: Path) -> Warehouse:
    shutil.copytree(warehouse.root, tmp_path / "warehouse")
    return Warehouse.at(tmp_path / "warehouse")


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def kept_frames(warehouse: Warehouse, key: str) -> list[dict]:
    return catalog.query(
        warehouse,
        "SELECT frame_id, thumbnail_path FROM frames WHERE media_id = ? AND NOT is_duplicate ORDER BY frame_id",
        [media_id_for(key)],
    ).to_pylist()


def add_orphan_vector(warehouse: Warehouse, key: str) -> int:
    """A frame vector of `key`'s media whose frame does not exist."""
    table = VectorStore(warehouse).table()
    row = table.to_lance().to_table(filter=f"media_id = {media_id_for(key)}").slice(0, 1)
    orphan = (media_id_for(key) << 20) | 777
    table.add(row.set_column(0, "frame_id", pa.array([orphan], pa.int64())))
    return orphan


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))


def found(report) -> set[tuple[str, str | None, str]]:
    return {(p.kind, p.partition_key, p.repair.target or p.repair.action) for p in report.problems}


def check_result(warehouse: Warehouse):
    defs = build_definitions(str(warehouse.root))
    result = defs.resolve_job_def("verify_warehouse").execute_in_process(
        instance=instance_for(warehouse), run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    )
    events = result.all_events
    (check,) = [e.event_specific_data for e in events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    return check


# -- verify ----------------------------------------------------------------------------------------------------


def test_a_built_warehouse_verifies_clean_from_the_cli_and_the_asset_check(built):
    report = verify_warehouse(built)
    assert report.clean, [p.detail for p in report.problems]
    assert report.counts["media"] == 2 and report.counts["kept_frames"] == report.counts["frame_vectors"] > 0
    assert report.counts["index_live"] == report.counts["frame_vectors"]

    result = cli("verify", "--warehouse", str(built.root))
    assert result.exit_code == 0 and "clean" in result.output, result.output
    as_json = json.loads(cli("verify", "--warehouse", str(built.root), "--json").output)
    assert as_json["clean"] and as_json["problems"] == []

    check = check_result(built)
    assert check.asset_check_key.name == "warehouse_is_consistent" and check.passed
    assert check.metadata["problems"].value == 0


def test_the_check_runs_on_its_schedule_and_not_with_every_index_build():
    from dagster import DefaultScheduleStatus

    defs = build_definitions()
    schedule = defs.get_repository_def().get_schedule_def("verify_warehouse_schedule")
    assert schedule.default_status == DefaultScheduleStatus.RUNNING and schedule.job_name == "verify_warehouse"
    assert schedule.cron_schedule == "0 4 * * *"

    def checks(job: str) -> set[str]:
        return {k.name for k in defs.resolve_job_def(job).asset_layer.asset_graph.asset_check_keys}

    assert checks("verify_warehouse") == {"warehouse_is_consistent"}
    for job in ("index_frames", "refresh_adapted", "learn_from_feedback"):
        assert "hnsw_recall" in checks(job) and "warehouse_is_consistent" not in checks(job)


def test_each_break_is_reported_with_its_partition_and_repair(built, tmp_path):
    warehouse = copy_of(built, tmp_path)
    video = kept_frames(warehouse, VIDEO)
    (warehouse.root / video[0]["thumbnail_path"]).unlink()  # a missing thumbnail
    VectorStore(warehouse).table().delete(f"frame_id = {video[-1]['frame_id']}")  # a missing vector
    orphan = add_orphan_vector(warehouse, PHOTO)  # a vector without its frame (and the index is stale now)
    corrupt(catalog.table_dir(warehouse, "shots") / f"{media_id_for(PHOTO)}.parquet")
    (catalog.table_dir(warehouse, "chapters") / f"{media_id_for(VIDEO)}.parquet").unlink()  # summaries' rows
    faces = catalog.query(warehouse, "SELECT crop_path FROM faces").to_pylist()
    if faces:
        (warehouse.root / faces[0]["crop_path"]).unlink()
    (warehouse.models_dir / "adapters").mkdir(parents=True, exist_ok=True)
    (warehouse.models_dir / "adapters" / "current.json").write_text('{"version": 3}')

    report = verify_warehouse(warehouse)
    problems = found(report)
    assert {
        ("missing_thumbnail", VIDEO, "frames"),
        ("frame_without_vector", VIDEO, "frame_embeddings"),
        ("vector_without_frame", PHOTO, "frame_embeddings"),
        ("unreadable_file", PHOTO, "shots"),
        ("text_vector_without_text", VIDEO, "chapters"),
        ("index_stale", None, "index_frames"),
        ("adapter_registry", None, "none"),
    } <= problems, problems
    if faces:
        assert ("missing_face_crop", VIDEO, "faces") in problems
    by_kind = {p.kind: p for p in report.problems}
    assert by_kind["vector_without_frame"].examples == (orphan,)
    assert f"{media_id_for(PHOTO)}.parquet" in by_kind["unreadable_file"].detail
    assert "not" in by_kind["index_stale"].detail  # the orphan is not in the index

    result = cli("verify", "--warehouse", str(warehouse.root))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert VIDEO in lines and PHOTO in lines and "(warehouse)" in lines
    under_photo = lines[lines.index(PHOTO) + 1 :]
    assert under_photo[0].startswith("  ") and "re-materialize" in result.output
    as_json = json.loads(cli("verify", "--warehouse", str(warehouse.root), "--json").output)
    assert not as_json["clean"] and {p["kind"] for p in as_json["problems"]} >= {"missing_thumbnail", "index_stale"}

    check = check_result(warehouse)
    assert not check.passed
    to_rematerialize = check.metadata["partitions_to_rematerialize"].value
    assert set(to_rematerialize) == {VIDEO, PHOTO} and "frames" in to_rematerialize[VIDEO]
    assert check.metadata["jobs_to_run"].value == ["index_frames"]
    assert check.metadata["problems_by_kind"].value["adapter_registry"] == 1


def test_repair_requests_exactly_the_needed_runs_and_verify_is_clean_after(built, tmp_path):
    warehouse = copy_of(built, tmp_path)
    photo_frame = kept_frames(warehouse, PHOTO)[0]
    (warehouse.root / photo_frame["thumbnail_path"]).unlink()
    add_orphan_vector(warehouse, PHOTO)
    table = VectorStore(warehouse).table()
    table.add(table.to_lance().to_table(filter=f"frame_id = {photo_frame['frame_id']}"))  # a repeated id
    corrupt(catalog.table_dir(warehouse, "shots") / f"{media_id_for(PHOTO)}.parquet")
    kinds = {p.kind for p in verify_warehouse(warehouse).problems}
    assert kinds == {"missing_thumbnail", "vector_without_frame", "duplicate_vectors", "unreadable_file", "index_stale"}
    before = {r.run_id for r in instance_for(warehouse).get_runs()}

    result = cli("verify", "--warehouse", str(warehouse.root), "--repair")
    assert result.exit_code == 0, result.output
    assert f"ingest_media {PHOTO} (" in result.output and "index_frames: ok" in result.output
    assert f"ingest_media {VIDEO}" not in result.output
    assert result.output.rstrip().endswith("agree")
    assert verify_warehouse(warehouse).clean
    runs = [r for r in instance_for(warehouse).get_runs() if r.run_id not in before]
    assert sorted((r.job_name, r.tags.get("dagster/partition")) for r in runs) == [
        ("index_frames", None),
        ("ingest_media", PHOTO),
    ]
    assert all(r.tags.get("media_assets/reason") == "repair" for r in runs)
    assert IndexReader(warehouse).get()[1] == "current"


# -- backup and restore --------------------------------------------------------------------------------------


def catalog_rows(warehouse: Warehouse) -> dict[str, list[str]]:
    rows = {}
    for table in catalog.TABLES:
        files = sorted(p for p in catalog.table_dir(warehouse, table).glob("*.parquet") if p.name != "_schema.parquet")
        dicts = [r for p in files for r in pq.read_table(p).to_pylist()]
        rows[table] = sorted(json.dumps(r, default=str, sort_keys=True) for r in dicts)
    return rows


def vector_tables(warehouse: Warehouse) -> dict[str, tuple[int, list]]:
    db = lancedb.connect(warehouse.vectors_uri)
    out = {}
    for name in db.table_names():
        table = db.open_table(name)
        data = table.to_lance().to_table()
        key = data.column_names[0]
        out[name] = (table.version, sorted(data.to_pylist(), key=lambda r: r[key]))
    return out


def answers(warehouse: Warehouse) -> list[tuple[int, float]]:
    hits = SearchClient(warehouse).search_text("a cat", 5)
    return [(h.frame_id, round(h.similarity, 6)) for h in hits]


def test_backup_wipe_restore_gives_the_same_warehouse_and_answers(built, tmp_path):
    warehouse = copy_of(built, tmp_path)
    rows, vectors, hits = catalog_rows(warehouse), vector_tables(warehouse), answers(warehouse)
    assert sum(map(len, rows.values())) and len(hits) == 3  # every kept frame

    result = cli("backup", str(tmp_path / "backups"), "--warehouse", str(warehouse.root))
    assert result.exit_code == 0 and "the copy verifies clean" in result.output, result.output
    ((backup, manifest),) = list_backups(tmp_path / "backups")
    assert manifest["settled"] and manifest["index"]["vectors_version"] == manifest["vectors"][FRAME_VECTORS]["version"]
    assert manifest["tables"]["frames"]["rows"] == len(rows["frames"]) and manifest["thumbnails"] > 0
    assert not (backup / "dagster").exists() and (backup / "SHA256SUMS").is_file()

    shutil.rmtree(warehouse.root)
    result = cli("restore", str(backup), "--warehouse", str(warehouse.root))
    assert result.exit_code == 0, result.output
    assert "registered 2 media files" in result.output and result.output.rstrip().endswith("agree")
    restored = Warehouse.at(warehouse.root)
    assert catalog_rows(restored) == rows
    assert vector_tables(restored) == vectors  # the same rows, at the same versions: the index stays current
    assert IndexReader(restored).get()[1] == "current"
    assert answers(restored) == hits
    assert set(instance_for(restored).get_dynamic_partitions("media_files")) == {VIDEO, PHOTO}


def test_restore_refuses_a_warehouse_in_place_and_a_changed_byte(built, tmp_path):
    backup = backup_warehouse(built, tmp_path / "backups").path
    assert check_backup(backup)["files"] > 0

    result = cli("restore", str(backup), "--warehouse", str(built.root))
    assert result.exit_code == 1 and "is not empty" in result.output and "--force" in result.output

    target = copy_of(built, tmp_path)
    (target.root / "dagster" / "kept.txt").write_text("the instance stays")
    restore_warehouse(backup, target, force=True)  # over a warehouse: its Dagster instance is kept
    assert (target.root / "dagster" / "kept.txt").exists() and verify_warehouse(Warehouse.at(target.root)).clean

    thumbnail = next((backup / "frames").rglob("*.jpg"))
    data = bytearray(thumbnail.read_bytes())
    data[100] ^= 0x01
    thumbnail.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=f"{thumbnail.name} does not match its sha256"):
        check_backup(backup)
    empty = tmp_path / "elsewhere"
    result = cli("restore", str(backup), "--warehouse", str(empty))
    assert result.exit_code == 1 and "does not match its sha256" in result.output
    assert not empty.exists() and not list(tmp_path.glob(".elsewhere.restoring-*"))
    (backup / MANIFEST).unlink()
    with pytest.raises(BackupError, match="not a complete backup"):
        restore_warehouse(backup, Warehouse.at(empty))


def test_backups_rotate_keeping_the_newest(built, tmp_path):
    folder = tmp_path / "backups"
    (folder / "notes").mkdir(parents=True)  # not a backup: left alone
    made = [backup_warehouse(built, folder, keep=2) for _ in range(4)]
    kept = [path for path, _ in list_backups(folder)]
    assert kept == [made[2].path, made[3].path]
    assert made[3].removed == [made[1].path] and (folder / "notes").is_dir()
    result = cli("backup", str(folder), "--keep", "1", "--warehouse", str(built.root))
    assert result.exit_code == 0 and result.output.count("removed the older backup") == 2
    assert len(list_backups(folder)) == 1


def test_a_backup_taken_while_a_partition_is_written_restores_consistent(built, tmp_path):
    warehouse = copy_of(built, tmp_path)
    (photo_file,) = [m for m in scan_media(warehouse.media_root) if m.partition_key == PHOTO]
    video_id = media_id_for(VIDEO)
    shots = catalog.read_partition(warehouse, "shots", video_id)
    shot_ids, _, shot_vectors = VectorStore(warehouse, SHOT_VECTORS).load_all()
    mine = (shot_ids >> 20) == video_id
    model_id = VectorStore(warehouse, SHOT_VECTORS).model_ids()[0]
    stop, writes = threading.Event(), []

    def writer():  # the photo's frames stage again, and the video's shots and shot vectors (the same ids)
        while not stop.is_set():
            began = time.monotonic()
            extract_frames(warehouse, photo_file, FrameSettings())
            catalog.replace_partition(warehouse, "shots", video_id, shots)
            VectorStore(warehouse, SHOT_VECTORS).replace_media(
                video_id, shot_ids[mine], shot_vectors[mine], model_id=model_id
            )
            writes.append((began, time.monotonic()))
            time.sleep(0.02)  # runs write in bursts

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while not writes:
            time.sleep(0.01)
        started = time.monotonic()
        result = backup_warehouse(warehouse, tmp_path / "backups")
        ended = time.monotonic()
    finally:
        stop.set()
        thread.join()
    assert any(began < ended and done > started for began, done in writes), "nothing was written during the backup"
    restored = Warehouse.at(tmp_path / "restored")
    restore_warehouse(result.path, restored)
    report = verify_warehouse(Warehouse.at(restored.root))
    assert report.clean, [(p.kind, p.detail) for p in report.problems]
    assert result.manifest["settled"] and result.manifest["passes"] >= 1
    assert np.array_equal(
        np.sort(VectorStore(Warehouse.at(restored.root), SHOT_VECTORS).load_all()[0]), np.sort(shot_ids)
    )
