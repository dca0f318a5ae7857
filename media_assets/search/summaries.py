"""Search over chapter titles and summaries (`SearchClient.search_summaries`).

Each chapter is one row of kind `summary` in `text_vectors` ("<title>. <summary>", written by the chapters
stage), so a query finds chapters two ways, calibrated as the fused search calibrates them (`search.fusion`):
- **meaning**: the sentence encoder's cosine of the query to the row, turned into evidence against the query's
  background (the summary rows themselves, or the reference sentences while there are fewer than
  `fusion.MIN_BACKGROUND` of them);
- **words**: BM25 of the query's words in the same rows (the full-text index), as evidence 1 − exp(−BM25 / b1).

A chapter's `similarity` is `MEANING_WEIGHT` · meaning + `WORDS_WEIGHT` · words (0..1), ties broken by the
cosine; each hit says why (`ChapterReason`): its cosine and evidence, its BM25 and evidence, the query's
words found in its title and summary, and the summary with them marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from media_assets.search import fusion
from media_assets.store.text_vectors import TextVectorStore, bm25_single_term

SUMMARY_KIND = "summary"
MEANING_WEIGHT, WORDS_WEIGHT = 0.6, 0.4


@dataclass(frozen=True)
class ChapterReason:
    cosine: float | None  # the query's to the chapter's title + summary (None: found by its words only)
    meaning: float  # calibrated evidence of the cosine, 0..1
    bm25: float | None  # None: no query word in it
    words: float  # calibrated evidence of the BM25, 0..1
    matched: tuple[str, ...]  # the query's words found in the title or summary
    marked: str  # the summary with those words marked **…**
    title_marked: str  # the title with them marked


@dataclass(frozen=True)
class ChapterHit:
    """A chapter that matches a query: which file, which part of it, its title and summary, and why."""

    media_id: int
    media_path: str
    partition_key: str
    kind: str
    chapter_id: int
    index: int
    start_s: float
    end_s: float
    title: str
    summary: str
    method: str
    similarity: float
    why: ChapterReason
    best_frame_id: int | None  # the frame shown when the chapter starts (None for an audio file)
    best_timestamp_s: float | None
    thumbnail_path: str | None


@dataclass(frozen=True)
class SummaryMatch:
    """One summary row's scores for a query (before it is joined with its chapter)."""

    chapter_id: int
    media_id: int
    cosine: float | None
    meaning: float
    bm25: float | None
    words: float

    @property
    def score(self) -> float:
        return MEANING_WEIGHT * self.meaning + WORDS_WEIGHT * self.words


def match_summaries(
    store: TextVectorStore,
    query: str,
    query_vector: np.ndarray,
    reference: np.ndarray,
    pool: int,
    media_ids: set[int] | None = None,
) -> list[SummaryMatch]:
    """The summary rows that match `query` by meaning or words, best first (at most 2 × `pool` of them).
    `reference`: the reference sentences' vectors, the background of a small library."""
    rows = store.load_all()
    population = np.flatnonzero(rows.mask([SUMMARY_KIND], media_ids))
    if not len(population):
        return []
    if len(population) < fusion.MIN_BACKGROUND:
        sample = reference @ query_vector
    else:
        step = max(1, len(population) // fusion.BACKGROUND_SAMPLE)
        sample = rows.vectors[population[::step][: fusion.BACKGROUND_SAMPLE]] @ query_vector
    background = fusion.Background.from_scores(sample, len(population))
    found: dict[int, dict] = {}
    hits = store.search_vector(query_vector, pool, kinds=[SUMMARY_KIND], media_ids=media_ids)
    cosines = np.array([h.score for h in hits])
    for hit, evidence in zip(hits, background.evidence(cosines), strict=True):
        found[hit.item_id] = {"media_id": hit.media_id, "cosine": float(hit.score), "meaning": float(evidence)}
    keyword = store.search_text(query, pool, kinds=(SUMMARY_KIND,), media_ids=media_ids)
    if keyword:
        evidence = fusion.keyword_evidence(np.array([h.score for h in keyword]), bm25_single_term(store.count()))
        for hit, e in zip(keyword, evidence, strict=True):
            entry = found.setdefault(hit.item_id, {"media_id": hit.media_id, "cosine": None, "meaning": 0.0})
            entry.update(bm25=float(hit.score), words=float(e))
    matches = [
        SummaryMatch(
            chapter_id=int(chapter_id),
            media_id=int(entry["media_id"]),
            cosine=entry["cosine"],
            meaning=entry["meaning"],
            bm25=entry.get("bm25"),
            words=entry.get("words", 0.0),
        )
        for chapter_id, entry in found.items()
    ]
    matches.sort(key=lambda m: (-m.score, -(m.cosine if m.cosine is not None else -1.0), m.chapter_id))
    return matches


def reason(match: SummaryMatch, title: str, summary: str, words: Sequence[str]) -> ChapterReason:
    marked, matched = fusion.mark_words(summary, words)
    title_marked, in_title = fusion.mark_words(title, words)
    return ChapterReason(
        cosine=match.cosine,
        meaning=match.meaning,
        bm25=match.bm25,
        words=match.words,
        matched=tuple(dict.fromkeys((*in_title, *matched))),
        marked=marked,
        title_marked=title_marked,
    )


_CHAPTER_REASON = pa.struct(
    [
        ("cosine", pa.float64()),
        ("meaning", pa.float64()),
        ("bm25", pa.float64()),
        ("words", pa.float64()),
        ("matched", pa.list_(pa.string())),
        ("marked", pa.string()),
        ("title_marked", pa.string()),
    ]
)

CHAPTER_HIT_SCHEMA = pa.schema(
    [
        ("media_id", pa.int64()),
        ("media_path", pa.string()),
        ("partition_key", pa.string()),
        ("kind", pa.string()),
        ("chapter_id", pa.int64()),
        ("index", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("title", pa.string()),
        ("summary", pa.string()),
        ("method", pa.string()),
        ("similarity", pa.float64()),
        ("why", _CHAPTER_REASON),
        ("best_frame_id", pa.int64()),
        ("best_timestamp_s", pa.float64()),
        ("thumbnail_path", pa.string()),
    ]
)
