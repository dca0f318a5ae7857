"""A small, realistic demo media library with ground truth, built offline in a few seconds.

`write_demo_library(media_dir)` writes four short videos (mp4, mkv, MJPG avi) and six images (jpg, png,
webp, tiff, bmp) made from photographs that scikit-image ships inside its package (no download), plus
`ground_truth.json` describing exactly what is in them: every shot (time span, frame span, camera motion,
source photograph) and every shot boundary (hard cut, fade through black, cross-dissolve). Shots recur
across videos (the same photograph filmed again, like a recurring location) so clustering and
near-duplicate search have something to find.

`write_test_video(path, shots)` is the generator behind it, reusable by tests and benchmarks: a virtual
camera moves over a photograph (or a flat colour) per shot - `static` (still + sensor noise), `pan`,
`zoom` (Ken Burns) or `shake` (handheld) - and shots are joined by `cut`, `fade` or `dissolve`.

`ground_truth.json` holds `{"version", "seed", "videos": [...], "images": [...]}`; a video entry is
`{"file", "fps", "frames", "duration", "width", "height", "shots": [...], "boundaries": [...]}` with `file`
relative to the media folder (`/`-separated), an image entry `{"file", "width", "height",
"exif_orientation", "source"}`. Frame and time conventions:
- frame `i` is shown at time `i / fps`; a video has `frames` frames and lasts `duration = frames / fps`.
- a shot covers frames `[start_frame, end_frame)` (end exclusive; the next shot starts at `end_frame`)
  and times `[start, end)`.
- a boundary's `frame` is the first frame of the incoming shot. For a cut, frames `frame - 1` and `frame`
  show different shots. For a fade or dissolve, `time` is the middle of the transition, which runs from
  `transition_start` to `transition_end` (seconds; `transition_start_frame`/`transition_end_frame` in
  frames). A fade reaches pure black at `frame`; a dissolve is a 50/50 mix there. During a dissolve
  both shots keep moving (the outgoing shot is rendered past its end, the incoming before its start).

Images: one JPEG stores its pixels sideways with EXIF Orientation 6; the ground truth records the upright
size, i.e. what `PIL.ImageOps.exif_transpose` (and `cv2.imread`, which honours EXIF) yield.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from skimage import data as skimage_data

GROUND_TRUTH_FILE = "ground_truth.json"
GROUND_TRUTH_VERSION = 1  # bump whenever DEMO_VIDEOS, DEMO_IMAGES or the rendering change
# `media-assets demo` samples this many frames per second: the demo's shots last 2-3 s, and shot detection
# places boundaries to ±1 sampled frame (at 1 frame/s a 2 s shot has two samples).
DEMO_SAMPLE_FPS = 4.0

# Container (by file suffix) -> fourcc OpenCV's bundled FFmpeg writes there.
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}
MOTIONS = ("static", "pan", "zoom", "shake")
TRANSITIONS = ("cut", "fade", "dissolve")
SHOT_DEFAULTS: dict[str, Any] = {"seconds": 2.0, "motion": "static", "transition_in": "cut", "transition_seconds": 0.5}

EXIF_ORIENTATION_TAG = 0x0112

# Photographs that load from the scikit-image package itself (RGB or grey), by source name.
_SKIMAGE_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage_data.astronaut,
    "chelsea": skimage_data.chelsea,
    "coffee": skimage_data.coffee,
    "rocket": skimage_data.rocket,
    "hubble_deep_field": skimage_data.hubble_deep_field,
    "immunohistochemistry": skimage_data.immunohistochemistry,
    "retina": skimage_data.retina,
    "motorcycle": lambda: skimage_data.stereo_motorcycle()[0],
    "camera": skimage_data.camera,
}

# How much larger than the frame (cover fit) the virtual camera's canvas is, per motion. For `zoom` it is
# also the zoom factor reached at the end of the shot (the canvas is oversampled so the zoom stays sharp).
_CANVAS_COVER = {"static": 1.0, "pan": 1.3, "zoom": 1.5, "shake": 1.12}
PAN_SPEED = 0.05  # frame widths per second
SHAKE_AMPLITUDE = 0.02  # frame widths
SENSOR_NOISE_SIGMA = 1.2  # grey levels, added to static shots
# Gaussian blur in output pixels: real optics are not pixel-sharp, and fine detail bloats the files
# (OpenCV's writers have a fixed high quality).
LENS_SOFTNESS_SIGMA = 0.8


@functools.cache
def _load_sources() -> dict[str, np.ndarray]:
    sources = {}
    for name, load in _SKIMAGE_PHOTOS.items():
        image = np.asarray(load())
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        bgr.flags.writeable = False
        sources[name] = bgr
    return sources


def demo_sources() -> dict[str, np.ndarray]:
    """Source photographs by name -> BGR uint8 image (read-only arrays, loaded once per process)."""
    return dict(_load_sources())


def _source_image(source: str, size: tuple[int, int]) -> np.ndarray:
    """The picture for a shot's `source`: a demo photograph name or `color:#rrggbb` (a flat frame)."""
    if source.startswith("color:"):
        hex_colour = source.removeprefix("color:").removeprefix("#")
        if len(hex_colour) != 6:
            raise ValueError(f"colour source must look like 'color:#rrggbb', got {source!r}")
        red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (0, 2, 4))
        width, height = size
        return np.full((height, width, 3), (blue, green, red), dtype=np.uint8)
    sources = _load_sources()
    if source not in sources:
        raise ValueError(f"unknown source {source!r}; expected one of {sorted(sources)} or 'color:#rrggbb'")
    return sources[source]


