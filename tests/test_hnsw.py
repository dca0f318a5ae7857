"""Tests for the numba HNSW index (small clustered sets; offline, CPU only)."""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from media_assets.models import hnsw
from media_assets.models.hnsw import HNSWIndex, IndexFileError

DIM = 64
N = 3000
K = 10


def clustered(n: int, seed: int, n_clusters: int = 40) -> np.ndarray:
    """Overlapping gaussian clusters on a 16-dim subspace plus isotropic noise."""
    rng = np.random.default_rng(1234)  # same clusters for data and queries
    basis = rng.standard_normal((16, DIM))
    centers = 2.0 * rng.standard_normal((n_clusters, 16))
    rng = np.random.default_rng(seed)
    latent = centers[rng.integers(n_clusters, size=n)] + rng.standard_normal((n, 16))
    return (latent @ basis + 0.5 * rng.standard_normal((n, DIM))).astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(
        len(set(row[row >= 0]) & set(expected[expected >= 0])) for row, expected in zip(found, truth, strict=True)
    )
    return hits / max(1, int((truth >= 0).sum()))


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return clustered(N, seed=1)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return clustered(200, seed=2)


@pytest.fixture(scope="module")
def frame_ids() -> np.ndarray:
    return np.arange(N, dtype=np.int64) * 7 + 100_000  # external ids unlike row numbers


@pytest.fixture(scope="module")
def built(vectors, frame_ids) -> HNSWIndex:
    index = HNSWIndex(DIM, seed=3)
    index.add(vectors, frame_ids)
    return index


@pytest.fixture
def index(built, tmp_path) -> HNSWIndex:
    """A private, mutable copy of the module's built index."""
    built.save(tmp_path / "copy.hnsw")
    copy = HNSWIndex.load(tmp_path / "copy.hnsw", mmap=False)
    (tmp_path / "copy.hnsw").unlink()
    return copy


def test_recall_against_exact_search(built, queries):
    ids, sims = built.search(queries, K)
    exact_ids, exact_sims = built.exact_search(queries, K)
    assert ids.shape == sims.shape == (len(queries), K)
    assert ids.dtype == np.int64 and sims.dtype == np.float32
    assert recall(ids, exact_ids) >= 0.95
    assert np.all(np.diff(sims, axis=1) <= 1e-6), "results sorted by similarity descending"


def test_similarities_are_cosine(built, vectors, frame_ids, queries):
    ids, sims = built.search(queries[0], K)
    rows = np.searchsorted(frame_ids, ids[0])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    query = queries[0] / np.linalg.norm(queries[0])
    np.testing.assert_allclose(sims[0], unit[rows] @ query, atol=1e-5)


def test_introspection(built):
    assert len(built) == N
    assert built.params == {"dim": DIM, "M": 16, "ef_construction": 200, "ef_search": 50, "seed": 3}
    assert built.memory_bytes() >= N * DIM * 4
    assert built.tombstone_fraction == 0.0 and not built.needs_compaction


def test_build_is_deterministic_for_a_seed(vectors, frame_ids):
    subset = slice(0, 800)
    first, second, other_seed = (HNSWIndex(DIM, seed=s) for s in (3, 3, 4))
    first.add(vectors[subset], frame_ids[subset])
    second.add(vectors[subset][:300], frame_ids[subset][:300])  # batching does not matter
    second.add(vectors[subset][300:], frame_ids[subset][300:])
    other_seed.add(vectors[subset], frame_ids[subset])
    for name in ("levels", "links0", "upper_links"):
        a = first._graph.used_arrays(16)[name]
        assert np.array_equal(a, second._graph.used_arrays(16)[name]), name
    assert not np.array_equal(first._graph.used_arrays(16)["levels"], other_seed._graph.used_arrays(16)["levels"])


