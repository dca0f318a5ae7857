"""Chapter titles and summaries from what the warehouse already knows: texts and their vectors in, strings out.

Library code only (no catalog, no Dagster); the chapters stage gives the chapter's sentences (transcript and
screen text, split by `split_sentences`), their sentence-encoder vectors and its shots, and stores what this
returns. Token counts are word pieces: `count_tokens` is any `str -> int` (the text encoder's tokenizer in
the stage), `approximate_tokens` a tokenizer-free estimate when none is given.

**Extractive summary** (the default; offline, deterministic): `extractive_summary` picks sentences by
centroid + MMR (maximal marginal relevance): relevance is the cosine to the chapter's (prior-weighted) mean
vector, and each pick pays `diversity` times its cosine to the closest sentence already picked, so a summary
covers the chapter instead of repeating its commonest point. At most `MAX_SUMMARY_TOKENS` (150) word pieces
in total, indices in time order. A sentence within `NEAR_DUPLICATE` (cos > 0.95) of a picked one is never
picked too (screen text repeated in speech, a sentence said twice). When no sentence fits at all, the result
is the one most central sentence, alone and longer than the budget: that is the signal that it must be cut,
which `summary_text` does with `fit_tokens` (at a word boundary, ending in "…").

**Titles.** A slide's heading when the chapter shows one (`slide_heading`: the tallest line near the top),
else its key phrases (`key_phrases`: 1-3 words, tf·idf against the video's other chapters), joined by
`chapter_title`. A chapter without words gets `visual_description`: counts and names the warehouse holds
(duration, shots, scenes, faces, characters), nothing it would have to guess.

**Abstractive summary** (when `$MEDIA_ASSETS_SUMMARY_MODEL` names a model): `SummaryModel` is a transformers
causal LM (a Hub id such as `google/gemma-2b-it`, or a folder saved with `save_pretrained`) that rewrites
the extract. Greedy decoding, at most `max_new_tokens`, under a time budget (`max_time`); when the budget
stops it, `Generated.over_budget` says so and the caller keeps the extract. Loaded once per process and
device (under a lock, like `TextEncoder.load`); `auto` is CUDA in float16 when present, else the CPU in
float32. `demo.random_llm.write_random_causal_lm` writes a tiny random one for tests.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media_assets.errors import ModelLoadError
from media_assets.models.devices import resolve_device

log = logging.getLogger(__name__)

SUMMARY_MODEL_ENV = "MEDIA_ASSETS_SUMMARY_MODEL"  # a causal LM id or folder; empty or unset: extractive only
MAX_SUMMARY_TOKENS = 150  # seed: "at most 150 tokens"
# Cosine above which two sentences say the same thing. MiniLM (uncased): the same words in capitals 1.0,
# with "!" for "." 0.93, without one "the" 0.94; rewordings lower: MMR's diversity deals with those.
NEAR_DUPLICATE = 0.95
# Of the best sentence's cosine to the centroid. MiniLM, a paragraph on one topic: its sentences 0.64-0.78,
# an off-topic one among them 0.26 (tests/test_summaries.py).
MIN_RELEVANCE = 0.5
ELLIPSIS = "…"  # ends a text cut short by fit_tokens or chapter_title (one word piece for MiniLM)
MAX_TITLE_WORDS = 8

# -- sentences and tokens --------------------------------------------------------------------------------

# never the end of a sentence: titles, Latin shorthands (the word before the ".", lower-cased)
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "e.g", "i.e", "cf", "approx", "ca"}
# not the end of a sentence before a number: "Fig. 3", "No. 5", "p. 12"
_BEFORE_NUMBERS = {"no", "nos", "fig", "figs", "eq", "vol", "p", "pp", "ch", "sec", "art"}
# the end of a sentence only when a capitalised word follows: "etc.", "U.S.", "a.m." (also sentence-final)
_SOFT_ABBREVIATIONS = {"etc", "a.m", "p.m"}
_END = re.compile(r"(?:[.!?]+|…)[\"'”’)\]]*(?=\s|$)")
_WORD_BEFORE = re.compile(r"(\S+)$")
_NEXT_WORD = re.compile(r"\s*[\"'“‘(\[]*(\S)")
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029]+")
_HAS_WORD = re.compile(r"[^\W_]")
_TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\w\s]")


def split_sentences(text: str) -> list[str]:
    """A transcript segment or any text → sentences, split after ".", "!", "?" (and "…"/"..." before a
    capital) and at line breaks. Not split: decimals ("3.5"), abbreviations ("e.g.", "Dr.", "Fig. 3", single
    initials "J."), "etc."/"U.S."/"a.m." unless a capitalised word follows. Pieces are stripped; pieces
    without a letter or digit ("...", "-") are dropped."""
    sentences: list[str] = []
    for line in _LINE_BREAK.split(text or ""):
        start = 0
        for match in _END.finditer(line):
            if _ends_sentence(line, match):
                sentences.append(line[start : match.end()])
                start = match.end()
        sentences.append(line[start:])
    return [piece for piece in (s.strip() for s in sentences) if _HAS_WORD.search(piece)]


def _ends_sentence(line: str, match: re.Match) -> bool:
    marks = match.group().rstrip("\"'”’)]")
    after = _NEXT_WORD.match(line, match.end())
    next_char = after.group(1) if after else ""
    capital_next = not next_char or next_char.isupper()
    if marks in ("...", "…"):
        return capital_next  # an ellipsis inside a sentence is a pause ("so... we went")
    if marks != ".":
        return True  # "!", "?", "?!", ".."
    before = _WORD_BEFORE.search(line, 0, match.start())
    word = before.group(1).lstrip("\"'“‘([").lower() if before else ""
    if word in _ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isalpha() and word != "i" and before.group(1)[-1].isupper():
        return False  # an initial: "J. Smith" (but "so did I. Then")
    if word in _BEFORE_NUMBERS and next_char.isdigit():
        return False
    if word in _SOFT_ABBREVIATIONS or re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):
        return capital_next
    return True


def approximate_tokens(text: str) -> int:
    """A tokenizer-free count of word pieces: a word of up to 7 letters is one, a longer one one more per 4
    letters; a number one per 3 digits; every other mark one. On English it is within ≈ 10 % of MiniLM's
    WordPiece count, mostly above it (so a budget counted with it holds for the real tokenizer)."""
    count = 0
    for match in _TOKEN.finditer(text or ""):
        token = match.group()
        if token.isdigit():
            count += math.ceil(len(token) / 3)
        elif token[0].isalpha():
            count += 1 + max(0, math.ceil((len(token) - 7) / 4))
        else:
            count += 1
    return count


def fit_tokens(text: str, max_tokens: int, count_tokens: Callable[[str], int] = approximate_tokens) -> str:
    """`text` (stripped) when it has at most `max_tokens`, else its longest prefix that ends at a word
    boundary and, with `ELLIPSIS` appended (the sign that it was cut; trailing ",;:" dropped), has at most
    `max_tokens`. '' when not even the first word fits (or max_tokens < 1)."""
    text = (text or "").strip()
    if count_tokens(text) <= max_tokens:
        return text
    if max_tokens < 1:
        return ""
    ends = [m.end() for m in re.finditer(r"\S+", text)]

    def cut(words: int) -> str:
        return text[: ends[words - 1]].rstrip(",;:-–—") + ELLIPSIS

    low, high = 0, len(ends) - 1  # the whole text does not fit; the largest prefix that does, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(cut(middle)) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return cut(low) if low else ""


# -- extractive summary ----------------------------------------------------------------------------------


def extractive_summary(
    sentences: Sequence[str],
    vectors: np.ndarray,
    *,
    max_tokens: int = MAX_SUMMARY_TOKENS,
    count_tokens: Callable[[str], int] = approximate_tokens,
    diversity: float = 0.3,
    weights: Sequence[float] | None = None,
    min_relevance: float = MIN_RELEVANCE,
) -> list[int]:
    """Indices of the central, non-redundant sentences, in their original order (the summary reads in time
    order), at most `max_tokens` in total.

    `vectors`: float32 [n, d], L2-normalised, one per sentence. Greedy MMR: each step takes the sentence of
    highest `(1 - diversity)·w·cos(s, centroid) − diversity·max cos(s, chosen)` among those that still fit
    the budget (a long one is passed over for a shorter one that fits), where the centroid is the
    `weights`-weighted mean vector and `w` the sentence's weight (default 1; a weight of 0 excludes the
    sentence). A sentence with cos > `NEAR_DUPLICATE` to a chosen one is never chosen, nor one whose cosine
    to the centroid is below `min_relevance` times the best one's (an aside: the budget is a ceiling, not a
    quota to fill with whatever is short enough).

    When no sentence fits (every one is longer than `max_tokens`), the result is the single most central
    sentence: a one-index result whose sentence has more than `max_tokens` is the signal to cut it, which
    `summary_text` does (`fit_tokens`). n == 0 → []."""
    n = len(sentences)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != n:
        raise ValueError(f"vectors must be [n, d] with n = {n} sentences, got shape {vectors.shape}")
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be in [0, 1], got {diversity}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if n == 0:
        return []
    prior = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if prior.shape != (n,) or not np.all(np.isfinite(prior)) or np.any(prior < 0):
        raise ValueError(f"weights must be {n} finite numbers ≥ 0, got {weights!r}")
    available = (prior > 0) & np.array([bool(s and s.strip()) for s in sentences])
    if not available.any():
        return []
    centroid = (prior[available, None] * vectors[available]).sum(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    centrality = vectors @ centroid
    relevance = prior * centrality
    available &= centrality >= min_relevance * float(centrality[available].max())
    lengths = np.array([count_tokens(s) if ok else 0 for s, ok in zip(sentences, available, strict=True)])

    chosen: list[int] = []
    redundancy = np.zeros(n)  # max cos to a chosen sentence (0 before the first pick)
    used = 0
    while True:
        candidates = np.flatnonzero(available & (lengths <= max_tokens - used))
        if candidates.size == 0:
            break
        scores = (1.0 - diversity) * relevance[candidates] - diversity * redundancy[candidates]
        pick = int(candidates[np.argmax(scores)])  # ties: the earliest
        chosen.append(pick)
        used += int(lengths[pick])
        similarity = vectors @ vectors[pick]
        redundancy = np.maximum(redundancy, similarity) if len(chosen) > 1 else similarity.astype(np.float64)
        available &= similarity <= NEAR_DUPLICATE
        available[pick] = False
    if not chosen:  # every sentence is longer than the budget: the most central one, to be cut
        eligible = np.flatnonzero(available)  # unchanged: the loop stopped before its first pick
        chosen = [int(eligible[np.argmax(relevance[eligible])])]
    return sorted(chosen)


def summary_text(
    sentences: Sequence[str],
    indices: Sequence[int],
    *,
    max_tokens: int = MAX_SUMMARY_TOKENS,
    count_tokens: Callable[[str], int] = approximate_tokens,
) -> str:
    """The chosen sentences (`extractive_summary`'s indices) joined by spaces, cut by `fit_tokens` when they
    have more than `max_tokens` (a single sentence longer than the budget)."""
    text = " ".join(" ".join(sentences[i].split()) for i in indices)
    return fit_tokens(text, max_tokens, count_tokens)


# -- key phrases -----------------------------------------------------------------------------------------

# Words that neither start nor end a phrase: English function words, and what speech adds ("okay", "gonna").
STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during
    each even ever every few for from further get gets getting got had hadn't has hasn't have haven't having he
    he'd he'll he's her here here's hers herself him himself his how how's however i i'd i'll i'm i've if in
    into is isn't it it's its itself just let let's many may me might more most much must mustn't my myself
    next no nor not now of off on once one only or other ought our ours ourselves out over own per quite rather
    really same say says said see seen shall shan't she she'd she'll she's should shouldn't since so some such
    than that that's the their theirs them themselves then there there's these they they'd they'll they're
    they've thing things this those though through thus to too under until up upon us very via was wasn't we
    we'd we'll we're we've well were weren't what what's when when's where where's whether which while who
    who's whom whose why why's will with within without won't would wouldn't yes yet you you'd you'll you're
    you've your yours yourself yourselves
    actually alright basically gonna gotta kind kinda know like literally lot lots maybe mean okay ok oh right
    sort stuff sure wanna yeah yep hey hi hello go going goes went come comes came make makes made want
    um uh uhm erm er ah hmm mhm mm""".split()
)
_FILLERS = frozenset("um uh uhm erm er ah hmm mhm mm".split())  # not even inside a phrase
_PHRASE_BREAK = re.compile(r"[.,;:!?()\[\]{}\"“”«»…/|]|\s[-–—]+\s|[–—]|\n")
_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
MULTIWORD_MIN_COUNT = 2  # a 2-3 word phrase said once is a word sequence, not yet a phrase
PHRASE_LENGTH_BONUS = 0.5  # score × (1 + 0.5·(words − 1)): "drilling rig" said as often as "rig" wins


