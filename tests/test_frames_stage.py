"""The frames stage without Dagster: thumbnails, signals, near-duplicates, catalog rows, replacement."""

from __future__ import annotations

import subprocess
import sys

import cv2
import duckdb
import numpy as np
import pytest
from mediagen import photo, shots_video, write_audio

from media_assets.errors import MediaReadError
from media_assets.ids import media_id_for, media_id_of_frame
from media_assets.media.decoding import Sampling
from media_assets.media.discovery import scan_media, stat_media_file
from media_assets.media.signals import grey, hash_distance, phash
from media_assets.stages.frames import FrameSettings, extract_frames
from media_assets.store import catalog


def test_frames_rows_thumbnails_and_duplicates(warehouse):
    video = shots_video(
        warehouse.media_root / "clips" / "three.mp4", ["astronaut", "chelsea", "coffee"], seconds_each=3.0
    )
    media_file = stat_media_file(video, warehouse.media_root)
    assert media_file.partition_key == "clips/three.mp4"
    result = extract_frames(
        warehouse, media_file, FrameSettings(Sampling(fps=1.0), thumbnail_max_side=160), run_id="r1"
    )
    rows = result.frames.to_pylist()
    assert [r["seq"] for r in rows] == list(range(9))
    assert all(media_id_of_frame(r["frame_id"]) == media_file.media_id for r in rows)
    # each still shot: its first frame is kept, the next two are near-duplicates of it
    assert [r["is_duplicate"] for r in rows] == [False, True, True] * 3
    assert rows[1]["duplicate_of"] == rows[0]["frame_id"] and rows[0]["duplicate_of"] is None
    # the change score is high across a cut and low inside a still shot
    assert rows[3]["change_score"] > 0.3 and rows[3]["pixel_change"] > 0.1
    assert rows[4]["change_score"] < 0.1 and rows[4]["pixel_change"] < 0.02
    for row in rows:
        thumb = cv2.imread(str(warehouse.root / row["thumbnail_path"]))
        assert max(thumb.shape[:2]) == 160
        assert (row["width"], row["height"]) == (320, 180)
        assert row["sharpness"] > 0 and row["run_id"] == "r1"
    media = catalog.query(warehouse, "SELECT * FROM media").to_pylist()
    assert len(media) == 1 and media[0]["frames_sampled"] == 9 and media[0]["duplicate_frames"] == 6
    assert media[0]["duration_s"] == pytest.approx(9.0, abs=0.05)
    assert media[0]["sampling"] == "fps=1"


def test_rematerializing_replaces_exactly_one_partition(warehouse):
    a = shots_video(warehouse.media_root / "a.mp4", ["astronaut", "chelsea"], seconds_each=2.0)
    b = shots_video(warehouse.media_root / "b.mp4", ["coffee"], seconds_each=3.0)
    for path in (a, b):
        extract_frames(warehouse, stat_media_file(path, warehouse.media_root))
    before_b = catalog.query(warehouse, f"SELECT * FROM frames WHERE media_id = {media_id_for('b.mp4')} ORDER BY seq")
    extract_frames(warehouse, stat_media_file(a, warehouse.media_root), FrameSettings(Sampling(fps=2.0)))
    rows = catalog.query(warehouse, "SELECT media_id, count(*) AS n FROM frames GROUP BY media_id").to_pylist()
    counts = {r["media_id"]: r["n"] for r in rows}
    assert counts[media_id_for("a.mp4")] == 8  # 4 s at 2 fps, no duplicates left over from the first run
    assert (
        catalog.query(warehouse, f"SELECT * FROM frames WHERE media_id = {media_id_for('b.mp4')} ORDER BY seq")
        == before_b
    )
    assert catalog.query(warehouse, "SELECT count(*) AS n FROM media").to_pylist()[0]["n"] == 2
    thumbs = sorted(p.name for p in warehouse.thumbnail_dir(media_id_for("a.mp4")).iterdir())
    assert len(thumbs) == 8


def test_an_unreadable_file_is_recorded_and_leaves_nothing_behind(warehouse):
    path = warehouse.media_root / "bad.mov"
    path.write_bytes(b"\x00\x00\x00\x18ftypqt  " + b"garbage" * 100)
    media_file = stat_media_file(path, warehouse.media_root)
    with pytest.raises(MediaReadError, match="bad.mov"):
        extract_frames(warehouse, media_file)
    errors = catalog.query(warehouse, "SELECT * FROM ingest_errors").to_pylist()
    assert len(errors) == 1
    assert errors[0]["partition_key"] == "bad.mov" and errors[0]["stage"] == "frames"
    assert "not a readable video" in errors[0]["message"]
    assert catalog.query(warehouse, "SELECT count(*) AS n FROM frames").to_pylist()[0]["n"] == 0
    # once the file is fixed, a run clears the error
    shots_video(path, ["astronaut"], seconds_each=1.0)
    extract_frames(warehouse, stat_media_file(path, warehouse.media_root))
    assert catalog.query(warehouse, "SELECT count(*) AS n FROM ingest_errors").to_pylist()[0]["n"] == 0


