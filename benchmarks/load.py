#!/usr/bin/env python
"""Load benchmark: `media-assets serve` with many clients at once, alone and during an ingest; feedback writes;
the server's memory after 10,000 requests.

Run from the repository root:

    python benchmarks/load.py            # 100k frames, 20 s per concurrency level (~7 min on 2 cores, ~3 min
                                         # more the first time: benchmarks/search.py's warehouse is built)
    python benchmarks/load.py --quick    # 10k frames, 5 s per level, memory after 2,000 requests

**The warehouse** is benchmarks/search.py's cached synthetic one (`ensure_warehouse`: 100k 512-d frame vectors
of 200 files shaped like CLIP's, catalog rows, our HNSW index; the ViT-B/32 architecture with random weights
and a word-level vocabulary), copied to a scratch folder for each run, since the ingest and the feedback write
into it.

**The server** is search.py's `Server`: `python -m media_assets.apps.cli serve` on a loopback port in its
recommended configuration (int8 text tower, one torch thread: MEDIA_ASSETS_TEXT_QUANTIZATION=int8,
OMP_NUM_THREADS=1), with tokens: each search client has a viewer's token (MEDIA_ASSETS_TOKENS), the feedback
writers an editor's (`add_token` into the warehouse's tokens.json, what `media-assets tokens add` runs); every
request sends `Authorization: Bearer`.

**Clients** are threads of this process, each with its own httpx client (keep-alive), in a closed loop: a
request, its answer, the next request. A level runs `--warmup` seconds unmeasured, then `--seconds` measured
(requests that start in the window count; req/s = those ÷ the window).
  (a) `GET /search?q=...&k=20` at 1, 8 and 32 clients, distinct queries all run long (search.py's generator:
      the server's 256-query cache never answers);
  (b) the same during an ingest: `python -m media_assets.apps.cli ingest` in a child process, round after
      round, each on 3 new generated videos (`write_test_video`: 4 shots of 3 s, 320x180, 1 frame/s) embedded
      with the same ViT-B/32 (frames, vectors, shots, faces, OCR, chapters, then the index update over the
      100k vectors and its recall check, and the clusters); `ingest` is the share of the window with an ingest
      process alive;
  (c) `POST /feedback/relevance` from 4 writers (an editor's token), a unique query string per write, for
      `--seconds`: writes/s. After the run every 201's row is looked for in the scratch warehouse's
      `feedback` table (`catalog.query`): lost_feedback counts the 201s without their row, in every phase;
  (d) memory: the server's resident set (VmRSS of /proc/<pid>/status) after its warm-up and after each phase,
      then a mixed phase (5 text searchers, 1 image searcher with JPEG uploads, 2 feedback writers) until the
      clients have sent `--requests` (10,000) requests in all, sampled every 1,000.

Every phase reports the cores the server and these clients used (/proc/<pid>/stat, this process) and what
other processes used meanwhile (/proc/stat minus both: during the ingest, the ingest is among them); a warning
is printed when other processes used more than 0.2 cores outside the ingest phases. An error is any answer
other than 200 (201 for feedback) with the expected results, or a transport error. The last line is

    load p99_32=<p99 of GET /search at 32 clients, alone, ms> errors=<n, all phases> lost_feedback=<n>
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import search as search_bench  # benchmarks/search.py, beside this file: its warehouse, server and meters
from speech_text import cpu_facts, version_of

K = 20
LEVELS = (1, 8, 32)
FEEDBACK_WRITERS = 4
MIXED = {"text": 5, "image": 1, "feedback": 2}  # clients of the memory phase
INGEST_VIDEOS = 3  # per ingest round
BUSY_CORES = 0.2
REQUEST_TIMEOUT_S = 120.0
MAX_RATE = 250  # requests/s a level could reach on 2 cores (measured: ~60)
FEEDBACK_PREFIX = "load-bench"


# -- clients -----------------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One measured phase: each request's latency (ms), errors, the window, and the CPU it took."""

    label: str
    clients: int
    ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    window_s: float = 0.0
    server_s: float = 0.0  # CPU seconds of the server process in the window
    client_s: float = 0.0  # CPU seconds of this process (the clients)
    meter: search_bench.Meter | None = None
    ingest_share: float | None = None
    rss_peak: float = 0.0  # the server's largest VmRSS seen (every 0.1 s), MiB

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.ms, q)) if self.ms else float("nan")

    @property
    def rate(self) -> float:
        return len(self.ms) / self.window_s if self.window_s > 0 else float("nan")