def _chunks(texts: Sequence[str]) -> list[list[str]]:
    """Runs of words between punctuation marks: phrases never cross them."""
    return [
        words
        for text in texts
        for piece in _PHRASE_BREAK.split(text or "")
        if (words := [w.replace("’", "'") for w in _WORD.findall(piece)])
    ]


def _edge_word(word: str) -> bool:
    return len(word) > 1 and not word.isdigit() and word not in STOP_WORDS


def _phrase_counts(chunks: list[list[str]]) -> Counter:
    counts: Counter = Counter()
    for words in chunks:
        lowered = [w.lower() for w in words]
        for start in range(len(lowered)):
            if not _edge_word(lowered[start]):
                continue
            for size in (1, 2, 3):
                phrase = tuple(lowered[start : start + size])
                if len(phrase) < size or any(w in _FILLERS for w in phrase):
                    break
                if _edge_word(phrase[-1]):
                    counts[phrase] += 1
    return counts


@functools.lru_cache(maxsize=4)
def _documents(corpus: tuple[tuple[str, ...], ...]) -> list[set[tuple[str, ...]]]:
    """Each chapter's phrases (cached: the stage asks for every chapter of a video with one corpus)."""
    return [set(_phrase_counts(_chunks(chapter))) for chapter in corpus]


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    return any(longer[i : i + len(shorter)] == shorter for i in range(len(longer) - len(shorter) + 1))


