"""Crashes lose nothing, and a full disk fails a run cleanly (issue 17).

Each stage that writes the warehouse (`frames`, `frame_embeddings`, `hnsw_index`, `clusters`, and the
adapter's promotion: `promote` then `write_adapted_vectors`, as `promoted_adapter` and `adapted_vectors` run
it) runs in a child process forked from the zygote in `fault_targets.py` (which imported everything once),
against a copy of a small prepared warehouse, and is SIGKILLed part-way, by turns in two ways:
- at a write: the child kills itself right before its Nth file-system write (an audit hook counts opens for
  writing, renames, unlinks, mkdir, rmtree; N drawn from the writes a clean run makes), which lands in every
  gap between two writes: a temporary file written and not renamed, one of two files renamed, the catalog
  committed and the old thumbnails not yet removed;
- at a time: the parent kills it a delay after its first write, drawn from how long a clean run writes,
  which lands inside the writes no audit hook sees: Arrow writing a Parquet file, Lance writing and
  committing a version, the index file being written.
After each kill the warehouse opens, every catalog view answers, the search client answers exactly as it
did before the run or as it does after a clean one (same hits: frames, files, times, similarities), the stage's
outputs are exactly the ones before the run or the ones a clean run makes (never a mix), the index is either
absent, or a whole file the client uses only when it is current; then the same stage runs again and ends with
exactly what a clean run makes (rows without their run ids and times, vector ids and values, cluster
assignments, index ids, the current adapter and the adapters log), leaving no temporary file behind.

A full disk: the child runs with RLIMIT_FSIZE (SIGXFSZ ignored, so a write past the limit fails with EFBIG):
the stage fails with a StorageFullError that says "disk full" and names the file, every file that was there
is unchanged, and the same run without the limit ends as a clean run. Through Dagster, `frames` materialized
under the limit fails its run with that message.

TRIALS_PER_STAGE trials per stage by default; the slow variant runs SLOW_TRIALS_PER_STAGE.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from mediagen import shots_video

from media_assets.demo.synthetic_library import write_synthetic_library
from media_assets.ids import media_id_for
from media_assets.media.decoding import Sampling
from media_assets.media.discovery import stat_media_file
from media_assets.models.clip import ClipEncoder
from media_assets.models.hnsw import HNSWIndex
from media_assets.search.client import SearchClient
from media_assets.search.index import IndexReader
from media_assets.stages import adapter as adapter_stage
from media_assets.stages.clusters import check_shot_membership, update_clusters
from media_assets.stages.frame_embeddings import embed_frames
from media_assets.stages.frames import FrameSettings, extract_frames
from media_assets.stages.hnsw_index import update_frame_index
from media_assets.store import adapters, catalog
from media_assets.store.index_files import Manifest, index_path, manifest_path
from media_assets.store.vectors import ID_COLUMNS, VectorStore, vector_matrix
from media_assets.warehouse import Warehouse

HERE = Path(__file__).resolve().parent
TRIALS_PER_STAGE = 6
SLOW_TRIALS_PER_STAGE = 50
# columns that differ between two runs of the same thing
RUN_COLUMNS = {"run_id", "ingested_at", "clustered_at", "recorded_at", "embedded_at", "failed_at"}


# -- the zygote -----------------------------------------------------------------------------------------


class Zygote:
    """`fault_targets.py` in a subprocess; `run` forks one child for a request and reports how it ended."""

    def __init__(self, log: Path, clip_model: Path):
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fault_targets.py"), str(clip_model)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("ab"),
            bufsize=0,
            cwd=HERE,
        )
        self.buffer = b""
        self.ready = False  # it imports while the prepared warehouses are built: `run` waits for it

    def _read(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise RuntimeError(f"the zygote died; its log: {self.log.read_text()[-3000:]}")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, request: dict, *, kill_after_s: float | None = None, timeout_s: float = 300) -> dict:
        """Run one request; with `kill_after_s`, SIGKILL the child that long after its first write."""
        if not self.ready:
            self.ready = "ready" in (self._read(600) or {})
            assert self.ready, self.log.read_text()[-3000:]
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        outcome: dict = {}
        deadline, kill_at, child = time.monotonic() + timeout_s, None, None
        try:
            while True:
                wait = deadline - time.monotonic()
                if kill_at is not None:
                    wait = min(wait, max(kill_at - time.monotonic(), 0.0))
                message = self._read(max(wait, 0.0))
                if message is None:
                    if kill_at is not None and time.monotonic() >= kill_at:
                        try:  # through its pidfd: the child itself, never a process that took its pid since
                            signal.pidfd_send_signal(child, signal.SIGKILL)
                        except ProcessLookupError:
                            pass  # it ended first
                        kill_at = None
                        continue
                    raise TimeoutError(f"{request['stage']} took more than {timeout_s} s")
                outcome |= message
                if "exit" in message:
                    return outcome
                if "started" in message and kill_after_s is not None:
                    child = os.pidfd_open(message["started"])
                if "writing" in message and kill_after_s is not None:
                    kill_at = time.monotonic() + kill_after_s
        finally:
            if child is not None:
                os.close(child)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory, tiny_clip):
    process = Zygote(tmp_path_factory.mktemp("zygote") / "zygote.log", tiny_clip)
    yield process
    process.close()


# -- reading a warehouse --------------------------------------------------------------------------------


def open_warehouse(root: Path) -> Warehouse:
    return Warehouse.at(root, media_root=root / "media", vectors_uri=str(root / "vectors"))


def copy_warehouse(source: Path, target: Path) -> Warehouse:
    shutil.copytree(source, target, symlinks=True)
    return open_warehouse(target)


def rows_of(table) -> list[dict]:
    """A table's rows without the columns that differ between two runs, in a fixed order."""
    if table is None:
        return []
    rows = [{k: v for k, v in row.items() if k not in RUN_COLUMNS} for row in table.to_pylist()]
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return None


