#!/usr/bin/env python
"""Search latency benchmark: `SearchClient.search_text` split into its stages, and `GET /search` end to end.

Run from the repository root:

    python benchmarks/search.py            # 100k frame vectors (200 files x 500 frames), 300 distinct queries
    python benchmarks/search.py --quick    # 10k vectors, 60 queries: a fast smoke run

Data: `--n` synthetic 512-d frame vectors shaped like CLIP image embeddings (a shared "cone" direction, a few
hundred topics, shots of 5-60 frames within a topic, per-frame noise; each file covers a handful of topics),
written with `media_assets.demo.synthetic_library.write_synthetic_library` (catalog rows `media` and `frames`, LanceDB
`frame_vectors`) into a warehouse under `--cache-dir` (default /tmp/media_assets_search_bench), with our HNSW
index built by `update_frame_index` (M=16, ef_construction=200, ef_search=50; the search client queries it
with a beam of `search.QUERY_EF` = 800, see the recall table). Each topic is tied to the text
vector of a topic phrase (cosine ~0.3 between a frame and its topic's text, as CLIP's good matches score),
so text queries land near topics as real ones do. The built warehouse is reused by later runs.

Model: the ViT-B/32 architecture with random weights (`write_random_clip(size="vit-b-32")`) with a
word-level BPE vocabulary of the words the queries use in place of its byte-level one: about one token per
word, as CLIP's BPE gives for common English (a byte-level vocabulary gives one token per character, so
longer sequences than real queries make). The model's shapes, and so its speed, are those of
openai/clip-vit-base-patch32.

Measured, in this process (`SearchClient`, as `search_text(q, k=20)` runs it):
  (a) text encoding: `client.text_vector(q)` (validation, cache look-up, tokenising, the text tower) for
      distinct queries, for float32 and int8 (`text_quantization="int8"`) at 1 and 2 torch threads, and for
      a query already in the client's cache (it keeps the last 256);
  (b) ANN: `client._rank(vector, 20, None)` (our HNSW);
  (c) catalog join: `client._hits(scored)` (the in-memory frames/media table).
End to end: `GET /search?q=...&k=20` through `media-assets serve` (uvicorn, one process per configuration,
started with $MEDIA_ASSETS_TEXT_QUANTIZATION and $OMP_NUM_THREADS) on a loopback port, from an httpx client
with keep-alive: distinct queries, then queries the server has cached. Configurations take turns in blocks of
25 queries, so background load hits them alike. Agreement of int8 with float32: cosine between their text
vectors over `--agreement-queries` varied queries, and the overlap of their top-10 results on the whole set
(exact search and through the index). Random weights make these agreement numbers indicative only.

Every measurement reports the cores other processes used meanwhile (from /proc/stat, minus this process
and its servers). Targets (2-core machine): ANN + catalog join p95 <= 10 ms; `/search` end to end p95 <=
25 ms plus the text encoder's own p95. The last line is

    ratio p95=<GET /search p95, distinct queries, recommended configuration (int8, 1 thread) ÷ 100 ms>

against the seed's 100 ms query budget.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

K = 20
TOP = 10  # agreement: top-10 overlap
BUDGET_MS = 100.0  # the seed's query budget: the anchor of the ratio
ANN_JOIN_TARGET_MS = 10.0
E2E_TARGET_MS = 25.0  # plus the encoder's own time
BLOCK = 25
DATA_VERSION = 1  # bump when the generator changes, so cached warehouses are rebuilt
MODEL_VERSION = 1
RECOMMENDED = ("int8", 1)  # text quantisation, torch threads
CONFIGS = [("none", 1), ("none", 2), ("int8", 1), ("int8", 2)]
HTTP_CONFIGS = [("none", 2), ("int8", 1), ("int8", 2)]  # ("none", 2): torch's default on this machine

# -- query texts -------------------------------------------------------------------------------------

SUBJECTS = (
    "cat dog man woman child children people crowd horse bird car bus train boat bicycle plane family "
    "girl boy baby couple teacher chef player dancer singer police soldier cow sheep fish"
).split()
ADJECTIVES = (
    "red blue green old young small big dark bright happy wet white black yellow tall little busy quiet".split()
)
ACTIONS = (
    "running sitting walking playing sleeping jumping eating swimming standing dancing driving flying reading "
    "cooking".split()
)
PLACES = (
    "beach street kitchen sofa park forest city mountain river snow stadium office garden bridge road lake "
    "field room stage market station airport church school"
).split()
TIMES = ("at night", "at sunset", "in the rain", "in winter", "in the morning", "in summer")
TEMPLATES = (
    "{adj} {subj}",
    "a {subj} {act} on the {place}",
    "{subj} {act} in the {place} {time}",
    "a photo of a {adj} {subj}",
    "{subj} and {subj2} {act}",
    "close up of a {adj} {subj} {act}",
    "a {adj} {subj} {act} near the {place} {time}",
    "{place} {time}",
    "two {subj} {act} in a {adj} {place}",
    "a video of {subj} {act} with a {subj2}",
)
FILLER = "a an the of on in at with and near photo video close up two".split()
WORDS = sorted({*SUBJECTS, *ADJECTIVES, *ACTIONS, *PLACES, *" ".join(TIMES).split(), *FILLER})


def query_texts(count: int, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    """`count` distinct short search texts (2-10 words) not in `exclude`."""
    rng = np.random.default_rng(seed)
    texts: dict[str, None] = {}
    while len(texts) < count:
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        text = template.format(
            adj=ADJECTIVES[rng.integers(len(ADJECTIVES))],
            subj=SUBJECTS[rng.integers(len(SUBJECTS))],
            subj2=SUBJECTS[rng.integers(len(SUBJECTS))],
            act=ACTIONS[rng.integers(len(ACTIONS))],
            place=PLACES[rng.integers(len(PLACES))],
            time=TIMES[rng.integers(len(TIMES))],
        )
        if text not in exclude:
            texts[text] = None
    return list(texts)


def topic_texts(count: int) -> list[str]:
    rng = np.random.default_rng(12345)
    texts: dict[str, None] = {}
    while len(texts) < count:
        texts[
            f"{ADJECTIVES[rng.integers(len(ADJECTIVES))]} {SUBJECTS[rng.integers(len(SUBJECTS))]} "
            f"{ACTIONS[rng.integers(len(ACTIONS))]} {PLACES[rng.integers(len(PLACES))]}"
        ] = None
    return list(texts)


# -- output ------------------------------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    say(line)
    say("-" * len(line))
    for row in rows:
        say("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))))


def quiet_libraries() -> None:
    import logging

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.getLogger("media_assets").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


# -- CPU accounting ----------------------------------------------------------------------------------


def _machine_busy_s() -> float | None:
    try:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class Meter:
    """Accumulates wall time, the CPU time of this process (and of `pids`, its servers) and the machine's
    busy time over several measured blocks; `others_cores` is what the rest of the machine used."""

    pids: tuple[int, ...] = ()
    wall_s: float = 0.0
    own_s: float = 0.0
    busy_s: float = 0.0
    broken: bool = False

    @contextmanager
    def measure(self):
        busy0, own0 = _machine_busy_s(), self._own()
        wall0 = time.perf_counter()
        try:
            yield
        finally:
            self.wall_s += time.perf_counter() - wall0
            busy1 = _machine_busy_s()
            self.own_s += self._own() - own0
            if busy0 is None or busy1 is None:
                self.broken = True
            else:
                self.busy_s += busy1 - busy0

    def _own(self) -> float:
        return time.process_time() + sum(_process_cpu_s(pid) for pid in self.pids)

    @property
    def others_cores(self) -> float:
        if self.broken or self.wall_s <= 0:
            return float("nan")
        return max(0.0, self.busy_s - self.own_s) / self.wall_s


@dataclass
class Series:
    label: str
    config: str
    threads: str
    ms: list[float] = field(default_factory=list)
    meter: Meter | None = None

    def row(self, note: str = "") -> list[str]:
        values = np.asarray(self.ms)
        p50, p95 = np.percentile(values, [50, 95]) if len(values) else (float("nan"),) * 2
        others = self.meter.others_cores if self.meter is not None else float("nan")
        return [
            self.label,
            self.config,
            self.threads,
            str(len(values)),
            f"{p50:.2f}",
            f"{p95:.2f}",
            f"{values.mean():.2f}" if len(values) else "-",
            "-" if others != others else f"{others:.2f}",
            note,
        ]

    @property
    def p95(self) -> float:
        return float(np.percentile(self.ms, 95))

    @property
    def p50(self) -> float:
        return float(np.percentile(self.ms, 50))


def percentiles(values, qs=(0, 5, 50)) -> str:
    return " / ".join(f"{v:.4f}" for v in np.percentile(np.asarray(values), qs))


# -- model and data ----------------------------------------------------------------------------------


def word_tokenizer():
    """A CLIP BPE tokenizer whose vocabulary is the byte alphabet plus every word the queries use (merged
    longest word first, so each known word becomes one token)."""
    from transformers import CLIPTokenizer

    from media_assets.demo.random_clip import _byte_alphabet

    alphabet = _byte_alphabet()
    vocab: dict[str, int] = {}
    for token in alphabet + [c + "</w>" for c in alphabet]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    seen = set()
    for word in sorted(WORDS, key=lambda w: (-len(w), w)):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        current = parts[0]
        for part in parts[1:]:
            if (current, part) not in seen:
                seen.add((current, part))
                merges.append((current, part))
            current += part
            vocab.setdefault(current, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def ensure_model(cache: Path) -> Path:
    from transformers import AutoProcessor, CLIPProcessor

    from media_assets.demo.random_clip import write_random_clip

    folder = cache / f"clip-vit-b-32-random-words-v{MODEL_VERSION}"
    marker = folder / "benchmark-complete"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    say(f"writing a random-weights ViT-B/32 checkpoint to {folder} ...")
    write_random_clip(folder, size="vit-b-32", seed=0)
    image_processor = AutoProcessor.from_pretrained(folder).image_processor
    tokenizer = word_tokenizer()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"].update(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id
    )
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    marker.write_text("ok\n")
    return folder


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def synthetic_frames(files: int, per_file: int, text_topics: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """frame = 0.55·cone + 0.30·topic text + 0.55·topic image direction + 0.35·shot + 0.25·noise (then unit):
    cosine ≈0.93 within a shot, ≈0.8 within a topic, ≈0.45 across topics, ≈0.32 to the topic's text."""
    rng = np.random.default_rng(seed)
    topics, dim = text_topics.shape
    cone = unit_rows(rng.standard_normal((1, dim)))[0]
    topic_image = unit_rows(rng.standard_normal((topics, dim)))
    library = {}
    for number in range(files):
        favourites = rng.choice(topics, size=min(topics, int(rng.integers(3, 9))), replace=False)
        rows = np.empty((per_file, dim), np.float32)
        start = 0
        while start < per_file:
            length = min(int(rng.integers(5, 61)), per_file - start)
            topic = favourites[rng.integers(len(favourites))]
            shot = unit_rows(rng.standard_normal((1, dim)))[0]
            noise = unit_rows(rng.standard_normal((length, dim)))
            rows[start : start + length] = (
                0.55 * cone + 0.30 * text_topics[topic] + 0.55 * topic_image[topic] + 0.35 * shot + 0.25 * noise
            )
            start += length
        library[f"videos/file{number:04d}.mp4"] = unit_rows(rows)
    return library