class Requests:
    """What the clients send: distinct search texts, JPEG uploads, feedback writes with unique queries; and
    every feedback write answered 201, to look for afterwards."""

    def __init__(self, texts: list[str], uploads: list[bytes], frame_ids: np.ndarray, run: str):
        self.texts, self.uploads, self.frame_ids, self.run = texts, uploads, frame_ids, run
        self.written: dict[str, str] = {}  # query → feedback_id
        self.sent = 0
        self._taken = {"text": 0, "image": 0, "feedback": 0}
        self._lock = threading.Lock()

    def _take(self, kind: str) -> int:
        """The number of this request among its kind's (from 0); counts it as sent."""
        with self._lock:
            self.sent += 1
            number = self._taken[kind]
            if kind == "text" and number >= len(self.texts):
                raise RuntimeError(f"all {len(self.texts)} distinct queries were used: raise MAX_RATE")
            self._taken[kind] += 1
            return number

    def text(self, http) -> str | None:
        text = self.texts[self._take("text")]
        response = http.get("/search", params={"q": text, "k": K})
        if response.status_code != 200 or len(response.json()["results"]) != K:
            return f"GET /search?q={text!r}: {response.status_code} {response.text[:200]}"
        return None

    def image(self, http) -> str | None:
        n = self._take("image")
        upload = self.uploads[n % len(self.uploads)]
        response = http.post("/search/image", params={"k": K}, files={"file": ("query.jpg", upload, "image/jpeg")})
        if response.status_code != 200 or len(response.json()["results"]) != K:
            return f"POST /search/image: {response.status_code} {response.text[:200]}"
        return None

    def feedback(self, http) -> str | None:
        n = self._take("feedback")
        query = f"{FEEDBACK_PREFIX} {self.run} {n}"
        body = {"query": query, "frame_id": int(self.frame_ids[n % len(self.frame_ids)]), "relevant": n % 3 != 0}
        response = http.post("/feedback/relevance", json=body)
        if response.status_code != 201:
            return f"POST /feedback/relevance {query!r}: {response.status_code} {response.text[:200]}"
        with self._lock:
            self.written[query] = response.json()["feedback_id"]
        return None


def run_clients(
    url: str,
    plan: list[tuple[str, object]],
    seconds: float,
    warmup_s: float,
    server_pid: int,
    label: str,
    *,
    until_sent: tuple[Requests, int] | None = None,
    on_tick=None,
) -> Phase:
    """`plan`: one (token, request function) per client. Each client runs its requests in a closed loop for
    `warmup_s` unmeasured and then `seconds` measured (or, with `until_sent` (requests, n), until n requests
    were sent in all). `on_tick` is called every 0.1 s from this thread."""
    import httpx

    phase = Phase(label, len(plan), meter=search_bench.Meter((server_pid,)))
    lock = threading.Lock()
    barrier = threading.Barrier(len(plan) + 1)
    window: dict[str, float] = {}

    def client(token: str, request) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S) as http:
            barrier.wait()
            while True:
                started = time.perf_counter()
                if started >= window["end"]:
                    return
                if until_sent is not None and until_sent[0].sent >= until_sent[1]:
                    return
                try:
                    error = request(http)
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - started
                if started >= window["start"]:
                    with lock:
                        phase.ms.append(1e3 * elapsed)
                        if error is not None:
                            phase.errors.append(error)

    threads = [threading.Thread(target=client, args=entry, daemon=True) for entry in plan]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    window["start"] = now + warmup_s
    window["end"] = window["start"] + seconds if until_sent is None else float("inf")
    barrier.wait()
    while time.perf_counter() < window["start"]:
        time.sleep(0.05)
    server0, client0 = search_bench._process_cpu_s(server_pid), time.process_time()
    with phase.meter.measure():
        while any(thread.is_alive() for thread in threads):
            phase.rss_peak = max(phase.rss_peak, rss_mb(server_pid))
            if on_tick is not None:
                on_tick()
            time.sleep(0.1)
    for thread in threads:
        thread.join()
    phase.window_s = phase.meter.wall_s
    phase.server_s = search_bench._process_cpu_s(server_pid) - server0
    phase.client_s = time.process_time() - client0
    return phase


# -- the ingest --------------------------------------------------------------------------------------------