def vectors_of(wh: Warehouse, table: str, media_id: int | None = None) -> dict:
    """id → (vector bytes digest, model id[, adapter version]) of a LanceDB table (or of one media file)."""
    store = VectorStore(wh, table)
    lance = store.table()
    if lance is None:
        return {}
    data = lance.to_lance().to_table()
    if media_id is not None:
        data = data.filter(np.asarray(data["media_id"]) == media_id)
    ids, models = data[store.id_column].to_pylist(), data["model_id"].to_pylist()
    versions = data["adapter_version"].to_pylist() if "adapter_version" in data.column_names else [None] * len(ids)
    matrix = vector_matrix(data) if len(ids) else np.zeros((0, 0), np.float32)
    return {
        i: (hashlib.sha256(matrix[k].tobytes()).hexdigest()[:16], models[k], versions[k]) for k, i in enumerate(ids)
    }


def live_index_ids(wh: Warehouse) -> list[int] | None:
    if not index_path(wh).exists():
        return None
    index = HNSWIndex.load(index_path(wh), mmap=False)  # a half-written file would raise here
    tombstones = np.asarray(index._graph.tombstones[: len(index.ids)], dtype=bool)
    return sorted(index.ids[~tombstones].tolist())


def lance_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "vectors").rglob("*") if p.is_file()}


def forget_connections(wh: Warehouse) -> None:
    """Close this thread's catalog connection to a trial's warehouse (it is about to go)."""
    entry = getattr(catalog._local, "connections", {}).pop(str(wh.root), None)
    if entry is not None:
        entry[0].close()


def leftovers(root: Path) -> list[str]:
    """Temporary files and staging folders the stages' writers leave behind after a crash (not Lance's own
    data files of an uncommitted version: Lance never reads them, and its cleanup removes them)."""
    found = []
    for folder, dirs, files in os.walk(root):
        relative = Path(folder).relative_to(root)
        if relative.parts[:1] == ("vectors",):
            continue
        found += [str(relative / name) for name in files if name.endswith(".tmp")]
        found += [str(relative / name) for name in dirs if name.startswith(".") and relative.parts[:1] == ("frames",)]
        if relative == Path("tables") / catalog.COMMITS_DIR:
            found += [str(relative / name) for name in files]
    return found


