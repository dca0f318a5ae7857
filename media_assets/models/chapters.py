"""Chapters: topic segments of one media file, from its transcript, slide changes, shot cuts and pauses.

Arrays in, chapters out; no warehouse, no model. The chapters stage hands over the transcript segments
("sentences": start and end times, one L2-normalised text vector each), the slide changes (`slide_changes`
over the screen-text readings), the shot boundaries, and gets `Segment`s that tile [0, duration] exactly.
Times are seconds from the start of the file.

1. **Candidates.** Each gap between consecutive sentences is one, at the middle of the silence between
   them (at the next sentence's start when they touch or overlap). A slide change or shot cut within
   `snap_s` of a gap's silence (of its nearest gap; the strongest of each kind) adds to that gap's score
   and moves its time to the slide change, else the cut, clamped into the silence: the chapter starts when
   the slide appears, or as close as it can without cutting a sentence. The other events (in a long
   silence, before the first or after the last sentence, everywhere when nobody speaks) are candidates of
   their own, grouped within `snap_s`; one inside a sentence moves to its nearer edge within `snap_s`, or
   is dropped.
2. **Score** = text_weight·T + slide_weight·strength + shot_weight·confidence + silence_weight·min(pause /
   3 s, 1), each term in [0, 1]. T is the TextTiling depth (`depth_scores`) made scale-free: z = (depth -
   median) / (1.4826 MAD) over the file's gaps, T = clip((z - 1) / 6, 0, 1): 0 for the ordinary ripple of
   the text, 1 for a valley 7 robust deviations deep (`ChapterSettings.full_depth_z`). A gap that takes a
   slide change or a cut takes the deepest valley within `snap_s` of the event too (the valley may sit a
   gap off it: a sentence cut in two, a slide shown a little early). Of equal scores, the deeper valley wins.
3. **Threshold** θ = 0.8 × the largest weight among the signals the file has (text and silence when there
   is a transcript, slides, shots). With the default weights a boundary needs a clear text valley, or a
   weaker one backed by a slide change or a pause: a slide change where the text runs on does not split
   a topic (0.6 < 0.8); with no transcript, a slide change of strength over 0.8 does.
   `ChapterSettings.threshold` overrides the rule.
4. **Selection.** Dynamic programming over the candidates in time order maximises Σ(score - θ) over the
   boundaries kept, with every chapter within [min, max] (`chapter_lengths`). A candidate's predecessors
   are the candidates min..max before it (binary search), so the work is bounded by max length. Where no
   candidates can keep chapters within max (a long stretch of music), the stretch is cut into even pieces:
   the fewest such forced boundaries first, then the largest gain. Sources say what put each boundary
   there; "length" comes first when max length did: alone for an even piece (score 0), else before the
   signals (if any) of the candidate below θ that was the best place for it. A file shorter than min is
   one chapter. No transcript and no slide changes: the candidates are the shot cuts scored by their
   confidence (θ = 0.8); no cuts either: even pieces of at most max.

Measured on simulated files (40 per set; a boundary counts when within ±10 s of the truth): topics as noisy
random directions ("synthetic"), and real all-MiniLM-L6-v2 vectors of 3-5 spoken monologues of 20 sentences
on neighbouring subtopics ("real"), with the text alone and with slide changes, cuts and pauses. F1,
synthetic text / all, real text / all: as above 0.83 / 0.84, 0.73 / 0.85. θ = TextTiling's mean - σ/2 of
the scores: 0.27 / 0.31, 0.36 / 0.39 (it takes nearly every gap the minimum length allows: precision
0.16-0.24); mean + 2σ: 0.68 / 0.70, 0.71 / 0.78; 0.7 of the top weight: 0.81 / 0.77, 0.75 / 0.86; 0.9: 0.85
/ 0.86, 0.70 / 0.86. T's floor at z = 1: a slide change of strength 1 at a random gap inside a topic split
it 18 times in 180 (no floor: 30, and 0.83 / 0.79, 0.76 / 0.85; floor 2: 11, but 0.70 / 0.80 on real
text). Block 3, no smoothing of the similarity curve: blocks of 2-6 and Hearst's smoothing moved the hits
by at most 4 of 86 boundaries on the real vectors.
On generated lectures (`benchmarks/chapters.py`: espeak-ng speech through Whisper tiny.en, 21 known topic
boundaries, some with no visual cue at all) the 1/7 slope found 16 of 21 (P 1.00, R 0.76; F1 0.865): the
true boundaries' z had median 4.9, the gaps far from any boundary a 95th percentile of 1.8 and a maximum
of 3.6, so the text could not decide alone below z 6.6. Full at 7 and the valley lent to events: 18 of 21,
none spurious (F1 0.92); at 5: 0.98, at 4: 1.00 there, but on the synthetic sets above a full of 6 or less
splits noisy topics (z tails are heavier), so 7 is the value both sets accept.
Runtime: 1500 sentences (2.1 hours, 384-d vectors), 120 slide changes and 300 cuts: about 45 ms on one core.

Input: sentences sorted by start (sorted here, stably, when not), ends not before starts, times clipped to
[0, duration]; vectors [n, d] (normalised here; n may be 0); events are (time_s, 0..1) pairs, those at or
outside the file's ends dropped, strengths over 1 taken as 1. A duration that is not a positive number, NaN
anywhere, a negative strength or a wrong shape is a ValueError.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SIGNALS = ("transcript", "slides", "shots", "silence")

# A pause this long between two sentences counts fully (silence term 1); shorter ones in proportion.
_SILENCE_FULL_S = 3.0
# Signals named in `Segment.sources`: the transcript when its term is at least this (a valley clearly deeper
# than the file's typical one), silence from this many seconds.
_TRANSCRIPT_SOURCE_TERM = 0.5
_SILENCE_SOURCE_S = 1.0
# The text term rises from 0 at this many robust standard deviations above the file's median depth to 1 at
# _FULL_DEPTH_Z (`_text_terms`): the floor keeps the ordinary ripple of the text out of the score; 7, not 8:
# measured in the module docstring.
_DEPTH_Z_FLOOR = 1.0
_FULL_DEPTH_Z = 7.0
# A boundary is worth taking when its score exceeds this fraction of the largest weight among the signals the
# file has (`_threshold`).
_THRESHOLD_FRACTION = 0.8
_MAD_TO_SIGMA = 1.4826
_UNREACHABLE = np.iinfo(np.int64).max // 4
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class ChapterSettings:
    """How `find_chapters` weighs its signals and how long chapters may be; the module docstring says why."""

    min_chapter_s: float | None = None  # None: from the duration, see chapter_lengths
    max_chapter_s: float | None = None
    block_sentences: int = 3  # TextTiling block size (sentences each side of a gap)
    text_weight: float = 1.0  # weights of the signals in a boundary's score
    slide_weight: float = 0.6
    shot_weight: float = 0.2
    silence_weight: float = 0.3
    snap_s: float = 4.0  # a slide change / shot cut / silence within this of a sentence gap counts for that gap
    # the text term is 1 for a TextTiling valley this many robust deviations deeper than the file's median one
    full_depth_z: float = _FULL_DEPTH_Z
    # a boundary is worth taking when its score exceeds this; None: the rule in the module docstring
    threshold: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_chapter_s", "max_chapter_s"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and math.isfinite(value) and value > 0):
                raise ValueError(f"ChapterSettings.{name} must be a positive number of seconds or None, got {value!r}")
        if self.min_chapter_s is not None and self.max_chapter_s is not None:
            if not self.min_chapter_s < self.max_chapter_s:
                raise ValueError(
                    f"ChapterSettings needs min_chapter_s < max_chapter_s, got {self.min_chapter_s} and "
                    f"{self.max_chapter_s}"
                )
        if isinstance(self.block_sentences, bool) or not isinstance(self.block_sentences, int):
            raise ValueError(f"ChapterSettings.block_sentences must be an integer >= 1, got {self.block_sentences!r}")
        if self.block_sentences < 1:
            raise ValueError(f"ChapterSettings.block_sentences must be an integer >= 1, got {self.block_sentences!r}")
        for name in ("text_weight", "slide_weight", "shot_weight", "silence_weight", "snap_s"):
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise ValueError(f"ChapterSettings.{name} must be a finite number >= 0, got {value!r}")
        if not (_is_number(self.full_depth_z) and math.isfinite(self.full_depth_z) and self.full_depth_z > 1):
            raise ValueError(f"ChapterSettings.full_depth_z must be a number > 1, got {self.full_depth_z!r}")
        if self.text_weight + self.slide_weight + self.shot_weight + self.silence_weight <= 0:
            raise ValueError("ChapterSettings needs at least one positive weight")
        if self.threshold is not None and not (_is_number(self.threshold) and math.isfinite(self.threshold)):
            raise ValueError(f"ChapterSettings.threshold must be a finite number or None, got {self.threshold!r}")


@dataclass(frozen=True)
class Segment:
    """One chapter, `[start_s, end_s)`, and what put the boundary at its start."""

    start_s: float
    end_s: float
    # subset of SIGNALS; ("start",) for the first segment; "length" first when the maximum length put it there
    sources: tuple[str, ...]
    score: float  # the boundary's score (0 for the first and for even-spaced length boundaries)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


# -- lengths ---------------------------------------------------------------------------------------------


def chapter_lengths(duration_s: float, settings: ChapterSettings = ChapterSettings()) -> tuple[float, float]:
    """(min, max) chapter length in seconds for a file of `duration_s`.

    The settings' values where given; else min = clamp(duration / 20, 20 s, 180 s) and max = clamp(duration /
    2.5, 90 s, 1200 s): a 5-minute clip gets chapters of 20-120 s, a 30-minute talk 90-720 s, a 2-hour
    lecture 180-1200 s (at most 40 and at least 6 chapters). When only one is given, the other default
    keeps max >= 2 min (max raised to 2 min, min lowered to max / 2), which makes every duration of at
    least min divisible into chapters within both bounds.
    """
    duration = _check_duration(duration_s)
    default_min = min(max(duration / 20.0, 20.0), 180.0)
    default_max = min(max(duration / 2.5, 90.0), 1200.0)
    low, high = settings.min_chapter_s, settings.max_chapter_s
    if low is None and high is None:
        return default_min, default_max
    if low is None:
        return min(default_min, float(high) / 2.0), float(high)
    if high is None:
        return float(low), max(default_max, 2.0 * float(low))
    return float(low), float(high)


def _check_duration(duration_s) -> float:
    if not _is_number(duration_s) or not math.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration_s must be a positive finite number of seconds, got {duration_s!r}")
    return float(duration_s)


# -- text: TextTiling ----------------------------------------------------------------------------------


def depth_scores(vectors: np.ndarray, block: int) -> np.ndarray:
    """TextTiling depth score at each of the n-1 gaps between consecutive sentence vectors (L2-normalised
    rows): s = cosine of the mean vector of up to `block` sentences before vs after the gap; depth =
    (highest similarity reached going left while not falling) - s + (the same going right) - s, as in
    Hearst's TextTiling. Float64 [n-1], >= 0; empty for n < 2. A block whose mean is the zero vector has
    similarity 0 with anything."""
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2:
        if array.size == 0:
            return np.zeros(0)
        raise ValueError(f"vectors must be a 2-D array [n, d], got shape {array.shape}")
    if isinstance(block, bool) or not isinstance(block, int | np.integer) or block < 1:
        raise ValueError(f"block must be an integer >= 1, got {block!r}")
    n = len(array)
    if n < 2:
        return np.zeros(0)
    if not np.isfinite(array).all():
        raise ValueError("vectors hold NaN or infinite values")
    similarity = _block_similarity(array, int(block))
    left = similarity.copy()
    for gap in range(1, len(similarity)):  # climbing left from a gap continues the climb from its neighbour
        if similarity[gap - 1] >= similarity[gap]:
            left[gap] = left[gap - 1]
    right = similarity.copy()
    for gap in range(len(similarity) - 2, -1, -1):
        if similarity[gap + 1] >= similarity[gap]:
            right[gap] = right[gap + 1]
    return np.maximum(left + right - 2.0 * similarity, 0.0)


def _block_similarity(vectors: np.ndarray, block: int) -> np.ndarray:
    """Cosine of the mean of up to `block` rows before each gap with the mean of up to `block` after it."""
    n = len(vectors)
    cumulative = np.concatenate([np.zeros((1, vectors.shape[1])), np.cumsum(vectors, axis=0)])
    gap = np.arange(n - 1)
    before = cumulative[gap + 1] - cumulative[np.maximum(gap + 1 - block, 0)]
    after = cumulative[np.minimum(gap + 1 + block, n)] - cumulative[gap + 1]
    norms = np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1)
    dots = np.einsum("ij,ij->i", before, after)
    return np.divide(dots, norms, out=np.zeros(n - 1), where=norms > 1e-12)


def _text_terms(depths: np.ndarray, full_z: float = _FULL_DEPTH_Z) -> tuple[np.ndarray, np.ndarray]:
    """(term in [0, 1], z) per gap: z = (depth - median depth) / robust spread (1.4826 MAD, else the mean
    absolute deviation from the median), term = clip((z - floor) / (full - floor), 0, 1). All zero when the
    depths do not vary."""
    if len(depths) == 0:
        return np.zeros(0), np.zeros(0)
    median = float(np.median(depths))
    spread = _MAD_TO_SIGMA * float(np.median(np.abs(depths - median)))
    if spread <= 1e-12:
        spread = float(np.mean(np.abs(depths - median)))
    if spread <= 1e-12:
        return np.zeros(len(depths)), np.zeros(len(depths))
    z = np.maximum((depths - median) / spread, 0.0)
    return np.clip((z - _DEPTH_Z_FLOOR) / (full_z - _DEPTH_Z_FLOOR), 0.0, 1.0), z


# -- slides ------------------------------------------------------------------------------------------


def slide_changes(
    readings: Sequence[tuple[float, Sequence[str]]], *, min_change: float = 0.5, min_blank_reads: int = 2
) -> list[tuple[float, float]]:
    """The times where the text on screen changed, from the screen-text readings: (time_s, the lines read
    on that frame) for each frame read.

    Each reading becomes the set of its words (`\\w+`, case-folded); a non-empty reading is compared with
    the last non-empty one before it, and a change is (its time_s, strength = 1 - Jaccard similarity of
    the two sets), kept when strength >= `min_change`. Readings without words are ignored: the text
    missing from a read or a few (the camera on the speaker, then back to the slide) is not a change, and
    coming back to different text is one change, not two. The first text of the file is a change
    (strength 1) only when at least `min_blank_reads` readings without words come before it (the slides
    start after a while); else there is nothing before it to change from. Readings are sorted by time
    (stably) first."""
    if not (_is_number(min_change) and 0 < min_change <= 1):
        raise ValueError(f"min_change must be in (0, 1], got {min_change!r}")
    if isinstance(min_blank_reads, bool) or not isinstance(min_blank_reads, int) or min_blank_reads < 1:
        raise ValueError(f"min_blank_reads must be an integer >= 1, got {min_blank_reads!r}")
    parsed: list[tuple[float, frozenset[str]]] = []
    for index, reading in enumerate(readings):
        try:
            time_s, lines = reading
        except (TypeError, ValueError):
            raise ValueError(f"reading {index} must be a (time_s, lines) pair, got {reading!r}") from None
        if not _is_number(time_s) or not math.isfinite(time_s):
            raise ValueError(f"reading {index} has time_s {time_s!r}, not a finite number")
        if isinstance(lines, str):
            lines = [lines]
        words = frozenset(word for line in lines for word in _WORD.findall(str(line).casefold()))
        parsed.append((float(time_s), words))
    parsed.sort(key=lambda item: item[0])
    changes: list[tuple[float, float]] = []
    previous: frozenset[str] | None = None
    blanks = 0
    for time_s, words in parsed:
        if not words:
            blanks += 1
            continue
        if previous is None:
            strength = 1.0 if blanks >= min_blank_reads else 0.0
        else:
            strength = 1.0 - len(words & previous) / len(words | previous)
        if strength > 0 and strength >= min_change:
            changes.append((time_s, float(strength)))
        previous, blanks = words, 0
    return changes


# -- candidates --------------------------------------------------------------------------------------------


@dataclass
class _Candidates:
    times: np.ndarray  # float64 [m], strictly inside (0, duration), sorted
    scores: np.ndarray  # float64 [m]
    sources: list[tuple[str, ...]]  # the signals present at each
    tiebreak: np.ndarray  # float64 [m] in [0, 1): orders equal scores (the unclipped text depth)


@dataclass
class _Signal:
    kind: str  # "slides" or "shots"
    weight: float
    times: np.ndarray  # sorted
    strengths: np.ndarray  # in (0, 1]


def _sentences(duration: float, starts, ends, vectors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked sentence times (sorted by start, clipped to [0, duration]) and unit vectors."""
    starts = np.asarray(starts, dtype=np.float64).reshape(-1)
    ends = np.asarray(ends, dtype=np.float64).reshape(-1)
    if len(starts) != len(ends):
        raise ValueError(f"sentence_starts has {len(starts)} values and sentence_ends {len(ends)}")
    n = len(starts)
    array = np.asarray(vectors, dtype=np.float64)
    if n == 0:
        if array.size != 0:
            raise ValueError(f"sentence_vectors has shape {array.shape} but there are no sentences")
        return starts, ends, np.zeros((0, 1))
    if array.ndim != 2 or len(array) != n or array.shape[1] == 0:
        raise ValueError(f"sentence_vectors must be an array [n, d] with n = {n} sentences, got shape {array.shape}")
    if not (np.isfinite(starts).all() and np.isfinite(ends).all()):
        raise ValueError("sentence_starts and sentence_ends must be finite numbers")
    if not np.isfinite(array).all():
        raise ValueError("sentence_vectors hold NaN or infinite values")
    backwards = np.flatnonzero(ends < starts)
    if len(backwards):
        first = int(backwards[0])
        raise ValueError(f"sentence {first} ends ({ends[first]}) before it starts ({starts[first]})")
    if np.any(np.diff(starts) < 0):
        order = np.argsort(starts, kind="stable")
        starts, ends, array = starts[order], ends[order], array[order]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    array = np.divide(array, norms, out=np.zeros_like(array), where=norms > 1e-12)
    return np.clip(starts, 0.0, duration), np.clip(ends, 0.0, duration), array