class Ingester:
    """`media-assets ingest` into the scratch warehouse in a child process, round after round until `stop()`,
    each round on `INGEST_VIDEOS` new generated videos; `running`: an ingest process is alive."""

    def __init__(self, warehouse, model_dir: Path, log_dir: Path):
        self.warehouse, self.model_dir, self.log_dir = warehouse, model_dir, log_dir
        self.process: subprocess.Popen | None = None
        self.rounds: list[tuple[int, float]] = []  # (exit code, seconds)
        self.videos = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ingester", daemon=True)

    @property
    def running(self) -> bool:
        process = self.process
        return process is not None and process.poll() is None

    def start(self) -> None:
        self._round()
        self._thread.start()

    def _round(self) -> None:
        from media_assets.demo.library import demo_sources, write_test_video

        number = len(self.rounds)
        names = sorted(demo_sources())
        for video in range(INGEST_VIDEOS):
            seed = number * INGEST_VIDEOS + video
            shots = [
                {"source": names[(seed + i * 3) % len(names)], "seconds": 3.0, "motion": ("static", "pan")[i % 2]}
                for i in range(4)
            ]
            write_test_video(self.warehouse.media_root / "load" / f"r{number:03d}-v{video}.mp4", shots, seed=seed)
        self.videos += INGEST_VIDEOS
        env = dict(os.environ, PYTHONWARNINGS="ignore", TRANSFORMERS_VERBOSITY="error", HF_HUB_OFFLINE="1")
        env.pop("MEDIA_ASSETS_TOKENS", None)
        command = [sys.executable, "-m", "media_assets.apps.cli", "ingest", "--warehouse", str(self.warehouse.root)]
        command += ["--clip-model", str(self.model_dir), "--device", "cpu", "--fps", "1"]
        with open(self.log_dir / f"ingest-{number:03d}.log", "wb") as out:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    def _loop(self) -> None:
        while True:
            code = self.process.wait()
            self.rounds.append((code, time.perf_counter() - self.started))
            if code != 0 or self._stop.is_set():
                return
            self._round()

    def stop(self, timeout_s: float = 600.0) -> None:
        """No more rounds; waits for the one running (killed after `timeout_s`)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self.running:
            self.process.kill()
            self._thread.join()


# -- the warehouse, the server ---------------------------------------------------------------------------------


def scratch_copy(source: Path, scratch: Path) -> Path:
    """A copy of the cached warehouse (modification times kept: ingest compares them) to write into."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(source, scratch, symlinks=True)
    return scratch


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def jpeg_uploads() -> list[bytes]:
    import cv2

    from media_assets.demo.library import demo_sources

    uploads = []
    for _, image in sorted(demo_sources().items()):
        for width in (224, 320):
            height = round(image.shape[0] * width / image.shape[1])
            uploads.append(cv2.imencode(".jpg", cv2.resize(image, (width, height)))[1].tobytes())
    return uploads


