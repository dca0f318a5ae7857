#!/usr/bin/env python
"""Ingest benchmark: how close the frames and frame_embeddings stages run to their raw anchors.

Run from the repository root:

    python benchmarks/ingest.py              # 3-minute 720p30 video, ViT-B/32 (random weights)
    python benchmarks/ingest.py --quick      # 30 s video, fewer frames: a fast check
    python benchmarks/ingest.py --minutes 5 --batch-size 16

(a) Frame sampling at 1 frame/s on a generated 1280x720 30 fps `mp4v` video (pans and zooms over
    scikit-image sample photos with sensor noise, a burnt-in clock and a cut every 3-6 s):
    - anchor: `cv2.VideoCapture(path, cv2.CAP_FFMPEG)` calling only `grab()` to the end;
    - ours:   `media_assets.stages.frames.extract_frames` (probe, sampling, thumbnails, perceptual hashes, frame
              signals, JPEG files, catalog Parquet rows) into a temporary warehouse;
    - extra:  the bare `media_assets.media.decoding.sample_video` loop, to split decoding from the per-frame work.
(b) Embedding throughput of `media_assets.stages.frame_embeddings.embed_frames` (read thumbnails, OpenCV
    preprocessing on a background thread, model forward, LanceDB commit) with the ViT-B/32 architecture (random
    weights, from `media_assets.demo.random_clip.write_random_clip`) against the model's bare
    `encoder.encode_pixels` on pre-made float32 [B, 3, 224, 224] batches: the same thumbnails, read and
    preprocessed before the timing, in the same batches.

Sampling measurements run `--repeats` times (default 3), embedding ones `--embed-repeats` times (default 3),
anchor and ours alternating, after an unmeasured warm-up; the tables show the best (fastest) and the median
run, and the ratios use the best runs (the least disturbed ones on a shared machine). Every run also reports
this process's CPU time and the cores other processes used meanwhile (from /proc/stat), so a disturbed run
is visible. The embedding part embeds enough frames for ~20 s per measurement at the speed of a warm-up
batch (4-6 batches; 2 with --quick), sampling the video at whatever frame rate gives that many kept frames.

The generated video and the random-weights model are cached in benchmarks/.cache/ (git-ignored) and
reused. The last line of stdout is

    ratio sampling=<ours ÷ raw grab, frames/s> embedding=<ours ÷ bare forward, images/s>
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"

WIDTH, HEIGHT, VIDEO_FPS = 1280, 720, 30
VIDEO_VERSION = 2  # bump when the generator changes, so cached videos are regenerated
MODEL_DIR_NAME = "clip-vit-b-32-random"


def say(text: str = "") -> None:
    print(text, flush=True)


# -- the test video ----------------------------------------------------------------------------------


def _source_images() -> list[np.ndarray]:
    """scikit-image's bundled sample photos, as BGR uint8 (no download needed)."""
    from skimage import data

    names = [
        "astronaut",
        "coffee",
        "chelsea",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
        "camera",
        "grass",
        "gravel",
        "brick",
        "moon",
        "coins",
        "clock",
        "colorwheel",
    ]
    images = []
    for name in names:
        try:
            image = getattr(data, name)()
        except Exception:  # a sample missing from this scikit-image version: use the others
            continue
        if image.dtype != np.uint8:
            continue
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        else:
            image = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2BGR)
        images.append(image)
    if len(images) < 4:
        raise SystemExit("scikit-image's sample images are not available; cannot generate the test video")
    return images


def _smoothstep(t: float) -> float:
    return t * t * (3.0 - 2.0 * t)


