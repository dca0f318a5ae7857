"""Several partitions materializing at once, each run in Dagster's multiprocess executor in its own
process, while searches read the same warehouse: no run fails on a lock, no row is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from mediagen import photo, shots_video

from media_assets import SearchClient
from media_assets.defs.instance import INSTANCE_YAML, instance_for
from media_assets.defs.partitions import media_files
from media_assets.media.discovery import scan_media
from media_assets.store import catalog
from media_assets.store.vectors import VectorStore


def test_parallel_runs_and_searches_lose_nothing(warehouse, tiny_clip, tmp_path):
    sources = ["astronaut", "chelsea", "coffee", "rocket"]
    for i in range(2):
        shots_video(warehouse.media_root / f"v{i}.mp4", sources[i:] + sources[:i], seconds_each=1.0)
    cv2.imwrite(str(warehouse.media_root / "p.png"), photo("camera"))
    keys = [m.partition_key for m in scan_media(warehouse.media_root)]
    # every run's steps write at once: the `gpu` pool, which keeps one accelerator step at a time on a real
    # machine, is opened to all three runs here (with its limit of 1 the vector writers would take turns)
    warehouse.dagster_home.mkdir(parents=True, exist_ok=True)
    (warehouse.dagster_home / "dagster.yaml").write_text(
        INSTANCE_YAML.replace(
            "default_limit: 1\n    granularity: op", f"default_limit: {len(keys)}\n    granularity: op"
        )
    )
    instance = instance_for(warehouse)
    instance.add_dynamic_partitions(media_files.name, keys)

    # the warehouse fixture set MEDIA_ASSETS_WAREHOUSE and MEDIA_ASSETS_CLIP_MODEL; the executor's step
    # processes import the job from this folder
    tests = str(Path(__file__).parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
    launcher = str(Path(__file__).parent / "dagster_targets.py")
    logs = [tmp_path / f"run-{i}.log" for i in range(len(keys))]
    runs = [
        subprocess.Popen([sys.executable, launcher, key], env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        for key, log in zip(keys, logs, strict=True)
    ]

    client = SearchClient(warehouse, model=str(tiny_clip))
    searches, search_errors = 0, []
    while any(run.poll() is None for run in runs):
        try:
            client.search_image(photo("coffee"), k=5)
            catalog.query(warehouse, "SELECT count(*) FROM frames JOIN media USING (media_id)")
            searches += 1
        except Exception as exc:  # collected, asserted below
            search_errors.append(repr(exc))
        time.sleep(0.25)
    outputs = {key: log.read_text() for key, log in zip(keys, logs, strict=True)}
    failed = {
        key: [line for line in outputs[key].splitlines() if "Error" in line or "error" in line][-12:]
        for key, run in zip(keys, runs, strict=True)
        if run.returncode != 0
    }
    assert not failed, failed
    assert not search_errors, search_errors[:3]
    assert searches > 0

    # every partition's rows are there exactly once
    frames = catalog.query(
        warehouse, "SELECT media_id, count(*) AS n, count(DISTINCT frame_id) AS d FROM frames GROUP BY media_id"
    ).to_pylist()
    assert len(frames) == 3 and all(r["n"] == r["d"] for r in frames)
    kept = catalog.query(warehouse, "SELECT frame_id FROM frames WHERE NOT is_duplicate")["frame_id"].to_pylist()
    vector_ids, _, vectors = VectorStore(warehouse).load_all()
    assert sorted(vector_ids.tolist()) == sorted(kept)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    records = instance.get_runs()
    assert len(records) == 3 and all(r.is_success for r in records)
    assert client.search_image(photo("camera"), k=1)[0].partition_key == "p.png"
