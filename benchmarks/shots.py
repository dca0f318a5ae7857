#!/usr/bin/env python
"""Shot-boundary benchmark: `media_assets.models.shots` on the frames stage's signals vs PySceneDetect.

Run from the repository root:

    python benchmarks/shots.py              # 16 held-out videos (seed 11), 20-40 s each, 640x360, 24/30 fps;
                                            # ours at 2 frames/s
    python benchmarks/shots.py --quick      # 5 videos: a fast check
    python benchmarks/shots.py --fps 4      # another sampling rate for ours (tolerance follows: 1/fps)
    python benchmarks/shots.py --seed 7     # the set the thresholds were tuned on (any other seed: held out)

The default set is held out: `models.shots`' thresholds were tuned on seed 7's videos, so the ratio
printed by default is measured on videos the tuning never saw.

The videos come from `media_assets.demo.write_test_video` (photographs from scikit-image under a virtual
camera) with known boundaries: hard cuts, fades through black and dissolves (0.5-1.5 s), and shots that
must NOT be cut: fast pans (0.4-1.2 frame widths/s on a wider canvas), fast zooms (up to 2.5x within a
shot), strong handheld shake, camera flashes (2-4 frames blended towards white, added here by
re-encoding; they land on a sampled frame or not, as in real footage) and a still "talking head" (the
astronaut with a moving mouth region, also added here). Videos and truth are cached under
benchmarks/.cache/shots/ (git-ignored); the first run generates them (~2 minutes).

Per video, in the same run, after reading the file once into the page cache:
- floor: `grab()` of every frame, no conversion, no detection: what any stage that decodes the whole
  stream (ours and PySceneDetect's alike) cannot beat;
- ours (timed): the frames stage's decode and signals at `--fps`, exactly as `frames._extract` computes
  them (`sample_video` on a prefetch thread, `make_thumbnail`, `phash`, `ChangeMeter`, `sharpness`),
  without the JPEG thumbnails and catalog rows it also writes, then `detect_shots` (visual signals only:
  CLIP vectors need weights this offline machine does not have). Then the real `extract_frames` runs too
  (timed and reported as "the whole frames stage"), and its rows must give the same signals and shots;
- ours + oracle vectors (labelled, not a real result): the same rows with synthetic "CLIP-like" vectors
  made from the ground truth, only to show what the semantic part does when vectors are present;
- PySceneDetect 0.7 `ContentDetector()` and `AdaptiveDetector()` with default settings, via
  `scenedetect.detect(path, detector)` (OpenCV backend, its automatic downscaling).

Scoring: a detection matches a true boundary within ±tolerance = 1 / `--fps` s (one sampled frame of ours,
the same time for PySceneDetect); for fades and dissolves anywhere within the transition span ±tolerance.
Matching is one-to-one. Speed is video minutes per second of wall time (the table shows seconds per
video minute). The anchor is the PySceneDetect detector with the better F1. The last line of stdout is

    ratio f1=<our F1 ÷ the anchor's F1> speed=<our speed ÷ the anchor's speed>
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from media_assets.demo import library as demo
from media_assets.media.decoding import DecodeStats, Sampling, probe, sample_video
from media_assets.media.discovery import stat_media_file
from media_assets.media.prefetch import prefetch
from media_assets.media.signals import ChangeMeter, grey, make_thumbnail, phash, sharpness
from media_assets.models.shots import ShotSettings, detect_shots, detect_shots_in_frames
from media_assets.stages.frames import FrameSettings, extract_frames
from media_assets.warehouse import Warehouse

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "shots"
TUNING_SEED = 7  # the set the thresholds were tuned on; other seeds give held-out sets
DEFAULT_SEED = 11  # what the benchmark reports by default: a held-out set
SET_VERSION = 1  # bump when the generator changes, so cached videos are regenerated
SIZE = (640, 360)
SOURCES = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle",
    "camera",
]


def say(text: str = "") -> None:
    print(text, flush=True)


# -- the test set --------------------------------------------------------------------------------------


@dataclass
class Style:
    """Per-video camera settings (module constants of `demo` patched while it renders that video)."""

    pan_speed: float = demo.PAN_SPEED  # frame widths per second
    zoom: float = 1.5  # zoom factor reached at a zoom shot's end
    shake: float = demo.SHAKE_AMPLITUDE  # frame widths


def plan_videos(count: int, seed: int = DEFAULT_SEED) -> list[dict]:
    """Deterministic specs: shots, camera style, flashes and talking-head spans per video."""
    rng = random.Random(seed)
    styles = [
        Style(),
        Style(pan_speed=0.4, zoom=2.0),
        Style(pan_speed=0.8, shake=0.05),
        Style(pan_speed=1.2, zoom=2.5, shake=0.06),
    ]
    specs = []
    for number in range(count):
        fps = 30.0 if number % 2 == 0 else 24.0
        style = styles[number % len(styles)]
        target = rng.uniform(20.0, 40.0)
        shots, total, previous = [], 0.0, None
        while total < target:
            seconds = round(rng.uniform(1.5, 5.0), 2)
            source = rng.choice([s for s in SOURCES if s != previous])
            motion = rng.choices(["static", "pan", "zoom", "shake"], weights=[3, 3, 2, 2])[0]
            shot = {"source": source, "seconds": seconds, "motion": motion}
            if shots:
                kind = rng.choices(["cut", "fade", "dissolve"], weights=[6, 2, 3])[0]
                shot["transition_in"] = kind
                if kind != "cut":
                    shot["transition_seconds"] = rng.choice([0.5, 0.75, 1.0, 1.5])
                    # room for the transition's halves inside both shots
                    shot["seconds"] = max(seconds, shot["transition_seconds"] + 0.6)
                    shots[-1]["seconds"] = max(shots[-1]["seconds"], shot["transition_seconds"] + 0.6)
            shots.append(shot)
            total += shot["seconds"]
            previous = source
        # a talking head: one still astronaut shot per video with an even number
        if number % 2 == 0:
            position = rng.randrange(len(shots))
            shots[position]["source"] = "astronaut"
            shots[position]["motion"] = "static"
            shots[position]["seconds"] = max(shots[position]["seconds"], 3.0)
            for neighbour in (position - 1, position + 1):
                if 0 <= neighbour < len(shots) and shots[neighbour]["source"] == "astronaut":
                    around = {shots[k]["source"] for k in (neighbour - 1, neighbour + 1) if 0 <= k < len(shots)}
                    shots[neighbour]["source"] = rng.choice([x for x in SOURCES if x not in around | {"astronaut"}])
        specs.append(
            {
                "name": f"v{number:02d}",
                "fps": fps,
                "style": style.__dict__,
                "shots": shots,
                "seed": 100 + number + 1000 * (seed - TUNING_SEED),
            }
        )
    return specs


def _patched_render(spec: dict, path: Path) -> dict:
    style = Style(**spec["style"])
    saved = demo.PAN_SPEED, demo.SHAKE_AMPLITUDE, dict(demo._CANVAS_COVER)
    try:
        demo.PAN_SPEED = style.pan_speed
        demo.SHAKE_AMPLITUDE = style.shake
        # the canvas must be wide enough for the pan to keep its speed over a 5 s shot
        demo._CANVAS_COVER["pan"] = max(1.3, 1.0 + style.pan_speed * 5.2)
        demo._CANVAS_COVER["zoom"] = style.zoom
        demo._CANVAS_COVER["shake"] = max(1.12, 1.0 + 4 * style.shake)
        return demo.write_test_video(path, spec["shots"], fps=spec["fps"], size=SIZE, seed=spec["seed"])
    finally:
        demo.PAN_SPEED, demo.SHAKE_AMPLITUDE = saved[:2]
        demo._CANVAS_COVER.clear()
        demo._CANVAS_COVER.update(saved[2])


def _plan_extras(truth: dict, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """Flashes (inside shots, away from transitions) and talking-head spans (the still astronaut shots)."""
    fps = truth["fps"]
    busy = [
        (b.get("transition_start", b["time"]) - 0.7, b.get("transition_end", b["time"]) + 0.7)
        for b in truth["boundaries"]
    ]
    flashes = []
    for shot in truth["shots"]:
        if shot["end"] - shot["start"] < 2.0 or rng.random() > 0.45:
            continue
        centre = rng.uniform(shot["start"] + 0.8, shot["end"] - 0.8)
        if any(lo <= centre <= hi for lo, hi in busy):
            continue
        length = rng.choice([2, 3, 4])
        first = int(round(centre * fps))
        flashes.append(
            {"time": round(first / fps, 6), "frame": first, "frames": length, "peak": round(rng.uniform(0.85, 1.0), 3)}
        )
    talking = [
        {"start": s["start"], "end": s["end"]}
        for s in truth["shots"]
        if s["source"] == "astronaut" and s["motion"] == "static"
    ]
    return flashes, talking


def _post_process(path: Path, fps: float, flashes: list[dict], talking: list[dict]) -> None:
    """Re-encode `path` with flashes (frames blended towards white) and a moving mouth in talking spans."""
    alpha = {}
    for flash in flashes:
        ramp = np.sin(np.linspace(0, math.pi, flash["frames"] + 2)[1:-1])
        for k, a in enumerate(ramp):
            alpha[flash["frame"] + k] = flash["peak"] * (0.6 + 0.4 * a)
    capture = cv2.VideoCapture(str(path))
    partial = path.with_name(f".{path.stem}.post{path.suffix}")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, SIZE)
    white = np.full((SIZE[1], SIZE[0], 3), 255, np.uint8)
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            t = index / fps
            if any(span["start"] <= t < span["end"] for span in talking):
                width, height = SIZE
                x0, x1, y0, y1 = int(width * 0.42), int(width * 0.58), int(height * 0.36), int(height * 0.56)
                roi = frame[y0:y1, x0:x1]
                opening = 0.5 + 0.5 * math.sin(2 * math.pi * 3.1 * t) * math.sin(2 * math.pi * 0.7 * t)
                tall = cv2.resize(roi, (x1 - x0, int((y1 - y0) * (1 + 0.2 * opening))))
                offset = (tall.shape[0] - (y1 - y0)) // 2
                frame[y0:y1, x0:x1] = tall[offset : offset + (y1 - y0)]
            if index in alpha:
                frame = cv2.addWeighted(frame, 1 - alpha[index], white, alpha[index], 0)
            writer.write(frame)
            index += 1
    finally:
        capture.release()
        writer.release()
    os.replace(partial, path)


def cached_set(count: int, seed: int = DEFAULT_SEED) -> list[dict]:
    """The test videos (generated once, then read from the cache) with their ground truth."""
    CACHE.mkdir(parents=True, exist_ok=True)
    entries = []
    for spec in plan_videos(count, seed):
        stem = spec["name"] if seed == TUNING_SEED else f"s{seed}-{spec['name']}"
        path = CACHE / f"{stem}.mp4"
        truth_path = path.with_suffix(".json")
        try:
            cached = json.loads(truth_path.read_text())
            if cached.get("version") == SET_VERSION and cached.get("spec") == spec and path.is_file():
                entries.append(cached | {"path": str(path)})
                continue
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        started = time.perf_counter()
        truth = _patched_render(spec, path)
        flashes, talking = _plan_extras(truth, random.Random(spec["seed"]))
        _post_process(path, truth["fps"], flashes, talking)
        entry = {
            "version": SET_VERSION,
            "spec": spec,
            "truth": truth | {"file": path.name},
            "flashes": flashes,
            "talking": talking,
        }
        truth_path.write_text(json.dumps(entry, indent=1))
        say(
            f"  generated {path.name}: {truth['duration']:.1f} s, {len(truth['boundaries'])} boundaries, "
            f"{len(flashes)} flashes ({time.perf_counter() - started:.1f} s)"
        )
        entries.append(entry | {"path": str(path)})
    return entries


# -- oracle vectors ------------------------------------------------------------------------------------


class OracleVectors:
    """Synthetic "CLIP-like" vectors from the ground truth: NOT a measurement of CLIP.

    Geometry chosen to resemble ViT-B/32 image vectors: unrelated photos at cosine ≈ 0.5 (a shared
    component), the same still shot frame to frame ≈ 0.99, drift under camera motion (pans fastest),
    dissolves and fades as normalised mixes (with a "black frame" vector), flashes mixed with a "white
    frame" vector.
    """

    DIM = 512

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        common = self._unit(self.rng.standard_normal(self.DIM))
        self.sources = {
            name: self._unit(0.7 * common + 0.714 * self._unit(self.rng.standard_normal(self.DIM))) for name in SOURCES
        }
        self.black = self._unit(0.7 * common + 0.714 * self._unit(self.rng.standard_normal(self.DIM)))
        self.white = self._unit(0.7 * common + 0.714 * self._unit(self.rng.standard_normal(self.DIM)))

    @staticmethod
    def _unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    def for_video(self, entry: dict, frame_indices: np.ndarray, is_duplicate: np.ndarray) -> np.ndarray:
        truth = entry["truth"]
        fps = truth["fps"]
        drift_rate = {"static": 0.0, "pan": 0.12, "zoom": 0.08, "shake": 0.03}
        shots = truth["shots"]
        directions = [self._unit(self.rng.standard_normal(self.DIM)) for _ in shots]

        def shot_vector(k: int, frame: int) -> np.ndarray:
            shot = shots[k]
            seconds = (frame - shot["start_frame"]) / fps
            return self._unit(self.sources[shot["source"]] + drift_rate[shot["motion"]] * seconds * directions[k])

        starts = [s["start_frame"] for s in shots]
        flash_alpha = {}
        for flash in entry["flashes"]:
            for k in range(flash["frames"]):
                flash_alpha[flash["frame"] + k] = flash["peak"]
        out = np.zeros((len(frame_indices), self.DIM), np.float32)
        for row, frame in enumerate(frame_indices):
            k = int(np.searchsorted(starts, frame, side="right") - 1)
            vector = shot_vector(k, frame)
            for b, boundary in enumerate(truth["boundaries"]):
                if boundary["type"] == "cut":
                    continue
                lo, hi = boundary["transition_start_frame"], boundary["transition_end_frame"]
                if not lo < frame < hi:
                    continue
                incoming = b + 1
                if boundary["type"] == "dissolve":
                    w = (frame - lo) / (hi - lo)
                    vector = self._unit((1 - w) * shot_vector(incoming - 1, frame) + w * shot_vector(incoming, frame))
                else:
                    gain = abs(frame - boundary["frame"]) / ((hi - lo) / 2)
                    shown = shot_vector(incoming - 1 if frame < boundary["frame"] else incoming, frame)
                    vector = self._unit(gain * shown + (1 - gain) * self.black)
            if frame in flash_alpha:
                a = flash_alpha[frame]
                vector = self._unit((1 - a) * vector + a * self.white)
            out[row] = self._unit(vector + self.rng.standard_normal(self.DIM) * 0.1 / math.sqrt(self.DIM))
        # duplicates carry their kept frame's vector, as in the warehouse
        for row in range(1, len(out)):
            if is_duplicate[row]:
                out[row] = out[row - 1]
        return out


# -- detectors -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    times: dict[str, list[float]] = field(default_factory=dict)  # video -> boundary times
    seconds: float = 0.0
    shots_static: list[tuple[str, str]] = field(default_factory=list)  # (truth motion class, ours)


def raw_decode(path: str) -> float:
    """Seconds to `grab()` (demux + decode, no conversion) every frame: the floor for any stage that
    decodes the whole stream, ours and PySceneDetect's alike."""
    started = time.perf_counter()
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    while capture.grab():
        pass
    capture.release()
    return time.perf_counter() - started


