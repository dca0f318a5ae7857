"""Fusing what the modalities found into moments: calibrated evidence, weights, time-range merging.

Four modalities answer a text query, each with its own scores:
- `visual`: CLIP text→frame cosines (today's `search_text`/`moments`; ≈ 0.2-0.35 for real matches on
  ViT-B/32, anything at all with random weights);
- `speech`: sentence-encoder cosines of the query to transcript windows (all-MiniLM-L6-v2: paraphrases
  ≈ 0.5-0.8, unrelated text ≈ 0.0-0.2);
- `screen_text`: the same encoder against the lines read on screen;
- `keyword`: BM25 of the query's words in the same transcript windows and screen-text spans (unbounded;
  nothing at all when no word matches).

Raw scores of different encoders are not comparable, and ranks are not either: reciprocal-rank fusion gives
a modality's first hit the same share whether it is a clear match or the best of noise (a random CLIP's top
frame would outrank a spoken match; measured below). So each modality's scores are turned into
**evidence** in (0, 1): how unlikely the score is for this query by chance.

- Vector modalities: the query's cosines against a background sample of that modality's rows (up to
  `BACKGROUND_SAMPLE` rows of the searched population, evenly spread; for text, the `REFERENCE_SENTENCES`
  instead while the population is under `MIN_BACKGROUND` rows) give a robust location and scale (median,
  1.4826·MAD) for z = (cosine − median) / scale, and a tail: above the sample's 90th percentile an
  exponential fitted by its median excess (peaks over threshold; a normal tail falls too fast for sentence
  cosines, where topically near rows are common; the fit's scale is floored at half the robust scale). P(s)
  = the chance a background row scores ≥ s; E = N · P(s) is the number of rows of the searched population N
  expected that high by chance, and evidence = 1 / (1 + E / E_HALF): 0.5 where chance would reach it once
  in 1/E_HALF = 10 searches, ≈ 0.1 for what the best of N random rows reaches (E ≈ 1), → 1 for a clear
  outlier. Counting N makes a big library need a clearer outlier, as the maximum of more noise is higher.
- Keyword: evidence = 1 − exp(−BM25 / b1), b1 = the BM25 of one of the table's rarest words
  (`store.text_vectors.bm25_single_term(N)`, ln(1 + (N − 0.5)/1.5)): a row holding one word found in one row
  of the table ≈ 0.63, two such words ≈ 0.86 (so the line holding all of "quarterly revenue forecast" beats
  the one holding "revenue" alone; a cap at 1 tied them), a word found in half the rows ≈ 0.1 (idf ln 3 against
  ln(N/1.5)); no word matched → no candidate at all, so it moves nothing.

A moment's **similarity** is Σ weight_m · evidence_m over the modalities (weights sum to 1; a modality
without a candidate in the moment adds 0): 1 = every weighted modality is sure, 0 = none has anything.
Ties (evidence saturates) break by Σ weight_m · z_m. In a single-modality mode the order is that modality's
own order (evidence is monotonic in its score). Modes (seed 003's weights; "text" is split
speech 0.4 : screen_text 0.3 : keyword 0.3, `TEXT_SPLIT`): `vision_heavy` text 0.3 / visual 0.7, `balanced`
0.5 / 0.5, `text_heavy` 0.7 / 0.3; `speech`, `screen_text`, `visual`, `keyword` alone; or explicit
`weights={"visual": …, "speech": …, "screen_text": …, "keyword": …}` (normalised to sum 1).

**Moments.** Candidates are time ranges of one file (a transcript window, a screen-text span, a visual
moment of adjacent matching frames). In each file, in order of weighted evidence (strongest first), a
candidate goes to the first moment it overlaps (or touches within `MERGE_GAP_S`): if the moment already
has a hit of that modality (a stronger one), it is absorbed; else it joins, and if it is a match itself
(evidence ≥ `MATCH_EVIDENCE`) the moment's range grows to cover it, as long as the union stays within
`MAX_MOMENT_S` (or the longest member's own length; else it starts a moment of its own). A weak hit adds
its score without stretching the moment (overlapping transcript windows would chain a talk into one
moment). So a moment holds at most one candidate per modality: what is scored and what `why` shows.

**Measured** (`python -m media_assets.demo.synthetic_library`: the six `SYNTHETIC_TALKS`, 192 frames with
random vectors as a random-weight CLIP sees them, 24 transcript windows and 23 screen-text spans embedded
with all-MiniLM-L6-v2, the 12 `SYNTHETIC_QUERIES` whose answer is said or shown once; mean of seeds 0-4):

    mode            hit@1  MRR@10   weighted RRF (same moments)   single modality   hit@1  MRR@10
    balanced        0.983  0.992    0.583  0.656                  speech            0.750  0.808
    text_heavy      0.983  0.992    0.583  0.668                  screen_text       0.583  0.583
    vision_heavy    0.917  0.958    0.583  0.643                  keyword           0.917  0.917
                                                                  visual (random)   0.000  0.017

The fused modes beat every single modality (speech and screen text each find only their half of the
queries; keyword misses paraphrases), and the random visual ranking, weighted 0.7 in vision_heavy, pushes
out one answer in 12 (RRF: 5 in 12). Choices measured on the way: a normal tail instead of the fitted
exponential made a cosine of 0.3 (a weak, one-word overlap) evidence 0.94 in this small library; the mean
excess instead of the median let the query's own matches stretch the tail (an exact screen line, cosine
1.0, read as 0.58); with the tail's floor at a quarter of the scale instead of half, the best of 192 noise
frames read as 0.78. Not measured here: real CLIP weights (the offline model is random), so how much
evidence true visual matches get (z ≈ 3-5 on ViT-B/32 is typical; a 100k-frame library needs the upper end)
is untested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MODALITIES = ("visual", "speech", "screen_text", "keyword")
TEXT_MODALITIES = ("speech", "screen_text", "keyword")
# How a mode's text share is split: speech carries most (it is most of the words of most video); screen text
# and exact words share the rest. A word said scores speech + keyword = 0.7 of the text share, a phrase
# shown screen_text + keyword = 0.6, a paraphrase said 0.4.
TEXT_SPLIT = {"speech": 0.4, "screen_text": 0.3, "keyword": 0.3}
# (text share, visual share) of the blended modes: seed 003's numbers
BLENDS = {"vision_heavy": (0.3, 0.7), "balanced": (0.5, 0.5), "text_heavy": (0.7, 0.3)}
MODES = (*BLENDS, *MODALITIES)

# Up to this many rows of a modality's population are scored to estimate the query's background (4096 rows:
# median and MAD to ±2% of their scale; 4096 × 512 floats is a 2 ms product).
BACKGROUND_SAMPLE = 4096
# Fewer rows than this in a text modality and its background is REFERENCE_SENTENCES instead of the library's
# own rows: in a small library the query's topic fills the top 10% of the rows (8 of the 48 windows of the
# synthetic talks are about stars), which stretches the fitted tail until a clear paraphrase (cosine 0.64,
# the rest of the library ≤ 0.5) reads as chance (evidence 0.34; 0.87 against the reference sentences).
MIN_BACKGROUND = 256
# Evidence 0.5 where chance would produce a score this high once in ten searches (E = 0.1).
E_HALF = 0.1
# The background's tail above this quantile is fitted as an exponential (peaks over threshold): Gaussian
# tails decay too fast for sentence-encoder cosines (topically near rows are common), an exponential fitted
# to the sample's own top 10% follows what the modality does for this query.
TAIL_QUANTILE = 0.9
# The exponential's scale is at least this fraction of the robust scale: fitted to a normal distribution's top
# 10% it is ≈ 0.5 σ (mean excess 0.47 σ), and a small sample's tail can look thinner by chance (the 19 top
# points of 192 random-CLIP frames gave 0.32 σ, which made the best of pure noise look like a match); no
# modality's tail is trusted to fall faster than a normal one's.
TAIL_FLOOR = 0.5
# Scale floor relative to the plain standard deviation: a background whose middle half is one value (a
# library of near-identical frames) has MAD 0; half its standard deviation stands in.
SCALE_FLOOR = 0.5
# Candidates that touch within this many seconds belong to one moment (frames are sampled every second, a
# visual moment ends one step after its last frame; transcript windows and screen spans overlap or abut).
MERGE_GAP_S = 1.0
# A moment grows by merging up to this long (or its longest member's length): enough for a slide and what is
# said over it, short enough to point at.
MAX_MOMENT_S = 60.0
# A modality is listed as matched in `modalities` from this evidence on (more likely a match than chance).
MATCH_EVIDENCE = 0.5

# Words the full-text index drops (tantivy's English stop words, which Lance's tokenizer uses): they are not
# marked as matched either.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split()
)
# Generic sentences, spoken and written, over unrelated subjects: a background for the text encoders when the
# library has too few rows of its own to estimate one (each query is compared with them, never returned).
REFERENCE_SENTENCES = (
    "Thanks everyone for joining, let's get started.",
    "The weather tomorrow will be sunny with a light breeze.",
    "Add two cups of flour and stir until smooth.",
    "He scored in the last minute of the match.",
    "The quarterly numbers came in above expectations.",
    "Please remember to save your work before closing.",
    "We drove along the coast and stopped for lunch.",
    "The train to the airport leaves every twenty minutes.",
    "She planted tomatoes and basil in the garden.",
    "Press the red button to start the machine.",
    "Our next speaker has worked on this for ten years.",
    "Can you hear me now? Let me check the microphone.",
    "The museum is closed on Mondays.",
    "I think we should take a short break here.",
    "The new library opens in the spring.",
    "Turn left at the second traffic light.",
    "The concert was sold out within an hour.",
    "This function returns a list of all the users.",
    "Heat the oil in a large pan over medium heat.",
    "The children played in the park until sunset.",
    "Our flight was delayed by two hours.",
    "The committee will vote on the proposal next week.",
    "Water boils at one hundred degrees Celsius.",
    "The cat is sleeping on the windowsill.",
    "Let me share my screen so you can see the chart.",
    "The hotel room had a view of the mountains.",
    "Prices went up again this month.",
    "Don't forget to subscribe and leave a comment.",
    "The bridge was built more than a century ago.",
    "He apologised for being late to the meeting.",
    "Chapter three",
    "Table of contents",
    "Questions?",
    "Thank you",
    "Agenda",
    "Results and discussion",
    "Sales by region, 2023",
    "Click here to continue",
    "Breaking news",
    "Welcome",
    "Introduction",
    "Summary of findings",
    "Step 1: open the settings menu",
    "Live",
    "Exit",
    "Figure 2",
    "Contact us",
    "Subtitles by the community",
    "Volume",
    "Next episode",
    "Open 9am to 5pm",
    "Loading...",
    "Now playing",
    "Section 4.2",
    "All rights reserved",
    "Terms and conditions apply",
    "Episode 12",
    "Press any key",
    "Scores after round two",
    "Speaker notes",
    "The end",
    "Main street",
    "Sale ends Friday",
    "Please stand by",
)


class FusionError(ValueError):
    """A mode or weights that cannot be used; the message says which and why."""


def mode_weights(mode: str = "balanced", weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """The weight of each modality (summing to 1) for a mode, or for explicit `weights` (which win)."""
    if weights is not None:
        if not isinstance(weights, Mapping) or not weights:
            raise FusionError(f"weights must be a mapping of some of {', '.join(MODALITIES)} to numbers")
        unknown = [name for name in weights if name not in MODALITIES]
        if unknown:
            raise FusionError(f"unknown modalities in weights: {unknown}; known: {', '.join(MODALITIES)}")
        for name, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise FusionError(f"the weight of {name} must be a finite number ≥ 0, got {value!r}")
        total = float(sum(weights.values()))
        if total <= 0:
            raise FusionError("at least one weight must be above 0")
        return {name: float(weights.get(name, 0.0)) / total for name in MODALITIES}
    if mode in BLENDS:
        text, visual = BLENDS[mode]
        return {"visual": visual, **{name: text * share for name, share in TEXT_SPLIT.items()}}
    if mode in MODALITIES:
        return {name: float(name == mode) for name in MODALITIES}
    raise FusionError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


@dataclass(frozen=True)
class Background:
    """The null distribution of one modality's scores for one query, from the query's scores against a sample
    of the rows: a robust location and scale (for z), the tail above the sample's `TAIL_QUANTILE` fitted as
    an exponential (peaks over threshold), and the size of the population searched."""

    location: float  # median
    scale: float  # 1.4826 · MAD (floored, see SCALE_FLOOR)
    population: int  # rows searched: N in E = N · P(score ≥ s)
    threshold: float = 0.0  # the sample's TAIL_QUANTILE
    tail_mean: float = 0.0  # the exponential's scale: median excess of the sample above the threshold / ln 2
    sample: tuple[float, ...] = ()  # sorted, for the empirical part below the threshold

    @classmethod
    def from_scores(cls, scores: np.ndarray, population: int) -> Background:
        scores = np.sort(np.asarray(scores, dtype=np.float64)[np.isfinite(scores)])
        population = max(int(population), 1)
        if not len(scores):
            return cls(0.0, 0.0, population)
        location = float(np.median(scores))
        mad = 1.4826 * float(np.median(np.abs(scores - location)))
        scale = max(mad, SCALE_FLOOR * float(np.std(scores)))
        threshold = float(np.quantile(scores, TAIL_QUANTILE))
        excess = scores[scores > threshold] - threshold
        # the median excess over ln 2 (an exponential's scale from its median): the query's own few matches,
        # which sit in this tail too, cannot stretch it as they would the mean
        tail_mean = max(float(np.median(excess)) / math.log(2) if len(excess) else 0.0, TAIL_FLOOR * scale)
        return cls(location, scale, population, threshold, tail_mean, tuple(scores.tolist()))

    def z(self, scores: np.ndarray | float) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if not self.scale > 1e-9:  # every background row scores the same: a score says nothing beyond that
            return np.where(scores > self.location + 1e-9, 0.0, -1.0) * np.ones_like(scores)
        return (scores - self.location) / self.scale

    def tail(self, scores: np.ndarray | float) -> np.ndarray:
        """P(a background row scores ≥ s): empirical up to the threshold, the fitted exponential above it."""
        scores = np.asarray(scores, dtype=np.float64)
        if not self.sample or not self.tail_mean > 1e-12:
            return np.where(scores > self.location + 1e-9, 0.0, 1.0) * np.ones_like(scores)
        sample = np.asarray(self.sample)
        empirical = 1.0 - np.searchsorted(sample, scores, side="left") / len(sample)
        above = (1.0 - TAIL_QUANTILE) * np.exp(-(scores - self.threshold) / self.tail_mean)
        return np.where(scores > self.threshold, np.minimum(above, 1.0 - TAIL_QUANTILE), np.maximum(empirical, 0.0))

    def evidence(self, scores: np.ndarray | float) -> np.ndarray:
        """1 / (1 + N · P(score ≥ s) / E_HALF): see the module docstring."""
        return 1.0 / (1.0 + self.population * self.tail(scores) / E_HALF)


def keyword_evidence(bm25: np.ndarray | float, single_term: float) -> np.ndarray:
    """1 − exp(−BM25 / `single_term`), the BM25 of one of the table's rarest words
    (`store.text_vectors.bm25_single_term`): see the module docstring."""
    return 1.0 - np.exp(-np.clip(np.asarray(bm25, dtype=np.float64), 0.0, None) / max(single_term, 1e-9))


@dataclass(frozen=True)
class Candidate:
    """One modality's hit: a time range of one file, its raw score and calibrated evidence, and what it is."""

    modality: str
    media_id: int
    start_s: float
    end_s: float
    score: float  # raw: cosine (visual, speech, screen_text) or BM25 (keyword)
    evidence: float  # calibrated, (0, 1]
    z: float = 0.0  # standard deviations above the query's background (the keyword's: its evidence)
    item_id: int = -1  # text_id of a text row, frame_id of the visual moment's best frame
    kind: str = ""  # 'transcript' | 'screen_text' for text rows, 'frames' for visual
    text: str = ""  # the text of a text row
    frame_id: int | None = None  # visual: the best frame
    timestamp_s: float | None = None  # visual: its time