def test_an_audio_file_gets_a_media_row_and_no_frames(warehouse):
    path = write_audio(warehouse.media_root / "voice.flac", np.zeros(int(2.5 * 16_000), np.float32))
    media_file = stat_media_file(path, warehouse.media_root)
    assert media_file.kind == "audio"
    result = extract_frames(warehouse, media_file, run_id="r1")
    assert result.kept == 0 and result.thumbnails == [] and not warehouse.thumbnail_dir(media_file.media_id).exists()
    media = catalog.query(warehouse, "SELECT * FROM media").to_pylist()
    assert len(media) == 1
    row = media[0]
    assert (row["kind"], row["container"], row["codec"], row["sampling"]) == ("audio", "flac", "flac", "audio")
    assert (row["width"], row["height"], row["fps"], row["frames_sampled"]) == (0, 0, None, 0)
    assert row["duration_s"] == pytest.approx(2.5, abs=0.01) and row["run_id"] == "r1"
    assert catalog.read_partition(warehouse, "frames", media_file.media_id).num_rows == 0
    # a corrupt audio file is an ingest error like a corrupt video
    bad = warehouse.media_root / "bad.m4a"
    bad.write_bytes(b"\x00\x00\x00\x18ftypM4A " + b"garbage" * 100)
    with pytest.raises(MediaReadError, match="bad.m4a"):
        extract_frames(warehouse, stat_media_file(bad, warehouse.media_root))
    errors = catalog.query(warehouse, "SELECT partition_key, stage FROM ingest_errors").to_pylist()
    assert errors == [{"partition_key": "bad.m4a", "stage": "frames"}]


def test_catalog_file_has_views_a_person_can_query(warehouse):
    shots_video(warehouse.media_root / "a.mp4", ["astronaut"], seconds_each=2.0)
    for media_file in scan_media(warehouse.media_root):
        extract_frames(warehouse, media_file)
    assert catalog.sync_catalog_file(warehouse)
    with duckdb.connect(str(warehouse.catalog_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM frames").fetchone()[0] == 2
        assert con.execute("SELECT partition_key FROM media").fetchone()[0] == "a.mp4"
        assert con.execute("SELECT count(*) FROM ingest_errors").fetchone()[0] == 0
    # a person holding the file open in another process does not stop ingestion: writers never open it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                f"import duckdb, time; c = duckdb.connect({str(warehouse.catalog_path)!r}); "
                "print('open', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        shots_video(warehouse.media_root / "b.mp4", ["coffee"], seconds_each=1.0)
        extract_frames(warehouse, stat_media_file(warehouse.media_root / "b.mp4", warehouse.media_root))
        assert catalog.query(warehouse, "SELECT count(*) AS n FROM media").to_pylist()[0]["n"] == 2
        assert not catalog.sync_catalog_file(warehouse, timeout_s=0.2)  # locked: views stay, no error
    finally:
        holder.kill()
        holder.wait()
    with duckdb.connect(str(warehouse.catalog_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM media").fetchone()[0] == 2


def test_perceptual_hash_is_stable_under_noise_and_differs_across_content():
    base = photo("astronaut")
    noisy = cv2.add(base, (cv2.randn(base.copy(), 0, 6)))
    other = photo("chelsea")
    assert hash_distance(phash(grey(base)), phash(grey(noisy))) <= 4
    assert hash_distance(phash(grey(base)), phash(grey(other))) > 16


def test_scan_finds_media_by_extension_and_skips_hidden(warehouse):
    root = warehouse.media_root
    for name in [
        "a.MP4",
        "b.mkv",
        "c.webm",
        "d.avi",
        "e.mov",
        "p/q.jpg",
        "p/r.png",
        "p/s.webp",
        "p/t.bmp",
        "p/u.tiff",
        "notes.txt",
        ".hidden.mp4",
        ".cache/x.mp4",
    ]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    keys = [m.partition_key for m in scan_media(root)]
    assert keys == [
        "a.MP4",
        "b.mkv",
        "c.webm",
        "d.avi",
        "e.mov",
        "p/q.jpg",
        "p/r.png",
        "p/s.webp",
        "p/t.bmp",
        "p/u.tiff",
    ]
    assert len({media_id_for(k) for k in keys}) == len(keys)