def key_phrases(texts: Sequence[str], corpus: Sequence[Sequence[str]], k: int = 3) -> list[str]:
    """The chapter's key phrases, best first: 1-3 words, without stop words (`STOP_WORDS`) or numbers at
    either end, never across punctuation; a phrase of 2-3 words must occur at least `MULTIWORD_MIN_COUNT`
    times. Score: tf · idf · (1 + `PHRASE_LENGTH_BONUS`·(words − 1)), tf the phrase's count in `texts`, idf
    = ln((1 + N) / (1 + df)) + 1 over the N chapters of `corpus` (every chapter's texts, this one included;
    one chapter: tf alone). A phrase contained in a better one, or containing one, is left out. Ties: the
    longer, then the earlier. Words are shown lower-cased, except those the chapter never writes in lower
    case inside a sentence ("Ana", "North Sea"; a sentence's first word only counts when in capitals: "NASA"),
    which keep their most frequent spelling."""
    chunks = _chunks(texts)
    counts = _phrase_counts(chunks)
    if not counts or k < 1:
        return []
    documents = _documents(tuple((c,) if isinstance(c, str) else tuple(c) for c in corpus))
    order = {phrase: i for i, phrase in enumerate(counts)}  # first occurrence

    def score(phrase: tuple[str, ...]) -> float:
        df = sum(phrase in document for document in documents)
        idf = math.log((1 + len(documents)) / (1 + df)) + 1.0
        return counts[phrase] * idf * (1.0 + PHRASE_LENGTH_BONUS * (len(phrase) - 1))

    candidates = [p for p, c in counts.items() if len(p) == 1 or c >= MULTIWORD_MIN_COUNT]
    candidates.sort(key=lambda p: (-score(p), -len(p), order[p]))
    chosen: list[tuple[str, ...]] = []
    for phrase in candidates:
        if not any(_contains(c, phrase) or _contains(phrase, c) for c in chosen):
            chosen.append(phrase)
            if len(chosen) == k:
                break
    inside: dict[str, Counter] = {}  # spellings inside sentences; a sentence's first word says nothing of case
    first: dict[str, Counter] = {}
    for text in texts:
        for sentence in split_sentences(text):
            for position, word in enumerate(_WORD.findall(sentence)):
                word = word.replace("’", "'")
                (inside if position else first).setdefault(word.lower(), Counter())[word] += 1

    def shown(word: str) -> str:
        forms = inside.get(word)
        if forms:
            return word if word in forms else forms.most_common(1)[0][0]
        initial = first.get(word, Counter()).most_common(1)
        return initial[0][0] if initial and len(word) > 1 and initial[0][0].isupper() else word  # "NASA"

    return [" ".join(shown(w) for w in phrase) for phrase in chosen]