def _events(values, duration: float, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(times, strengths) sorted by time, strengths clipped to [0, 1]; events at or outside the file's ends,
    or of strength 0, dropped."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        array = np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must be (time_s, strength) pairs, got an array of shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} hold NaN or infinite values")
    if np.any(array[:, 1] < 0):
        raise ValueError(f"{name} hold a negative strength: {float(array[:, 1].min())}")
    keep = (array[:, 0] > 0) & (array[:, 0] < duration) & (array[:, 1] > 0)
    array = array[keep]
    array = array[np.argsort(array[:, 0], kind="stable")]
    return array[:, 0], np.minimum(array[:, 1], 1.0)


def _candidates(
    duration: float,
    starts: np.ndarray,
    ends: np.ndarray,
    vectors: np.ndarray,
    signals: list[_Signal],
    settings: ChapterSettings,
) -> _Candidates:
    """One candidate per sentence gap (its text, its silence and the events within reach), and one per
    group of the other events that do not cut a sentence."""
    n = len(starts)
    snap = settings.snap_s
    used = {signal.kind: np.zeros(len(signal.times), dtype=bool) for signal in signals}
    times, scores, tiebreak = np.zeros(0), np.zeros(0), np.zeros(0)
    sources: list[tuple[str, ...]] = []
    if n >= 2:
        low = np.minimum(ends[:-1], starts[1:])  # the silence between sentences g and g+1 is [low, high]
        high = starts[1:]
        silence = high - low
        times = np.where(silence > 0, (low + high) / 2.0, high)
        text, z = _text_terms(depth_scores(vectors, settings.block_sentences), settings.full_depth_z)
        scores = settings.text_weight * text + settings.silence_weight * np.minimum(silence / _SILENCE_FULL_S, 1.0)
        tiebreak = z / (1.0 + z)
        present = [set() for _ in range(n - 1)]
        if settings.text_weight > 0:
            for gap in np.flatnonzero(text >= _TRANSCRIPT_SOURCE_TERM):
                present[gap].add("transcript")
        if settings.silence_weight > 0:
            for gap in np.flatnonzero(silence >= _SILENCE_SOURCE_S):
                present[gap].add("silence")
        moved = np.zeros(n - 1, dtype=bool)
        lent_to = np.zeros(n - 1, dtype=bool)
        for signal in signals:  # slides first: a slide change sets the time when it falls in the gap
            best = _best_event_per_gap(signal, low, high, snap)
            for gap, event in best.items():
                scores[gap] += signal.weight * signal.strengths[event]
                present[gap].add(signal.kind)
                # the valley of the text may lie a gap or two off the event (a sentence fragment, a slide
                # shown a little early): the event's gap takes the deepest valley within its reach
                near = np.flatnonzero(np.abs(times - signal.times[event]) <= snap)
                lent = float(text[near].max()) if len(near) else 0.0
                if lent > text[gap] and not lent_to[gap]:
                    scores[gap] += settings.text_weight * (lent - text[gap])
                    lent_to[gap] = True
                    if lent >= _TRANSCRIPT_SOURCE_TERM and settings.text_weight > 0:
                        present[gap].add("transcript")
                used[signal.kind][event] = True
                if not moved[gap]:
                    times[gap] = min(max(signal.times[event], low[gap]), high[gap])
                    moved[gap] = True
        for signal in signals:  # events within reach of a gap's time are that gap's evidence, counted or not
            free = np.flatnonzero(~used[signal.kind])
            if len(free):
                position = np.searchsorted(times, signal.times[free])
                before = np.abs(signal.times[free] - times[np.maximum(position - 1, 0)])
                after = np.abs(times[np.minimum(position, n - 2)] - signal.times[free])
                used[signal.kind][free[np.minimum(before, after) <= snap]] = True
        sources = [tuple(name for name in SIGNALS if name in names) for names in present]
    groups = _event_groups(starts, ends, signals, used, snap)
    times = np.concatenate([times, [group[0] for group in groups]])
    scores = np.concatenate([scores, [group[1] for group in groups]])
    tiebreak = np.concatenate([tiebreak, np.zeros(len(groups))])
    sources = sources + [group[2] for group in groups]
    return _dedupe(_Candidates(times, scores, sources, tiebreak), duration)