def differences(found: dict, before: dict, after: dict) -> str:
    """Which outputs differ from the state before the run and from the one after it."""
    changed = [key for key in found if found[key] != before.get(key)]
    missing = [key for key in found if found[key] != after.get(key)]
    return f"unlike before in {changed}, unlike after in {missing}"


def assert_opens_and_answers(wh: Warehouse, query, *, thumbnails: bool) -> list:
    """The warehouse opens after a crash: every catalog view answers, the index files are whole, search answers
    with hits whose frames have their catalog row (and a readable thumbnail where the stage made them).
    Returns the hits (frame, file, time, similarity) to compare with the answers before and after the run."""
    catalog.query(wh, "SELECT " + ", ".join(f"(SELECT count(*) FROM {table})" for table in catalog.TABLES))
    manifest = Manifest.read(manifest_path(wh))
    assert manifest is not None or not manifest_path(wh).exists(), "the index manifest is half-written"
    live = live_index_ids(wh)
    index, reason = IndexReader(wh).get()
    if index is not None:  # used only when current: then it holds exactly the vectors served
        served = adapters.serving_store(wh)
        assert reason == "current" and live == sorted(served.load_all()[0].tolist())
    client = SearchClient(wh, device="cpu")
    hits = client.search_text(query, k=20) if isinstance(query, str) else client.search_vector(query, k=20)
    frames = {r["frame_id"]: r for r in catalog.query(wh, "SELECT frame_id, thumbnail_path FROM frames").to_pylist()}
    for hit in hits:
        assert hit.frame_id in frames
        if thumbnails:
            assert cv2.imread(hit.thumbnail_path) is not None, f"{hit.thumbnail_path} is not a readable picture"
    return [(h.frame_id, h.partition_key, h.timestamp_s, round(h.similarity, 4)) for h in hits]


# -- scenarios: a prepared warehouse, one stage, what it writes -----------------------------------------


@dataclass
class Scenario:
    stage: str
    base: Path  # the prepared warehouse (never written: each trial copies it)
    args: dict
    outputs: Callable[[Warehouse], dict]  # what the stage writes, comparable between runs
    query: object = "a photograph"  # text, or a vector for libraries no CLIP made
    thumbnails: bool = False
    consistent: Callable[[Warehouse], None] = field(default=lambda wh: None)  # more checks after a kill
    # one commit: a kill leaves its outputs as they were or as a clean run makes them. Else (several files or
    # steps) `consistent` and the client's checks say that what is served is whole
    whole: bool = True

    def request(self, root: Path, **extra) -> dict:
        return {"stage": self.stage, "warehouse": str(root), "args": self.args, "run_id": "trial"} | extra


def frames_outputs(media_id: int) -> Callable[[Warehouse], dict]:
    def outputs(wh: Warehouse) -> dict:
        frames = rows_of(catalog.read_partition(wh, "frames", media_id))
        # (the path is absolute: the trials' copies differ in it; the partition key says which file)
        media = [
            {k: v for k, v in row.items() if k != "path"}
            for row in rows_of(catalog.read_partition(wh, "media", media_id))
        ]
        return {
            "frames": frames,
            "media": media,
            "thumbnails": {row["thumbnail_path"]: digest(wh.root / row["thumbnail_path"]) for row in frames},
            "ingest_errors": rows_of(catalog.read_partition(wh, "ingest_errors", media_id)),
        }

    return outputs


def every_frame_has_its_thumbnail(wh: Warehouse) -> None:
    for row in catalog.query(wh, "SELECT thumbnail_path FROM frames").to_pylist():
        assert cv2.imread(str(wh.root / row["thumbnail_path"])) is not None, row["thumbnail_path"]


