"""The HTTP API under load: a real `media-assets serve` process on a loopback port, several clients at once
searching by text and by image (viewer tokens) and writing relevance feedback (an editor's token), while
`media-assets ingest` adds files to the same warehouse in another process. No request fails, every feedback
write answered 201 has its row (once), and the server's memory (RSS) levels off: it grows by less than
`MAX_RSS_GROWTH_MB` from the end of the warm-up to the last request.

Bounded: 2,000 requests in all (`DEFAULT_RUN`; the slow version 10,000, `SLOW_RUN`), within a wall-clock cap (the
clients stop there and the test fails, saying how far they got). Latency is measured by `benchmarks/load.py`.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import pytest
from mediagen import photo, shots_video
from test_server import build_small_warehouse

from media_assets.store import catalog
from media_assets.warehouse import Warehouse

# (requests, warm-up requests, wall-clock cap in s): 2,000 take ~35 s with the ingest on 2 busy cores, 10,000 ~160 s
DEFAULT_RUN = (2_000, 500, 150.0)
SLOW_RUN = (10_000, 1_000, 600.0)
SEARCHERS, WRITERS = 4, 2  # viewer and editor clients, each its own connection
IMAGE_EVERY = 3  # every third request of a searcher is an image search
# The server's RSS (~840 MiB: torch, the models, DuckDB) grew 10-17 MiB after the warm-up in every run on the 2-core
# build machine, all of it before ~3,000 requests, then stayed within 3 MiB to 10,000 (the numbers are in
# docs/benchmarks.md, "Under load"). 40 MiB (5 %) leaves room for that and for the allocator, and a leak of 4 KiB
# a request fails the 10,000-request run; its second half must also stay within LATE_GROWTH_MB (a 2 KiB leak).
MAX_RSS_GROWTH_MB = 40.0
LATE_GROWTH_MB = 10.0
REQUEST_TIMEOUT_S = 60.0
WORDS = "cat dog rocket coffee astronaut beach city night red blue old small running sitting".split()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    """The resident set size of process `pid` in MiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def media_assets(*args) -> list[str]:
    return [sys.executable, "-m", "media_assets.apps.cli", *map(str, args)]