def _best_event_per_gap(signal: _Signal, low: np.ndarray, high: np.ndarray, snap: float) -> dict[int, int]:
    """gap -> the strongest event of `signal` whose nearest gap (distance to [low, high]) it is, within snap."""
    best: dict[int, int] = {}
    if not len(signal.times):
        return best
    # the silences are disjoint and in order (low[g] >= high[g-1]): the nearest is at the event's position or
    # just before it; a few either side are looked at
    position = np.searchsorted(high, signal.times)
    for event, (time_s, at) in enumerate(zip(signal.times, position, strict=True)):
        around = np.arange(max(at - 2, 0), min(at + 3, len(high)))
        distance = np.maximum(low[around] - time_s, 0.0) + np.maximum(time_s - high[around], 0.0)
        nearest = int(np.argmin(distance))
        if distance[nearest] > snap:
            continue
        gap = int(around[nearest])
        if gap not in best or signal.strengths[event] > signal.strengths[best[gap]]:
            best[gap] = event
    return best


def _event_groups(
    starts: np.ndarray, ends: np.ndarray, signals: list[_Signal], used: dict[str, np.ndarray], snap: float
) -> list[tuple[float, float, tuple[str, ...]]]:
    """The events no gap took, as candidates of their own: an event inside a sentence moves to the
    sentence's nearer edge when that is within `snap` (else it is dropped: never cut a sentence); events
    within `snap` of the first of a group are one candidate, at its strongest slide change, else its
    strongest cut, scored by the strongest of each kind."""
    loose: list[tuple[float, int, float]] = []  # (time, index of the signal, strength)
    for index, signal in enumerate(signals):
        for event in np.flatnonzero(~used[signal.kind]):
            time_s = float(signal.times[event])
            inside = np.flatnonzero((starts < time_s) & (ends > time_s))
            if len(inside):
                lo, hi = float(starts[inside[0]]), float(ends[inside[-1]])
                time_s = lo if time_s - lo <= hi - time_s else hi
                if abs(time_s - float(signal.times[event])) > snap:
                    continue
            loose.append((time_s, index, float(signal.strengths[event])))
    loose.sort()
    groups = []
    first = 0
    while first < len(loose):
        last = first
        while last + 1 < len(loose) and loose[last + 1][0] - loose[first][0] <= snap:
            last += 1
        members = loose[first : last + 1]
        score, kinds, time_s = 0.0, [], None
        for index, signal in enumerate(signals):
            of_kind = [member for member in members if member[1] == index]
            if of_kind:
                strongest = max(of_kind, key=lambda member: member[2])
                score += signal.weight * strongest[2]
                kinds.append(signal.kind)
                time_s = strongest[0] if time_s is None else time_s
        groups.append((time_s, score, tuple(name for name in SIGNALS if name in kinds)))
        first = last + 1
    return groups