def decode_and_signals(path: Path, sampling: Sampling, thumbnail_max_side: int) -> dict[str, np.ndarray]:
    """The frames stage's decode and per-frame signals, exactly as `frames._extract` computes them (same
    functions, same order), without writing JPEG thumbnails and catalog rows."""
    meter = ChangeMeter()
    columns: dict[str, list] = {"timestamp_s": [], "change_score": [], "pixel_change": [], "sharpness": [], "phash": []}
    stats = DecodeStats()
    info = probe(path)
    # as frames._extract: decoding runs ahead on a background thread (OpenCV releases the GIL)
    for frame in prefetch(sample_video(path, sampling, stats, info.frame_count), depth=4):
        thumb = make_thumbnail(frame.image, thumbnail_max_side)
        grey_thumb = grey(thumb)
        columns["phash"].append(phash(grey_thumb))
        change, pixel = meter.update(thumb, grey_thumb)
        columns["timestamp_s"].append(frame.timestamp_s)
        columns["change_score"].append(change)
        columns["pixel_change"].append(pixel)
        columns["sharpness"].append(sharpness(grey_thumb))
    out = {k: np.asarray(v, dtype=np.float64) for k, v in columns.items() if k != "phash"}
    out["phash"] = columns["phash"]
    out["duration_s"] = stats.last_timestamp_s + 1.0 / (info.fps or 30.0)
    return out