def embeddings_outputs(media_id: int) -> Callable[[Warehouse], dict]:
    return lambda wh: {"frame_vectors": vectors_of(wh, "frame_vectors", media_id)}


def index_outputs(wh: Warehouse) -> dict:
    manifest = Manifest.read(manifest_path(wh))
    return {
        "ids": live_index_ids(wh),
        # (node_count: an update re-applied over an index a crash left newer than its manifest tombstones
        # those rows again, by design; the live ids are what counts)
        "manifest": None if manifest is None else {**manifest.__dict__, "updated_at": None, "node_count": None},
    }


def clusters_outputs(wh: Warehouse) -> dict:
    return {
        "clusters": rows_of(catalog.read_table(wh, "clusters")),
        "cluster_members": rows_of(catalog.read_table(wh, "cluster_members")),
    }


def clusters_consistent(wh: Warehouse) -> None:
    assert check_shot_membership(wh)["passed"]


def promotion_outputs(wh: Warehouse) -> dict:
    stamps = {}
    for base in adapters.ADAPTED:
        stamp = adapters.adapted_stamp(wh, base)
        stamps[base] = None if stamp is None else {k: v for k, v in stamp.items() if k != "run_id"}
    return {
        "current": adapters.current_version(wh),
        "adapters": rows_of(catalog.read_table(wh, "adapters")),
        "stamps": stamps,
        **{name: vectors_of(wh, name) for name in adapters.ADAPTED.values()},
    }


def promotion_consistent(wh: Warehouse) -> None:
    """What search serves is whole: the base vectors with no adapter, or the current adapter's own table."""
    version = adapters.current_version(wh)
    for base in ID_COLUMNS:
        served = adapters.serving_store(wh, base)
        if served.name != base:
            adapted = vectors_of(wh, served.name)
            assert {v for _, _, v in adapted.values()} == {version}
            assert sorted(adapted) == sorted(vectors_of(wh, base))


# -- the prepared warehouses ----------------------------------------------------------------------------

SOURCES = ["astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field"]


@pytest.fixture(scope="module")
def media_library(tmp_path_factory, tiny_clip):
    """Three videos of six cuts each, sampled at 1 fps, embedded with the tiny CLIP and indexed; the file
    whose frames the trials re-sample, and its media id."""
    root = tmp_path_factory.mktemp("faults") / "media"
    wh = open_warehouse(root).ensure()
    encoder = ClipEncoder.load(str(tiny_clip), device="cpu")
    for i in range(3):
        path = shots_video(wh.media_root / f"v{i}.mp4", SOURCES[i:] + SOURCES[:i], seconds_each=0.5)
        media_file = stat_media_file(path, wh.media_root)
        extract_frames(wh, media_file, FrameSettings(Sampling(fps=1.0), thumbnail_max_side=96), run_id="base")
        embed_frames(wh, media_file.media_id, encoder, run_id="base")
    update_frame_index(wh)
    return root, "v0.mp4", media_id_for("v0.mp4")


@pytest.fixture(scope="module")
def frames_scenario(media_library):
    root, key, media_id = media_library
    return Scenario(
        "frames",
        root,
        {"key": key, "fps": 2.0, "thumbnail": 96},
        frames_outputs(media_id),
        thumbnails=True,
        consistent=every_frame_has_its_thumbnail,
    )


@pytest.fixture(scope="module")
def embeddings_scenario(media_library, tiny_clip, tmp_path_factory):
    """The first video re-sampled at 2 fps: its vectors are those of the 1 fps frames until it is embedded again."""
    source, key, media_id = media_library
    wh = copy_warehouse(source, tmp_path_factory.mktemp("faults") / "embeddings")
    settings = FrameSettings(Sampling(fps=2.0), thumbnail_max_side=96)
    extract_frames(wh, stat_media_file(wh.media_root / key, wh.media_root), settings)
    return Scenario(
        "frame_embeddings",
        wh.root,
        {"media_id": media_id, "model": str(tiny_clip)},
        embeddings_outputs(media_id),
        thumbnails=True,
    )