def test_empty_index_and_short_results(queries):
    index = HNSWIndex(DIM)
    ids, sims = index.search(queries[:3], K)
    assert (ids == -1).all() and np.isneginf(sims).all()
    index.add(queries[:4], [1, 2, 3, 4])
    ids, sims = index.search(queries[0], K)
    assert sorted(ids[0, :4]) == [1, 2, 3, 4] and (ids[0, 4:] == -1).all()
    assert ids[0, 0] == 1 and sims[0, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(built, queries, tmp_path, mmap):
    path = tmp_path / "frames.hnsw"
    built.save(path, model_id="clip-vit-b32")
    loaded = HNSWIndex.load(path, expected_dim=DIM, expected_model_id="clip-vit-b32", mmap=mmap)
    assert loaded.params == built.params and loaded.model_id == "clip-vit-b32"
    assert len(loaded) == len(built)
    for ef in (10, 50):
        expected = built.search(queries, K, ef=ef)
        actual = loaded.search(queries, K, ef=ef)
        np.testing.assert_array_equal(actual[0], expected[0])
        np.testing.assert_array_equal(actual[1], expected[1])
    assert os.listdir(tmp_path) == ["frames.hnsw"], "no temporary files left behind"


def test_updates_on_memory_mapped_index_stay_private(index, vectors, tmp_path):
    path = tmp_path / "frames.hnsw"
    index.save(path)
    before = path.read_bytes()
    loaded = HNSWIndex.load(path, mmap=True)
    victim = int(loaded.ids[0])
    assert loaded.delete([victim]) == 1
    loaded.add(vectors[:5] + 0.1, [-1, -2, -3, -4, -5])
    assert len(loaded) == N - 1 + 5
    assert path.read_bytes() == before
    assert victim not in loaded.search(vectors[0], K)[0]


def test_adds_after_build_keep_recall(vectors, frame_ids, queries):
    index = HNSWIndex(DIM, seed=5)
    index.add(vectors[:1000], frame_ids[:1000])
    for begin in range(1000, N, 500):  # several growth steps of the arrays
        index.add(vectors[begin : begin + 500], frame_ids[begin : begin + 500])
    assert len(index) == N
    ids, _ = index.search(queries, K)
    assert recall(ids, index.exact_search(queries, K)[0]) >= 0.95
    assert set(frame_ids[2500:]) & set(ids.ravel()), "new nodes are reachable"


def test_add_validates_ids_and_vectors(index, vectors, frame_ids):
    with pytest.raises(ValueError, match="already in the index"):
        index.add(vectors[:2], frame_ids[:2])
    with pytest.raises(ValueError, match="duplicates"):
        index.add(vectors[:2], [1, 1])
    with pytest.raises(ValueError, match="shape"):
        index.add(vectors[:2, :10], [1, 2])
    with pytest.raises(ValueError, match="all-zero"):
        index.add(np.zeros((1, DIM)), [1])
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((1, DIM), np.nan), [1])
    with pytest.raises(ValueError, match="integers"):
        index.add(vectors[:1], [1.5])
    index.add(np.empty((0, DIM)), [])
    index.delete(frame_ids[:1])
    index.add(vectors[:1], frame_ids[:1])  # a deleted id may come back
    assert len(index) == N


def test_deleted_nodes_are_never_returned_and_compaction_removes_them(index, frame_ids, queries):
    rng = np.random.default_rng(0)
    deleted = rng.choice(frame_ids, size=N // 4, replace=False)
    assert index.delete(deleted) == len(deleted)
    assert index.delete(deleted[:10]) == 0, "deleting twice is a no-op"
    assert index.delete([-999]) == 0, "unknown ids are ignored"
    assert len(index) == N - len(deleted)
    assert index.tombstone_fraction == pytest.approx(0.25)
    assert index.needs_compaction

    ids, _ = index.search(queries, 50, ef=100)
    assert not set(ids.ravel()) & set(deleted.tolist())
    assert recall(index.search(queries, K)[0], index.exact_search(queries, K)[0]) >= 0.95

    assert index.compact() == len(deleted)
    assert index.tombstone_fraction == 0 and not index.needs_compaction
    assert index._graph.node_count == len(index) == N - len(deleted)
    assert set(index.ids.tolist()) == set(frame_ids.tolist()) - set(deleted.tolist())
    ids, _ = index.search(queries, K)
    assert not set(ids.ravel()) & set(deleted.tolist())
    assert recall(ids, index.exact_search(queries, K)[0]) >= 0.95


@pytest.mark.parametrize("fraction", [0.3, 0.05, 0.005])
def test_filtered_search(built, frame_ids, queries, fraction):
    """0.3 and 0.05 use the widened graph search, 0.005 the exact scan fallback."""
    rng = np.random.default_rng(int(fraction * 1000))
    allowed = rng.choice(frame_ids, size=int(N * fraction), replace=False)
    ids, sims = built.search(queries, K, allowed=set(allowed.tolist()))
    exact_ids, exact_sims = built.exact_search(queries, K, allowed=allowed)
    assert set(ids.ravel()) <= set(allowed.tolist())
    assert recall(ids, exact_ids) >= 0.95
    mask = np.isin(built.ids, allowed)
    mask_ids, _ = built.search(queries, K, allowed=mask)
    np.testing.assert_array_equal(mask_ids, ids)
    if fraction < hnsw.BRUTE_FORCE_ALLOWED_FRACTION:
        np.testing.assert_array_equal(ids, exact_ids)
        np.testing.assert_allclose(sims, exact_sims, atol=1e-5)


def test_filtered_search_skips_tombstones_and_empty_filters(index, frame_ids, queries):
    allowed = frame_ids[:200]
    index.delete(allowed[:100])
    ids, _ = index.search(queries, K, allowed=allowed)
    assert set(ids.ravel()) <= set(allowed[100:].tolist())
    ids, sims = index.search(queries, K, allowed=[])
    assert (ids == -1).all() and np.isneginf(sims).all()
    with pytest.raises(ValueError, match="mask"):
        index.search(queries, K, allowed=np.ones(5, bool))


def test_concurrent_searches_match_sequential(built, queries):
    expected = [built.search(query, K, ef=40) for query in queries]
    start = threading.Barrier(4)

    def run(offset: int):
        start.wait()
        order = np.roll(np.arange(len(queries)), offset * 50)
        return {int(i): built.search(queries[i], K, ef=40) for i in order}

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(4)))
    for per_thread in results:
        for i, (ids, sims) in per_thread.items():
            np.testing.assert_array_equal(ids, expected[i][0])
            np.testing.assert_array_equal(sims, expected[i][1])