@dataclass
class OurRun:
    shots: list
    seconds: float  # decode + signals + detection
    full_stage_seconds: float  # extract_frames (incl. JPEG thumbnails and catalog rows) + detection
    oracle_shots: list | None


def run_ours(
    entry: dict, warehouse: Warehouse, fps: float, settings: ShotSettings, oracle: OracleVectors | None
) -> OurRun:
    path = Path(entry["path"])
    frame_settings = FrameSettings(Sampling(fps=fps))
    # timed: what shot detection needs, starting from the file
    started = time.perf_counter()
    signals = decode_and_signals(path, frame_settings.sampling, frame_settings.thumbnail_max_side)
    shots, _ = detect_shots(
        signals["timestamp_s"],
        signals["change_score"],
        signals["pixel_change"],
        None,
        settings,
        sharpness=signals["sharpness"],
        phash=signals["phash"],
        duration_s=signals["duration_s"],
    )
    elapsed = time.perf_counter() - started
    # the real frames stage, also timed; its rows must give the same signals and the same shots
    started = time.perf_counter()
    result = extract_frames(warehouse, stat_media_file(path, warehouse.media_root), frame_settings)
    frames = result.frames
    stage_shots, _ = detect_shots_in_frames(frames, settings=settings, duration_s=result.media["duration_s"])
    full_elapsed = time.perf_counter() - started
    if not np.allclose(frames["change_score"].to_numpy(), signals["change_score"], atol=1e-6):
        raise AssertionError(f"{path.name}: the frames stage's change scores differ from the signal pass")
    if [s.start_seq for s in stage_shots] != [s.start_seq for s in shots]:
        raise AssertionError(f"{path.name}: shots from the frames table differ from the signal pass")
    oracle_shots = None
    if oracle is not None:
        vectors = oracle.for_video(
            entry, frames["frame_index"].to_numpy(), frames["is_duplicate"].to_numpy(zero_copy_only=False)
        )
        oracle_shots, _ = detect_shots_in_frames(
            frames, frames["frame_id"].to_numpy(), vectors, settings=settings, duration_s=result.media["duration_s"]
        )
    return OurRun(shots, elapsed, full_elapsed, oracle_shots)