def _dedupe(candidates: _Candidates, duration: float) -> _Candidates:
    """Candidates sorted, strictly inside (0, duration); of several at one time, the best."""
    order = np.argsort(candidates.times, kind="stable")
    times, scores, sources, tiebreak = [], [], [], []
    for i in order:
        time_s, score = float(candidates.times[i]), float(candidates.scores[i])
        if not 0.0 < time_s < duration:
            continue
        if times and time_s - times[-1] <= 1e-9:
            if score > scores[-1]:
                scores[-1], sources[-1], tiebreak[-1] = score, candidates.sources[i], float(candidates.tiebreak[i])
            continue
        times.append(time_s)
        scores.append(score)
        sources.append(candidates.sources[i])
        tiebreak.append(float(candidates.tiebreak[i]))
    return _Candidates(np.asarray(times), np.asarray(scores), sources, np.asarray(tiebreak))


def _threshold(settings: ChapterSettings, has_text: bool, signals: list[_Signal]) -> float:
    """_THRESHOLD_FRACTION of the largest weight among the signals the file has (the module docstring)."""
    weights = [settings.text_weight, settings.silence_weight] if has_text else []
    weights += [signal.weight for signal in signals if len(signal.times)]
    return _THRESHOLD_FRACTION * max(weights, default=0.0)