@pytest.fixture(scope="module")
def index_scenario(tmp_path_factory, tiny_clip):
    """A library of 14 files × 40 frames of 32-d vectors (the tiny CLIP's size and model id, so text queries
    work), indexed; then 3 files re-embedded, 2 added, 1 removed: the update tombstones and inserts."""
    root = tmp_path_factory.mktemp("faults") / "index"
    wh = open_warehouse(root).ensure()
    rng = np.random.default_rng(0)
    files = {f"f{i:02d}.mp4": rng.standard_normal((40, 32)) for i in range(14)}
    write_synthetic_library(wh, files, model_id=str(tiny_clip))
    update_frame_index(wh)
    changed = {f"f{i:02d}.mp4": rng.standard_normal((40, 32)) for i in (1, 2, 3)}
    added = {f"g{i:02d}.mp4": rng.standard_normal((40, 32)) for i in range(2)}
    write_synthetic_library(wh, changed | added, model_id=str(tiny_clip))
    gone = media_id_for("f09.mp4")
    VectorStore(wh).delete_media(gone)
    catalog.delete_partition(wh, gone)
    return Scenario("hnsw_index", root, {}, index_outputs, whole=False)


@pytest.fixture(scope="module")
def labelled_library(tmp_path_factory):
    """test_learning's labelled library (90 one-shot files, 6 scenes), clustered once."""
    from test_learning import write_labelled_library

    root = tmp_path_factory.mktemp("faults") / "labelled"
    wh = open_warehouse(root).ensure()
    truth = write_labelled_library(wh)
    update_clusters(wh, run_id="base")
    compact_vectors(wh)
    return root, truth


def compact_vectors(wh: Warehouse) -> None:
    """One version per LanceDB table instead of one per file written (each trial copies the warehouse)."""
    import lancedb

    db = lancedb.connect(wh.vectors_uri)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "optimize\\(cleanup_older_than=0\\)", UserWarning)  # nobody else reads it
        for name in db.table_names():
            db.open_table(name).optimize(cleanup_older_than=timedelta(0), delete_unverified=True)


def labelled_query() -> np.ndarray:
    from test_learning import DIM

    return np.random.default_rng(7).standard_normal(DIM).astype(np.float32)


@pytest.fixture(scope="module")
def clusters_scenario(labelled_library, tmp_path_factory):
    """Ten shots pinned to another scene cluster since the last clustering: the next one moves them."""
    from media_assets.feedback.table import FeedbackWriter

    source, truth = labelled_library
    wh = copy_warehouse(source, tmp_path_factory.mktemp("faults") / "clusters")
    scenes = catalog.query(wh, "SELECT cluster_id FROM clusters WHERE level = 'scene' ORDER BY cluster_id").to_pylist()
    writer = FeedbackWriter(wh, source="test")
    for n, shot in enumerate(sorted(truth)[:10]):
        writer.move("shot", shot, scenes[n % len(scenes)]["cluster_id"])
    return Scenario("clusters", wh.root, {}, clusters_outputs, query=labelled_query(), consistent=clusters_consistent)


def some_feedback(wh: Warehouse, truth: dict[int, int], pairs: int = 10, moved: float = 0.2, seed: int = 1) -> None:
    """test_learning's `give_feedback` made smaller (its 100 rows take 20 s to validate and write here): same
    and different pairs, and a fifth of the shots moved into the cluster that holds most of their scene."""
    from test_learning import scene_clusters

    from media_assets.feedback.table import FeedbackWriter

    rng = np.random.default_rng(seed)
    writer = FeedbackWriter(wh, source="test")
    shots = sorted(truth)
    for _ in range(pairs):
        a, b = rng.choice(shots, 2, replace=False)
        (writer.same if truth[a] == truth[b] else writer.different)("shot", int(a), int(b))
    cluster_of_scene = {
        Counter(scenes).most_common(1)[0][0]: cluster for cluster, scenes in scene_clusters(wh, truth).items()
    }
    for shot in shots:
        if truth[shot] in cluster_of_scene and rng.random() < moved:
            writer.move("shot", int(shot), int(cluster_of_scene[truth[shot]]))