# -- slide headings and titles -----------------------------------------------------------------------------

HEADING_UPPER_PART = 0.6  # a heading's middle lies in the top 60 % of the frame (burnt-in subtitles are lower)
HEADING_TALLER = 1.15  # a heading is this much taller than the median of the slide's other lines
HEADING_MIN_HEIGHT = 0.02  # of the frame's height (14 px at 720p): smaller text is a footnote, never a heading
SINGLE_LINE_MIN_HEIGHT = 0.04  # a line alone on a slide is a heading from this height (29 px at 720p) up
SAME_LINE_RATIO = 1.15  # lines within this height ratio are set in one size (a heading on two rows)
HEADING_GAP = 0.75  # same-size lines: the top line is a heading when the gap below it is ≥ 0.75 line heights
HEADING_GAP_RATIO = 1.5  # ... and ≥ 1.5 times the usual gap between the lines under it


@dataclass(frozen=True)
class _Line:
    text: str
    left: float
    top: float
    bottom: float
    height: float

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


def _line(text: str, box: Sequence[float]) -> _Line:
    if len(box) != 8:
        raise ValueError(f"an OCR box is 8 numbers (x0 y0 .. x3 y3), got {len(box)} for {text!r}")
    xs, ys = [float(v) for v in box[0::2]], [float(v) for v in box[1::2]]
    height = ((ys[3] - ys[0]) + (ys[2] - ys[1])) / 2  # the left and right sides (clockwise from the top left)
    return _Line(" ".join(text.split()), min(xs), min(ys), max(ys), max(height, max(ys) - min(ys), 0.0))