def run_pyscenedetect(path: str, detector_name: str) -> tuple[list[float], float]:
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    detector = ContentDetector() if detector_name == "content" else AdaptiveDetector()
    started = time.perf_counter()
    scenes = detect(path, detector, show_progress=False)
    elapsed = time.perf_counter() - started
    return [start.seconds for start, _ in scenes[1:]], elapsed


# -- scoring -------------------------------------------------------------------------------------------


def match(truth: dict, detections: list[float], tolerance: float) -> tuple[int, list[dict], list[float]]:
    """One-to-one matching; returns (true positives, missed truth boundaries, unmatched detections)."""
    windows = []
    for boundary in truth["boundaries"]:
        lo = boundary.get("transition_start", boundary["time"]) - tolerance
        hi = boundary.get("transition_end", boundary["time"]) + tolerance
        windows.append((lo - 1e-6, hi + 1e-6, boundary["time"]))
    pairs = sorted(
        (abs(t - centre), b, d)
        for b, (lo, hi, centre) in enumerate(windows)
        for d, t in enumerate(detections)
        if lo <= t <= hi
    )
    used_b, used_d = set(), set()
    for _, b, d in pairs:
        if b not in used_b and d not in used_d:
            used_b.add(b)
            used_d.add(d)
    missed = [truth["boundaries"][b] for b in range(len(windows)) if b not in used_b]
    extra = [detections[d] for d in range(len(detections)) if d not in used_d]
    return len(used_b), missed, extra