@dataclass(frozen=True)
class _Transition:
    """A boundary between shots `index - 1` and `index`, `half` frames either side of `frame`."""

    index: int
    kind: str
    frame: int
    half: int

    def covers(self, frame: int) -> bool:
        """Whether `frame` is altered by this transition (the end points are pure outgoing/incoming)."""
        return self.frame - self.half < frame < self.frame + self.half


class _SensorNoise:
    """Zero-mean Gaussian noise from a small precomputed bank, applied with saturating adds (fast)."""

    def __init__(self, size: tuple[int, int], rng: np.random.Generator, bank: int = 6):
        width, height = size
        noise = np.rint(rng.standard_normal((bank, height, width, 3), dtype=np.float32) * SENSOR_NOISE_SIGMA)
        self._add = np.clip(noise, 0, 255).astype(np.uint8)
        self._subtract = np.clip(-noise, 0, 255).astype(np.uint8)
        self._rng = rng

    def apply(self, frame: np.ndarray) -> np.ndarray:
        i = int(self._rng.integers(len(self._add)))
        return cv2.subtract(cv2.add(frame, self._add[i]), self._subtract[i])


class _ShotRenderer:
    """Renders one shot: a virtual camera (centre and scale in canvas pixels per frame) over a canvas."""

    def __init__(
        self,
        image: np.ndarray,
        motion: str,
        size: tuple[int, int],
        render_start: int,
        render_frames: int,
        fps: float,
        rng: np.random.Generator,
        noise: _SensorNoise,
    ):
        self._size = size
        self._render_start = render_start
        # Canvas pixels per output pixel at the start of the shot (zoom canvases are oversampled).
        oversampling = _CANVAS_COVER["zoom"] if motion == "zoom" else 1.0
        self._canvas = _canvas(image, size, _CANVAS_COVER[motion], LENS_SOFTNESS_SIGMA * oversampling)
        self._track = _camera_track(motion, self._canvas.shape, size, render_frames, fps, rng)
        self._still = self._warp(0) if motion == "static" else None
        self._noise = noise

    def _warp(self, i: int) -> np.ndarray:
        centre_x, centre_y, scale = self._track[i]
        if scale == 1.0:
            return cv2.getRectSubPix(self._canvas, self._size, (centre_x, centre_y))
        width, height = self._size
        to_canvas = np.array(
            [[scale, 0.0, centre_x - scale * (width - 1) / 2], [0.0, scale, centre_y - scale * (height - 1) / 2]]
        )
        return cv2.warpAffine(
            self._canvas,
            to_canvas,
            self._size,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )

    def frame(self, frame_index: int) -> np.ndarray:
        if self._still is not None:
            return self._noise.apply(self._still)
        return self._warp(frame_index - self._render_start)