@dataclass
class FusedGroup:
    """Candidates of one file merged into one time range; `members` holds the best candidate per modality."""

    media_id: int
    start_s: float
    end_s: float
    members: dict[str, Candidate] = field(default_factory=dict)
    score: float = 0.0
    tiebreak: float = 0.0
    longest_s: float = 0.0

    def rescore(self, weights: Mapping[str, float]) -> None:
        self.score = float(sum(weights.get(m, 0.0) * c.evidence for m, c in self.members.items()))
        self.tiebreak = float(sum(weights.get(m, 0.0) * c.z for m, c in self.members.items()))

    def matched(self, threshold: float = MATCH_EVIDENCE) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m in self.members and self.members[m].evidence >= threshold)


def fuse(
    candidates: Iterable[Candidate],
    weights: Mapping[str, float],
    *,
    max_span_s: float = MAX_MOMENT_S,
    gap_s: float = MERGE_GAP_S,
) -> list[FusedGroup]:
    """Merge candidates into moments per file and score them (see the module docstring), best first.
    Candidates of modalities weighted 0 are left out."""
    by_media: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        if weights.get(candidate.modality, 0.0) > 0:
            by_media.setdefault(candidate.media_id, []).append(candidate)
    groups: list[FusedGroup] = []
    for media_id, items in by_media.items():
        items.sort(key=lambda c: (-weights[c.modality] * c.evidence, -weights[c.modality] * c.z, c.start_s, c.modality))
        mine: list[FusedGroup] = []
        for candidate in items:
            length = max(candidate.end_s - candidate.start_s, 0.0)
            for group in mine:
                if candidate.start_s > group.end_s + gap_s or candidate.end_s < group.start_s - gap_s:
                    continue
                if candidate.modality in group.members:  # a weaker hit of a modality the moment has: absorbed
                    break
                if candidate.evidence >= MATCH_EVIDENCE:  # a match of its own: the moment takes its time too
                    start, end = min(group.start_s, candidate.start_s), max(group.end_s, candidate.end_s)
                    if end - start > max(max_span_s, group.longest_s, length):
                        continue
                    group.start_s, group.end_s = start, end
                    group.longest_s = max(group.longest_s, length)
                group.members[candidate.modality] = candidate
                break
            else:
                mine.append(
                    FusedGroup(
                        media_id,
                        candidate.start_s,
                        candidate.end_s,
                        {candidate.modality: candidate},
                        longest_s=length,
                    )
                )
        groups.extend(mine)
    for group in groups:
        group.rescore(weights)
    groups.sort(key=lambda g: (-g.score, -g.tiebreak, g.media_id, g.start_s))
    return groups