def _similar(a: float, b: float) -> bool:
    return max(a, b) <= SAME_LINE_RATIO * min(a, b)


def _heading_group(lines: list[_Line], head: _Line) -> list[_Line]:
    """The heading line with those beside or right under/over it in the same size (a title on two rows)."""
    group = [head]
    for line in sorted(lines, key=lambda x: abs(x.middle - head.middle)):
        if line is head or len(group) == 3 or not _similar(line.height, head.height):
            continue
        top, bottom = min(g.top for g in group), max(g.bottom for g in group)
        same_row = abs(line.middle - head.middle) < head.height / 2
        gap = max(line.top - bottom, top - line.bottom)
        if same_row or gap < 0.6 * head.height:
            group.append(line)
    return sorted(group, key=lambda x: (round(x.middle / max(head.height, 1e-6)), x.left))


def slide_heading(lines: Sequence[tuple[str, Sequence[float]]]) -> str | None:
    """The heading of a slide from its OCR lines: (text, box as 8 floats x0 y0 .. x3 y3, fractions of the
    frame, clockwise from the top left). None when nothing looks like a heading. Lines without a letter or
    digit are ignored. The rules, in order:

    - Candidates are lines whose middle is in the top `HEADING_UPPER_PART` of the frame and at least
      `HEADING_MIN_HEIGHT` tall.
    - One line (or one block of same-size lines and nothing else): the heading when it is at least
      `SINGLE_LINE_MIN_HEIGHT` tall (a title slide), else None (a caption, a watermark).
    - The tallest candidate, with the same-size lines beside it or right under it (a heading on two rows,
      read in order), is the heading when it is `HEADING_TALLER` than the median of the other lines.
    - Else, when the lines are all about one size: the top line is the heading when it is alone on its row
      and the gap under it is at least `HEADING_GAP` line heights and `HEADING_GAP_RATIO` times the median
      gap between the lines below (a title set in the body's size). Evenly spaced lines: None."""
    parsed = [_line(text, box) for text, box in lines if _HAS_WORD.search(text or "")]
    parsed.sort(key=lambda x: (x.top, x.left))
    candidates = [x for x in parsed if x.middle <= HEADING_UPPER_PART and x.height >= HEADING_MIN_HEIGHT]
    if not candidates:
        return None
    head = max(candidates, key=lambda x: (x.height, -x.top))
    group = _heading_group(candidates, head)
    others = [x for x in parsed if all(x is not g for g in group)]
    if not others:
        return _join(group) if head.height >= SINGLE_LINE_MIN_HEIGHT else None
    if head.height >= HEADING_TALLER * float(np.median([x.height for x in others])):
        return _join(group)
    top, below = parsed[0], parsed[1:]
    if all(top is not c for c in candidates) or any(abs(x.middle - top.middle) < top.height / 2 for x in below):
        return None  # the top line is low or small, or shares its row
    if SAME_LINE_RATIO * top.height < float(np.median([x.height for x in below])):
        return None  # smaller than the body: a header line ("Confidential"), not a title
    gap = below[0].top - top.bottom
    gaps = [b.top - a.bottom for a, b in zip(below, below[1:], strict=False)]
    usual = float(np.median(gaps)) if gaps else 0.0
    if gap >= HEADING_GAP * top.height and gap >= HEADING_GAP_RATIO * usual:
        return top.text
    return None