# -- selection -------------------------------------------------------------------------------------------


def _pieces(lengths: np.ndarray, min_len: float, max_len: float) -> tuple[np.ndarray, np.ndarray]:
    """(k, penalty) for stretches without boundaries: k even pieces of at most max_len (fewer if they would
    be shorter than min_len); penalty = k - 1 forced boundaries, + 1 when a piece still exceeds max_len."""
    lengths = np.asarray(lengths, dtype=np.float64)
    k = np.maximum(np.ceil(lengths / max_len - 1e-9), 1.0)
    too_short = lengths / k < min_len
    k = np.where(too_short, np.maximum(np.floor(lengths / min_len), 1.0), k)
    penalty = (k - 1) + (lengths / k > max_len + 1e-9)
    return k.astype(np.int64), penalty.astype(np.int64)


def _select(
    times: np.ndarray, gains: np.ndarray, duration: float, min_len: float, max_len: float
) -> list[tuple[int, float]]:
    """The boundaries: (candidate index, time), or (-1, time) for an even-spaced length boundary.

    Dynamic programming over nodes 0 (time 0), the candidates, and the end: a chapter from node i to node j
    is allowed when min_len <= t_j - t_i <= max_len; a stretch longer than max_len is allowed too, split
    into even pieces, and costs one forced boundary per piece after the first. The best path has the
    fewest forced boundaries and, of those, the largest sum of gains (score - threshold)."""
    node_times = np.concatenate([[0.0], times, [duration]])
    node_gains = np.concatenate([[0.0], gains, [0.0]])
    count = len(node_times)
    forced = np.full(count, _UNREACHABLE, dtype=np.int64)
    value = np.full(count, -np.inf)
    previous = np.full(count, -1, dtype=np.int64)
    forced[0], value[0] = 0, 0.0
    # node j's predecessors within the lengths are lows[j]..highs[j]-1
    lows = np.searchsorted(node_times, node_times - max_len - 1e-9, side="left").tolist()
    highs = np.minimum(np.searchsorted(node_times, node_times - min_len + 1e-9, side="right"), np.arange(count))
    highs = highs.tolist()
    for j in range(1, count):
        t, lo, hi = node_times[j], lows[j], highs[j]
        best_forced, best_value, best_from = _UNREACHABLE, -np.inf, -1
        if hi > lo:
            f, v = forced[lo:hi], value[lo:hi]
            fewest = int(f.min())
            if fewest < _UNREACHABLE:
                k = int(np.argmax(np.where(f == fewest, v, -np.inf)))
                best_forced, best_value, best_from = fewest, float(v[k]), lo + k
        if best_forced > 0 and lo > 0:  # a long stretch can only help where no clean path reaches j
            lengths = t - node_times[:lo]
            penalties = _pieces(lengths, min_len, max_len)[1]
            reachable = forced[:lo] < _UNREACHABLE
            if reachable.any():
                f = np.where(reachable, forced[:lo] + penalties, _UNREACHABLE)
                fewest = int(f.min())
                k = int(np.argmax(np.where(f == fewest, value[:lo], -np.inf)))
                if fewest < best_forced or (fewest == best_forced and value[k] > best_value):
                    best_forced, best_value, best_from = fewest, float(value[k]), k
        if best_from < 0:
            continue
        forced[j], value[j], previous[j] = best_forced, best_value + node_gains[j], best_from
    path = [count - 1]
    while path[-1] != 0:
        path.append(int(previous[path[-1]]))
    path.reverse()
    boundaries: list[tuple[int, float]] = []
    for i, j in zip(path[:-1], path[1:], strict=True):
        length = node_times[j] - node_times[i]
        k = int(_pieces(np.array([length]), min_len, max_len)[0][0])
        boundaries += [(-1, float(node_times[i] + length * piece / k)) for piece in range(1, k)]
        if j != count - 1:
            boundaries.append((j - 1, float(node_times[j])))
    return boundaries


