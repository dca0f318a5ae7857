"""Shot boundaries, static/dynamic shots, keyframes and in-shot events from what the frames stage stored.

No second decode pass: `detect_shots` is a pure function of per-sampled-frame arrays that the `frames`
table already holds (`timestamp_s`, `change_score`, `pixel_change`, `sharpness`, `phash`) plus, when
present, one vector per frame (`frame_vectors`; a duplicate frame takes the vector of the frame it
duplicates: `frame_embedding_matrix`). `detect_shots_in_frames` assembles those from a `frames` partition.

The thresholds and the measured signal ranges quoted below come from `benchmarks/shots.py`'s tuning set;
how they were measured, and the F1 scores, are in `docs/calibration.md` (Shots).

0. **Vectors that see the cuts, or none.** Frame vectors take part only when, across the boundaries the
   pictures alone make clear (visual confidence ≥ `vector_check_confidence` = 0.75, 1.5x the threshold),
   they see a cut-sized change: median semantic distance over the drift ≥ `semantic_cut`, the change the
   fusion below counts as a cut. Vectors on another scale, or blind to a file's own clear cuts, would
   otherwise veto its weaker boundaries and take fades for flashes: the offline test model (random
   weights) sees a median of 0.07 across the demo's clear boundaries and once turned a fade into a
   "flash" plus a cut. A file with no clear boundary keeps its vectors (nothing to check them on).
1. **Visual change, adaptive.** `d[i] = change_score[i]` is the HSV-histogram distance between sampled
   frames i-1 and i; robust to camera motion (the same colours, moved). It is compared with a local
   baseline: the 30th percentile (`baseline_quantile`) of `d` over `window_s` seconds either side, without
   i itself. A pan or a shaky shot raises its own baseline; a low quantile rather than the median keeps
   the baseline down where cuts are dense (at 1 frame/s a third of a window can be cuts). A sample is a
   *candidate* when `d - baseline ≥ weak_delta` (0.10) and belongs to a stretch that has one (MAD-scaled,
   `mad_k`) seed; MAD scaling is off by default: windows that mix a still shot and a fast pan are
   bimodal and their MAD hid real cuts and dissolves. Measured `d` at 4 frames/s, median / 95th
   percentile: inside still shots 0.03 / 0.06, zooms 0.06 / 0.09, shake 0.05 / 0.10, pans 0.09 / 0.29
   (whip pans up to 0.46); hard cuts 0.60-1.00 (median 0.93); dissolve samples 0.07-0.97 (median
   0.47); fade samples 0.09-1.00 (median 0.80).
2. **Runs are one boundary.** Consecutive candidates form a run: a dissolve or fade moving `d` over
   several samples is one boundary. Its visual evidence is `max(peak excess, gradual_weight · summed
   excess)` over a baseline taken outside the run (a slow dissolve is many medium steps). A run holding
   spikes (over the run's own low quantile, by `cut_delta`) at least `split_min_gap_s` apart, or lasting
   longer than `max_transition_s` with at least `min_sustained_steps` steps, is camera motion with cuts
   inside: only those spikes are judged (cuts into and out of a short whip pan).
3. **Flashes.** Inside a run, two steps over `strong_delta` of comparable size (within
   `peak_dominance`), at most `flash_max_s` apart, around frames that lost contrast (sharpness below
   `flash_sharpness_ratio` of the frames around them: measured 0.003-0.07 for a flash, 0.7 for a
   dissolve's mixed frame), with the frame before and the frame after showing the same content, are a
   flash and are taken out of the run. Same content: perceptual hashes within `flash_hash_bits` (20; the
   DCT hash ignores brightness: 0-2 bits across flashes in still shots, 4-36 in moving ones; hard cuts
   18-42, 5th percentile 24) with matching sharpness (a fade's dimming frames share the hash but not
   the contrast), or vectors within the local drift plus `semantic_same`. Flashes during motion so fast
   that frames 1/fps apart share no structure (hash 24+ bits) are only recognised with vectors.
4. **Consecutive cuts.** At low sampling rates a short shot can get one sample: a run of several
   cut-sized steps whose middle frames are unrelated to both sides (hashes ≥ `saturated_hash_bits` apart,
   or with vectors: as far from each side as the sides are from each other) and that is not a fade
   is split into separate cuts; a dissolve's mixed frames resemble both sides (6-20 bits).
5. **Decision.** Without vectors a run is a boundary when its visual evidence reaches `cut_delta`
   (0.25), or `strong_delta` (0.45) when the frames around it already share no structure (median hash
   distance ≥ `saturated_hash_bits` = 24: a whip pan, where the histogram swings with what enters the
   view). With vectors, the semantic evidence is the cosine distance between the frames before and
   after the run minus the local drift (median consecutive distance around it times the run's length);
   the score is `0.5 · visual/(2·cut_delta) + 0.5 · semantic/(2·semantic_cut)` (each term capped at 0.5)
   ≥ 0.5, except that when the vectors see the same content (semantic ≤ `semantic_same`) only one
   dominant step over `strong_delta` (a hard cut between look-alike shots) is a cut. So vectors veto
   motion, lighting and flicker, and confirm weak visual changes (look-alike shots, slow dissolves).
6. **Placement and kind.** A run with one dominant step (`peak_dominance` times any other) is a `cut`
   there; else, if the darkest transitional frame's sharpness is below `fade_sharpness_ratio` of the
   surrounding shots' (measured at 4 frames/s: fades' darkest sample 0.000-0.185 of it, median 0.06),
   a `fade` starting the new shot at that black frame; else a `dissolve` placed at the run's middle.
7. **Minimum shot length.** Boundaries closer than `min_shot_s` to each other or to the video's start
   and end are dropped, weakest first.
8. **Events** (with vectors only): a semantic jump of at least `semantic_event` over the local drift,
   where the pictures have no candidate at all, that persists (the frame after still differs) and is not
   a flash, is an `Event` inside its shot: a slide change, a new caption, a screen switching windows.
9. **Static or dynamic.** A shot's motion is the median `pixel_change` between consecutive sampled
   frames of its core (the shot without its transition frames), scaled up to the 6 frames/s equivalent
   when sampling more densely. Measured at 1-4 frames/s: still shots with sensor noise ≤ 0.0019 and a
   "talking head" (still camera, moving mouth) ≤ 0.0017; the gentlest moving shots (light handheld
   shake, slow zoom) ≥ 0.0073. `static_max_motion` = 0.004. Static shots get one keyframe (the middle
   of the core), dynamic ones three (core start, middle, end).

`Shot.boundary_confidence` (0..1) is the decision score capped at 1: 0.5 is "at the threshold", 1.0
twice over it or more; the first shot has 1.0. It is not a probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

TRANSITION_KINDS = ("start", "cut", "fade", "dissolve")
SHOT_KINDS = ("static", "dynamic")

# Motion is measured at this sampling interval (or coarser): denser sampling is scaled up to it.
_MOTION_REFERENCE_DT = 1.0 / 6.0


@dataclass(frozen=True)
class ShotSettings:
    """Thresholds of `detect_shots`; the module docstring says what each was measured against."""

    # local baseline: the `baseline_quantile` of change_score over `window_s` seconds either side (at
    # least `min_window_samples` samples per side), without the sample itself
    window_s: float = 3.0
    min_window_samples: int = 4
    baseline_quantile: float = 0.3
    # candidate: change_score at least this far over the baseline (in-shot excess ≤ 0.1 but for whip pans)
    weak_delta: float = 0.10
    # seeds of candidate stretches also need mad_k robust standard deviations (0: off, see the docstring)
    mad_k: float = 0.0
    # visual evidence of a cut (0.5 confidence); with vectors it weighs half
    cut_delta: float = 0.25
    # visual evidence needed when motion is too fast for the sampling rate; flash steps; with vectors
    # saying "same content", the one step a hard cut between look-alike shots needs
    strong_delta: float = 0.45
    # weight of the summed excess of a run (gradual transitions) against its peak excess
    gradual_weight: float = 0.5
    # a run longer than this with at least `min_sustained_steps` steps is camera motion, not a transition
    max_transition_s: float = 2.5
    min_sustained_steps: int = 4
    # spikes in one run at least this far apart are separate boundaries (closer: a fade's way in and out)
    split_min_gap_s: float = 0.6
    # one step carrying this many times any other step's excess makes the run a cut at that step
    peak_dominance: float = 2.0
    # fade: the darkest transitional frame below this fraction of the surrounding shots' sharpness
    fade_sharpness_ratio: float = 0.1
    # flash: up and down steps at most this far apart, same content (hash bits) around, flashed frames
    # below this fraction of the surrounding frames' sharpness and those two within this ratio
    flash_max_s: float = 0.5
    flash_hash_bits: int = 20
    flash_sharpness_ratio: float = 0.5
    # frames this many hash bits apart share no structure (unrelated pictures: 32 ± 4)
    saturated_hash_bits: int = 24
    # semantic evidence (cosine distance over the local drift): "same content" up to `semantic_same`,
    # 0.5 confidence at `semantic_cut`, an in-shot event from `semantic_event`. Set for CLIP ViT-B/32
    # image vectors, where the same shot drifts ~0.01-0.08 between samples and different scenes are
    # 0.2-0.5 apart (typical values, not measured here: the offline test model has random weights)
    semantic_same: float = 0.05
    semantic_cut: float = 0.15
    semantic_event: float = 0.15
    # the vectors are used for a file only if they see a cut-sized change (≥ semantic_cut over the drift,
    # median) across the boundaries its pictures make clear: visual confidence at least this (1.5x the threshold)
    vector_check_confidence: float = 0.75
    # boundaries closer than this to each other or to the start/end are dropped, weakest first
    min_shot_s: float = 0.5
    # a shot whose motion (median in-shot pixel_change, at ≤ 6 frames/s) is at most this is static
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


def _nan_quantile_rows(rows: np.ndarray, quantile: float) -> np.ndarray:
    """`np.nanquantile(rows, quantile, axis=1)` (linear interpolation), vectorised: numpy's own loops
    over the rows in Python. Rows without values give NaN."""
    missing = np.isnan(rows)
    ordered = np.sort(np.where(missing, np.inf, rows), axis=1)
    count = (~missing).sum(axis=1)
    position = quantile * np.maximum(count - 1, 0)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(count - 1, 0))
    index = np.arange(len(rows))
    low_value, high_value = ordered[index, low], ordered[index, high]
    with np.errstate(invalid="ignore"):
        value = low_value + (high_value - low_value) * (position - low)
    value = np.where(high == low, low_value, value)
    return np.where(count > 0, value, np.nan)


def _rolling_level_excluding_self(
    values: np.ndarray, half: int, quantile: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """A quantile (the level) and the MAD around it of `values[i-half .. i+half]` without `values[i]`
    (NaN-aware; the pair-less first sample is NaN in `values`)."""
    n = len(values)
    padded = np.concatenate([np.full(half, np.nan), values, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).copy()
    windows[:, half] = np.nan
    level = _nan_quantile_rows(windows, quantile)
    mad = _nan_quantile_rows(np.abs(windows - level[:, None]), 0.5)
    return np.nan_to_num(level[:n], nan=0.0), np.nan_to_num(mad[:n], nan=0.0)


def _level_outside(values: np.ndarray, first: int, last: int, half: int, quantile: float = 0.5) -> float:
    """A quantile of `values` over `half` samples before `first` and after `last` (NaNs ignored)."""
    parts = [values[max(1, first - half) : first], values[last + 1 : last + 1 + half]]
    pool = np.concatenate(parts)
    pool = pool[~np.isnan(pool)]
    return float(np.quantile(pool, quantile)) if len(pool) else 0.0


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


def _grown_from(seeds: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The runs of `allowed` that contain at least one seed."""
    out = np.zeros(len(allowed), dtype=bool)
    for first, last in _runs(allowed):
        if seeds[first : last + 1].any():
            out[first : last + 1] = True
    return out


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
        self.vectors_used = False
        self.vectors_note = "no vectors given" if self.emb is None else ""
        self.dt = _typical_dt(self.t)
        self.duration = float(duration_s) if duration_s is not None else (float(self.t[-1]) + self.dt if n else 0.0)
        self.half = _window_per_side(self.t, settings)
        if n == 0:
            return
        # pair signals: index i is the pair (i-1, i); index 0 has no pair (NaN)
        self.d_pairs = self.d.copy()
        if n:
            self.d_pairs[0] = np.nan
        self.base, self.mad = _rolling_level_excluding_self(self.d_pairs, self.half, settings.baseline_quantile)
        if self.emb is not None:
            e = np.full(n, np.nan)
            if n > 1:
                e[1:] = 1.0 - np.einsum("ij,ij->i", self.emb[1:], self.emb[:-1])
            self.e_pairs = np.clip(e, 0.0, 2.0)
            self.e_base, _ = _rolling_level_excluding_self(self.e_pairs, self.half)

    # distances between any two sampled frames
    def semantic(self, i: int, j: int) -> float:
        return float(max(0.0, 1.0 - float(self.emb[i] @ self.emb[j])))

    def hash_bits(self, i: int, j: int) -> int | None:
        if self.hashes is None or self.hashes[i] is None or self.hashes[j] is None:
            return None
        return _hash_distance(self.hashes[i], self.hashes[j])

    def drift(self, first: int, last: int) -> float:
        """Expected semantic distance across pairs first..last from the local frame-to-frame drift."""
        per_pair = _level_outside(self.e_pairs, first, last, self.half)
        return per_pair * (last - first + 1)

    # --

    def vectors_tell_shots_apart(self, visual: list[_Boundary]) -> tuple[bool, str]:
        """Whether this file's vectors carry evidence about its boundaries (see the module docstring,
        step 0): across the `visual` boundaries (found from the pictures alone) that are clear (confidence
        ≥ `vector_check_confidence`), the vectors must see a cut-sized change beyond the drift (median ≥
        `semantic_cut`). (True, why) when they do or when there is nothing clear to check them on."""
        clear = [b for b in visual if b.confidence >= self.s.vector_check_confidence]
        if not clear:
            return True, "no clear visual boundary to check the vectors against"
        evidence = [self.semantic(b.first - 1, b.last) - self.drift(b.first, b.last) for b in clear]
        median = float(np.median(evidence))
        why = (
            f"median semantic change {median:.3f} over the drift across the {len(clear)} clear visual "
            f"boundar{'y' if len(clear) == 1 else 'ies'} (at least {self.s.semantic_cut:.3f} needed)"
        )
        return median >= self.s.semantic_cut, why

    def run(self) -> tuple[list[Shot], list[Event]]:
        if self.n == 0:
            return [], []
        if self.emb is None:
            boundaries = self._boundaries()
        else:
            embeddings, self.emb = self.emb, None
            visual = self._boundaries()  # the pictures alone
            self.emb = embeddings
            self.vectors_used, self.vectors_note = self.vectors_tell_shots_apart(visual)
            if self.vectors_used:
                boundaries = self._boundaries()
            else:  # vectors blind to this file's own clear cuts would veto or misplace the rest
                self.emb, boundaries = None, visual
        events = self._events(boundaries, self._flash_runs, self._candidate) if self.emb is not None else []
        return self._shots(boundaries), events

    def _boundaries(self) -> list[_Boundary]:
        n, s = self.n, self.s
        boundaries: list[_Boundary] = []
        flash_runs: list[tuple[int, int]] = []
        candidate = np.zeros(n, dtype=bool)
        if n > 1:
            # MAD widens the threshold in noisy stretches, but never past cut_delta: windows that mix a
            # still shot with a fast pan are bimodal and their MAD is large
            threshold = np.clip(s.mad_k * 1.4826 * self.mad, s.weak_delta, s.cut_delta)
            excess = self.d - self.base
            seeds = np.zeros(n, dtype=bool)
            seeds[1:] = excess[1:] >= threshold[1:]
            # hysteresis: a run grows from a seed over neighbours still weak_delta above the baseline,
            # so a long dissolve whose middle step is a little smaller stays one run
            candidate[1:] = excess[1:] >= s.weak_delta
            candidate &= _grown_from(seeds, candidate)
        for first, last in _runs(candidate):
            for part_first, part_last, baseline in self._split(first, last):
                self._judge(part_first, part_last, baseline, boundaries, flash_runs)
        self._flash_runs, self._candidate = flash_runs, candidate
        return self._enforce_min_length(boundaries)

    def _split(self, first: int, last: int) -> list[tuple[int, int, float]]:
        """A candidate run as one transition, or - when it lasts longer than a transition or holds
        several separate spikes over its own level (cuts into and out of a short fast pan) - as those
        spikes, each judged against the run's level: (first, last, baseline) parts."""
        s = self.s
        outside = _level_outside(self.d_pairs, first, last, self.half, s.baseline_quantile)
        level = float(np.quantile(self.d[first : last + 1], s.baseline_quantile))
        spikes = self.d[first : last + 1] - level >= s.cut_delta
        groups: list[tuple[int, int]] = []
        for a, b in _runs(spikes):
            if groups and self.t[first + a - 1] - self.t[groups[-1][1]] < s.split_min_gap_s - 1e-6:
                groups[-1] = (groups[-1][0], first + b)  # too close to be two transitions (a fade's way in and out)
            else:
                groups.append((first + a, first + b))
        sustained = self.t[last] - self.t[first - 1] > s.max_transition_s and last - first + 1 >= s.min_sustained_steps
        if sustained or len(groups) >= 2:
            return [(a, b, max(level, outside)) for a, b in groups]
        return [(first, last, outside)]

    def _dominant_step(self, first: int, last: int, baseline: float) -> int | None:
        """The one step of a run carrying the change (a cut next to motion), if there is one."""
        if first == last:
            return first
        excess = self.d[first : last + 1] - baseline
        order = np.argsort(excess)[::-1]
        if excess[order[0]] >= self.s.peak_dominance * max(float(excess[order[1]]), 0.0):
            return first + int(order[0])
        return None

    def _fade_dip(self, first: int, last: int) -> int | None:
        """The darkest frame inside a run if it is a fade's black frame (sharpness collapses)."""
        if self.sharp is None or last == first:
            return None
        inside = np.arange(first, last)  # frames that are neither the outgoing nor the incoming shot
        darkest = int(inside[np.argmin(self.sharp[inside])])
        around = np.concatenate(
            [self.sharp[max(0, first - 1 - self.half) : first], self.sharp[last : last + 1 + self.half]]
        )
        reference = float(np.median(around)) if len(around) else 0.0
        if reference > 1.0 and self.sharp[darkest] <= self.s.fade_sharpness_ratio * reference:
            return darkest
        return None

    def _unrelated_middle(self, outer_before: int, inner_first: int, inner_last: int, outer_after: int) -> bool:
        """Whether frames inner_first..inner_last show content of their own, unrelated to the frames on
        either side: with vectors, each side is as far from them as the sides are from each other
        (a dissolve's mixed frame is about a quarter as far); without, perceptual hashes as far apart as
        unrelated pictures (≥ saturated_hash_bits; a mixed frame measured 6-20 bits from each side)."""
        if self.emb is not None:
            across = self.semantic(outer_before, outer_after)
            nearest = min(self.semantic(outer_before, inner_first), self.semantic(inner_last, outer_after))
            return nearest >= max(self.s.semantic_cut, 0.6 * across)
        first_bits, last_bits = self.hash_bits(outer_before, inner_first), self.hash_bits(inner_last, outer_after)
        if first_bits is None or last_bits is None:
            return False
        return min(first_bits, last_bits) >= self.s.saturated_hash_bits

    def _consecutive_cuts(self, first: int, last: int, baseline: float) -> list[int]:
        """Steps of a run that are separate hard cuts: several cut-sized steps, and the frames between
        two of them unrelated to the frames on either side (a shot that got one or two samples at a
        low sampling rate), not a fade's black frame nor a dissolve's mixed frames (which resemble
        both sides)."""
        big = [k for k in range(first, last + 1) if self.d[k] - baseline >= self.s.cut_delta]
        if len(big) < 2 or self._fade_dip(first, last) is not None:
            return []
        for a, b in zip(big, big[1:], strict=False):
            # frames a..b-1 sit between the two steps
            if not self._unrelated_middle(a - 1, a, b - 1, b):
                return []
        return big

    def _flashes(self, first: int, last: int, baseline: float) -> list[tuple[int, int]]:
        """Flashes inside a run, as (up, down) steps: two steps over `strong_delta` of comparable size (a
        flash swings the histogram both ways: measured 0.68-1.0 each way; dissolve steps 0.34-0.75) at
        most `flash_max_s` apart, and
        the frame before the flash shows the same content as the frame after it (perceptual hash
        within `flash_hash_bits` - it ignores brightness - or vectors within the drift plus
        `semantic_same`)."""
        s = self.s
        excess = {k: float(self.d[k]) - baseline for k in range(first, last + 1)}
        big = [k for k in range(first, last + 1) if excess[k] >= s.strong_delta]
        flashes: list[tuple[int, int]] = []
        taken = -1
        for i, up in enumerate(big):
            if up <= taken:
                continue
            for down in big[i + 1 :]:
                if self.t[down - 1] - self.t[up] > s.flash_max_s + 1e-6:
                    break
                low, high = sorted((excess[up], excess[down]))
                if low * s.peak_dominance < high:
                    continue
                if self.sharp is not None:
                    # the flashed frames lose contrast (measured 0.02-0.26 of the frames around them;
                    # a dissolve's mixed frames 0.7)
                    inside = float(self.sharp[up:down].max())
                    outer = min(float(self.sharp[up - 1]), float(self.sharp[down]))
                    if outer > 1.0 and inside > s.flash_sharpness_ratio * outer:
                        continue
                if self._same_content(up - 1, down, up, down):
                    flashes.append((up, down))
                    taken = down
                    break
        return flashes

    def _same_content(self, i: int, j: int, first: int, last: int) -> bool:
        if self.sharp is not None:
            # same content at the same brightness: sharpness (contrast squared) matches too, which
            # tells a flash from the dimming steps of a fade (same hash, sharpness ×0.05 measured)
            low, high = sorted((float(self.sharp[i]), float(self.sharp[j])))
            if high > 1.0 and low < self.s.flash_sharpness_ratio * high:
                return False
        bits = self.hash_bits(i, j)
        if bits is not None and bits <= self.s.flash_hash_bits:
            return True
        return self.emb is not None and self.semantic(i, j) - self.drift(first, last) <= self.s.semantic_same

    def _motion_bits(self, first: int, last: int, pairs: int = 3) -> float | None:
        """Median perceptual-hash distance of the consecutive frames just around a run (not inside it)."""
        if self.hashes is None:
            return None
        distances = []
        for j in list(range(max(1, first - pairs), first)) + list(range(last + 1, min(self.n, last + 1 + pairs))):
            bits = self.hash_bits(j - 1, j)
            if bits is not None:
                distances.append(bits)
        return float(np.median(distances)) if distances else None

    def _judge(self, first: int, last: int, baseline: float, boundaries: list[_Boundary], flash_runs: list) -> None:
        s = self.s
        excess = self.d[first : last + 1] - baseline
        visual = max(float(excess.max()), s.gradual_weight * float(np.clip(excess, 0, None).sum()))
        before, after = first - 1, last
        semantic = None
        if self.emb is not None:
            semantic = self.semantic(before, after) - self.drift(first, last)
        flashes = self._flashes(first, last, baseline)
        if flashes:
            # take the flashes out; what is left of the run (a cut right next to a flash) is judged alone
            flash_runs.extend(flashes)
            rest = np.ones(last - first + 1, dtype=bool)
            for up, down in flashes:
                rest[up - first : down - first + 1] = False
            for a, b in _runs(rest):
                if float(self.d[first + a : first + b + 1].max()) - baseline >= s.weak_delta:
                    self._judge(first + a, first + b, baseline, boundaries, flash_runs)
            return
        dominant = self._dominant_step(first, last, baseline)
        if dominant is None:
            cuts = self._consecutive_cuts(first, last, baseline)
            if cuts:
                for k in cuts:
                    self._judge(k, k, baseline, boundaries, flash_runs)
                return
        needed = s.cut_delta
        motion_bits = self._motion_bits(first, last)
        if motion_bits is not None and motion_bits >= s.saturated_hash_bits:
            # frames around are already unrelated at this sampling rate (a whip pan): the histogram
            # swings with what enters the view, so only a strong change is a cut
            needed = s.strong_delta
        visual_score = visual / (2 * needed)
        if semantic is None:
            confidence = visual_score
        elif semantic <= s.semantic_same:
            # the vectors see the same content before and after: only a hard cut between look-alike
            # shots (one dominant step, strong) survives; motion, lighting and flicker do not
            strong_step = dominant is not None and float(self.d[dominant]) - baseline >= s.strong_delta
            confidence = 0.5 if strong_step else 0.0
        else:
            confidence = 0.5 * min(visual_score, 1.0) + 0.5 * min(semantic / (2 * s.semantic_cut), 1.0)
        if confidence < 0.5 - 1e-9:
            return
        seq, transition = self._place(first, last, dominant)
        boundaries.append(_Boundary(seq, first, last, float(min(confidence, 1.0)), transition))

    def _place(self, first: int, last: int, dominant: int | None) -> tuple[int, str]:
        if dominant is not None:
            return dominant, "cut"
        darkest = self._fade_dip(first, last)
        if darkest is not None:
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
    report: dict | None = None,
) -> tuple[list[Shot], list[Event]]:
    """Shots and in-shot events of one video from its sampled frames, in `seq` order.

    One value per sampled frame for every array (`change_score`/`pixel_change` of frame i are against
    frame i-1, as the frames stage writes them; the first frame's are ignored). `embeddings` is an
    (n, dim) array, one vector per sampled frame (duplicates: their kept frame's vector; NaN rows for
    frames without a vector are filled from the previous frame) or None for visual signals only.
    `sharpness` enables fade placement and `phash` flash suppression without vectors; pass both (the
    `frames` table has them). `duration_s` is where the last shot ends (default: the last timestamp plus
    one sampling step). A `report` dict gets `vectors_used` (bool) and `vectors_note` (why).
    """
    detector = _Detector(timestamps, change_score, pixel_change, embeddings, settings, sharpness, phash, duration_s)
    result = detector.run()
    if report is not None:
        report.update(vectors_used=detector.vectors_used, vectors_note=detector.vectors_note)
    return result


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
    for row, (frame_id, dup) in enumerate(zip(own, duplicate_of, strict=True)):
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
    *,
    settings: ShotSettings = ShotSettings(),
    duration_s: float | None = None,
    report: dict | None = None,
) -> tuple[list[Shot], list[Event]]:
    """`detect_shots` on one media file's `frames` rows (a pyarrow Table or a dict of columns, sorted by
    `seq` here) and, optionally, its `frame_vectors` (`frame_ids` and `vectors`, both or neither).
    `duration_s` is the media row's `duration_s` (where the last shot ends)."""
    if (frame_ids is None) != (vectors is None):
        raise ValueError("pass both frame_ids and vectors (the partition's frame_vectors rows), or neither")
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
        report=report,
    )