def _join(group: list[_Line]) -> str:
    return " ".join(line.text for line in group)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:] if text[:1].islower() else text


def chapter_title(heading: str | None, phrases: Sequence[str], *, max_words: int = MAX_TITLE_WORDS) -> str:
    """The heading when there is one (whitespace collapsed, trailing ".,;:" dropped; cut to `max_words`
    words and ended with `ELLIPSIS` when longer), else the key phrases joined by ", " as long as they fit
    in `max_words` ("Drilling rig, north field"); the first letter capitalised (the rest as written: "NASA"
    stays). '' when there is neither."""
    words = (heading or "").split()
    if words:
        title = " ".join(words[:max_words]).rstrip(".,;:")
        if len(words) > max_words:
            title = title.rstrip(",;:-–—") + ELLIPSIS
        return _capitalised(title)
    kept: list[str] = []
    used = 0
    for phrase in phrases:
        size = len(phrase.split())
        if not size or (kept and used + size > max_words):
            continue
        kept.append(" ".join(phrase.split()[:max_words]))
        used += size
    return _capitalised(", ".join(kept))


# -- a chapter without words -------------------------------------------------------------------------------

SHOT_KIND_WORDS = {"static": "static", "dynamic": "moving"}  # models.shots.SHOT_KINDS as a reader says them
MAX_NAMES = 5  # names listed before "and N more"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{max(seconds, 0.0):.1f} s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _names(names: Sequence[str]) -> list[str]:
    unique = list(dict.fromkeys(" ".join(n.split()) for n in names if n and n.strip()))
    if len(unique) > MAX_NAMES:
        return [*unique[:MAX_NAMES], f"{len(unique) - MAX_NAMES} more"]
    return unique


def _listed(names: list[str]) -> str:
    if len(names) > 1 and names[-1].endswith(" more"):
        return ", ".join(names[:-1]) + " and " + names[-1]
    return ", ".join(names)