@pytest.fixture(scope="module")
def promotion_scenario(labelled_library, tmp_path_factory):
    """A candidate adapter trained on a person's feedback, its gate passed: the trials promote it."""
    from media_assets.feedback import table as feedback

    source, truth = labelled_library
    wh = copy_warehouse(source, tmp_path_factory.mktemp("faults") / "promotion")
    some_feedback(wh, truth)
    candidate = adapter_stage.train_candidate(wh, through_seq=feedback.settled_seq(wh, settle_s=0.0))
    assert candidate.decision["promote"], candidate.decision
    return Scenario(
        "promotion",
        wh.root,
        {"version": candidate.version},
        promotion_outputs,
        query=labelled_query(),
        consistent=promotion_consistent,
        whole=False,
    )


# -- the trials -----------------------------------------------------------------------------------------


def kill_trials(zygote: Zygote, scenario: Scenario, trials: int, work: Path, seed: int = 0) -> Counter:
    """`trials` kills of the scenario's stage (at a write and at a time, by turns), each checked as the
    module docstring says. Returns how they went: (how it ended, the state found after it, whether the kill
    left half-written files behind) → count."""
    base = copy_warehouse(scenario.base, work / "base")
    before = scenario.outputs(base)
    clean = copy_warehouse(scenario.base, work / "clean")
    outcome = zygote.run(scenario.request(clean.root))
    assert "done" in outcome, outcome
    after = scenario.outputs(clean)
    assert after != before, "the stage must change something for its kills to mean anything"
    answers = [assert_opens_and_answers(w, scenario.query, thumbnails=scenario.thumbnails) for w in (base, clean)]
    writes, seconds = outcome["done"]["writes"], outcome["done"]["seconds"]
    # timed kills land where the writing is: a delay after the first write the audit hook saw, up to the end
    # (what comes before it, decoding or clustering, writes nothing a kill could break)
    writing_s = seconds - (outcome["done"]["seen"][0][0] if outcome["done"]["seen"] else 0.0)
    base_lance = lance_files(scenario.base)
    rng = np.random.default_rng(seed)
    tally: Counter = Counter()
    for trial in range(trials):
        wh = copy_warehouse(scenario.base, work / f"trial-{trial}")
        if trial % 2 == 0:
            how = "at a write"
            outcome = zygote.run(scenario.request(wh.root, kill_at_write=int(rng.integers(1, writes + 1))))
        else:
            how = "at a time"
            outcome = zygote.run(scenario.request(wh.root), kill_after_s=float(rng.uniform(0, writing_s)))
        killed = outcome.get("signal") == signal.SIGKILL
        assert killed or "done" in outcome, outcome
        context = f"{scenario.stage} trial {trial} ({how}, {outcome})"
        found = scenario.outputs(wh)
        state = "before" if found == before else "after" if found == after else "between"
        # what the kill cut short: a temporary file, or a LanceDB version written and never committed
        debris = bool(leftovers(wh.root)) or (state == "before" and lance_files(wh.root) != base_lance)

        answer = assert_opens_and_answers(wh, scenario.query, thumbnails=scenario.thumbnails)
        assert answer in answers, f"{context}: search answers neither as before the run nor as after it"
        scenario.consistent(wh)
        if scenario.whole:
            assert state != "between", f"{context}: {differences(found, before, after)}"

        rerun = zygote.run(scenario.request(wh.root))
        assert "done" in rerun, f"{context}: the re-run failed: {rerun}"
        assert scenario.outputs(wh) == after, f"{context}: {differences(scenario.outputs(wh), before, after)}"
        assert not leftovers(wh.root), f"{context}: {leftovers(wh.root)}"
        tally[(how if killed else "ended first", state, "half-written files" if debris else "")] += 1
        forget_connections(wh)
        shutil.rmtree(wh.root)
    summary = ", ".join(f"{' '.join(filter(None, key))}: {n}" for key, n in sorted(tally.items()))
    print(f"\n{scenario.stage}: {trials} trials (clean run: {writes} writes in {seconds:.2f} s): {summary}")
    return tally