def reciprocal_rank_fusion(
    ranked: Mapping[str, Sequence[object]], weights: Mapping[str, float], *, k: int = 60
) -> list[tuple[object, float]]:
    """Weighted RRF (Σ w_m / (k + rank_m)) of ranked item lists: the alternative measured against
    calibrated evidence (see the module docstring); kept for the measurement and the tests."""
    totals: dict[object, float] = {}
    for modality, items in ranked.items():
        weight = weights.get(modality, 0.0)
        for rank, item in enumerate(items, start=1):
            totals[item] = totals.get(item, 0.0) + weight / (k + rank)
    return sorted(totals.items(), key=lambda pair: -pair[1])


def mark_words(text: str, words: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """`text` with each word that matches one of `words` wrapped in `**…**` (case-insensitive; a word matches
    when it is the query word or shares its stem: 'foxes' for 'fox'), and the words of the text marked."""
    import re

    stems = {stem(w) for w in words if w}
    if not stems:
        return text, ()
    found: list[str] = []

    def mark(match: re.Match) -> str:
        word = match.group(0)
        if stem(word.lower()) in stems:
            found.append(word)
            return f"**{word}**"
        return word

    marked = re.sub(r"\w+", mark, text)
    return marked, tuple(dict.fromkeys(found))


def stem(word: str) -> str:
    """A light English stem for marking matched words (the index itself uses Snowball): plural and verb
    endings off."""
    word = word.lower()
    for suffix in ("ing", "edly", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word