def visual_description(
    *,
    duration_s: float,
    shot_kinds: Sequence[str],
    scene_names: Sequence[str] = (),
    character_names: Sequence[str] = (),
    faces: int = 0,
) -> str:
    """An honest description of a chapter without words, from counts and names the warehouse holds:
    "1 min 20 s, 4 shots (3 static, 1 moving). Scene: Beach. 2 faces; character: Ana." ("2 static shots"
    when all are of one kind.) Shot kinds by their counts, most first (`SHOT_KIND_WORDS`; other kinds as
    given, blank ones counted but not named); scene and character names once each, in the order given, at
    most `MAX_NAMES` ("and 2 more"); singular for one ("Scene:", "1 face", "character:"). Nothing that is
    not given is said."""
    kinds = Counter(SHOT_KIND_WORDS.get(k, k) for k in shot_kinds if k and k.strip())
    first = _duration(duration_s)
    if len(kinds) == 1 and sum(kinds.values()) == len(shot_kinds):
        first += f", {len(shot_kinds)} {next(iter(kinds))} shot" + ("" if len(shot_kinds) == 1 else "s")
    elif shot_kinds:
        first += ", " + _plural(len(shot_kinds), "shot")
        if kinds:
            first += " (" + ", ".join(f"{count} {kind}" for kind, count in kinds.most_common()) + ")"
    parts = [first + "."]
    scenes = _names(scene_names)
    if scenes:
        parts.append(("Scene: " if len(scenes) == 1 else "Scenes: ") + _listed(scenes) + ".")
    characters = _names(character_names)
    label = "character: " if len(characters) == 1 else "characters: "
    if faces > 0 and characters:
        parts.append(f"{_plural(faces, 'face')}; {label}{_listed(characters)}.")
    elif faces > 0:
        parts.append(_plural(faces, "face") + ".")
    elif characters:
        parts.append(_capitalised(label) + _listed(characters) + ".")
    return " ".join(parts)


# -- abstractive summary with a causal LM ------------------------------------------------------------------

PROMPT = (
    "Summarise this part of a video in two or three plain sentences, at most {words} words. "
    "Use only what the text says.{title}\n\nText:\n{extract}"
)
PLAIN_PROMPT_END = "\n\nSummary:"  # after PROMPT, for a tokenizer without a chat template


def default_summary_model() -> str | None:
    """$MEDIA_ASSETS_SUMMARY_MODEL, or None when it is empty or unset (extractive summaries only)."""
    return os.environ.get(SUMMARY_MODEL_ENV, "").strip() or None


@dataclass(frozen=True)
class Generated:
    """What `SummaryModel.summarize` produced: the text (stripped, the prompt never included), the seconds
    `generate` took, how many tokens it generated (an eos that ended it included), and whether the time
    budget stopped it before it was done (no eos, fewer than max_new_tokens): then the caller keeps the
    extract."""

    text: str
    elapsed_s: float
    tokens: int
    over_budget: bool


def _looks_like_path(model: str | os.PathLike) -> bool:
    """A folder rather than a Hub id ("org/name"): a PathLike, or a string that starts like a path or has
    more than one "/"."""
    if isinstance(model, os.PathLike):
        return True
    text = str(model)
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text or text.endswith("/")