STAGES = ["frames_scenario", "embeddings_scenario", "index_scenario", "clusters_scenario", "promotion_scenario"]


@pytest.mark.parametrize("scenario_name", STAGES)
def test_a_killed_stage_leaves_the_warehouse_readable_and_a_rerun_ends_as_a_clean_run(
    zygote, scenario_name, request, tmp_path
):
    scenario = request.getfixturevalue(scenario_name)
    tally = kill_trials(zygote, scenario, TRIALS_PER_STAGE, tmp_path)
    assert sum(n for (how, *_), n in tally.items() if how != "ended first") >= TRIALS_PER_STAGE // 2


@pytest.mark.slow
@pytest.mark.parametrize("scenario_name", STAGES)
def test_many_kills(zygote, scenario_name, request, tmp_path):
    kill_trials(zygote, request.getfixturevalue(scenario_name), SLOW_TRIALS_PER_STAGE, tmp_path, seed=1)


# -- a full disk ----------------------------------------------------------------------------------------


def files_of(root: Path) -> dict[str, str]:
    """Every file outside vectors/ with its digest (LanceDB tables are compared by version: `lance_versions`)."""
    return {
        str(p.relative_to(root)): digest(p)
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != "vectors"
    }


def lance_versions(wh: Warehouse) -> dict[str, int]:
    import lancedb

    db = lancedb.connect(wh.vectors_uri)
    versions = {}
    for name in db.table_names():
        try:
            versions[name] = db.open_table(name).version
        except ValueError:  # a table whose creation failed: no version, so readers find no table
            continue
    return versions


def largest_file_written(base: Path, clean: Path) -> int:
    """The size of the largest file a clean run wrote (new, or changed from the base)."""
    before = {str(p.relative_to(base)): digest(p) for p in base.rglob("*") if p.is_file()}
    return max(
        p.stat().st_size for p in clean.rglob("*") if p.is_file() and before.get(str(p.relative_to(clean))) != digest(p)
    )