def ensure_warehouse(cache: Path, model_dir: Path, n: int, files: int, topics: int):
    """The cached warehouse (catalog rows, frame vectors, a current HNSW index); built when missing."""
    from media_assets.demo.synthetic_library import write_synthetic_library
    from media_assets.models.clip import ClipEncoder
    from media_assets.search.client import SearchClient
    from media_assets.stages.hnsw_index import IndexParams, update_frame_index
    from media_assets.warehouse import Warehouse

    per_file = n // files
    root = cache / f"warehouse-n{per_file * files}-f{files}-t{topics}-d512-v{DATA_VERSION}-m{MODEL_VERSION}"
    marker = root / "benchmark-complete.json"
    warehouse = Warehouse.at(root)
    if marker.exists():
        index, state = SearchClient(warehouse).index.get()
        if index is not None:
            return warehouse, json.loads(marker.read_text())
        say(f"cached warehouse {root}: index not usable ({state}); rebuilding the index")
        report = update_frame_index(warehouse, IndexParams())
        info = json.loads(marker.read_text()) | {"index_build_s": report.elapsed_s}
        marker.write_text(json.dumps(info))
        return warehouse, info
    shutil.rmtree(root, ignore_errors=True)
    warehouse = Warehouse.at(root).ensure()
    say(f"building the warehouse {root} ({files} files x {per_file} frames, {topics} topics) ...")
    started = time.perf_counter()
    encoder = ClipEncoder.load(str(model_dir), device="cpu")
    text_topics = np.concatenate([encoder.encode_text(chunk) for chunk in np.array_split(topic_texts(topics), 10)])
    library = synthetic_frames(files, per_file, text_topics)
    write_synthetic_library(warehouse, library, step_s=1.0, model_id=str(model_dir))
    written = time.perf_counter() - started
    say(f"  catalog rows and frame vectors written in {written:.0f} s; building the HNSW index ...")
    report = update_frame_index(warehouse, IndexParams())
    say(f"  index built in {report.elapsed_s:.0f} s ({report.node_count} nodes)")
    info = {
        "frames": per_file * files,
        "files": files,
        "per_file": per_file,
        "topics": topics,
        "write_s": written,
        "index_build_s": report.elapsed_s,
        "params": report.params,
    }
    marker.write_text(json.dumps(info))
    return warehouse, info