def false_positive_cause(entry: dict, t: float) -> str:
    for flash in entry["flashes"]:
        if abs(t - flash["time"]) <= 0.6:
            return "flash"
    for shot in entry["truth"]["shots"]:
        if shot["start"] <= t < shot["end"]:
            return "talking" if any(s["start"] <= t < s["end"] for s in entry["talking"]) else shot["motion"]
    return "other"


@dataclass
class Score:
    tp: int = 0
    n_truth: int = 0
    n_detected: int = 0
    missed_by_type: dict = field(default_factory=dict)
    fp_by_cause: dict = field(default_factory=dict)

    @property
    def precision(self) -> float:
        return self.tp / self.n_detected if self.n_detected else 1.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_truth if self.n_truth else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(entries: list[dict], outcome: Outcome, tolerance: float) -> Score:
    total = Score()
    for entry in entries:
        truth = entry["truth"]
        detections = outcome.times[truth["file"]]
        tp, missed, extra = match(truth, detections, tolerance)
        total.tp += tp
        total.n_truth += len(truth["boundaries"])
        total.n_detected += len(detections)
        for boundary in missed:
            total.missed_by_type[boundary["type"]] = total.missed_by_type.get(boundary["type"], 0) + 1
        for t in extra:
            cause = false_positive_cause(entry, t)
            total.fp_by_cause[cause] = total.fp_by_cause.get(cause, 0) + 1
    return total