def _canvas(image: np.ndarray, size: tuple[int, int], cover: float, softness: float) -> np.ndarray:
    """`image` resized to cover a frame of `size` scaled by `cover` (aspect ratio kept), blurred by `softness`."""
    width, height = size
    image_height, image_width = image.shape[:2]
    scale = cover * max(width / image_width, height / image_height)
    canvas_size = (max(width, round(image_width * scale)), max(height, round(image_height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.GaussianBlur(cv2.resize(image, canvas_size, interpolation=interpolation), (0, 0), softness)


def _camera_track(
    motion: str,
    canvas_shape: tuple[int, ...],
    size: tuple[int, int],
    frames: int,
    fps: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Per frame (centre_x, centre_y, canvas pixels per output pixel) of the virtual camera."""
    canvas_height, canvas_width = canvas_shape[:2]
    width, height = size
    centre = np.array([(canvas_width - 1) / 2, (canvas_height - 1) / 2])
    slack = np.array([canvas_width - width, canvas_height - height], dtype=float)
    progress = np.linspace(0.0, 1.0, frames)[:, None]
    track = np.empty((frames, 3))
    if motion == "static":
        track[:, :2] = centre
        track[:, 2] = 1.0
    elif motion == "pan":
        axis = 0 if slack[0] >= slack[1] else 1
        travel = min(slack[axis] - 2, PAN_SPEED * width * frames / fps)
        direction = np.zeros(2)
        direction[axis] = rng.choice((-1.0, 1.0))
        track[:, :2] = centre + direction * travel * (progress - 0.5)
        track[:, 2] = 1.0
    elif motion == "zoom":
        zoom_end = _CANVAS_COVER["zoom"]
        scale = zoom_end / zoom_end ** progress[:, 0]
        # Aim for a point the final (tightest) view can be centred on; the path towards it stays inside
        # the canvas at every intermediate zoom because the allowed region only grows as the view shrinks.
        focus_reach = (np.array([canvas_width, canvas_height]) - np.array([width, height])) / 2 - 1
        focus = centre + rng.uniform(-0.8, 0.8, 2) * focus_reach
        track[:, :2] = centre + (focus - centre) * progress
        track[:, 2] = scale
    elif motion == "shake":
        amplitude = min(SHAKE_AMPLITUDE * width, slack.min() / 2 - 1)
        seconds = np.arange(frames) / fps
        for axis in (0, 1):
            weights = rng.uniform(0.2, 1.0, 3)
            weights *= amplitude / weights.sum()
            frequencies = rng.uniform(0.2, 1.2, 3)
            phases = rng.uniform(0, 2 * math.pi, 3)
            wobble = (weights * np.sin(2 * math.pi * frequencies * seconds[:, None] + phases)).sum(axis=1)
            track[:, axis] = centre[axis] + wobble
        track[:, 2] = 1.0
    else:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS}")
    return track


def _normalised_shots(shots: list[dict]) -> list[dict]:
    if not shots:
        raise ValueError("a video needs at least one shot")
    normalised = []
    for number, shot in enumerate(shots):
        unknown = set(shot) - set(SHOT_DEFAULTS) - {"source"}
        if unknown:
            raise ValueError(f"shot {number}: unknown keys {sorted(unknown)}")
        if "source" not in shot:
            raise ValueError(f"shot {number}: 'source' is required")
        full = {**SHOT_DEFAULTS, **shot}
        if full["motion"] not in MOTIONS:
            raise ValueError(f"shot {number}: motion {full['motion']!r} is not one of {MOTIONS}")
        if full["transition_in"] not in TRANSITIONS:
            raise ValueError(f"shot {number}: transition {full['transition_in']!r} is not one of {TRANSITIONS}")
        normalised.append(full)
    return normalised


def _seconds(frame: int, fps: float) -> float:
    return round(frame / fps, 6)


def write_test_video(
    path: Path,
    shots: list[dict],
    *,
    fps: float = 30.0,
    size: tuple[int, int] = (320, 180),
    seed: int = 0,
) -> dict:
    """Write a video made of `shots` to `path` and return its ground truth.

    Each shot is a dict: `source` (a `demo_sources()` name or `color:#rrggbb`), `seconds` (2.0),
    `motion` (`static` | `pan` | `zoom` | `shake`), `transition_in` (`cut` | `fade` | `dissolve`, how the
    shot is entered; ignored for the first shot) and `transition_seconds` (0.5, for fades and dissolves).
    The codec follows the suffix (`FOURCC_BY_SUFFIX`). `size` is (width, height); `seed` drives noise,
    pan direction, zoom target and shake. The returned dict is shaped like one `videos` entry of
    `ground_truth.json` (see the module docstring), with `file` = `str(path)`.
    """
    path = Path(path)
    fourcc = FOURCC_BY_SUFFIX.get(path.suffix.lower())
    if fourcc is None:
        raise ValueError(f"cannot write {path.suffix!r} videos; supported: {sorted(FOURCC_BY_SUFFIX)}")
    shots = _normalised_shots(shots)
    fps = float(fps)
    edges = [round(seconds * fps) for seconds in np.cumsum([0.0] + [shot["seconds"] for shot in shots])]
    transitions = _transitions(shots, edges, fps)
    renderers = _renderers(shots, edges, transitions, fps, size, np.random.default_rng(seed))
    _write_video(path, fourcc, fps, size, _compose(edges, transitions, renderers), expected_frames=edges[-1])
    return {
        "file": str(path),
        "fps": fps,
        "frames": edges[-1],
        "duration": _seconds(edges[-1], fps),
        "width": size[0],
        "height": size[1],
        "shots": [
            {
                "start": _seconds(edges[i], fps),
                "end": _seconds(edges[i + 1], fps),
                "start_frame": edges[i],
                "end_frame": edges[i + 1],
                "motion": shot["motion"],
                "source": shot["source"],
            }
            for i, shot in enumerate(shots)
        ],
        "boundaries": [_boundary_truth(transition, fps) for transition in transitions],
    }


def _transitions(shots: list[dict], edges: list[int], fps: float) -> list[_Transition]:
    transitions = []
    for index in range(1, len(shots)):
        kind = shots[index]["transition_in"]
        half = 0 if kind == "cut" else round(shots[index]["transition_seconds"] * fps / 2)
        if kind != "cut" and half < 1:
            raise ValueError(f"shot {index}: a {kind} needs transition_seconds of at least {2 / fps:.3f}")
        transitions.append(_Transition(index, kind, edges[index], half))
    return transitions


def _renderers(
    shots: list[dict],
    edges: list[int],
    transitions: list[_Transition],
    fps: float,
    size: tuple[int, int],
    rng: np.random.Generator,
) -> list[_ShotRenderer]:
    into_shot = {transition.index: transition for transition in transitions}
    noise = _SensorNoise(size, rng)
    renderers = []
    for index, shot in enumerate(shots):
        into, out_of = into_shot.get(index), into_shot.get(index + 1)
        lead_in = into.half if into is not None else 0
        lead_out = out_of.half if out_of is not None else 0
        if edges[index + 1] - edges[index] < max(1, lead_in + lead_out):
            raise ValueError(f"shot {index} is too short for its {shot['seconds']} s and its transitions")
        # Dissolves show both shots at once, so those shots are rendered beyond their own span.
        render_start = edges[index] - (lead_in if into is not None and into.kind == "dissolve" else 0)
        render_end = edges[index + 1] + (lead_out if out_of is not None and out_of.kind == "dissolve" else 0)
        image = _source_image(shot["source"], size)
        renderers.append(
            _ShotRenderer(image, shot["motion"], size, render_start, render_end - render_start, fps, rng, noise)
        )
    return renderers


def _compose(edges: list[int], transitions: list[_Transition], renderers: list[_ShotRenderer]) -> Iterator[np.ndarray]:
    """The video's frames in order: each shot's own frames, mixed or darkened inside transitions."""
    shot_of_frame = np.repeat(np.arange(len(renderers)), np.diff(edges))
    upcoming = iter(transitions)
    transition = next(upcoming, None)
    for frame_index in range(edges[-1]):
        while transition is not None and frame_index >= transition.frame + transition.half:
            transition = next(upcoming, None)
        if transition is None or not transition.covers(frame_index):
            yield renderers[shot_of_frame[frame_index]].frame(frame_index)
            continue
        outgoing, incoming = renderers[transition.index - 1], renderers[transition.index]
        if transition.kind == "dissolve":
            weight = (frame_index - transition.frame + transition.half) / (2 * transition.half)
            yield cv2.addWeighted(outgoing.frame(frame_index), 1 - weight, incoming.frame(frame_index), weight, 0)
        else:
            shown = outgoing if frame_index < transition.frame else incoming
            gain = abs(frame_index - transition.frame) / transition.half
            yield cv2.convertScaleAbs(shown.frame(frame_index), alpha=gain)


def _write_video(
    path: Path,
    fourcc: str,
    fps: float,
    size: tuple[int, int],
    frames: Iterator[np.ndarray],
    *,
    expected_frames: int,
) -> None:
    """Encode `frames` next to `path`, check the file reports every frame, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(partial), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path.suffix} video with fourcc {fourcc} here")
    try:
        try:
            for frame in frames:
                writer.write(frame)
        finally:
            writer.release()
        written = _frame_count(partial)
        if written != expected_frames:
            raise RuntimeError(f"{path}: wrote {expected_frames} frames but the file reports {written}")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def _frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()


def _boundary_truth(transition: _Transition, fps: float) -> dict:
    truth: dict[str, Any] = {
        "time": _seconds(transition.frame, fps),
        "frame": transition.frame,
        "type": transition.kind,
    }
    if transition.kind != "cut":
        start, end = transition.frame - transition.half, transition.frame + transition.half
        truth |= {
            "transition_start": _seconds(start, fps),
            "transition_end": _seconds(end, fps),
            "transition_start_frame": start,
            "transition_end_frame": end,
        }
    return truth


# The demo videos: (relative path, fps, (width, height), shots). Sources recur across videos: astronaut
# (newsroom), coffee (newsroom, travel_diary), rocket (newsroom, lab_footage), chelsea (travel_diary,
# handheld_cat and an image), retina (travel_diary, lab_footage).
DEMO_VIDEOS: tuple[tuple[str, float, tuple[int, int], list[dict]], ...] = (
    (
        "clips/newsroom.mp4",
        30.0,
        (640, 360),
        [
            {"source": "astronaut", "seconds": 3.0, "motion": "static"},
            {"source": "coffee", "seconds": 2.0, "motion": "pan"},
            {"source": "astronaut", "seconds": 2.0, "motion": "static"},
            {"source": "rocket", "seconds": 2.0, "motion": "zoom"},
        ],
    ),
    (
        "clips/travel_diary.mp4",
        24.0,
        (640, 360),
        [
            {"source": "motorcycle", "seconds": 2.0, "motion": "pan"},
            {
                "source": "chelsea",
                "seconds": 2.0,
                "motion": "static",
                "transition_in": "fade",
                "transition_seconds": 1.0,
            },
            {
                "source": "coffee",
                "seconds": 2.0,
                "motion": "zoom",
                "transition_in": "dissolve",
                "transition_seconds": 1.0,
            },
            {
                "source": "retina",
                "seconds": 2.0,
                "motion": "pan",
                "transition_in": "dissolve",
                "transition_seconds": 1.0,
            },
        ],
    ),
    (
        "clips/handheld_cat.mkv",
        30.0,
        (640, 360),
        [{"source": "chelsea", "seconds": 6.0, "motion": "shake"}],
    ),
    (
        "archive/lab_footage.avi",
        24.0,
        (640, 360),
        [
            {"source": "camera", "seconds": 2.0, "motion": "static"},
            {"source": "retina", "seconds": 2.0, "motion": "zoom"},
            {"source": "rocket", "seconds": 2.0, "motion": "pan", "transition_in": "fade", "transition_seconds": 0.75},
        ],
    ),
)

# The demo images: (relative path, source, longest side in pixels, EXIF orientation or None).
DEMO_IMAGES: tuple[tuple[str, str, int, int | None], ...] = (
    ("photos/astronaut.jpg", "astronaut", 800, None),
    ("photos/chelsea_sideways.jpg", "chelsea", 800, 6),
    ("photos/coffee.webp", "coffee", 800, None),
    ("photos/rocket.png", "rocket", 480, None),
    ("scans/immunohistochemistry.tiff", "immunohistochemistry", 320, None),
    ("motorcycle.bmp", "motorcycle", 256, None),
)

_IMAGE_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    ".jpg": {"quality": 90},
    ".png": {"compress_level": 6},
    ".webp": {"quality": 85},
    ".tiff": {"compression": "tiff_adobe_deflate"},
    ".bmp": {},
}

# How a viewer that honours EXIF turns stored pixels upright, inverted: upright -> stored pixels.
_STORED_SIDEWAYS = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _write_image(path: Path, source: str, longest_side: int, exif_orientation: int | None) -> tuple[int, int]:
    """Write `source` resized to `longest_side`; return the upright (width, height)."""
    bgr = _load_sources()[source]
    height, width = bgr.shape[:2]
    scale = longest_side / max(width, height)
    upright_size = (round(width * scale), round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(bgr, upright_size, interpolation=interpolation)
    upright = Image.fromarray(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB))
    options = dict(_IMAGE_SAVE_OPTIONS[path.suffix.lower()])
    stored = upright
    if exif_orientation is not None:
        stored = upright.transpose(_STORED_SIDEWAYS[exif_orientation])
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = exif_orientation
        options["exif"] = exif
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    stored.save(partial, **options)
    os.replace(partial, path)
    return upright_size


def _is_current(ground_truth_path: Path, seed: int) -> bool:
    """Whether `ground_truth_path` describes this version of the library for `seed`, with all files present."""
    try:
        truth = json.loads(ground_truth_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    if truth.get("version") != GROUND_TRUTH_VERSION or truth.get("seed") != seed:
        return False
    entries = truth.get("videos", []) + truth.get("images", [])
    media_dir = ground_truth_path.parent
    expected = len(DEMO_VIDEOS) + len(DEMO_IMAGES)
    return len(entries) == expected and all((media_dir / entry["file"]).is_file() for entry in entries)


def write_demo_library(media_dir: Path, *, seed: int = 0, overwrite: bool = False) -> Path:
    """Write the demo videos, images and `ground_truth.json` into `media_dir`; return the JSON's path.

    Does nothing if `media_dir` already holds this library version for `seed` (unless `overwrite`).
    Output is deterministic for a seed; the seed varies sensor noise, pan directions, zoom targets and
    camera shake, not which shots there are.
    """
    media_dir = Path(media_dir)
    ground_truth_path = media_dir / GROUND_TRUTH_FILE
    if not overwrite and _is_current(ground_truth_path, seed):
        return ground_truth_path
    media_dir.mkdir(parents=True, exist_ok=True)

    videos = []
    for number, (relative, fps, size, shots) in enumerate(DEMO_VIDEOS):
        video_seed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
        truth = write_test_video(media_dir / relative, shots, fps=fps, size=size, seed=video_seed)
        videos.append(truth | {"file": relative})

    images = []
    for relative, source, longest_side, exif_orientation in DEMO_IMAGES:
        width, height = _write_image(media_dir / relative, source, longest_side, exif_orientation)
        images.append(
            {"file": relative, "width": width, "height": height, "exif_orientation": exif_orientation, "source": source}
        )

    truth = {"version": GROUND_TRUTH_VERSION, "seed": seed, "videos": videos, "images": images}
    partial = ground_truth_path.with_name(f".{ground_truth_path.name}.partial")
    partial.write_text(json.dumps(truth, indent=2) + "\n")
    os.replace(partial, ground_truth_path)
    return ground_truth_path