@contextmanager
def default_sigint():
    """A child started in here gets SIGINT's default disposition even when this process ignores it (an ignored
    signal stays ignored across exec; a handler does not). Main thread only."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


class Server:
    """`media-assets serve` in a child process on a free loopback port; stopped with SIGINT to its pid."""

    def __init__(self, warehouse: Warehouse, env: dict, log: Path):
        self.port, self.log = free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"
        command = media_assets("serve", "--warehouse", warehouse.root, "--host", "127.0.0.1", "--port", self.port)
        with open(log, "wb") as out, default_sigint():
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, token: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}) as http:
            while True:
                assert self.process.poll() is None, f"the server exited with {self.process.returncode}:\n{self.tail()}"
                try:
                    if http.get("/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"the server did not answer in {timeout_s:.0f} s:\n{self.tail()}"
                time.sleep(0.2)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # its pid only: uvicorn shuts down cleanly
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass
class Tally:
    """What the clients saw, shared by their threads."""

    budget: int
    deadline: float
    issued: int = 0
    done: int = 0
    ingest_overlap: int = 0  # requests answered while the ingest process was running
    errors: list[str] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # query → feedback_id of every 201
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ticket(self) -> int | None:
        with self.lock:
            if self.issued >= self.budget or time.monotonic() > self.deadline:
                return None
            self.issued += 1
            return self.issued

    def record(self, kind: str, error: str | None, ingesting: bool, wrote: tuple[str, str] | None = None) -> int:
        with self.lock:
            self.done += 1
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.ingest_overlap += ingesting
            if error is not None:
                self.errors.append(error)
            if wrote is not None:
                self.written[wrote[0]] = wrote[1]
            return self.done


def jpegs() -> list[bytes]:
    """Small JPEG uploads, a few photos at a few sizes."""
    return [
        cv2.imencode(".jpg", photo(name, size))[1].tobytes()
        for name in ("chelsea", "astronaut", "coffee", "rocket")
        for size in ((160, 120), (200, 150))
    ]


def searcher(url: str, token: str, name: str, tally: Tally, ingester: Ingester, uploads: list[bytes]) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT_S) as http:
        for count in itertools.count():
            ticket = tally.ticket()
            if ticket is None:
                return
            image = count % IMAGE_EVERY == IMAGE_EVERY - 1
            try:
                if image:
                    jpeg = uploads[ticket % len(uploads)]
                    response = http.post(
                        "/search/image", params={"k": 10}, files={"file": ("q.jpg", jpeg, "image/jpeg")}
                    )
                else:  # a query nobody asked before: the text tower runs every time
                    words = " ".join(WORDS[(ticket * 7 + i * 3) % len(WORDS)] for i in range(2 + ticket % 4))
                    response = http.get("/search", params={"q": f"{words} {name}-{ticket}", "k": 10})
                ok = response.status_code == 200 and len(response.json()["results"]) > 0
                error = None if ok else f"{response.request.url}: {response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                error = f"{'image' if image else 'text'} search: {type(exc).__name__}: {exc}"
            tally.record("image" if image else "text", error, ingester.running)


def writer(url: str, token: str, name: str, tally: Tally, ingester: Ingester, frame_ids: list[int]) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT_S) as http:
        while (ticket := tally.ticket()) is not None:
            query = f"load {name}-{ticket}"
            wrote = error = None
            try:
                response = http.post(
                    "/feedback/relevance",
                    json={"query": query, "frame_id": frame_ids[ticket % len(frame_ids)], "relevant": ticket % 2 == 0},
                )
                if response.status_code == 201:
                    wrote = (query, response.json()["feedback_id"])
                else:
                    error = f"feedback {query!r}: {response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                error = f"feedback {query!r}: {type(exc).__name__}: {exc}"
            tally.record("feedback", error, ingester.running, wrote)


class Ingester:
    """`media-assets ingest` in a child process, over and over until `stop()`: each round first writes new
    files (a short video and a photo) into the media root, so each has work (frames, vectors, shots,
    faces, OCR, chapters, then the index and the clusters). `running`: an ingest process is alive now."""

    def __init__(self, warehouse: Warehouse, clip: Path, env: dict, folder: Path, stamp: str):
        self.warehouse, self.clip, self.env, self.folder, self.stamp = warehouse, clip, env, folder, stamp
        self.process: subprocess.Popen | None = None
        self.rounds: list[tuple[int, float]] = []  # (exit code, seconds) of each finished ingest
        self.files = 0
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ingester", daemon=True)

    @property
    def running(self) -> bool:
        process = self.process
        return process is not None and process.poll() is None

    def start(self) -> None:
        self._round()  # the first ingest is running when start returns
        self._thread.start()

    def _round(self) -> None:
        number = len(self.rounds)
        folder = self.warehouse.media_root / "load" / self.stamp
        sources = ["coffee", "rocket", "chelsea", "astronaut"]
        shots_video(folder / f"v{number}.mp4", sources[number % 4 :] + sources[: number % 4], seconds_each=1.5)
        cv2.imwrite(str(folder / f"p{number}.jpg"), photo(sources[(number + 1) % 4], (400, 300)))
        self.files += 2
        command = media_assets("ingest", "--warehouse", self.warehouse.root, "--clip-model", self.clip, "--fps", 2)
        with open(self.folder / f"ingest-{number}.log", "wb") as out:
            self.started = time.monotonic()
            self.process = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def _loop(self) -> None:
        while True:
            code = self.process.wait()
            self.rounds.append((code, time.monotonic() - self.started))
            if code != 0 or self._stop.is_set():
                return
            self._round()

    def stop(self, timeout_s: float) -> None:
        """Start no more rounds and wait for the one running; a round still running after `timeout_s` is
        killed (and fails the test)."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self.running:
            self.process.kill()
            self._thread.join()

    def failures(self) -> list[str]:
        return [
            f"ingest {n} exited with {code}:\n{(self.folder / f'ingest-{n}.log').read_text()[-3000:]}"
            for n, (code, _) in enumerate(self.rounds)
            if code != 0
        ]