def environment() -> None:
    import torch

    import media_assets

    model, avx512 = cpu_facts()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    say = search_bench.say
    say("== environment")
    say(f"python {platform.python_version()} on {platform.platform()}")
    say(f"cpu: {model or 'unknown'}; os.cpu_count()={os.cpu_count()}, usable={usable}")
    say(f"AVX-512: {'yes (' + ' '.join(avx512) + ')' if avx512 else 'no'}")
    packages = ("fastapi", "uvicorn", "starlette", "httpx", "duckdb", "lancedb", "pyarrow", "torch", "numpy", "dagster")
    say("versions: " + ", ".join(f"{name} {version_of(name)}" for name in packages))
    say(f"torch threads here {torch.get_num_threads()}; media_assets from {Path(media_assets.__file__).parent}")
    say(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


# -- report ---------------------------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def phase_row(phase: Phase) -> list[str]:
    others = phase.meter.others_cores if phase.meter is not None else float("nan")
    return [
        phase.label,
        str(phase.clients),
        str(len(phase.ms)),
        fmt(phase.rate),
        fmt(phase.percentile(50)),
        fmt(phase.percentile(95)),
        fmt(phase.percentile(99)),
        fmt(max(phase.ms) if phase.ms else float("nan")),
        str(len(phase.errors)),
        fmt(phase.server_s / phase.window_s if phase.window_s else float("nan"), 2),
        fmt(phase.client_s / phase.window_s if phase.window_s else float("nan"), 2),
        fmt(others, 2),
        "-" if phase.ingest_share is None else f"{phase.ingest_share:.0%}",
    ]


HEADERS = ["phase", "clients", "requests", "req/s", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors"]
HEADERS += ["server_cores", "client_cores", "others", "ingest"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per level (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each level")
    parser.add_argument("--requests", type=int, default=10_000, help="requests in all before the last RSS")
    parser.add_argument("--quick", action="store_true", help="10k frames, 5 s per level, 2,000 requests")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "media_assets_search_bench"
    )  # search.py's: its warehouse is reused
    args = parser.parse_args()
    n, files, topics = 100_000, 200, 300
    if args.quick:
        n, files, topics = 10_000, 20, 100
        args.seconds, args.warmup, args.requests = min(args.seconds, 5.0), min(args.warmup, 2.0), 2_000
    if args.seconds <= 0 or args.requests < 1_000:
        parser.error("--seconds must be positive and --requests at least 1000")

    say, table = search_bench.say, search_bench.table
    search_bench.quiet_libraries()
    from media_assets.apps.access import add_token, tokens_path
    from media_assets.store import catalog
    from media_assets.warehouse import Warehouse

    started = time.perf_counter()
    environment()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    model_dir = search_bench.ensure_model(args.cache_dir)
    cached, info = search_bench.ensure_warehouse(args.cache_dir, model_dir, n, files, topics)
    scratch = scratch_copy(cached.root, args.cache_dir / f"load-scratch-n{info['frames']}")
    warehouse = Warehouse.at(scratch)
    log_dir = args.cache_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    say(f"\nwarehouse: a copy of {cached.root} in {scratch}: {info['frames']} frames of {info['files']} files")

    run = f"{int(time.time())}"
    editor = add_token(tokens_path(warehouse), "load-editor", "editor")
    viewers = [secrets.token_urlsafe(32) for _ in range(max(LEVELS))]  # a viewer's token per search client
    os.environ["MEDIA_ASSETS_TOKENS"] = ",".join(f"viewer-{i}:viewer:{token}" for i, token in enumerate(viewers))
    frame_ids = catalog.query(warehouse, "SELECT frame_id FROM frames WHERE NOT is_duplicate")["frame_id"]
    frame_ids = np.random.default_rng(0).permutation(frame_ids.to_numpy())
    # distinct queries for every search: more than the phases can send at MAX_RATE requests/s
    texts = search_bench.query_texts(int(2 * len(LEVELS) * (args.seconds + args.warmup) * MAX_RATE) + args.requests, 11)
    requests = Requests(texts, jpeg_uploads(), frame_ids, run)

    server = search_bench.Server(scratch, *search_bench.RECOMMENDED, log_dir)
    server.http.headers["Authorization"] = f"Bearer {viewers[0]}"
    ingester = Ingester(warehouse, model_dir, log_dir)
    phases: list[Phase] = []
    memory: list[tuple[str, int, float]] = []  # (after what, requests sent, RSS MiB)
    try:
        server.wait_ready()
        pid = server.process.pid
        for text in search_bench.query_texts(8, seed=98):  # load the model, the index, the frame table
            server.http.get("/search", params={"q": text, "k": K}).raise_for_status()
        for upload in requests.uploads[:2]:
            server.http.post("/search/image", files={"file": ("q.jpg", upload, "image/jpeg")}).raise_for_status()
        memory.append(("the server's warm-up (10 searches)", 0, rss_mb(pid)))
        url = f"http://127.0.0.1:{server.port}"
        say(f"server: pid {pid}, {url}, int8 text tower, 1 torch thread; tokens: {len(viewers)} viewers, 1 editor")

        say(f"(a) GET /search alone at {', '.join(map(str, LEVELS))} clients, {args.seconds:.0f} s each ...")
        for clients in LEVELS:
            plan = [(viewers[i], requests.text) for i in range(clients)]
            phases.append(run_clients(url, plan, args.seconds, args.warmup, pid, "alone"))
        memory.append(("(a) search alone", requests.sent, rss_mb(pid)))

        say(f"(b) the same during an ingest ({INGEST_VIDEOS} generated videos a round, round after round) ...")
        ingester.start()
        for clients in LEVELS:
            alive = []
            plan = [(viewers[i], requests.text) for i in range(clients)]
            phase = run_clients(
                url,
                plan,
                args.seconds,
                args.warmup,
                pid,
                "during ingest",
                on_tick=lambda alive=alive: alive.append(ingester.running),
            )
            phase.ingest_share = float(np.mean(alive)) if alive else 0.0
            phases.append(phase)
        memory.append(("(b) search during the ingest", requests.sent, rss_mb(pid)))
        say("    waiting for the ingest round in progress ...")
        ingester.stop()
        memory.append(("(b) the last ingest round ended", requests.sent, rss_mb(pid)))

        say(f"(c) POST /feedback/relevance from {FEEDBACK_WRITERS} writers, {args.seconds:.0f} s ...")
        plan = [(editor, requests.feedback)] * FEEDBACK_WRITERS
        feedback = run_clients(url, plan, args.seconds, args.warmup, pid, "feedback writes")
        phases.append(feedback)
        memory.append(("(c) feedback writes", requests.sent, rss_mb(pid)))

        say(f"(d) mixed clients {MIXED} until {args.requests:,} requests in all ...")
        next_mark = [(requests.sent // 1000 + 1) * 1000]

        def sample() -> None:
            if requests.sent >= next_mark[0]:
                memory.append(("(d) mixed", requests.sent, rss_mb(pid)))
                next_mark[0] += 1000

        plan = [(viewers[i], requests.text) for i in range(MIXED["text"])]
        plan += [(viewers[MIXED["text"] + i], requests.image) for i in range(MIXED["image"])]
        plan += [(editor, requests.feedback)] * MIXED["feedback"]
        if requests.sent < args.requests:
            mixed = run_clients(url, plan, 0.0, 0.0, pid, "mixed", until_sent=(requests, args.requests), on_tick=sample)
            phases.append(mixed)
        memory.append((f"(d) mixed, {args.requests:,} requests in all", requests.sent, rss_mb(pid)))
        health = server.http.get("/health").json()
    finally:
        ingester.stop(timeout_s=0.0)
        server.stop()

    # -- feedback rows
    rows = catalog.query(
        warehouse, "SELECT query, feedback_id FROM feedback WHERE starts_with(query, ?)", [f"{FEEDBACK_PREFIX} {run} "]
    ).to_pylist()
    stored = {r["query"]: r["feedback_id"] for r in rows}
    lost = sorted(q for q, fid in requests.written.items() if stored.get(q) != fid)
    unexpected = len(rows) - len(stored) + len(set(stored) - set(requests.written))  # duplicates, rows without 201

    # -- report
    say()
    say(
        f"== GET /search?q=<distinct>&k={K} through media-assets serve: {info['frames']} frames ({info['files']} "
        f"files), HNSW index; closed-loop clients, {args.warmup:.0f} s warm-up + {args.seconds:.0f} s per level"
    )
    table(HEADERS, [phase_row(p) for p in phases if p.label in ("alone", "during ingest")])
    rounds = ", ".join(f"{s:.0f}" for _, s in ingester.rounds)
    say(
        f"ingest: {len(ingester.rounds)} rounds of {INGEST_VIDEOS} videos ({rounds} s; exit codes "
        f"{sorted({c for c, _ in ingester.rounds})}); server_cores / client_cores: CPU of the server process / of "
        "these clients per second of the window; others: every other process (the ingest too, in its rows)"
    )
    say()
    say(f"== POST /feedback/relevance, {FEEDBACK_WRITERS} writers with an editor's token; and the mixed phase")
    table(HEADERS, [phase_row(p) for p in phases if p.label in ("feedback writes", "mixed")])
    say(
        f"feedback: {len(requests.written)} writes answered 201 in all phases, {len(rows)} rows of this run in the "
        f"table; lost (a 201 without its row): {len(lost)}; rows without a 201, or twice: {unexpected}"
        + (f"; first lost: {lost[:3]}" if lost else "")
    )
    say()
    say("== the server's memory (VmRSS, MiB) by requests sent")
    table(["after", "requests", "rss_mb"], [[label, str(sent), fmt(mb, 0)] for label, sent, mb in memory])
    first = next(entry for entry in memory if entry[1] >= 1000)
    peak = max(p.rss_peak for p in phases)
    say(
        f"growth from the first sample after 1,000 requests ({first[0]}, {first[1]}) to the last: "
        f"{memory[-1][2] - first[2]:+.0f} MiB; the peak in any phase: {peak:.0f} MiB; "
        f"server /health at the end: {health['counts']['media']} media, {health['counts']['frame_vectors']} frame "
        f"vectors, index {health['index']['state']} ({health['index']['nodes']} nodes)"
    )

    errors = [e for p in phases for e in p.errors]
    if errors:
        say(f"errors: {len(errors)}; the first: {errors[:3]}")
    quiet = [p.meter.others_cores for p in phases if p.label != "during ingest" and p.meter is not None]
    quiet = [x for x in quiet if x == x]
    say()
    say(
        f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total benchmark time "
        f"{time.perf_counter() - started:.0f} s"
    )
    if quiet and max(quiet) > BUSY_CORES:
        say(
            f"WARNING: other processes used {np.mean(quiet):.2f} cores on average (up to {max(quiet):.2f}) of this "
            f"machine's {os.cpu_count()} outside the ingest phases: the numbers are lower than on an idle machine"
        )
    p99_32 = next(p.percentile(99) for p in phases if p.label == "alone" and p.clients == 32)
    say(f"load p99_32={p99_32:.1f} errors={len(errors)} lost_feedback={len(lost)}")


if __name__ == "__main__":
    main()