# -- in-process stages -------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def measure_stages(clients: dict, texts: list[str], encode: dict, ann: Series, join: Series, total: dict) -> None:
    """Every query through every configuration's client, split into (a) text_vector, (b) _rank, (c) _hits;
    configurations take turns in blocks (alternating who goes first)."""
    configs = list(clients)
    for block, begin in enumerate(range(0, len(texts), BLOCK)):
        for config in configs if block % 2 == 0 else configs[::-1]:
            client = clients[config]
            set_threads(config[1])
            with encode[config].meter.measure():
                for text in texts[begin : begin + BLOCK]:
                    t0 = time.perf_counter()
                    vector = client.text_vector(text)
                    t1 = time.perf_counter()
                    scored = client._rank(vector, K, None)
                    t2 = time.perf_counter()
                    hits = client._hits(scored)
                    t3 = time.perf_counter()
                    if len(hits) != K:
                        raise AssertionError(f"{text!r} gave {len(hits)} hits, not {K}")
                    encode[config].ms.append(1e3 * (t1 - t0))
                    ann.ms.append(1e3 * (t2 - t1))
                    join.ms.append(1e3 * (t3 - t2))
                    total[config].ms.append(1e3 * (t3 - t0))


# -- HTTP --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`media-assets serve` in its own process on a loopback port, with the configuration in its
    environment; stopped (by its pid) when the benchmark ends."""

    def __init__(self, warehouse_root: Path, quantization: str, threads: int, log_dir: Path):
        import httpx

        self.config = (quantization, threads)
        self.port = free_port()
        env = dict(
            os.environ,
            MEDIA_ASSETS_TEXT_QUANTIZATION=quantization,
            OMP_NUM_THREADS=str(threads),
            MKL_NUM_THREADS=str(threads),
            PYTHONWARNINGS="ignore",
            TRANSFORMERS_VERBOSITY="error",
            HF_HUB_OFFLINE="1",
        )
        env.pop("MEDIA_ASSETS_CLIP_MODEL", None)  # the model is the one the vectors were made with
        self.log = open(log_dir / f"server-{quantization}-{threads}.log", "wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "media_assets.apps.cli",
                "serve",
                "--warehouse",
                str(warehouse_root),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120.0)

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server {self.config} exited with {self.process.returncode}; see {self.log.name}"
                )
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server {self.config} did not answer within {timeout_s:.0f} s")
            time.sleep(0.25)

    def search(self, text: str) -> float:
        started = time.perf_counter()
        response = self.http.get("/search", params={"q": text, "k": K})
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or len(response.json()["results"]) != K:
            raise AssertionError(f"/search?q={text!r}: {response.status_code} {response.text[:200]}")
        return 1e3 * elapsed

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and nothing else
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def measure_http(servers: list[Server], texts: list[str], series: dict) -> None:
    for block, begin in enumerate(range(0, len(texts), BLOCK)):
        for server in servers if block % 2 == 0 else servers[::-1]:
            with series[server.config].meter.measure():
                for text in texts[begin : begin + BLOCK]:
                    series[server.config].ms.append(server.search(text))


# -- agreement ---------------------------------------------------------------------------------------


def exact_top(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> list[set[int]]:
    out = []
    for begin in range(0, len(queries), 64):
        sims = queries[begin : begin + 64] @ vectors.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out.extend(set(ids[row].tolist()) for row in top)
    return out


def index_recall(
    index, vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, ef: int
) -> tuple[float, list[float]]:
    """recall@k of `index.search(..., ef=ef)` against exact search, one query per call (ties count: a frame
    whose exact similarity reaches the k-th best is a hit), and the per-query latencies in ms."""
    row_of = {int(frame_id): row for row, frame_id in enumerate(ids.tolist())}
    hits, latencies = 0, []
    for query in queries:
        started = time.perf_counter()
        found, _ = index.search(query, k=k, ef=ef)
        latencies.append(1e3 * (time.perf_counter() - started))
        sims = vectors @ query
        kth = np.partition(-sims, k - 1)[k - 1] * -1
        hits += sum(1 for f in found[0].tolist() if f >= 0 and sims[row_of[f]] >= kth - 1e-6)
    return hits / (k * len(queries)), latencies


def overlap(a: list[set[int]], b: list[set[int]]) -> np.ndarray:
    return np.array([len(x & y) / len(x) for x, y in zip(a, b, strict=True)])


# -- main --------------------------------------------------------------------------------------------


def environment() -> None:
    import torch

    import media_assets

    cpu_model = ""
    try:
        cpu_model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    say("== environment")
    say(f"python {platform.python_version()} on {platform.platform()}")
    say(
        f"cpu: os.cpu_count()={os.cpu_count()}{f' ({cpu_model})' if cpu_model else ''}; "
        f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    say(
        f"torch {torch.__version__} (default threads {torch.get_num_threads()}, "
        f"quantized engine {torch.backends.quantized.engine}), numpy {np.__version__}, "
        f"media_assets from {Path(media_assets.__file__).parent}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="frame vectors (default 100000)")
    parser.add_argument("--files", type=int, default=200, help="media files they belong to (default 200)")
    parser.add_argument("--topics", type=int, default=300, help="topic directions (default 300)")
    parser.add_argument("--queries", type=int, default=300, help="distinct timed queries per configuration")
    parser.add_argument("--agreement-queries", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="10k vectors (20 files), 60 queries: a smoke run")
    parser.add_argument("--skip-http", action="store_true", help="in-process stages only")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "media_assets_search_bench")
    args = parser.parse_args()
    if args.quick:
        args.n, args.files, args.topics = min(args.n, 10_000), min(args.files, 20), min(args.topics, 100)
        args.queries, args.agreement_queries = min(args.queries, 60), min(args.agreement_queries, 100)
    if min(args.n, args.files, args.topics, args.queries, args.agreement_queries) < 1 or args.n < args.files:
        parser.error("--n, --files, --topics and the query counts must be positive, and --n >= --files")

    quiet_libraries()
    from media_assets.models.clip import ClipEncoder
    from media_assets.search.client import QUERY_EF, SearchClient

    started = time.perf_counter()
    environment()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    model_dir = ensure_model(args.cache_dir)
    warehouse, info = ensure_warehouse(args.cache_dir, model_dir, args.n, args.files, args.topics)
    texts = query_texts(args.queries, seed=1)
    agreement_texts = query_texts(args.agreement_queries, seed=2)
    tokenizer = ClipEncoder.load(str(model_dir), device="cpu").processor.tokenizer
    tokens = np.array([len(ids) for ids in tokenizer(texts)["input_ids"]])

    # -- in-process stages
    clients = {config: SearchClient(warehouse, text_quantization=config[0]) for config in CONFIGS}  # own caches
    for config, client in clients.items():  # load the encoders, the index, the frame table; JIT-compile
        set_threads(config[1])
        for text in query_texts(8, seed=99):
            client.search_text(text, k=K)
    for _config, client in clients.items():
        index, state = client.index.get()
        if index is None:
            raise SystemExit(
                f"error: the search client does not use the index ({state}); delete {warehouse.root} and rerun"
            )
    encode = {
        c: Series("(a) text encoding, distinct query", c[0].replace("none", "fp32"), str(c[1]), meter=Meter())
        for c in CONFIGS
    }
    total = {
        c: Series("search_text (a+b+c), distinct query", c[0].replace("none", "fp32"), str(c[1]), meter=encode[c].meter)
        for c in CONFIGS
    }
    ann, join = Series("(b) ANN: _rank", "-", "-"), Series("(c) catalog join: _hits", "-", "-")
    say(f"\nmeasuring the in-process stages: {len(texts)} distinct queries x {len(CONFIGS)} configurations ...")
    gc.collect()
    measure_stages(clients, texts, encode, ann, join, total)
    ann_join = Series("(b)+(c) ANN + catalog join", "-", "-", [a + j for a, j in zip(ann.ms, join.ms, strict=True)])
    # the same queries again: now from each client's cache (the last 256)
    cached_texts = texts[-min(len(texts), 200) :]
    cached = {
        c: Series("(a) text encoding, cached query", c[0].replace("none", "fp32"), str(c[1]), meter=Meter())
        for c in (RECOMMENDED,)
    }
    cached_total = {
        c: Series("search_text (a+b+c), cached query", c[0].replace("none", "fp32"), str(c[1]), meter=cached[c].meter)
        for c in (RECOMMENDED,)
    }
    scratch_ann, scratch_join = Series("", "", ""), Series("", "", "")
    measure_stages({RECOMMENDED: clients[RECOMMENDED]}, cached_texts, cached, scratch_ann, scratch_join, cached_total)

    # encoder time against query length (the real CLIP BPE gives ~1-1.3 tokens per common word)
    lengths = [8, 16, 32, 77] if not args.quick else [8, 32]
    by_length, length_meters = {}, {}
    for quantization in ("none", "int8"):
        encoder = ClipEncoder.load(str(model_dir), device="cpu", text_quantization=quantization)
        for threads in (1, 2):
            set_threads(threads)
            meter = length_meters[(quantization, threads)] = Meter()
            for length in lengths:
                words = [WORDS[(i * 7 + length) % len(WORDS)] for i in range(length - 2)]
                text = " ".join(words)
                encoder.encode_text([text])
                times = []
                with meter.measure():
                    for _ in range(10 if args.quick else 20):
                        t0 = time.perf_counter()
                        encoder.encode_text([text])
                        times.append(1e3 * (time.perf_counter() - t0))
                by_length[(quantization, threads, length)] = np.percentile(times, 50)

    # -- HTTP end to end
    http, http_cached = {}, {}
    if not args.skip_http:
        log_dir = args.cache_dir / "logs"
        log_dir.mkdir(exist_ok=True)
        servers: list[Server] = []
        try:
            for quantization, threads in HTTP_CONFIGS:
                servers.append(Server(warehouse.root, quantization, threads, log_dir))
            for server in servers:
                server.wait_ready()
                for text in query_texts(8, seed=98):  # load the model, index and frame table; compile
                    server.search(text)
            pids = tuple(server.process.pid for server in servers)
            for config in HTTP_CONFIGS:
                label = config[0].replace("none", "fp32")
                http[config] = Series("GET /search e2e, distinct query", label, str(config[1]), meter=Meter(pids))
                http_cached[config] = Series("GET /search e2e, cached query", label, str(config[1]), meter=Meter(pids))
            say(
                f"measuring GET /search through {len(servers)} uvicorn servers: {len(texts)} distinct queries, "
                f"then {len(cached_texts)} cached ..."
            )
            gc.collect()
            measure_http(servers, texts, http)
            measure_http(servers, cached_texts, http_cached)
        finally:
            for server in servers:
                server.stop()

    # -- agreement of int8 with float32
    say(f"measuring int8 / float32 agreement on {len(agreement_texts)} queries ...")
    set_threads(2)
    fp32_encoder = ClipEncoder.load(str(model_dir), device="cpu")
    int8_encoder = ClipEncoder.load(str(model_dir), device="cpu", text_quantization="int8")
    reference = np.concatenate([fp32_encoder.encode_text([t]) for t in agreement_texts])
    quantized = np.concatenate([int8_encoder.encode_text([t]) for t in agreement_texts])
    cosines = np.sum(reference * quantized, axis=1)
    pairwise = reference @ reference.T
    upper = pairwise[np.triu_indices(len(reference), 1)]
    ids, _, vectors = clients[RECOMMENDED].vectors.load_all()
    exact_fp32, exact_int8 = exact_top(vectors, ids, reference, TOP), exact_top(vectors, ids, quantized, TOP)
    client = clients[RECOMMENDED]
    index_fp32 = [{i for i, _ in client._rank(v, TOP, None)} for v in reference]
    index_int8 = [{i for i, _ in client._rank(v, TOP, None)} for v in quantized]
    exact_overlap, index_overlap = overlap(exact_fp32, exact_int8), overlap(index_fp32, index_int8)
    recall = overlap(exact_fp32, index_fp32)
    text_to_frame = np.sort(vectors @ reference[:50].T, axis=0)[-TOP:].mean()

    # the index's recall for text queries (far from every frame, as CLIP's are) by beam width, and for
    # stored frames as queries (what the hnsw_recall check measures)
    index = client.index.get()[0]
    efs = (50, 100, 200, 400, 800) if not args.quick else (50, 800)
    text_queries = reference[: min(len(reference), 200)]
    frame_queries = vectors[np.random.default_rng(3).choice(len(vectors), size=len(text_queries), replace=False)]
    set_threads(1)
    sweep = []
    for ef in efs:
        for name, queries in (("text queries", text_queries), ("stored frames", frame_queries)):
            if name == "stored frames" and ef != efs[0]:
                continue
            recall_at_k, latencies = index_recall(index, vectors, ids, queries, K, ef)
            sweep.append(
                [
                    name,
                    str(ef),
                    f"{recall_at_k:.3f}",
                    f"{np.percentile(latencies, 50):.2f}",
                    f"{np.percentile(latencies, 95):.2f}",
                ]
            )

    # -- report
    per_file = info["per_file"]
    say()
    say(
        f"== search latency: {info['frames']} frame vectors ({info['files']} files x {per_file} frames, 512-d, "
        f"{info['topics']} topics), HNSW M=16 ef_construction=200 ef_search=50, queried at ef={QUERY_EF} "
        f"(index built in "
        f"{info['index_build_s']:.0f} s), k={K}"
    )
    say(
        f"model: ViT-B/32 architecture, random weights, on cpu; queries: {len(texts)} distinct texts, "
        f"{tokens.min()}-{tokens.max()} tokens (median {np.median(tokens):.0f}) with BOS/EOS"
    )
    rows = [encode[c].row() for c in CONFIGS]
    rows += [cached[RECOMMENDED].row("from the client's cache")]
    rows += [
        ann.row(),
        join.row(),
        ann_join.row(
            f"target p95 <= {ANN_JOIN_TARGET_MS:.0f} ms: {'met' if ann_join.p95 <= ANN_JOIN_TARGET_MS else 'MISSED'}"
        ),
    ]
    rows += [total[c].row() for c in CONFIGS] + [cached_total[RECOMMENDED].row()]
    recommended_e2e = None
    if http:
        for config in HTTP_CONFIGS:
            budget = E2E_TARGET_MS + encode[config].p95
            met = http[config].p95 <= budget
            rows.append(
                http[config].row(
                    f"target p95 <= 25 + encoder p95 = {budget:.1f} ms: {'met' if met else 'MISSED'}"
                    + ("  <- recommended" if config == RECOMMENDED else "")
                )
            )
        for config in HTTP_CONFIGS:
            met = http_cached[config].p95 <= E2E_TARGET_MS
            rows.append(http_cached[config].row(f"no encoder; target p95 <= 25 ms: {'met' if met else 'MISSED'}"))
        recommended_e2e = http[RECOMMENDED]
    say()
    table(["stage", "text", "threads", "n", "p50_ms", "p95_ms", "mean_ms", "others", "note"], rows)
    say(
        "text: fp32 = float32 text tower, int8 = text_quantization='int8'; threads: torch intra-op threads "
        "(in-process: torch.set_num_threads; servers: OMP_NUM_THREADS); others: cores other processes used "
        "meanwhile (/proc/stat, minus this process and its servers); (b) and (c) pooled over all configurations"
    )

    say()
    say("text encoder p50 (ms) by query length in tokens (encode_text, one query)")
    headers = ["text / threads"] + [f"{length} tok" for length in lengths] + ["others"]
    table(
        headers,
        [
            [f"{q.replace('none', 'fp32')} / {t}"]
            + [f"{by_length[(q, t, length)]:.1f}" for length in lengths]
            + [f"{length_meters[(q, t)].others_cores:.2f}"]
            for q in ("none", "int8")
            for t in (1, 2)
        ],
    )

    say()
    say(
        f"== int8 vs float32 text vectors, {len(agreement_texts)} varied queries (RANDOM weights: indicative only; "
        "trained weights have outlier channels that int8 may treat worse)"
    )
    say(f"  cosine(int8, fp32) min / p5 / median: {percentiles(cosines)}")
    say(
        f"  for scale, fp32 cosine between different queries p5 / median / p95: {percentiles(upper, (5, 50, 95))}; "
        f"mean cosine of a query's top-{TOP} frames: {text_to_frame:.3f}"
    )
    say(
        f"  top-{TOP} overlap with fp32 on the {len(ids)} vectors, exact search: mean {exact_overlap.mean():.3f}, "
        f"min {exact_overlap.min():.1f}, >= 9/10 for {np.mean(exact_overlap >= 0.9):.0%} of queries"
    )
    say(
        f"  top-{TOP} overlap with fp32 through the index (what users see): mean {index_overlap.mean():.3f}, "
        f"min {index_overlap.min():.1f}, >= 9/10 for {np.mean(index_overlap >= 0.9):.0%}"
    )
    say(f"  for scale, the index's own recall@{TOP} against exact search (fp32 queries): {recall.mean():.3f}")

    say()
    say(
        f"== the index for text queries: recall@{K} against exact search (ties count) and index.search latency, "
        f"one thread, by beam width ef (the index's ef_search is {index.ef_search})"
    )
    table(["queries", "ef", f"recall@{K}", "p50_ms", "p95_ms"], sweep)

    say()
    all_meters = [s.meter for s in [*encode.values(), *http.values(), *http_cached.values()] if s.meter is not None]
    others = [m.others_cores for m in all_meters if m.others_cores == m.others_cores]
    say(
        f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total benchmark time "
        f"{time.perf_counter() - started:.0f} s"
    )
    if others and np.mean(others) > 0.2:
        say(
            f"WARNING: other processes used {np.mean(others):.2f} cores on average (up to {max(others):.2f}) of this "
            f"machine's {os.cpu_count()} during the measurements: the latencies are inflated; rerun on an idle machine"
        )
    say(
        f"recommended: SearchClient(..., text_quantization='int8') / MEDIA_ASSETS_TEXT_QUANTIZATION=int8 with "
        f"{RECOMMENDED[1]} torch thread (OMP_NUM_THREADS={RECOMMENDED[1]}) for the server"
    )
    if recommended_e2e is None:
        say("ratio p95=nan (--skip-http: no end-to-end measurement)")
    else:
        say(f"ratio p95={recommended_e2e.p95 / BUDGET_MS:.3f}")


if __name__ == "__main__":
    main()