# -- damaged and mismatched files --------------------------------------------------------


@pytest.fixture
def saved(index, tmp_path):
    path = tmp_path / "frames.hnsw"
    index.save(path, model_id="clip")
    return path


def rewrite(path, offset: int, data: bytes, fix_crc: bool = False) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    if fix_crc:
        header_end = hnsw._HEADER.size + len(b"clip") + hnsw._TABLE.size
        raw[header_end : header_end + 4] = struct.pack("<I", hnsw.zlib.crc32(raw[:header_end]))
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("mmap", [True, False])
def test_truncated_file(saved, mmap):
    size = saved.stat().st_size
    with open(saved, "r+b") as stream:
        stream.truncate(size - 1000)
    with pytest.raises(
        IndexFileError,
        match=rf"frames.hnsw is truncated: expected {size} "
        rf"bytes, found {size - 1000}",
    ):
        HNSWIndex.load(saved, mmap=mmap)
    saved.write_bytes(saved.read_bytes()[:20])
    with pytest.raises(IndexFileError, match="truncated"):
        HNSWIndex.load(saved, mmap=mmap)
    saved.write_bytes(b"")
    with pytest.raises(IndexFileError, match="truncated"):
        HNSWIndex.load(saved, mmap=mmap)


def test_bad_magic(saved):
    rewrite(saved, 0, b"NOTHNSW!")
    with pytest.raises(IndexFileError, match=r"frames.hnsw is not an HNSW index"):
        HNSWIndex.load(saved)


def test_unknown_version(saved):
    rewrite(saved, 8, struct.pack("<I", 2))
    with pytest.raises(IndexFileError, match="unsupported format version 2"):
        HNSWIndex.load(saved)


def test_corrupt_header(saved):
    rewrite(saved, 36, struct.pack("<Q", 10**6))  # node count
    with pytest.raises(IndexFileError, match="corrupt header"):
        HNSWIndex.load(saved)


def test_corrupt_graph(saved):
    """Link arrays are not checksummed; load still rejects links the kernels cannot follow."""
    original = saved.read_bytes()
    header = hnsw._read_header(saved, np.fromfile(saved, np.uint8))
    links0_offset = header["table"]["links0"][0]
    rewrite(saved, links0_offset + 4, struct.pack("<i", 10**6))  # first link of row 0
    with pytest.raises(IndexFileError, match="links0 has links to nodes outside"):
        HNSWIndex.load(saved)

    saved.write_bytes(original)
    loaded = HNSWIndex.load(saved, mmap=False)
    level0_row = int(np.flatnonzero(loaded._graph.levels[: len(loaded)] == 0)[0])
    upper_offset = header["table"]["upper_links"][0]
    rewrite(saved, upper_offset, struct.pack("<ii", 1, level0_row))  # first upper block
    with pytest.raises(IndexFileError, match="nodes that do not reach the link's layer"):
        HNSWIndex.load(saved)


def test_mismatched_dimension_and_model(saved):
    with pytest.raises(IndexFileError, match="dimension 64, expected 512"):
        HNSWIndex.load(saved, expected_dim=512)
    with pytest.raises(IndexFileError, match="built with model 'clip', expected 'siglip'"):
        HNSWIndex.load(saved, expected_model_id="siglip")
    assert isinstance(IndexFileError(saved, "x"), ValueError)


def test_failed_save_keeps_previous_file(index, saved, queries, monkeypatch):
    expected = HNSWIndex.load(saved).search(queries, K)
    index.delete(index.ids[:100])
    real_write = hnsw._write_array
    calls = []

    def failing_write(stream, array):
        calls.append(array.nbytes)
        if len(calls) == 3:
            stream.write(b"\0" * 10)
            raise OSError("disk full")
        real_write(stream, array)

    monkeypatch.setattr(hnsw, "_write_array", failing_write)
    with pytest.raises(OSError, match="disk full"):
        index.save(saved, model_id="clip")
    reloaded = HNSWIndex.load(saved, expected_model_id="clip")
    np.testing.assert_array_equal(reloaded.search(queries, K)[0], expected[0])
    assert os.listdir(saved.parent) == [saved.name]
