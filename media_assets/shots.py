"""Shot boundaries, static/dynamic shots, keyframes and in-shot events from what the frames stage stored.

No second decode pass: `detect_shots` is a pure function of per-sampled-frame arrays that the `frames`
table already holds (`timestamp_s`, `change_score`, `pixel_change`, `sharpness`, `phash`) plus, when
present, the frames' CLIP vectors (`frame_vectors`; a duplicate frame uses the vector of the frame it
duplicates). `detect_shots_in_frames` does that assembly from a `frames` partition and its vectors.

How it decides (numbers: `ShotSettings`, measured on `demo.write_test_video` clips, 640x360 and 320x180,
mp4v, sampled at 1-6 frames/s; see `benchmarks/shots.py` for the scored run):

1. **Visual change, adaptive.** `d[i] = change_score[i]` is the HSV-histogram distance between sampled
   frames `i-1` and `i` (robust to camera motion: the same colours moved). Each `d[i]` is compared with a
   local baseline, the median of `d` over `window_s` seconds either side without `i` itself (like
   PySceneDetect's AdaptiveDetector, but median-based), so a pan or a shaky shot that keeps `d` high all
   along raises its own baseline. A sample is a *candidate* when `d[i] - baseline ≥ max(weak_delta,
   mad_k · MAD)`. Measured `d`: inside shots 0.00-0.17 (static 0.01-0.06, pans at 0.5 frame widths/s
   0.04-0.17, whip pans at 1.5 widths/s 0.10-0.38 on a baseline of ~0.27); hard cuts 0.47-0.99;
   dissolve samples 0.34-0.75; fade samples 0.16-0.98.
2. **Runs = one boundary.** Consecutive candidates are one candidate boundary, so a dissolve or a fade
   that moves `d` over several samples gives one boundary. Its visual evidence is `max(peak excess,
   gradual_weight · summed excess)` over a baseline taken outside the run (a slow dissolve is many
   medium steps). Runs longer than `max_transition_s` are sustained motion, not a transition: only spikes
   over the run's own median can be cuts inside them.
3. **Placement.** A one-sample run (hard cut) starts the new shot at that sample. In a longer run, the
   frames strictly inside it are transitional; if their sharpness dips below `fade_sharpness_ratio` of the
   surrounding shots' (a fade through black: measured 0.0 at black vs 6-300 in shots) the boundary is the
   darkest frame (kind `fade`), else the middle of the run (kind `dissolve`).
4. **Flashes.** A short run (its inside frames span at most `flash_max_s`) whose frame before and frame
   after show the same content is a flash, not a cut: same content = perceptual hashes within
   `flash_hash_bits` (a flash or a fade only scales brightness, which the DCT hash ignores: measured
   0 bits across a flash in a still shot, 24-38 bits across cuts) or, with vectors, a cosine distance
   within the shot's own frame-to-frame drift plus `semantic_same`.
5. **Embeddings (optional).** With vectors, the semantic evidence of a candidate is the cosine distance
   between the frames before and after the run minus the local frame-to-frame drift (the median
   consecutive distance around it times the run's length). The decision becomes `0.5·visual + 0.5·semantic`
   (each scaled so that 0.5 is its own threshold, `cut_delta` resp. `semantic_cut`) ≥ 0.5, with visual
   evidence ≥ `strong_delta` always a cut: so a medium visual change that the semantics call "same
   content" (fast camera motion, lighting) is not cut, and a weak visual change with a large semantic
   jump (a cut between similar-looking shots, a slow dissolve) is. Without vectors the visual evidence
   alone decides (≥ `cut_delta`).
6. **Events.** A large semantic jump (≥ `semantic_event` over the local drift) where the visual signal
   has no candidate at all, and that persists (not a flash), is an `Event` inside its shot: a slide
   change, a new caption, a screen recording switching windows.
7. **Minimum shot length.** Boundaries closer than `min_shot_s` to each other or to the video's start
   and end are dropped, weakest first.
8. **Static or dynamic.** A shot's motion is the median `pixel_change` between consecutive sampled
   frames of its core (the shot without its transition frames), scaled up to the 6 frames/s equivalent
   when sampling more densely. Measured at 1-6 frames/s: still shots with sensor noise and a
   "talking head" (still camera, moving mouth) ≤ 0.0013; the gentlest moving shots (a light handheld
   shake, a slow zoom) ≥ 0.0069. `static_max_motion` = 0.004 sits between. Static shots get one keyframe
   (the middle of the core), dynamic ones three (core start, middle, end).

Confidence (`Shot.boundary_confidence`, 0..1): the decision score clipped to 1: 0.5 is "at the
threshold", 1.0 twice over it or more; the first shot has 1.0. Not a probability.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

TRANSITION_KINDS = ("start", "cut", "fade", "dissolve")
SHOT_KINDS = ("static", "dynamic")

# Motion is measured at this sampling interval (or coarser): denser sampling is scaled up to it.
_MOTION_REFERENCE_DT = 1.0 / 6.0


@dataclass(frozen=True)
class ShotSettings:
    """Thresholds of `detect_shots` (see the module docstring for what was measured)."""

    # local baseline: median of change_score over this many seconds either side (at least
    # `min_window_samples` samples per side), without the sample itself
    window_s: float = 3.0
    min_window_samples: int = 3
    # a sample is a candidate when change_score exceeds its baseline by this much (and by mad_k robust
    # standard deviations); in-shot excess measured ≤ 0.11 even under whip pans, cuts ≥ 0.4
    weak_delta: float = 0.10
    mad_k: float = 4.0
    # visual evidence for a cut without vectors (0.5 confidence); with vectors it weighs half
    cut_delta: float = 0.25
    # visual evidence that is a cut whatever the vectors say
    strong_delta: float = 0.45
    # weight of the summed excess of a run (gradual transitions) against its peak excess
    gradual_weight: float = 0.5
    # a candidate run lasting longer than this is sustained motion, not a transition
    max_transition_s: float = 2.5
    # fade: the darkest transitional frame's sharpness below this fraction of the neighbouring shots'
    fade_sharpness_ratio: float = 0.25
    # flash: inside frames spanning at most this long, same content before and after
    flash_max_s: float = 0.5
    flash_hash_bits: int = 12
    # semantic evidence (cosine distance over the local drift): "same content" below `semantic_same`,
    # 0.5 confidence at `semantic_cut`; an in-shot event from `semantic_event`
    semantic_same: float = 0.05
    semantic_cut: float = 0.15
    semantic_event: float = 0.15
    # boundaries closer than this to each other or to the start/end are dropped, weakest first
    min_shot_s: float = 0.5
    # a shot whose motion (median in-shot pixel_change) is at most this is static
    static_max_motion: float = 0.004

    def __post_init__(self) -> None:
        for name in ("window_s", "weak_delta", "cut_delta", "strong_delta", "semantic_cut", "semantic_event"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ShotSettings.{name} must be positive, got {getattr(self, name)}")
        if not self.weak_delta <= self.cut_delta <= self.strong_delta:
            raise ValueError("ShotSettings needs weak_delta <= cut_delta <= strong_delta")
        if self.min_window_samples < 1:
            raise ValueError("ShotSettings.min_window_samples must be at least 1")


@dataclass
class Shot:
    """One shot: sampled frames `start_seq..end_seq` (inclusive positions among the sampled frames),
    times `[start_s, end_s)`."""

    index: int
    start_s: float
    end_s: float
    start_seq: int
    end_seq: int
    boundary_confidence: float  # of the boundary that starts it; 1.0 for the first shot
    transition: str  # how it is entered: 'start' (first shot), 'cut', 'fade', 'dissolve'
    kind: str  # 'static' | 'dynamic'
    motion: float  # median in-shot pixel_change (the static/dynamic measure)
    keyframe_seqs: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Event:
    """A large semantic change inside a shot with no visual cut (a slide change): frame `seq` is the
    first frame showing the new content."""

    seq: int
    time_s: float
    score: float  # 0..1, 0.5 at `semantic_event`

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Boundary:
    seq: int  # first sampled frame of the incoming shot
    first: int  # run of changed pairs: (first-1, first) ... (last-1, last)
    last: int
    confidence: float
    transition: str


# -- helpers -------------------------------------------------------------------------------------------


def _as_1d(values, n: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(array) != n:
        raise ValueError(f"{name} has {len(array)} values, expected {n} (one per sampled frame)")
    return np.nan_to_num(array, nan=0.0)


def _window_per_side(timestamps: np.ndarray, settings: ShotSettings) -> int:
    dt = _typical_dt(timestamps)
    return max(settings.min_window_samples, int(round(settings.window_s / dt)) if dt > 0 else 0)


def _typical_dt(timestamps: np.ndarray) -> float:
    if len(timestamps) < 2:
        return 1.0
    steps = np.diff(timestamps)
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else 1.0


def _rolling_median_excluding_self(values: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of `values[i-half .. i+half]` without `values[i]` (NaN-aware; the pair-less
    first sample is NaN in `values`)."""
    n = len(values)
    padded = np.concatenate([np.full(half, np.nan), values, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).copy()
    windows[:, half] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows (a one-frame video)
        median = np.nanmedian(windows, axis=1)
        mad = np.nanmedian(np.abs(windows - median[:, None]), axis=1)
    median = np.nan_to_num(median[:n], nan=0.0)
    mad = np.nan_to_num(mad[:n], nan=0.0)
    return median, mad


def _median_outside(values: np.ndarray, first: int, last: int, half: int) -> float:
    """Median of `values` over `half` samples before `first` and after `last` (NaNs ignored)."""
    parts = [values[max(1, first - half) : first], values[last + 1 : last + 1 + half]]
    pool = np.concatenate(parts)
    pool = pool[~np.isnan(pool)]
    return float(np.median(pool)) if len(pool) else 0.0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index ranges of consecutive True values."""
    runs = []
    i, n = 0, len(mask)
    while i < n:
        if mask[i]:
            j = i
            while j + 1 < n and mask[j + 1]:
                j += 1
            runs.append((i, j))
            i = j + 1
        else:
            i += 1
    return runs


def _hash_distance(a: int, b: int) -> int:
    return (int(a) ^ int(b)).bit_count()


def _normalised_embeddings(embeddings, n: int) -> np.ndarray | None:
    """Rows L2-normalised; missing (NaN or zero) rows take the previous available vector (the next one
    at the start), like duplicates take their kept frame's vector. None when nothing is usable."""
    if embeddings is None:
        return None
    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != n:
        raise ValueError(f"embeddings must be an array of shape ({n}, dim), got {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1)
    present = np.isfinite(norms) & (norms > 0)
    if not present.any():
        return None
    out = np.zeros_like(vectors)
    out[present] = vectors[present] / norms[present, None]
    index = np.where(present, np.arange(n), -1)
    index = np.maximum.accumulate(index)
    first_present = int(np.argmax(present))
    index[index < 0] = first_present
    return out[index]


def shot_embedding(vectors_of_keyframes) -> np.ndarray:
    """A shot's vector: the mean of its keyframes' vectors, L2-normalised (float32)."""
    vectors = np.asarray(vectors_of_keyframes, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"expected a non-empty (k, dim) array of vectors, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    mean = (vectors / np.where(norms > 0, norms, 1.0)).mean(axis=0)
    length = float(np.linalg.norm(mean))
    if not math.isfinite(length) or length == 0.0:
        raise ValueError("the keyframe vectors cancel out (or are not finite); no shot vector")
    return (mean / length).astype(np.float32)


# -- detection ----------------------------------------------------------------------------------------


class _Detector:
    def __init__(self, timestamps, change_score, pixel_change, embeddings, settings, sharpness, phash, duration_s):
        self.s = settings
        self.t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        n = self.n = len(self.t)
        self.d = _as_1d(change_score, n, "change_score")
        self.p = _as_1d(pixel_change, n, "pixel_change")
        self.sharp = None if sharpness is None else _as_1d(sharpness, n, "sharpness")
        if phash is None:
            self.hashes = None
        else:
            self.hashes = [int(h) if h is not None else None for h in phash]
            if len(self.hashes) != n:
                raise ValueError(f"phash has {len(self.hashes)} values, expected {n}")
        self.emb = _normalised_embeddings(embeddings, n)
        self.dt = _typical_dt(self.t)
        self.duration = float(duration_s) if duration_s is not None else (float(self.t[-1]) + self.dt if n else 0.0)
        self.half = _window_per_side(self.t, settings)
        # pair signals: index i is the pair (i-1, i); index 0 has no pair (NaN)
        self.d_pairs = self.d.copy()
        if n:
            self.d_pairs[0] = np.nan
        self.base, self.mad = _rolling_median_excluding_self(self.d_pairs, self.half)
        if self.emb is not None:
            e = np.full(n, np.nan)
            if n > 1:
                e[1:] = 1.0 - np.einsum("ij,ij->i", self.emb[1:], self.emb[:-1])
            self.e_pairs = np.clip(e, 0.0, 2.0)
            self.e_base, _ = _rolling_median_excluding_self(self.e_pairs, self.half)

    # distances between any two sampled frames
    def semantic(self, i: int, j: int) -> float:
        return float(max(0.0, 1.0 - float(self.emb[i] @ self.emb[j])))

    def hash_bits(self, i: int, j: int) -> int | None:
        if self.hashes is None or self.hashes[i] is None or self.hashes[j] is None:
            return None
        return _hash_distance(self.hashes[i], self.hashes[j])

    def drift(self, first: int, last: int) -> float:
        """Expected semantic distance across pairs first..last from the local frame-to-frame drift."""
        per_pair = _median_outside(self.e_pairs, first, last, self.half)
        return per_pair * (last - first + 1)

    # --

    def run(self) -> tuple[list[Shot], list[Event]]:
        n, s = self.n, self.s
        if n == 0:
            return [], []
        boundaries: list[_Boundary] = []
        flash_runs: list[tuple[int, int]] = []
        candidate = np.zeros(n, dtype=bool)
        if n > 1:
            threshold = np.maximum(s.weak_delta, s.mad_k * 1.4826 * self.mad)
            candidate[1:] = (self.d[1:] - self.base[1:]) >= threshold[1:]
        for first, last in _runs(candidate):
            if self.t[last] - self.t[first - 1] > s.max_transition_s:
                # sustained change (camera motion): only spikes over the run's own level can be cuts
                level = float(np.median(self.d[first : last + 1]))
                spikes = np.zeros(n, dtype=bool)
                spikes[first : last + 1] = self.d[first : last + 1] - level >= s.cut_delta
                for sub_first, sub_last in _runs(spikes):
                    self._judge(sub_first, sub_last, boundaries, flash_runs, baseline=level)
            else:
                self._judge(first, last, boundaries, flash_runs)
        boundaries = self._enforce_min_length(boundaries)
        events = self._events(boundaries, flash_runs, candidate) if self.emb is not None else []
        return self._shots(boundaries), events

    def _judge(self, first: int, last: int, boundaries: list[_Boundary], flash_runs: list, baseline: float | None = None) -> None:
        s = self.s
        if baseline is None:
            baseline = _median_outside(self.d_pairs, first, last, self.half)
        excess = self.d[first : last + 1] - baseline
        visual = max(float(excess.max()), s.gradual_weight * float(np.clip(excess, 0, None).sum()))
        before, after = first - 1, last
        semantic = None
        if self.emb is not None:
            semantic = self.semantic(before, after) - self.drift(first, last)
        # a flash: brief, and the content after it is the content before it
        if last > first and self.t[last - 1] - self.t[first] <= s.flash_max_s + 1e-6:
            bits = self.hash_bits(before, after)
            same_by_hash = bits is not None and bits <= s.flash_hash_bits
            same_by_vector = semantic is not None and semantic <= s.semantic_same
            if same_by_hash or same_by_vector:
                flash_runs.append((first, last))
                return
        visual_score = visual / (2 * s.cut_delta)
        if semantic is None:
            confidence = visual_score
        else:
            confidence = 0.5 * min(visual_score, 1.0) + 0.5 * min(max(semantic, 0.0) / (2 * s.semantic_cut), 1.0)
            if visual >= s.strong_delta:
                confidence = max(confidence, 0.5)
        if confidence < 0.5 - 1e-9:
            return
        seq, transition = self._place(first, last)
        boundaries.append(_Boundary(seq, first, last, float(min(confidence, 1.0)), transition))

    def _place(self, first: int, last: int) -> tuple[int, str]:
        if first == last:
            return first, "cut"
        inside = np.arange(first, last)  # frames that are neither the outgoing nor the incoming shot
        if self.sharp is not None:
            darkest = int(inside[np.argmin(self.sharp[inside])])
            around = np.concatenate([self.sharp[max(0, first - 1 - self.half) : first], self.sharp[last : last + 1 + self.half]])
            reference = float(np.median(around)) if len(around) else 0.0
            if reference > 1.0 and self.sharp[darkest] <= self.s.fade_sharpness_ratio * reference:
                return darkest, "fade"
        return int(math.ceil((first - 1 + last) / 2)), "dissolve"

    def _enforce_min_length(self, boundaries: list[_Boundary]) -> list[_Boundary]:
        s = self.s
        start, end = float(self.t[0]), self.duration
        kept: list[_Boundary] = []
        for boundary in sorted(boundaries, key=lambda b: -b.confidence):
            time = float(self.t[boundary.seq])
            if time - start < s.min_shot_s - 1e-6 or end - time < s.min_shot_s - 1e-6:
                continue
            if any(abs(time - float(self.t[k.seq])) < s.min_shot_s - 1e-6 for k in kept):
                continue
            kept.append(boundary)
        return sorted(kept, key=lambda b: b.seq)

    def _events(self, boundaries: list[_Boundary], flash_runs: list, visual_candidates: np.ndarray) -> list[Event]:
        s, n = self.s, self.n
        jump = np.zeros(n, dtype=bool)
        jump[1:] = (self.e_pairs[1:] - self.e_base[1:]) >= s.semantic_event
        blocked = visual_candidates.copy()
        for b in boundaries:
            blocked[b.first : b.last + 1] = True
        for first, last in flash_runs:
            blocked[first : last + 1] = True
        events = []
        boundary_seqs = {b.seq for b in boundaries}
        for first, last in _runs(jump):
            if blocked[first : last + 1].any():
                continue
            before, after = first - 1, last
            semantic = self.semantic(before, after) - self.drift(first, last)
            if semantic < s.semantic_event:
                continue  # the content came back within the run: a semantic flash
            # persistence: the frame after the run still differs from the one before
            if after + 1 < n and self.semantic(before, after + 1) - self.drift(first, last + 1) < s.semantic_event:
                continue
            seq = first + int(np.argmax(self.e_pairs[first : last + 1]))
            if seq in boundary_seqs:
                continue
            events.append(Event(seq, float(self.t[seq]), float(min(semantic / (2 * s.semantic_event), 1.0))))
        return events

    def _shots(self, boundaries: list[_Boundary]) -> list[Shot]:
        n = self.n
        starts = [0] + [b.seq for b in boundaries]
        shots = []
        for index, start in enumerate(starts):
            end = starts[index + 1] - 1 if index + 1 < len(starts) else n - 1
            incoming = boundaries[index - 1] if index > 0 else None
            outgoing = boundaries[index] if index < len(boundaries) else None
            core_start = max(start, incoming.last) if incoming is not None else start
            core_end = min(end, outgoing.first - 1) if outgoing is not None else end
            if core_start > core_end:
                core_start, core_end = start, end
            motion = self._motion(core_start, core_end)
            kind = "static" if motion <= self.s.static_max_motion else "dynamic"
            middle = (core_start + core_end) // 2
            keyframes = [middle] if kind == "static" else sorted({core_start, middle, core_end})
            shots.append(
                Shot(
                    index=index,
                    start_s=float(self.t[start]) if index > 0 else float(self.t[0]),
                    end_s=float(self.t[starts[index + 1]]) if index + 1 < len(starts) else self.duration,
                    start_seq=start,
                    end_seq=end,
                    boundary_confidence=1.0 if incoming is None else round(incoming.confidence, 4),
                    transition="start" if incoming is None else incoming.transition,
                    kind=kind,
                    motion=round(motion, 6),
                    keyframe_seqs=keyframes,
                )
            )
        return shots

    def _motion(self, core_start: int, core_end: int) -> float:
        if core_end <= core_start:
            return 0.0
        pairs = np.arange(core_start + 1, core_end + 1)
        steps = np.diff(self.t[core_start : core_end + 1])
        scale = np.clip(_MOTION_REFERENCE_DT / np.maximum(steps, 1e-6), 1.0, None)
        return float(np.median(self.p[pairs] * scale))


def detect_shots(
    timestamps: Sequence[float] | np.ndarray,
    change_score: Sequence[float] | np.ndarray,
    pixel_change: Sequence[float] | np.ndarray,
    embeddings: np.ndarray | None = None,
    settings: ShotSettings = ShotSettings(),
    *,
    sharpness: Sequence[float] | np.ndarray | None = None,
    phash: Sequence[int] | np.ndarray | None = None,
    duration_s: float | None = None,
) -> tuple[list[Shot], list[Event]]:
    """Shots and in-shot events of one video from its sampled frames, in `seq` order.

    One value per sampled frame for every array (`change_score`/`pixel_change` of frame i are against
    frame i-1, as the frames stage writes them; the first frame's are ignored). `embeddings` is an
    (n, dim) array, one vector per sampled frame (duplicates: their kept frame's vector; NaN rows for
    frames without a vector are filled from the previous frame) or None for visual signals only.
    `sharpness` enables fade placement and `phash` flash suppression without vectors; pass both (the
    `frames` table has them). `duration_s` is where the last shot ends (default: the last timestamp plus
    one sampling step).
    """
    return _Detector(timestamps, change_score, pixel_change, embeddings, settings, sharpness, phash, duration_s).run()


def frame_embedding_matrix(frames, frame_ids, vectors) -> np.ndarray:
    """One vector per row of a `frames` partition (in its row order): the frame's own vector, else the
    vector of the frame it duplicates (`duplicate_of`), else a NaN row. `frame_ids`/`vectors` are the
    partition's `frame_vectors` rows (any order)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(frame_ids):
        raise ValueError(f"expected {len(frame_ids)} vectors as a 2-d array, got shape {vectors.shape}")
    position = {int(f): k for k, f in enumerate(np.asarray(frame_ids).tolist())}
    columns = frames.column_names if hasattr(frames, "column_names") else list(frames.keys())
    own = _column(frames, "frame_id")
    duplicate_of = _column(frames, "duplicate_of") if "duplicate_of" in columns else [None] * len(own)
    out = np.full((len(own), vectors.shape[1] if vectors.size else 0), np.nan, dtype=np.float32)
    for row, (frame_id, dup) in enumerate(zip(own, duplicate_of)):
        k = position.get(int(frame_id))
        if k is None and dup is not None:
            k = position.get(int(dup))
        if k is not None:
            out[row] = vectors[k]
    return out


def _column(frames, name: str) -> list:
    column = frames[name]
    return column.to_pylist() if hasattr(column, "to_pylist") else list(column)


def detect_shots_in_frames(
    frames,
    frame_ids=None,
    vectors=None,
    settings: ShotSettings = ShotSettings(),
    *,
    duration_s: float | None = None,
) -> tuple[list[Shot], list[Event]]:
    """`detect_shots` on one media file's `frames` rows (a pyarrow Table or a dict of columns, sorted by
    `seq` here) and, optionally, its `frame_vectors` (`frame_ids`, `vectors`)."""
    if hasattr(frames, "sort_by"):
        frames = frames.sort_by("seq")
    elif "seq" in frames:
        order = np.argsort(np.asarray(frames["seq"]), kind="stable")
        frames = {k: [frames[k][i] for i in order] for k in frames}
    embeddings = None
    if frame_ids is not None and vectors is not None and len(frame_ids):
        embeddings = frame_embedding_matrix(frames, frame_ids, vectors)
    columns = frames.column_names if hasattr(frames, "column_names") else list(frames.keys())
    return detect_shots(
        np.asarray(_column(frames, "timestamp_s"), dtype=np.float64),
        np.asarray(_column(frames, "change_score"), dtype=np.float64),
        np.asarray(_column(frames, "pixel_change"), dtype=np.float64),
        embeddings,
        settings,
        sharpness=np.asarray(_column(frames, "sharpness"), dtype=np.float64) if "sharpness" in columns else None,
        phash=_column(frames, "phash") if "phash" in columns else None,
        duration_s=duration_s,
    )