def add_editor_token(warehouse: Warehouse, name: str, env: dict) -> str:
    """`media-assets tokens add NAME --role editor`: the token is printed once, alone on stdout."""
    done = subprocess.run(
        media_assets("tokens", "add", name, "--role", "editor", "--warehouse", warehouse.root),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def small(tmp_path_factory, tiny_clip) -> Warehouse:
    return build_small_warehouse(tmp_path_factory.mktemp("load") / "warehouse", tiny_clip)


def run_load(
    warehouse: Warehouse, tiny_clip: Path, tmp_path: Path, run: tuple[int, int, float], *, late_check: bool = False
) -> None:
    """`run` = (requests, warm-up requests, cap s); `late_check`: the RSS of the last half is bounded too."""
    requests, warmup, cap_s = run
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_ASSETS_")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), env.get("PYTHONPATH")]))
    stamp = f"run{requests}"  # both tests run on the module's warehouse: names of their own
    editor_name = f"writer-{stamp}"
    editor = add_editor_token(warehouse, editor_name, env)
    viewers = [f"viewer-{n}-{os.urandom(16).hex()}" for n in range(SEARCHERS)]
    server_env = env | {"MEDIA_ASSETS_TOKENS": ",".join(f"{t[:8]}:viewer:{t}" for t in viewers)}
    frame_ids = catalog.query(warehouse, "SELECT frame_id FROM frames WHERE NOT is_duplicate")["frame_id"].to_pylist()
    media_before = catalog.query(warehouse, "SELECT count(*) AS n FROM media")["n"][0].as_py()
    uploads = jpegs()

    server = Server(warehouse, server_env, tmp_path / "server.log")
    ingester = Ingester(warehouse, tiny_clip, env, tmp_path, stamp)
    try:
        server.wait_ready(viewers[0])
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {editor}"}) as http:
            assert http.get("/session").json()["role"] == "editor"  # the token file's editor is let in
        ingester.start()
        started = time.monotonic()
        tally = Tally(requests, started + cap_s)
        clients = [(searcher, token, uploads) for token in viewers] + [(writer, editor, frame_ids)] * WRITERS
        threads = [
            threading.Thread(
                target=client, args=(server.url, token, f"{stamp} {n}", tally, ingester, extra), daemon=True
            )
            for n, (client, token, extra) in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        rss: dict[int, float] = {}
        marks = sorted({warmup, requests // 2, *range(1000, requests, 1000)} - set(range(warmup)))
        while any(thread.is_alive() for thread in threads):
            time.sleep(0.05)
            if marks and tally.done >= marks[0]:
                rss[marks.pop(0)] = rss_mb(server.process.pid)
        rss[tally.done] = rss_mb(server.process.pid)
        elapsed = time.monotonic() - started
        assert server.process.poll() is None, f"the server died under load:\n{server.tail()}"
        ingester.stop(timeout_s=180.0)
        summary = (
            f"{tally.done} requests in {elapsed:.0f} s ({tally.counts}), {tally.ingest_overlap} while an ingest ran "
            f"({len(ingester.rounds)} ingests of {ingester.files} files, "
            f"{', '.join(f'{s:.0f}' for _, s in ingester.rounds)} s); "
            f"server RSS (MiB) after n requests: {', '.join(f'{n}: {mb:.0f}' for n, mb in sorted(rss.items()))}"
        )
        print(summary)
        assert not ingester.failures(), ingester.failures()[0]
        assert tally.done == requests, f"the wall-clock cap of {cap_s:.0f} s was hit: {summary}"
        assert not tally.errors, f"{len(tally.errors)} errors, the first: {tally.errors[:5]}; {summary}"
        assert tally.ingest_overlap > 0, f"no request overlapped an ingest: {summary}"

        # every 201 has its row, once, with the editor's name; and no row is there without its 201
        rows = catalog.query(
            warehouse, "SELECT feedback_id, query, source FROM feedback WHERE starts_with(query, ?)", [f"load {stamp} "]
        ).to_pylist()
        stored = {r["query"]: r["feedback_id"] for r in rows}
        lost = sorted(set(tally.written) - set(stored))
        assert not lost, f"{len(lost)} of {len(tally.written)} feedback writes answered 201 have no row: {lost[:5]}"
        assert len(rows) == len(stored) == len(tally.written) and stored == tally.written
        assert {r["source"] for r in rows} == {f"api:{editor_name}"}

        # the server sees what the ingests added, index and all
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {viewers[0]}"}) as http:
            for _ in range(20):  # the server looks at the index files at most once a second
                health = http.get("/health").json()
                if health["index"]["state"] == "current":
                    break
                time.sleep(0.5)
            assert health["counts"]["media"] == media_before + ingester.files, health
            assert health["index"]["state"] == "current", health
        growth = rss[tally.done] - rss[warmup]
        assert growth < MAX_RSS_GROWTH_MB, f"the server's RSS grew {growth:.0f} MiB after the warm-up: {summary}"
        late = rss[tally.done] - rss[requests // 2]
        assert not late_check or late < LATE_GROWTH_MB, f"the RSS grew {late:.0f} MiB in the last half: {summary}"
    finally:
        ingester.stop(timeout_s=0.0)
        code = server.stop()
    assert code == 0, f"the server exited with {code} on SIGINT:\n{server.tail()}"


def test_searches_image_searches_and_feedback_under_load_during_an_ingest(small, tiny_clip, tmp_path):
    run_load(small, tiny_clip, tmp_path, DEFAULT_RUN)


@pytest.mark.slow
def test_ten_thousand_requests_during_ingests(small, tiny_clip, tmp_path):
    run_load(small, tiny_clip, tmp_path, SLOW_RUN, late_check=True)