# -- chapters ------------------------------------------------------------------------------------------


def find_chapters(
    duration_s: float,
    *,
    sentence_starts: np.ndarray,
    sentence_ends: np.ndarray,
    sentence_vectors: np.ndarray,
    slide_changes: Sequence[tuple[float, float]] = (),
    shot_boundaries: Sequence[tuple[float, float]] = (),
    settings: ChapterSettings = ChapterSettings(),
) -> list[Segment]:
    """Chapters that tile [0, duration_s] exactly: consecutive, no gaps, no overlaps, first start 0.0, last
    end duration_s. The module docstring says how; a ValueError says what is wrong with the input."""
    duration = _check_duration(duration_s)
    starts, ends, vectors = _sentences(duration, sentence_starts, sentence_ends, sentence_vectors)
    slides = _Signal("slides", settings.slide_weight, *_events(slide_changes, duration, "slide_changes"))
    shots = _Signal("shots", settings.shot_weight, *_events(shot_boundaries, duration, "shot_boundaries"))
    min_len, max_len = chapter_lengths(duration, settings)
    if len(starts) == 0 and len(slides.times) == 0:  # groups of shots, scored by their confidence
        shots = _Signal("shots", 1.0, shots.times, shots.strengths)
        sources = [("shots",)] * len(shots.times)
        candidates = _dedupe(_Candidates(shots.times, shots.strengths, sources, np.zeros(len(shots.times))), duration)
        threshold = _threshold(settings, False, [shots])
    else:
        signals = [signal for signal in (slides, shots) if signal.weight > 0]
        candidates = _candidates(duration, starts, ends, vectors, signals, settings)
        threshold = _threshold(settings, len(starts) >= 2, signals)
    if settings.threshold is not None:
        threshold = settings.threshold
    gains = candidates.scores - threshold
    boundaries = []
    if duration >= min_len:
        # equal scores: the deeper text valley wins (by at most 1e-6, far below any difference of the signals)
        boundaries = _select(candidates.times, gains + 1e-6 * candidates.tiebreak, duration, min_len, max_len)
    firsts = [(0.0, ("start",), 0.0)]
    for index, time_s in boundaries:
        if index < 0:
            firsts.append((time_s, ("length",), 0.0))
        elif gains[index] <= 0:
            firsts.append((time_s, ("length", *candidates.sources[index]), float(candidates.scores[index])))
        else:
            firsts.append((time_s, candidates.sources[index], float(candidates.scores[index])))
    lasts = [time_s for time_s, _, _ in firsts[1:]] + [duration]
    return [
        Segment(start_s=first, end_s=last, sources=sources, score=score)
        for (first, sources, score), last in zip(firsts, lasts, strict=True)
    ]