@pytest.mark.parametrize("scenario_name", STAGES)
def test_a_full_disk_fails_the_stage_clearly_and_leaves_the_files_before_it(zygote, scenario_name, request, tmp_path):
    """RLIMIT_FSIZE of 1 byte (the stage's first write fails) and of half the largest file a clean run writes
    (its smaller writes go through first): a StorageFullError saying "disk full" and naming the
    file, every file and LanceDB version that was there unchanged, the warehouse readable; then, with room
    again, the same run ends as a clean run does."""
    scenario = request.getfixturevalue(scenario_name)
    before = scenario.outputs(open_warehouse(scenario.base))
    clean = copy_warehouse(scenario.base, tmp_path / "clean")
    assert "done" in zygote.run(scenario.request(clean.root))
    after = scenario.outputs(clean)
    for limit in (1, largest_file_written(scenario.base, clean.root) // 2):
        wh = copy_warehouse(scenario.base, tmp_path / f"limit-{limit}")
        files, versions = files_of(wh.root), lance_versions(wh)
        outcome = zygote.run(scenario.request(wh.root, fsize_limit=limit))
        context = f"{scenario.stage} with files up to {limit} bytes: {outcome}"
        assert outcome.get("type") == "StorageFullError", context
        assert "disk full" in outcome["error"] and str(wh.root) in outcome["error"], context
        now = files_of(wh.root)
        assert {path: now.get(path) for path in files} == files, context
        if scenario.stage != "promotion":  # (whose promotion may go through before its adapted vectors find no room)
            assert now == files, f"{context}: the failed run left {sorted(set(now) - set(files))}"
        assert {name: version for name, version in lance_versions(wh).items() if name in versions} == versions
        assert_opens_and_answers(wh, scenario.query, thumbnails=scenario.thumbnails)
        scenario.consistent(wh)
        if scenario.whole:
            assert scenario.outputs(wh) == before, context
        assert "done" in zygote.run(scenario.request(wh.root)), context
        assert scenario.outputs(wh) == after and not leftovers(wh.root), context
        forget_connections(wh)


def test_frames_through_dagster_on_a_full_disk_fails_its_run_with_the_reason(zygote, media_library, tmp_path):
    source, key, media_id = media_library
    wh = copy_warehouse(source, tmp_path / "warehouse")
    files = files_of(wh.root)
    request = {"stage": "dagster_frames", "warehouse": str(wh.root), "args": {"key": key, "fps": 2.0}}
    outcome = zygote.run(request | {"fsize_limit": 1024})
    assert outcome["done"]["success"] is False, outcome
    (chain,) = outcome["done"]["failures"]  # the step's error, then what caused it: the stage's own error
    (error,) = [e for e in chain if e.startswith("StorageFullError:")] or [json.dumps(chain, indent=1)]
    assert f"thumbnails of media {media_id}: disk full" in error and str(wh.thumbnail_dir(media_id)) in error, error
    now = files_of(wh.root)
    assert {path: now.get(path) for path in files} == files
    every_frame_has_its_thumbnail(wh)
    assert zygote.run(request)["done"]["success"]


# -- what a crash leaves, read and cleaned ----------------------------------------------------------------


def test_left_overs_are_never_read_and_an_interrupted_commit_is_finished_by_the_next_reader(tmp_path):
    wh = open_warehouse(tmp_path / "warehouse").ensure()
    row = {"media_id": 7, "partition_key": "a.mp4", "path": "/a.mp4", "kind": "video", "sampling": "fps=1"}
    catalog.replace_partition(wh, "media", 7, [row])
    folder = catalog.table_dir(wh, "media")
    dead = 99_999_999  # above any pid Linux hands out: a writer that is gone
    half = folder / f".7.parquet.{dead}.0a1b2c3d.tmp"
    half.write_bytes(b"PAR1 half a file")  # what a kill in the middle of Arrow's write leaves
    live = folder / f".8.parquet.{os.getpid()}.0a1b2c3d.tmp"  # a writer still at work
    live.write_bytes(b"PAR1 being written")
    assert catalog.query(wh, "SELECT partition_key FROM media").to_pylist() == [{"partition_key": "a.mp4"}]
    catalog.replace_partition(wh, "media", 9, [row | {"media_id": 9, "partition_key": "b.mp4"}])
    assert not half.exists() and live.exists()
    live.unlink()

    # a commit of two files killed after its record, before its renames: the next reader makes them
    new_media = catalog._partition_rows("media", 7, [row | {"partition_key": "a2.mp4"}])
    new_frames = catalog._partition_rows("frames", 7, [{"frame_id": 7 << 20, "media_id": 7, "seq": 0}])
    media_path, frames_path = folder / "7.parquet", catalog.table_dir(wh, "frames") / "7.parquet"
    staged = [
        (catalog._write_temp(data, path), path) for data, path in ((new_media, media_path), (new_frames, frames_path))
    ]
    record = wh.tables_dir / catalog.COMMITS_DIR / "00000000000000000001-test.json"
    record.parent.mkdir(exist_ok=True)
    renames = [[str(t.relative_to(wh.tables_dir)), str(p.relative_to(wh.tables_dir))] for t, p in staged]
    record.write_text(json.dumps({"renames": renames}))
    rows = catalog.query(wh, "SELECT m.partition_key, f.frame_id FROM media m JOIN frames f USING (media_id)")
    assert rows.to_pylist() == [{"partition_key": "a2.mp4", "frame_id": 7 << 20}]
    assert not record.exists() and not leftovers(wh.root)