def static_truth(entry: dict, shot_index: int) -> str:
    return "static" if entry["truth"]["shots"][shot_index]["motion"] == "static" else "dynamic"


def classification(entries: list[dict], our_shots: dict[str, list]) -> tuple[int, int]:
    """Static/dynamic agreement for each true shot with the detected shot overlapping it most."""
    right = total = 0
    for entry in entries:
        shots = our_shots[entry["truth"]["file"]]
        for k, truth_shot in enumerate(entry["truth"]["shots"]):
            overlap = [min(s.end_s, truth_shot["end"]) - max(s.start_s, truth_shot["start"]) for s in shots]
            best = shots[int(np.argmax(overlap))]
            total += 1
            right += best.kind == static_truth(entry, k)
    return right, total


# -- output --------------------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    say("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)))
    say("  ".join("-" * w for w in widths))
    for row in rows:
        say("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)))


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 videos instead of 16")
    parser.add_argument("--videos", type=int, default=None, help="number of videos (default 16, 5 with --quick)")
    parser.add_argument("--fps", type=float, default=2.0, help="our sampling rate (frames per second)")
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"test-set seed (default {DEFAULT_SEED}, held out; {TUNING_SEED}: the tuning set)",
    )
    parser.add_argument("--no-oracle", action="store_true", help="skip the synthetic-vector row")
    parser.add_argument("--verbose", action="store_true", help="list every miss and false positive")
    args = parser.parse_args()
    count = args.videos or (5 if args.quick else 16)
    tolerance = 1.0 / args.fps
    settings = ShotSettings()

    import scenedetect

    say(
        f"shot boundaries: {count} videos at {SIZE[0]}x{SIZE[1]}, ours sampled at {args.fps:g} frames/s, "
        f"tolerance ±{tolerance:.3f} s"
    )
    say(
        f"python {platform.python_version()}, OpenCV {cv2.__version__}, PySceneDetect {scenedetect.__version__}, "
        f"{os.cpu_count()} cores, load average {load_average()}"
    )
    entries = cached_set(count, args.seed)
    minutes = sum(e["truth"]["duration"] for e in entries) / 60.0
    n_boundaries = sum(len(e["truth"]["boundaries"]) for e in entries)
    by_type: dict[str, int] = {}
    for e in entries:
        for b in e["truth"]["boundaries"]:
            by_type[b["type"]] = by_type.get(b["type"], 0) + 1
    motions: dict[str, int] = {}
    for e in entries:
        for s in e["truth"]["shots"]:
            motions[s["motion"]] = motions.get(s["motion"], 0) + 1
    role = "the tuning set" if args.seed == TUNING_SEED else "held out: the thresholds were tuned on seed 7"
    say(
        f"set: seed {args.seed} ({role}), {minutes:.2f} video minutes, {n_boundaries} boundaries {by_type}, "
        f"shots {motions}, "
        f"{sum(len(e['flashes']) for e in entries)} flashes, {sum(len(e['talking']) for e in entries)} talking heads"
    )

    ours = Outcome("ours: frames-stage signals + detect_shots (visual only)")
    oracle_outcome = Outcome("ours + ORACLE synthetic vectors (not CLIP)")
    content = Outcome("PySceneDetect ContentDetector")
    adaptive = Outcome("PySceneDetect AdaptiveDetector")
    decode = Outcome("(floor) grab() every frame, no detection")
    our_shots: dict[str, list] = {}
    full_stage_seconds = 0.0
    oracle = None if args.no_oracle else OracleVectors()
    scratch = Path(tempfile.mkdtemp(prefix="shots-bench-"))
    try:
        warehouse = Warehouse.at(scratch / "wh", media_root=CACHE, vectors_uri=str(scratch / "vectors")).ensure()
        # warm-up (imports, codecs), not measured
        run_ours(entries[0], warehouse, args.fps, settings, None)
        for entry in entries:
            name = entry["truth"]["file"]
            Path(entry["path"]).read_bytes()  # into the page cache: no detector pays the first read
            decode.seconds += raw_decode(entry["path"])
            run = run_ours(entry, warehouse, args.fps, settings, oracle)
            ours.times[name] = [s.start_s for s in run.shots[1:]]
            ours.seconds += run.seconds
            full_stage_seconds += run.full_stage_seconds
            our_shots[name] = run.shots
            if run.oracle_shots is not None:
                oracle_outcome.times[name] = [s.start_s for s in run.oracle_shots[1:]]
            for outcome, detector in ((content, "content"), (adaptive, "adaptive")):
                times, elapsed = run_pyscenedetect(entry["path"], detector)
                outcome.times[name] = times
                outcome.seconds += elapsed
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    rows = []
    scores = {}
    outcomes = [ours] + ([oracle_outcome] if oracle is not None else []) + [content, adaptive]
    for outcome in outcomes:
        s = scores[outcome.name] = score(entries, outcome, tolerance)
        per_minute = f"{outcome.seconds / minutes:.2f}" if outcome.seconds else "(as ours)"
        rows.append(
            [
                outcome.name,
                f"{s.precision:.3f}",
                f"{s.recall:.3f}",
                f"{s.f1:.3f}",
                per_minute,
                " ".join(f"{k}:{v}" for k, v in sorted(s.missed_by_type.items())) or "-",
                " ".join(f"{k}:{v}" for k, v in sorted(s.fp_by_cause.items())) or "-",
            ]
        )
    rows.append([decode.name, "-", "-", "-", f"{decode.seconds / minutes:.2f}", "-", "-"])
    say()
    table(["detector", "precision", "recall", "F1", "s per video minute", "missed", "false positives in"], rows)
    right, total = classification(entries, our_shots)
    say(
        f"\nstatic/dynamic of true shots (ours, visual only): {right}/{total} agree "
        f"(talking heads count as static); load average now {load_average()}"
    )
    if args.verbose:
        for outcome in outcomes:
            say(f"\n{outcome.name}")
            for entry in entries:
                tp, missed, extra = match(entry["truth"], outcome.times[entry["truth"]["file"]], tolerance)
                if missed or extra:
                    say(
                        f"  {entry['truth']['file']}: missed {[(b['type'], b['time']) for b in missed]} "
                        f"extra {[(round(t, 2), false_positive_cause(entry, t)) for t in extra]}"
                    )

    best = max((content, adaptive), key=lambda o: scores[o.name].f1)
    f1_ratio = scores[ours.name].f1 / scores[best.name].f1 if scores[best.name].f1 else float("inf")
    speed_ratio = (minutes / ours.seconds) / (minutes / best.seconds)
    say(
        f"decode floor: grab() alone is {best.seconds / decode.seconds:.2f}x as fast as {best.name}, the highest speed "
        f"ratio any stage that decodes every frame can reach here"
    )
    say(
        f"ours, timed with the whole frames stage (also JPEG thumbnails and catalog rows, which the warehouse "
        f"writes anyway): {full_stage_seconds / minutes:.2f} s per video minute, "
        f"speed ratio {(minutes / full_stage_seconds) / (minutes / best.seconds):.2f}"
    )
    say(
        f"\nanchor: {best.name} (the better PySceneDetect F1); ours is the visual-only row, timed as "
        f"decode + signals (the frames stage's own functions) + detection"
    )
    say(f"ratio f1={f1_ratio:.2f} speed={speed_ratio:.2f}")


if __name__ == "__main__":
    main()