def generate_video(path: Path, seconds: float, *, seed: int = 0) -> None:
    """Write a 1280x720 30 fps mp4v video of `seconds`: slow pans/zooms over sample photos (a cut every
    3-6 s), mild sensor noise, a little hand-held shake and a running clock in a corner."""
    rng = np.random.default_rng(seed)
    sources = _source_images()
    noise = []
    for _ in range(5):
        field = rng.normal(0.0, 3.0, (HEIGHT, WIDTH, 1)).astype(np.float32)
        field = np.repeat(field, 3, axis=2)
        noise.append((np.clip(field, 0, 255).astype(np.uint8), np.clip(-field, 0, 255).astype(np.uint8)))

    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write mp4v video to {tmp}")
    total = int(round(seconds * VIDEO_FPS))
    frame_no = 0
    started = time.perf_counter()
    try:
        while frame_no < total:
            source = sources[int(rng.integers(len(sources)))]
            h, w = source.shape[:2]
            fit = max(WIDTH / w, HEIGHT / h)  # output px per source px at which the view just fits
            z0, z1 = fit * rng.uniform(1.05, 1.7), fit * rng.uniform(1.05, 1.7)
            scene_frames = min(total - frame_no, int(rng.uniform(3.0, 6.0) * VIDEO_FPS))

            def centre(scale: float, w: int = w, h: int = h) -> tuple[float, float]:
                half_w, half_h = WIDTH / (2 * scale), HEIGHT / (2 * scale)
                return rng.uniform(half_w, w - half_w), rng.uniform(half_h, h - half_h)

            (cx0, cy0), (cx1, cy1) = centre(z0), centre(z1)
            shake = rng.uniform(0.0, 2.5)
            for i in range(scene_frames):
                t = _smoothstep(i / max(1, scene_frames - 1))
                scale = z0 + (z1 - z0) * t
                cx = cx0 + (cx1 - cx0) * t + shake * math.sin(0.37 * frame_no) / scale
                cy = cy0 + (cy1 - cy0) * t + shake * math.cos(0.23 * frame_no) / scale
                # a sub-pixel window of the photo, scaled up to the frame (cheaper than warpAffine)
                window = (max(2, round(WIDTH / scale)), max(2, round(HEIGHT / scale)))
                patch = cv2.getRectSubPix(source, window, (cx, cy))
                frame = cv2.resize(patch, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
                plus, minus = noise[frame_no % len(noise)]
                cv2.add(frame, plus, dst=frame)
                cv2.subtract(frame, minus, dst=frame)
                seconds_in = frame_no / VIDEO_FPS
                clock = f"{int(seconds_in // 60):02d}:{seconds_in % 60:05.2f}"
                cv2.putText(
                    frame, clock, (WIDTH - 250, HEIGHT - 30), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 5, cv2.LINE_AA
                )
                cv2.putText(
                    frame,
                    clock,
                    (WIDTH - 250, HEIGHT - 30),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    1.2,
                    (255, 255, 255),
                    2,
                    cv2.LINE_AA,
                )
                writer.write(frame)
                frame_no += 1
    finally:
        writer.release()
    check = cv2.VideoCapture(str(tmp), cv2.CAP_FFMPEG)
    count = int(check.get(cv2.CAP_PROP_FRAME_COUNT))
    check.release()
    if count < total * 0.99:
        tmp.unlink(missing_ok=True)
        raise SystemExit(f"generated video has {count} frames, expected {total}")
    os.replace(tmp, path)
    say(
        f"  generated {path.name}: {total} frames in {time.perf_counter() - started:.1f}s, "
        f"{path.stat().st_size / 1e6:.1f} MB"
    )


def cached_video(seconds: float) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"pans_{WIDTH}x{HEIGHT}_{VIDEO_FPS}fps_{seconds:g}s_v{VIDEO_VERSION}.mp4"
    if not path.exists():
        say(f"  generating {path.relative_to(HERE.parent)} (once; reused on later runs)...")
        generate_video(path, seconds)
    return path


def cached_model() -> Path:
    from media_assets.demo.random_clip import write_random_clip

    folder = CACHE / MODEL_DIR_NAME
    if not (folder / "config.json").exists() or not (folder / "model.safetensors").exists():  # renamed in when complete
        say(f"  writing the random-weights ViT-B/32 checkpoint to {folder.relative_to(HERE.parent)} (once)...")
        partial = CACHE / f".{MODEL_DIR_NAME}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        write_random_clip(partial, size="vit-b-32")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    return folder


# -- measurements ------------------------------------------------------------------------------------


class CpuMeter:
    """Wall time, this process's CPU time (all its threads) and the CPU time the rest of the machine used
    meanwhile (from /proc/stat), so a run disturbed by other work is visible."""

    def __init__(self) -> None:
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _busy_s(self) -> float | None:
        try:
            with open("/proc/stat") as fh:
                values = [int(v) for v in fh.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        idle = values[3] + values[4]  # idle + iowait
        return (sum(values) - idle) / self.tick

    def __enter__(self) -> CpuMeter:
        self.busy0, self.own0, self.wall0 = self._busy_s(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.wall0
        self.own_cpu_s = time.process_time() - self.own0
        busy1 = self._busy_s()
        if self.busy0 is None or busy1 is None or self.seconds <= 0:
            self.others_cores = float("nan")
        else:
            self.others_cores = max(0.0, (busy1 - self.busy0) - self.own_cpu_s) / self.seconds


@dataclass
class Run:
    seconds: float
    items: int  # frames decoded (sampling) or images encoded (embedding)
    extra: dict
    own_cpu_s: float = float("nan")
    others_cores: float = float("nan")

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    def load(self) -> str:
        return f"cpu {self.own_cpu_s:5.1f}s, others {self.others_cores:.2f} cores"


def measured(fn, *args) -> Run:
    """Run `fn(*args)` (which returns (items, extra)) under a CpuMeter."""
    with CpuMeter() as meter:
        items, extra = fn(*args)
    return Run(meter.seconds, items, extra, meter.own_cpu_s, meter.others_cores)


def best(runs: list[Run]) -> Run:
    return max(runs, key=lambda r: r.rate)


def median_rate(runs: list[Run]) -> float:
    return statistics.median(r.rate for r in runs)


def raw_grab(path: Path) -> tuple[int, dict]:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise SystemExit(f"cv2.VideoCapture cannot open {path}")
    frames = 0
    while capture.grab():
        frames += 1
    capture.release()
    return frames, {}


def bare_sampling(path: Path, fps: float, expected: int | None) -> tuple[int, dict]:
    from media_assets.media.decoding import DecodeStats, Sampling, sample_video

    stats = DecodeStats()
    kept = 0
    for _frame in sample_video(path, Sampling(fps=fps), stats, expected):
        kept += 1
    return stats.frames_decoded, {"kept": kept}


def warehouse_at(root: Path, vectors: Path | None = None):
    from media_assets.warehouse import Warehouse

    # The media root is the cache folder (where the video is); the vectors live inside the temporary
    # warehouse whatever $MEDIA_ASSETS_VECTORS_URI says.
    return Warehouse.at(root, media_root=CACHE, vectors_uri=str(vectors or root / "vectors"))


def frames_stage(path: Path, root: Path, fps: float) -> tuple[int, dict]:
    """The frames stage of `path` into a new warehouse at `root` (stat-ing the file is part of it)."""
    from media_assets.media.decoding import Sampling
    from media_assets.media.discovery import stat_media_file
    from media_assets.stages.frames import FrameSettings, extract_frames

    warehouse = warehouse_at(root)
    media_file = stat_media_file(path, warehouse.media_root)
    result = extract_frames(warehouse, media_file, FrameSettings(Sampling(fps=fps)))
    return result.stats.frames_decoded, {
        "kept": result.kept,
        "duplicates": result.duplicates,
        "media_id": media_file.media_id,
    }


def bare_forward(encoder, pixels: np.ndarray, sizes: list[int]) -> tuple[int, dict]:
    start = 0
    for size in sizes:
        encoder.encode_pixels(pixels[start : start + size])
        start += size
    return start, {}


def embedding_stage(encoder, root: Path, vectors: Path, media_id: int, batch_size: int) -> tuple[int, dict]:
    from media_assets.stages.frame_embeddings import embed_frames

    result = embed_frames(warehouse_at(root, vectors), media_id, encoder, batch_size=batch_size)
    return result.embedded, {"skipped": result.skipped_duplicates, "unreadable": result.unreadable_thumbnails}


# -- output ------------------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    say(line)
    say("-" * len(line))
    for row in rows:
        say("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))))


def environment() -> None:
    import lancedb
    import torch

    import media_assets

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    say("== environment")
    say(f"python {platform.python_version()} on {platform.platform()}")
    say(f"cpu: os.cpu_count()={os.cpu_count()}, usable={affinity}{f' ({cpu_model})' if cpu_model else ''}")
    say(
        f"torch {torch.__version__} (threads={torch.get_num_threads()}, interop={torch.get_num_interop_threads()}, "
        f"cuda={torch.cuda.is_available()})"
    )
    say(
        f"opencv {cv2.__version__} (cv2.getNumThreads()={cv2.getNumThreads()}), numpy {np.__version__}, "
        f"lancedb {lancedb.__version__}, media_assets from {Path(media_assets.__file__).parent}"
    )


# -- main --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the generated video (default 3)")
    parser.add_argument("--quick", action="store_true", help="a 30 s video and fewer frames: a fast check")
    parser.add_argument("--batch-size", type=int, default=32, help="embedding batch size (default 32)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each sampling measurement (default 3)")
    parser.add_argument("--embed-repeats", type=int, default=3, help="runs of each embedding measurement (default 3)")
    args = parser.parse_args()
    if min(args.batch_size, args.repeats, args.embed_repeats) < 1 or args.minutes <= 0:
        parser.error("--minutes, --batch-size, --repeats and --embed-repeats must be positive")
    seconds = 30.0 if args.quick else args.minutes * 60.0
    batch_size = args.batch_size

    import torch

    environment()
    say(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    say(
        f"mode: {'quick' if args.quick else 'default'}; video {seconds:g}s {WIDTH}x{HEIGHT}@{VIDEO_FPS} mp4v; "
        f"batch size {batch_size}; sampling runs {args.repeats}, embedding runs {args.embed_repeats} "
        "(anchor and ours alternating; best and median shown, ratios from the best runs)"
    )
    say()
    say("== setup")
    video = cached_video(seconds)
    warmup_video = cached_video(2.0)
    model_dir = cached_model()

    from media_assets.media.decoding import probe
    from media_assets.models.clip import ClipEncoder
    from media_assets.store.vectors import VectorStore

    info = probe(video)
    duration = info.duration_s or (info.frame_count or 0) / (info.fps or VIDEO_FPS)
    say(
        f"  video: {video.name}, {info.codec} {info.width}x{info.height} @ {info.fps:g} fps, "
        f"{info.frame_count} frames, "
        f"{duration:.1f}s, {video.stat().st_size / 1e6:.1f} MB"
    )

    tmp = Path(tempfile.mkdtemp(prefix="media_assets_bench_"))
    try:
        # ---- (a) frame sampling -----------------------------------------------------------------------
        # warm-up (not measured): the file in the page cache, FFmpeg, the thumbnail/JPEG/Parquet writers
        with open(video, "rb") as fh:
            while fh.read(1 << 22):
                pass
        frames_stage(warmup_video, tmp / "warmup", 1.0)
        raw_grab(warmup_video)

        say("== (a) frame sampling at 1 frame/s")
        raw_runs: list[Run] = []
        ours_runs: list[Run] = []
        bare_runs: list[Run] = []
        for rep in range(args.repeats):
            raw_runs.append(measured(raw_grab, video))
            say(
                f"  run {rep + 1}: raw grab       {raw_runs[-1].seconds:6.2f}s  {raw_runs[-1].rate:6.1f} frames/s  "
                f"[{raw_runs[-1].load()}]"
            )
            ours_runs.append(measured(frames_stage, video, tmp / f"frames{rep}", 1.0))
            ours = ours_runs[-1]
            say(
                f"  run {rep + 1}: extract_frames {ours.seconds:6.2f}s  {ours.rate:6.1f} frames/s  [{ours.load()}]  "
                f"kept {ours.extra['kept']}, {ours.extra['duplicates']} near-duplicates"
            )
            bare_runs.append(measured(bare_sampling, video, 1.0, info.frame_count))
            say(
                f"  run {rep + 1}: sample_video   {bare_runs[-1].seconds:6.2f}s  {bare_runs[-1].rate:6.1f} frames/s  "
                f"[{bare_runs[-1].load()}]"
            )
        media_id = ours_runs[-1].extra["media_id"]

        # ---- (b) embeddings ---------------------------------------------------------------------------
        say("== (b) embeddings")
        encoder = ClipEncoder.load(str(model_dir), device="cpu")
        crop_h, crop_w = encoder.preprocess.crop_height, encoder.preprocess.crop_width
        batch = np.random.default_rng(0).standard_normal((batch_size, 3, crop_h, crop_w), dtype=np.float32)
        # warm-up (not measured): oneDNN primitives and allocator, the LanceDB runtime
        encoder.encode_pixels(batch[: min(8, batch_size)])
        VectorStore(warehouse_at(tmp / "warmup", tmp / "warmup_vectors")).replace_media(
            1, np.arange(4), np.ones((4, encoder.dim), np.float32), model_id="warmup"
        )
        started = time.perf_counter()
        encoder.encode_pixels(batch)
        estimate = batch_size / (time.perf_counter() - started)

        # how many images: enough for ~20 s per measurement at the estimated speed, 4-6 batches (quick: 2)
        if args.quick:
            wanted = 2 * batch_size
        else:
            wanted = (
                min(max(math.ceil(22.0 * estimate / batch_size), 4), max(6, math.ceil(192 / batch_size))) * batch_size
            )
        unique_1fps = ours_runs[-1].extra["kept"] - ours_runs[-1].extra["duplicates"]
        embed_fps = max(
            0.25, math.ceil(4.0 * wanted * (1.0 if wanted <= unique_1fps else 1.15) / max(unique_1fps, 1)) / 4.0
        )
        say(f"  warm-up batch: {estimate:.2f} images/s -> aiming at ~{wanted} images per measurement")
        if embed_fps == 1.0:
            embed_root = tmp / f"frames{args.repeats - 1}"
            n_images = unique_1fps
            say(f"  embedding the frames of the last 1 frame/s run: {n_images} kept (non-duplicate) frames")
        else:
            embed_root = tmp / "embed_frames"
            extra = frames_stage(video, embed_root, embed_fps)[1]
            n_images = extra["kept"] - extra["duplicates"]
            say(
                f"  frames stage at {embed_fps:g} frames/s for this part: {extra['kept']} sampled, "
                f"{extra['duplicates']} near-duplicates, {n_images} to embed"
            )
        sizes = [batch_size] * (n_images // batch_size) + ([n_images % batch_size] if n_images % batch_size else [])

        # the anchor's pre-made batches: the thumbnails embed_frames will read (kept frames, in its order),
        # read and preprocessed here, outside the timing (timed alone as an extra row)
        from media_assets.store import catalog

        frames = catalog.read_partition(warehouse_at(embed_root), "frames", media_id)
        paths = [
            embed_root / p
            for p, dup in zip(frames["thumbnail_path"].to_pylist(), frames["is_duplicate"].to_pylist(), strict=True)
            if not dup
        ]
        with CpuMeter() as prep:
            pixels = np.stack([encoder.preprocess(cv2.imread(str(path), cv2.IMREAD_COLOR)) for path in paths])
        assert len(pixels) == n_images, (len(pixels), n_images)

        anchor_runs: list[Run] = []
        embed_runs: list[Run] = []
        for rep in range(args.embed_repeats):
            anchor_runs.append(measured(bare_forward, encoder, pixels, sizes))
            say(
                f"  run {rep + 1}: encode_pixels  {anchor_runs[-1].seconds:6.2f}s  "
                f"{anchor_runs[-1].rate:6.2f} images/s  [{anchor_runs[-1].load()}]"
            )
            embed_runs.append(
                measured(embedding_stage, encoder, embed_root, tmp / f"vectors{rep}", media_id, batch_size)
            )
            say(
                f"  run {rep + 1}: embed_frames   {embed_runs[-1].seconds:6.2f}s  {embed_runs[-1].rate:6.2f} images/s  "
                f"[{embed_runs[-1].load()}]  "
                f"{embed_runs[-1].items} embedded"
            )

        vectors = np.random.default_rng(1).standard_normal((len(paths), encoder.dim)).astype(np.float32)
        with CpuMeter() as lance:
            VectorStore(warehouse_at(tmp / "lance_only", tmp / "lance_only_vectors")).replace_media(
                media_id, np.arange(len(paths)), vectors, model_id=encoder.model_id
            )

        # ---- report -------------------------------------------------------------------------------------
        raw_b, ours_b = best(raw_runs), best(ours_runs)
        sampling_ratio = ours_b.rate / raw_b.rate
        say()
        say(
            f"== results (a): frame sampling at 1 frame/s of {video.name} "
            f"({duration:.0f}s, {info.frame_count} frames); "
            f"best of {args.repeats} runs"
        )
        rows = []
        for name, runs in (
            ("anchor: VideoCapture.grab() only", raw_runs),
            ("ours: frames.extract_frames", ours_runs),
            ("extra: decoding.sample_video only", bare_runs),
        ):
            b = best(runs)
            kept = b.extra.get("kept")
            rows.append(
                [
                    name,
                    f"{b.seconds:.2f}",
                    f"{b.rate:.1f}",
                    f"{median_rate(runs):.1f}",
                    f"{b.rate / VIDEO_FPS:.1f}x",
                    str(b.items),
                    "-" if kept is None else str(kept),
                    "-" if kept is None else f"{1000 * (b.seconds - raw_b.seconds) / kept:+.1f}",
                    f"{b.own_cpu_s:.1f}",
                    f"{b.others_cores:.2f}",
                    f"{b.rate / raw_b.rate:.3f}",
                ]
            )
        table(
            [
                "",
                "best s",
                "frames/s",
                "median f/s",
                "realtime",
                "decoded",
                "kept",
                "ms/kept vs raw",
                "cpu s",
                "others",
                "÷ raw",
            ],
            rows,
        )
        say(
            f"kept: sampled frames with thumbnails ({ours_b.extra['duplicates']} of them near-duplicates); "
            "ms/kept vs raw: (time - raw grab time) / kept;"
        )
        say(
            "cpu s: this process's CPU time (all threads); others: cores used by other processes meanwhile (/proc/stat)"
        )

        anchor_b, embed_b = best(anchor_runs), best(embed_runs)
        embedding_ratio = embed_b.rate / anchor_b.rate
        say()
        say(
            f"== results (b): embeddings, ViT-B/32 (random weights) on cpu, batch {batch_size}, {n_images} images "
            f"({len(sizes)} batches), torch.get_num_threads()={torch.get_num_threads()}; "
            f"best of {args.embed_repeats} runs"
        )
        rows = [
            [
                "anchor: encoder.encode_pixels (pre-made)",
                f"{anchor_b.seconds:.2f}",
                f"{anchor_b.rate:.2f}",
                f"{median_rate(anchor_runs):.2f}",
                f"{1000 * anchor_b.seconds / anchor_b.items:.1f}",
                f"{anchor_b.own_cpu_s:.1f}",
                f"{anchor_b.others_cores:.2f}",
                "1.000",
            ],
            [
                "ours: embeddings.embed_frames",
                f"{embed_b.seconds:.2f}",
                f"{embed_b.rate:.2f}",
                f"{median_rate(embed_runs):.2f}",
                f"{1000 * embed_b.seconds / embed_b.items:.1f}",
                f"{embed_b.own_cpu_s:.1f}",
                f"{embed_b.others_cores:.2f}",
                f"{embedding_ratio:.3f}",
            ],
            [
                "extra: imread + preprocess only (1 thread)",
                f"{prep.seconds:.2f}",
                f"{len(paths) / prep.seconds:.1f}",
                "-",
                f"{1000 * prep.seconds / len(paths):.1f}",
                f"{prep.own_cpu_s:.1f}",
                f"{prep.others_cores:.2f}",
                "-",
            ],
            [
                "extra: VectorStore.replace_media only",
                f"{lance.seconds:.2f}",
                f"{len(paths) / lance.seconds:.0f}",
                "-",
                f"{1000 * lance.seconds / len(paths):.2f}",
                f"{lance.own_cpu_s:.1f}",
                f"{lance.others_cores:.2f}",
                "-",
            ],
        ]
        table(["", "best s", "images/s", "median i/s", "ms/image", "cpu s", "others", "÷ anchor"], rows)
        say(
            f"frames for this part sampled at {embed_fps:g} frame/s; "
            f"{embed_b.extra['skipped']} near-duplicates skipped, "
            f"{embed_b.extra['unreadable']} unreadable; the extras run on the main thread, outside the model"
        )
        say()
        say(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        say(
            "for judging noise: ratios from the medians: sampling="
            f"{median_rate(ours_runs) / median_rate(raw_runs):.2f} "
            f"embedding={median_rate(embed_runs) / median_rate(anchor_runs):.2f}; "
            "run by run (ours ÷ the anchor run just before it): sampling "
            + " ".join(f"{o.rate / r.rate:.2f}" for o, r in zip(ours_runs, raw_runs, strict=True))
            + ", embedding "
            + " ".join(f"{o.rate / a.rate:.2f}" for o, a in zip(embed_runs, anchor_runs, strict=True))
        )
        measured_runs = raw_runs + ours_runs + bare_runs + anchor_runs + embed_runs
        others = [r.others_cores for r in measured_runs if not math.isnan(r.others_cores)]
        if others and statistics.mean(others) > 0.2:
            say(
                f"WARNING: other processes used {statistics.mean(others):.2f} cores on average "
                f"(up to {max(others):.2f}) "
                f"of this machine's {os.cpu_count()} during the measurements: the ratios are unreliable; "
                "rerun on an idle machine"
            )
        say(
            f"targets: sampling >= 0.90 ({'met' if sampling_ratio >= 0.9 else 'MISSED'}), "
            f"embedding >= 0.85 ({'met' if embedding_ratio >= 0.85 else 'MISSED'})"
        )
        say(f"ratio sampling={sampling_ratio:.2f} embedding={embedding_ratio:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