class SummaryModel:
    """A loaded causal LM that rewrites an extract into an abstractive summary. Create with
    `SummaryModel.load(model_id_or_folder, device=...)`."""

    def __init__(self, model_id: str, tokenizer, model, device: str):
        self.model_id = model_id
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self._lock = threading.Lock()

    _cache: dict[tuple[str, str], SummaryModel] = {}
    _cache_lock = threading.Lock()

    @classmethod
    def load(cls, model: str | os.PathLike, device: str = "auto") -> SummaryModel:
        """Load (once per process and device) a transformers causal LM and its tokenizer by Hub id or folder.
        Raises `ModelLoadError`: naming the folder when it is not there, else with the reason (and, for a
        Hub id, how to run offline)."""
        model_id = os.path.expanduser(os.fspath(model)) if _looks_like_path(model) else str(model).strip()
        if not model_id:
            raise ModelLoadError(f"no summary model given (${SUMMARY_MODEL_ENV} is empty: extractive summaries)")
        resolved = resolve_device(device)
        key = (model_id, resolved)
        with cls._cache_lock:
            if key not in cls._cache:
                cls._cache[key] = cls._load(model_id, resolved, is_path=_looks_like_path(model))
            return cls._cache[key]

    @classmethod
    def _load(cls, model_id: str, device: str, *, is_path: bool) -> SummaryModel:
        started = time.perf_counter()
        local = Path(model_id)
        if is_path and not local.is_dir():
            raise ModelLoadError(
                f"cannot load summary model: there is no folder {model_id!r}; give a causal LM's Hub id or a "
                f"folder it was saved to with save_pretrained (${SUMMARY_MODEL_ENV})"
            )
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_id)
            model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype)
        except Exception as exc:  # OSError, ValueError, HF hub errors: all mean "cannot load"
            hint = ""
            if not local.is_dir():
                hint = (
                    f" (not a local folder; without Hugging Face Hub access set ${SUMMARY_MODEL_ENV} to a folder "
                    "saved with save_pretrained, or to the id of a model in the Hub cache with HF_HUB_OFFLINE=1)"
                )
            raise ModelLoadError(f"cannot load summary model {model_id!r}: {exc}{hint}") from exc
        model.to(device).eval()
        log.info("loaded summary model %s on %s in %.1fs", model_id, device, time.perf_counter() - started)
        return cls(model_id, tokenizer, model, device)

    def _prompt(self, extract: str, title: str, max_new_tokens: int) -> str:
        words = max(10, int(max_new_tokens * 0.7))  # ≈ 0.75 English words a token, with room to finish
        title = f" The chapter's title: {title.strip()}." if title.strip() else ""
        content = PROMPT.format(words=words, title=title, extract=extract.strip())
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": content}]  # no system turn: Gemma's template has none
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return content + PLAIN_PROMPT_END

    def _inputs(self, extract: str, title: str, max_new_tokens: int):
        """The prompt's token ids; the extract is cut (`fit_tokens`) when the prompt and the answer would
        not fit in the model's context."""
        chat = bool(getattr(self.tokenizer, "chat_template", None))

        def encode(text: str):
            # a chat template writes its own special tokens (Gemma's <bos>); a plain prompt gets the usual ones
            return self.tokenizer(text, return_tensors="pt", add_special_tokens=not chat, verbose=False)

        inputs = encode(self._prompt(extract, title, max_new_tokens))
        context = getattr(self.model.config, "max_position_embeddings", None)
        length = int(inputs["input_ids"].shape[1])
        if context and length + max_new_tokens > context:

            def count(text: str) -> int:
                return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

            room = context - max_new_tokens - (length - count(extract))
            if room < 1:
                raise ValueError(f"{self.model_id}: a context of {context} tokens has no room for the prompt")
            inputs = encode(self._prompt(fit_tokens(extract, room, count), title, max_new_tokens))
        return inputs

    def summarize(
        self, extract: str, *, title: str = "", budget_s: float = 20.0, max_new_tokens: int = MAX_SUMMARY_TOKENS
    ) -> Generated:
        """The extract rewritten: the prompt (the tokenizer's chat template when it has one, else a plain
        instruction ending in "Summary:") → greedy `generate` with `max_new_tokens` and `max_time=budget_s`.
        `over_budget` when the time limit stopped it (elapsed ≥ budget, no eos, fewer than max_new_tokens)."""
        import torch

        if max_new_tokens < 1 or budget_s <= 0:
            raise ValueError(f"max_new_tokens and budget_s must be positive, got {max_new_tokens}, {budget_s}")
        inputs = self._inputs(extract, title, max_new_tokens).to(self.device)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        eos_ids |= {self.tokenizer.eos_token_id} - {None}
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(eos_ids, default=0)
        with self._lock, torch.inference_mode():
            started = time.perf_counter()
            output = self.model.generate(
                **inputs,
                do_sample=False,
                num_beams=1,
                temperature=None,  # greedy: the checkpoint's sampling defaults (Gemma's) do not apply
                top_p=None,
                top_k=None,
                max_new_tokens=max_new_tokens,
                max_time=budget_s,
                pad_token_id=pad_id,
            )
            elapsed = time.perf_counter() - started
        new = output[0, inputs["input_ids"].shape[1] :][:max_new_tokens].tolist()
        finished = (bool(new) and new[-1] in eos_ids) or len(new) >= max_new_tokens
        text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        text = re.sub(r"^summary:\s*", "", text, flags=re.IGNORECASE)
        return Generated(
            text=text, elapsed_s=elapsed, tokens=len(new), over_budget=not finished and elapsed >= budget_s
        )
