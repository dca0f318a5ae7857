"""The search client: frames, moments, timelines and similar videos for text, images and frames.

```python
from media_assets import SearchClient, SearchFilter
client = SearchClient(warehouse="warehouse")
hits = client.search_text("a cat on a sofa", k=10)                      # frames, best first
hits = client.search_text("a cat", filters=SearchFilter(media=("clips/*",), kind="video"), offset=10)
client.search_multi(["a beach", "a dog"], mode="and")                   # frames that match both
client.search_expression("2×'beach' + photo.jpg − 'people'")           # rclip-style weighted sum
client.moments("a cat")                                                 # adjacent matching frames → time ranges
client.timeline("a cat", media_id)                                      # score per time bucket (a heatmap)
client.similar_videos(media_id)                                         # videos sharing shots with this one
hits.to_polars()
client.search("the quarterly forecast", mode="balanced")                # moments: seen, said, shown, exact words
client.search_in(media_id, "dividend", mode="keyword")                  # within one file
client.chapters(media_id)                                               # a file's table of contents
client.search_summaries("how the rig is drilled")                       # chapters by their titles and summaries
```

`search`/`search_in` fuse four modalities into moments that say why they matched (`FusedMoment.why`: the
words said with the query's words marked and their time, the line on screen, the visual similarity): CLIP
frames (`moments`), transcript windows and screen-text spans (sentence vectors in `text_vectors`), and
their exact words (BM25). Scores are calibrated per modality and query into evidence and weighted by mode;
`search.fusion` says how and what was measured. A warehouse without text searches frames only, one without
frames (audio files) text only.

Search goes through our HNSW index (`search.index`, built by `stages.hnsw_index`) when it is present and current, and
is exact otherwise (a dot product over every stored frame vector, with a logged warning saying why);
vectors are L2-normalised, so the dot product is the cosine. Each hit carries
`similarity = (1 + cosine) / 2`, which maps cosine's [-1, 1] onto
[0, 1]: higher is better, 1 is the same direction, 0.5 is unrelated (orthogonal). CLIP's text-to-image
cosines are small in absolute terms (≈0.2-0.35 for good matches), so compare similarities with each other,
not with a fixed cut-off.

Queries are encoded with the model that made the stored vectors (their `model_id`), so a search always
compares like with like; the vectors of the last 256 text queries are kept. Results come with their
catalog rows from an in-memory copy of `frames` and `media` (`frame_lookup`), refreshed when the catalog
changes. Safe to use from several threads at once.

Filters (`SearchFilter`): media paths or globs (relative to the media root, `clips/*.mp4`), media kind,
a time range within the files, and a cluster id (a scene cluster: the frames of its shots; a character
cluster: the frames of the shots its faces are in).

Moments: the best `candidates` frames for the query (default max(200, 20·k)), plus the near-duplicate
frames that repeat them, are grouped per file; in each file the frames within `match_margin` (cosine) of
its best frame match, and matching frames adjacent in sampling order (at most `max_gap` unmatched sampled
frames between them) merge into one moment `[start_s, end_s)` scored by its best frame.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from media_assets.errors import MediaReadError
from media_assets.feedback.table import FeedbackWriter
from media_assets.ids import MAX_ID
from media_assets.media.decoding import load_image
from media_assets.models.adapter import EmbeddingAdapter
from media_assets.models.clip import ClipEncoder, check_text_quantization, default_text_quantization
from media_assets.models.text import TextEncoder
from media_assets.search import fusion, summaries
from media_assets.search.frame_lookup import FrameLookup, FrameTable
from media_assets.search.index import IndexReader
from media_assets.search.query_terms import QueryExpressionError, QueryTerm, parse_expression
from media_assets.search.summaries import ChapterHit
from media_assets.store import catalog
from media_assets.store.adapters import current_version, serving_store, version_dir
from media_assets.store.chapters import Chapters, ChaptersNotFoundError, read_chapters
from media_assets.store.text_vectors import TextHit, TextVectorStore, bm25_single_term, query_words
from media_assets.store.vectors import SHOT_VECTORS, VectorStore
from media_assets.warehouse import Warehouse

log = logging.getLogger(__name__)

MAX_K = 1000
MAX_OFFSET = 10_000
MAX_QUERY_CHARS = 2000
MAX_QUERIES = 16
TEXT_CACHE_SIZE = 256
# The index's beam width for queries. Text queries sit far from every frame (CLIP's modality gap), where a
# graph index needs a wider beam than for frames as queries: on 100k frames (benchmarks/search.py) recall@20
# of text queries against exact search is 0.34 at ef=50 (frames as queries: 1.00), 0.86 at 400, 0.96 at
# 800 for 2.9 ms p95 on one thread.
QUERY_EF = 800
# A frame matches within its file when its cosine is at most this far below the file's best frame (CLIP's
# text-to-image cosines of relevant frames spread over ≈0.03; unrelated ones sit ≈0.05-0.1 lower).
MOMENT_MATCH_MARGIN = 0.03
KINDS = ("video", "image", "audio")


class SearchError(ValueError):
    """A query that cannot be answered as asked (bad k, empty text, unknown id, …)."""


class UnknownIdError(SearchError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class SearchHit:
    frame_id: int
    media_id: int
    media_path: str
    partition_key: str
    kind: str
    timestamp_s: float
    thumbnail_path: str
    similarity: float


_HIT_SCHEMA = pa.schema(
    [
        ("frame_id", pa.int64()),
        ("media_id", pa.int64()),
        ("media_path", pa.string()),
        ("partition_key", pa.string()),
        ("kind", pa.string()),
        ("timestamp_s", pa.float64()),
        ("thumbnail_path", pa.string()),
        ("similarity", pa.float64()),
    ]
)


class SearchResults(Sequence[SearchHit]):
    """Hits, best first. Index, iterate, or convert with `to_polars()`, `to_arrow()`, `to_dicts()`."""

    def __init__(self, hits: list[SearchHit]):
        self._hits = hits

    def __len__(self) -> int:
        return len(self._hits)

    def __getitem__(self, index):
        return self._hits[index]

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self._hits)

    def __repr__(self) -> str:
        return f"SearchResults({len(self)} hits)"

    def to_dicts(self) -> list[dict]:
        return [asdict(hit) for hit in self._hits]

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_pylist(self.to_dicts(), schema=_HIT_SCHEMA)

    def to_polars(self):
        import polars as pl

        return pl.from_arrow(self.to_arrow())


@dataclass(frozen=True)
class SearchFilter:
    """Which frames a search may return. Empty fields do not filter."""

    media: tuple[str, ...] = ()  # partition keys or globs ('clips/*', '*.mp4'), matched against the key
    kind: str | None = None  # 'video' | 'image'
    start_s: float | None = None  # frames at or after this time in their file
    end_s: float | None = None  # frames at or before this time
    cluster_id: int | None = None  # frames of the shots in this cluster (scene) or showing its faces (character)

    def __post_init__(self) -> None:
        if isinstance(self.media, str):
            object.__setattr__(self, "media", (self.media,))
        if self.kind is not None and self.kind not in KINDS:
            raise SearchError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("start_s", "end_s"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value < 0 or value != value):
                raise SearchError(f"{name} must be a non-negative number of seconds, got {value!r}")
        if self.start_s is not None and self.end_s is not None and self.end_s < self.start_s:
            raise SearchError(f"end_s ({self.end_s}) is before start_s ({self.start_s})")
        if self.cluster_id is not None and (isinstance(self.cluster_id, bool) or not isinstance(self.cluster_id, int)):
            raise SearchError(f"cluster_id must be an integer, got {self.cluster_id!r}")

    @property
    def is_empty(self) -> bool:
        return (
            not self.media
            and self.kind is None
            and self.start_s is None
            and self.end_s is None
            and self.cluster_id is None
        )


@dataclass(frozen=True)
class Moment:
    """A time range of one file where the query matches: adjacent matching frames merged."""

    media_id: int
    media_path: str
    partition_key: str
    kind: str
    start_s: float
    end_s: float
    best_frame_id: int
    best_timestamp_s: float
    thumbnail_path: str
    similarity: float  # of the best frame
    frames: int  # matching sampled frames in the range


@dataclass(frozen=True)
class Timeline:
    """The query's similarity per time bucket of one file: the best sampled frame in the bucket, or, for a
    bucket between samples, the last frame before it (None before the first frame)."""

    media_id: int
    partition_key: str
    duration_s: float
    bucket_s: float
    scores: list[float | None]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_arrow(self) -> pa.Table:
        """One row per bucket: `start_s`, `end_s`, `similarity` (null before the first frame)."""
        starts = [i * self.bucket_s for i in range(len(self.scores))]
        return pa.table(
            {
                "start_s": pa.array(starts, pa.float64()),
                "end_s": pa.array([min(start + self.bucket_s, self.duration_s) for start in starts], pa.float64()),
                "similarity": pa.array(self.scores, pa.float64()),
            }
        )

    def to_polars(self):
        import polars as pl

        return pl.from_arrow(self.to_arrow())


@dataclass(frozen=True)
class VideoHit:
    """A file similar to the one asked about: for each of the query file's shots (or frames) the most
    similar shot (frame) of this file, averaged (`similarity`), and the best-matching pair."""

    media_id: int
    media_path: str
    partition_key: str
    kind: str
    similarity: float
    basis: str  # 'shots' | 'frames'
    best_frame_id: int  # a frame of this file from its best-matching shot or frame
    best_timestamp_s: float


class _Rows(Sequence):
    """Results of one dataclass type, best first, convertible like SearchResults."""

    def __init__(self, rows: list):
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):
        return self._rows[index]

    def __iter__(self):
        return iter(self._rows)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} rows)"

    def to_dicts(self) -> list[dict]:
        return [asdict(row) for row in self._rows]

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_pylist(self.to_dicts(), schema=self.schema)

    def to_polars(self):
        import polars as pl

        return pl.from_arrow(self.to_arrow())


class MomentResults(_Rows):
    schema = pa.schema(
        [
            ("media_id", pa.int64()),
            ("media_path", pa.string()),
            ("partition_key", pa.string()),
            ("kind", pa.string()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("best_frame_id", pa.int64()),
            ("best_timestamp_s", pa.float64()),
            ("thumbnail_path", pa.string()),
            ("similarity", pa.float64()),
            ("frames", pa.int64()),
        ]
    )


class VideoResults(_Rows):
    schema = pa.schema(
        [
            ("media_id", pa.int64()),
            ("media_path", pa.string()),
            ("partition_key", pa.string()),
            ("kind", pa.string()),
            ("similarity", pa.float64()),
            ("basis", pa.string()),
            ("best_frame_id", pa.int64()),
            ("best_timestamp_s", pa.float64()),
        ]
    )


@dataclass(frozen=True)
class WordTime:
    """A matched word as the ASR timed it (from `transcript_words`)."""

    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Reason:
    """Why a fused moment matched in one modality: what was said or shown (with the query's words marked
    `**like this**`) and when, or the visual similarity of its best frame."""

    modality: str  # 'visual' | 'speech' | 'screen_text' | 'keyword'
    start_s: float
    end_s: float
    evidence: float  # calibrated, 0..1 (see search.fusion)
    score: float  # raw: cosine (visual, speech, screen_text) or BM25 (keyword)
    similarity: float | None  # (1 + cosine) / 2 for the vector modalities; None for keyword
    text: str  # the words said (the segment holding the matched words, else the window) or the lines shown
    marked: str  # `text` with the query's words marked **…**
    words: tuple[str, ...]  # the words of `text` that matched the query's words
    word_times: tuple[WordTime, ...]  # those words as timed by the ASR, when it timed words
    source: str  # 'transcript' | 'screen_text' | 'frames'
    item_id: int  # segment_id (speech, keyword on a transcript), screen_text text_id, or frame_id (visual)


@dataclass(frozen=True)
class FusedMoment:
    """A time range of one file that matches a query in one or more modalities (`SearchClient.search`)."""

    media_id: int
    media_path: str
    partition_key: str
    kind: str
    start_s: float
    end_s: float
    similarity: float  # Σ weight · evidence over the modalities, 0..1 (see search.fusion)
    modalities: tuple[str, ...]  # the modalities whose evidence is at least fusion.MATCH_EVIDENCE
    why: tuple[Reason, ...]  # one per modality that contributed, largest contribution first
    best_frame_id: int | None  # the strongest reason's frame: the visual match's, else the one shown at its time
    best_timestamp_s: float | None
    thumbnail_path: str | None  # None for audio files


_WORD_TIME = pa.struct([("word", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64())])
_REASON = pa.struct(
    [
        ("modality", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("evidence", pa.float64()),
        ("score", pa.float64()),
        ("similarity", pa.float64()),
        ("text", pa.string()),
        ("marked", pa.string()),
        ("words", pa.list_(pa.string())),
        ("word_times", pa.list_(_WORD_TIME)),
        ("source", pa.string()),
        ("item_id", pa.int64()),
    ]
)


class ChapterResults(_Rows):
    """Chapters, best first (`SearchClient.search_summaries`)."""

    schema = summaries.CHAPTER_HIT_SCHEMA


class FusedResults(_Rows):
    """Fused moments, best first; `to_arrow()`/`to_polars()` give one row per moment, `why` a list of structs."""

    schema = pa.schema(
        [
            ("media_id", pa.int64()),
            ("media_path", pa.string()),
            ("partition_key", pa.string()),
            ("kind", pa.string()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("similarity", pa.float64()),
            ("modalities", pa.list_(pa.string())),
            ("why", pa.list_(_REASON)),
            ("best_frame_id", pa.int64()),
            ("best_timestamp_s", pa.float64()),
            ("thumbnail_path", pa.string()),
        ]
    )

    def __init__(self, rows: list, *, weights: dict[str, float] | None = None):
        super().__init__(rows)
        self.weights = dict(weights or {})  # the modality weights the moments were scored with


# What a query can be: text, an image (a file path or a BGR uint8 array), or weighted terms.
QueryLike = "str | Path | np.ndarray | Sequence[QueryTerm]"


def cosine_to_similarity(cosine: np.ndarray | float) -> np.ndarray | float:
    return np.clip((np.asarray(cosine, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)


class SearchClient:
    """Search one warehouse. `model` overrides the CLIP model used for queries (it must be the one the
    vectors were made with); by default that model is read from the vector store. `text_quantization`
    ('none' or 'int8', default $MEDIA_ASSETS_TEXT_QUANTIZATION, else 'none') is passed to
    `ClipEncoder.load`: 'int8' encodes text queries with a dynamically quantised text tower on the CPU.
    `ef` is the HNSW beam width for queries (QUERY_EF). `text_model` overrides the sentence encoder of
    `search`'s speech and screen-text queries (it must be the one the text vectors were made with; by
    default that model is read from the `text_vectors` table)."""

    def __init__(
        self,
        warehouse: str | Path | Warehouse | None = None,
        *,
        model: str | None = None,
        device: str = "auto",
        text_quantization: str | None = None,
        ef: int = QUERY_EF,
        text_model: str | None = None,
    ):
        if isinstance(ef, bool) or not isinstance(ef, int) or ef < 1:
            raise ValueError(f"ef must be an integer >= 1, got {ef!r}")
        self.ef = ef
        self._text_quantization = (
            default_text_quantization() if text_quantization is None else check_text_quantization(text_quantization)
        )
        self.warehouse = warehouse if isinstance(warehouse, Warehouse) else Warehouse.at(warehouse)
        self.vectors = VectorStore(self.warehouse)
        self.index = IndexReader(self.warehouse)
        self.frames = FrameLookup(self.warehouse)
        self._fallback_reason: str | None = None
        self._model = model
        self._device = device
        self._encoder: ClipEncoder | None = None
        self._encoder_lock = threading.Lock()
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_cache_lock = threading.Lock()
        self._serving_lock = threading.Lock()
        self._serving_checked = -float("inf")
        self._serving_key: tuple[str, int] | None = None
        self._serving_state: tuple[VectorStore, object | None] = (self.vectors, None)
        self._stores: dict[str, VectorStore] = {self.vectors.name: self.vectors}
        self.text_vectors = TextVectorStore(self.warehouse)
        self._text_model = text_model
        self._text_encoder: TextEncoder | None = None
        self._text_encoder_lock = threading.Lock()
        self._reference_vectors: dict[str, np.ndarray] = {}

    @property
    def feedback(self):
        """Record what a person says about results and clusters (`feedback.FeedbackWriter`)."""

        return FeedbackWriter(self.warehouse, source="python")

    # -- frames -------------------------------------------------------------------------------------

    def search_text(
        self, query: str, k: int = 10, *, offset: int = 0, filters: SearchFilter | None = None
    ) -> SearchResults:
        """Frames that match a text, best first."""
        return self._search(self.text_vector(query), k, offset, filters)

    def search_image(
        self, image: str | Path | np.ndarray, k: int = 10, *, offset: int = 0, filters: SearchFilter | None = None
    ) -> SearchResults:
        """Frames that look like `image`: a file path or a BGR uint8 array (as OpenCV gives)."""
        return self._search(self.image_vector(image), k, offset, filters)

    def similar_frames(
        self, frame_id: int, k: int = 10, *, offset: int = 0, filters: SearchFilter | None = None
    ) -> SearchResults:
        """Frames most like a stored frame (the frame itself is left out). A near-duplicate frame, which
        has no vector of its own, is looked up through the kept frame it duplicates."""
        vector, lookup_id = self._stored_frame_vector(frame_id)
        return self._search(vector, k, offset, filters, exclude={int(frame_id), lookup_id})

    def search_vector(
        self, vector: np.ndarray, k: int = 10, *, offset: int = 0, filters: SearchFilter | None = None
    ) -> SearchResults:
        """Frames nearest a query vector you made yourself with the base model (normalised here; the adapter
        in service, if any, is applied as to text and image queries)."""
        return self._search(self.query_vector(np.asarray(vector, dtype=np.float32)), k, offset, filters)

    def search_expression(
        self,
        expression: str | Sequence[QueryTerm],
        k: int = 10,
        *,
        offset: int = 0,
        filters: SearchFilter | None = None,
        allow_files: bool = True,
    ) -> SearchResults:
        """Frames for a weighted combination, e.g. `2×'beach' + photo.jpg − 'people'` (see `query_terms`)."""
        return self._search(self.expression_vector(expression, allow_files=allow_files), k, offset, filters)

    def search_multi(
        self,
        queries: Sequence,
        mode: str = "and",
        k: int = 10,
        *,
        offset: int = 0,
        filters: SearchFilter | None = None,
    ) -> SearchResults:
        """Frames for several queries at once (texts, images or term lists). `and`: a frame's similarity is
        its lowest over the queries (it must match all); `or`: its highest (it may match any)."""
        if mode not in ("and", "or"):
            raise SearchError(f"mode must be 'and' or 'or', got {mode!r}")
        if isinstance(queries, (str, bytes)) or not len(queries):
            raise SearchError("search_multi needs a list of one or more queries")
        if len(queries) > MAX_QUERIES:
            raise SearchError(f"at most {MAX_QUERIES} queries at once, got {len(queries)}")
        k, offset = _check_k(k), _check_offset(offset)
        matrix = np.stack([self.query_vector(q) for q in queries])
        allowed = self._allowed(filters)
        pool = max(200, 10 * (k + offset))
        candidates: set[int] = set()
        for vector in matrix:
            candidates.update(frame_id for frame_id, _ in self._rank(vector, pool, allowed))
        ids = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
        vectors = self._vectors_of(ids)
        cosines = vectors @ matrix.T  # [candidates, queries]
        combined = cosines.min(axis=1) if mode == "and" else cosines.max(axis=1)
        order = np.lexsort((ids, -combined))[offset : offset + k]
        return SearchResults(self._hits([(int(ids[i]), float(combined[i])) for i in order]))

    # -- fused search: what is said, shown and seen -------------------------------------------------

    def search(
        self,
        query: str,
        *,
        mode: str = "balanced",
        k: int = 10,
        weights: dict[str, float] | None = None,
        filters: SearchFilter | None = None,
        offset: int = 0,
        candidates: int | None = None,
    ) -> FusedResults:
        """Moments of files that match a text query in what is seen (CLIP frames), said (transcripts),
        shown (screen text) and the exact words (BM25), fused by calibrated evidence (see `search.fusion`).
        `mode`: 'balanced' (text 0.5 / visual 0.5), 'text_heavy' (0.7 / 0.3), 'vision_heavy' (0.3 / 0.7),
        or one modality alone: 'visual', 'speech', 'screen_text', 'keyword'; `weights` ({'visual',
        'speech', 'screen_text', 'keyword'} → number) overrides the mode. `candidates`: hits taken from
        each modality before fusing (default max(100, 10·(k + offset)), at most 1000). A modality with nothing stored
        (no frames, no text yet) is left out."""
        return self._fused_search(query, mode, k, offset, weights, filters, candidates)

    def search_in(
        self,
        media_id: int,
        query: str,
        *,
        mode: str = "balanced",
        k: int = 10,
        weights: dict[str, float] | None = None,
        filters: SearchFilter | None = None,
        offset: int = 0,
        candidates: int | None = None,
    ) -> FusedResults:
        """`search` within one file (its moments only, scored against that file's own background)."""
        media_id = _check_id(media_id, "media_id")
        table = self.frames.get()
        media = table.media.get(media_id) or self.frames.refresh().media.get(media_id)
        if media is None:
            raise UnknownIdError(f"unknown media id {media_id}")
        filters = _check_filters(filters)
        key = media["partition_key"]
        if filters.media and not any(fnmatch.fnmatchcase(key, pattern) for pattern in filters.media):
            return FusedResults([], weights=self._weights(mode, weights))
        return self._fused_search(
            query, mode, k, offset, weights, replace(filters, media=(glob.escape(key),)), candidates
        )

    # -- chapters ------------------------------------------------------------------------------------

    def chapters(self, media_id: int) -> Chapters:
        """A file's table of contents: its chapters (time range, title, summary, how it was made) in time order
        and the summary of the whole file. UnknownIdError when the file has no chapters stored."""
        media_id = _check_id(media_id, "media_id")
        try:
            return read_chapters(self.warehouse, media_id)
        except ChaptersNotFoundError as exc:
            raise UnknownIdError(str(exc)) from exc

    def search_summaries(
        self, query: str, k: int = 10, *, offset: int = 0, filters: SearchFilter | None = None
    ) -> ChapterResults:
        """Chapters whose title and summary match a text query, by meaning (the sentence encoder) and by their
        words (BM25), calibrated like the fused search (see `search.summaries`), best first. Filters: media
        globs, kind and a time range (a chapter overlapping it)."""
        if not isinstance(query, str) or not query.strip():
            raise SearchError("the text query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise SearchError(f"the text query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are accepted")
        k, offset = _check_k(k), _check_offset(offset)
        filters = _check_filters(filters)
        table = self.frames.get()
        media_ids = self._allowed_media(filters, table)
        if (media_ids is not None and not media_ids) or not self.text_vectors.count([summaries.SUMMARY_KIND]):
            return ChapterResults([])
        encoder = self.text_encoder
        pool = min(MAX_K, max(100, 4 * (k + offset)))
        matches = summaries.match_summaries(
            self.text_vectors, query, encoder.query_vector(query), self._reference(encoder), pool, media_ids
        )
        rows = {}
        wanted = sorted({m.media_id for m in matches})
        if wanted:
            rows = {
                r["chapter_id"]: r
                for r in catalog.query(
                    self.warehouse,
                    "SELECT c.*, m.path, m.partition_key, m.kind FROM chapters c JOIN media m USING (media_id) "
                    "WHERE c.media_id IN (SELECT unnest(?))",
                    [wanted],
                ).to_pylist()
            }
        words = [w for w in query_words(query) if w not in fusion.STOP_WORDS]
        hits = []
        for match in matches:
            row = rows.get(match.chapter_id)
            if row is None:  # the chapter was re-cut since its row was found
                continue
            if filters.start_s is not None and row["end_s"] < filters.start_s:
                continue
            if filters.end_s is not None and row["start_s"] > filters.end_s:
                continue
            frame = _frame_at(table, row["media_id"], row["start_s"])
            if frame < 0 and row["media_id"] not in table.media:
                table = self.frames.refresh()
                frame = _frame_at(table, row["media_id"], row["start_s"])
            hits.append(
                ChapterHit(
                    media_id=row["media_id"],
                    media_path=row["path"],
                    partition_key=row["partition_key"],
                    kind=row["kind"],
                    chapter_id=row["chapter_id"],
                    index=row["index"],
                    start_s=row["start_s"],
                    end_s=row["end_s"],
                    title=row["title"],
                    summary=row["summary"],
                    method=row["method"],
                    similarity=float(np.clip(match.score, 0.0, 1.0)),
                    why=summaries.reason(match, row["title"], row["summary"], words),
                    best_frame_id=int(table.frame_id[frame]) if frame >= 0 else None,
                    best_timestamp_s=float(table.timestamp_s[frame]) if frame >= 0 else None,
                    thumbnail_path=str(self.warehouse.root / table.thumbnail_path[frame]) if frame >= 0 else None,
                )
            )
        return ChapterResults(hits[offset : offset + k])

    @property
    def text_encoder(self) -> TextEncoder:
        """The sentence encoder of the stored text vectors (their `model_id`), loaded once."""
        with self._text_encoder_lock:
            if self._text_encoder is None:
                stored = self.text_vectors.model_ids()
                if len(stored) > 1:
                    raise SearchError(f"the text vectors mix models {stored}; re-embed them with one model")
                if self._text_model and stored and stored[0] != self._text_model:
                    raise SearchError(f"the text vectors were made with {stored[0]!r}, not {self._text_model!r}")
                self._text_encoder = TextEncoder.load(self._text_model or (stored[0] if stored else None), self._device)
            return self._text_encoder

    def _weights(self, mode: str, weights) -> dict[str, float]:
        try:
            return fusion.mode_weights(mode, weights)
        except fusion.FusionError as exc:
            raise SearchError(str(exc)) from exc

    def _fused_search(self, query, mode, k, offset, weights, filters, candidates) -> FusedResults:
        if not isinstance(query, str) or not query.strip():
            raise SearchError("the text query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise SearchError(f"the text query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are accepted")
        k, offset = _check_k(k), _check_offset(offset)
        weights = self._weights(mode, weights)
        pool = candidates if candidates is not None else min(MAX_K, max(100, 10 * (k + offset)))
        if isinstance(pool, bool) or not isinstance(pool, int) or not 1 <= pool <= MAX_K:
            raise SearchError(f"candidates must be between 1 and {MAX_K}, got {pool!r}")
        filters = _check_filters(filters)
        table = self.frames.get()
        media_ids = self._allowed_media(filters, table)
        if media_ids is not None and not media_ids:
            return FusedResults([], weights=weights)
        found: list[fusion.Candidate] = []
        if weights["visual"] > 0:
            found += self._visual_candidates(query, pool, filters)
        if any(weights[m] > 0 for m in fusion.TEXT_MODALITIES) and self.text_vectors.count() > 0:
            if weights["speech"] > 0 or weights["screen_text"] > 0:
                found += self._text_vector_candidates(query, pool, weights, media_ids)
            if weights["keyword"] > 0:
                found += self._keyword_candidates(query, pool, media_ids)
            found = self._text_in_filter(found, filters)
        groups = fusion.fuse(found, weights)[offset : offset + k]
        segments: dict[int, tuple[list[dict], list[dict]]] = {}
        moments = [self._fused_moment(group, weights, query, table, segments) for group in groups]
        return FusedResults([m for m in moments if m is not None], weights=weights)

    def _allowed_media(self, filters: SearchFilter, table: FrameTable) -> set[int] | None:
        """Media ids the filter's media globs and kind allow (None: every file)."""
        if not filters.media and filters.kind is None:
            return None
        return {
            media_id
            for media_id, media in table.media.items()
            if (filters.kind is None or media["kind"] == filters.kind)
            and (not filters.media or any(fnmatch.fnmatchcase(media["partition_key"], p) for p in filters.media))
        }

    def _visual_candidates(self, query: str, pool: int, filters: SearchFilter) -> list[fusion.Candidate]:
        ids, _, vectors = self._serving()[0].load_all()
        if not len(ids):
            return []
        vector = self.text_vector(query)
        allowed = self._allowed(filters)
        rows = np.arange(len(ids)) if allowed is None else np.flatnonzero(np.isin(ids, allowed))
        if not len(rows):
            return []
        background = fusion.Background.from_scores(vectors[_spread(rows)] @ vector, len(rows))
        moments = self.moments(query, k=pool, filters=filters)
        cosines = np.array([2.0 * m.similarity - 1.0 for m in moments])
        evidence, z = background.evidence(cosines), background.z(cosines)
        return [
            fusion.Candidate(
                "visual",
                m.media_id,
                m.start_s,
                m.end_s,
                float(cosine),
                float(e),
                float(zz),
                item_id=m.best_frame_id,
                kind="frames",
                frame_id=m.best_frame_id,
                timestamp_s=m.best_timestamp_s,
            )
            for m, cosine, e, zz in zip(moments, cosines, evidence, z, strict=True)
        ]

    def _text_vector_candidates(
        self, query: str, pool: int, weights: dict[str, float], media_ids: set[int] | None
    ) -> list[fusion.Candidate]:
        encoder = self.text_encoder
        rows = self.text_vectors.load_all()
        if len(rows) and rows.vectors.shape[1] != encoder.dim:
            raise SearchError(
                f"the text vectors have {rows.vectors.shape[1]} dimensions but {encoder.model_id} makes {encoder.dim}"
            )
        vector = encoder.query_vector(query)
        found = []
        for modality, kind in (("speech", "transcript"), ("screen_text", "screen_text")):
            if weights[modality] <= 0:
                continue
            population = np.flatnonzero(rows.mask([kind], media_ids))
            if not len(population):
                continue
            if len(population) < fusion.MIN_BACKGROUND:  # a small library: generic sentences stand in
                sample = self._reference(encoder) @ vector
            else:
                sample = rows.vectors[_spread(population)] @ vector
            background = fusion.Background.from_scores(sample, len(population))
            hits = self.text_vectors.search_vector(vector, pool, kinds=[kind], media_ids=media_ids)
            scores = np.array([hit.score for hit in hits])
            for hit, e, z in zip(hits, background.evidence(scores), background.z(scores), strict=True):
                found.append(_text_candidate(modality, hit, float(e), float(z)))
        return found

    def _keyword_candidates(self, query: str, pool: int, media_ids: set[int] | None) -> list[fusion.Candidate]:
        hits = self.text_vectors.search_text(query, pool, kinds=("transcript", "screen_text"), media_ids=media_ids)
        if not hits:
            return []
        evidence = fusion.keyword_evidence(
            np.array([h.score for h in hits]), bm25_single_term(self.text_vectors.count())
        )
        return [_text_candidate("keyword", hit, float(e), float(e)) for hit, e in zip(hits, evidence, strict=True)]

    def _reference(self, encoder: TextEncoder) -> np.ndarray:
        """The reference sentences' vectors for this encoder (the background of small libraries), made once."""
        with self._text_encoder_lock:
            if encoder.model_id not in self._reference_vectors:
                self._reference_vectors[encoder.model_id] = encoder.encode(list(fusion.REFERENCE_SENTENCES))
            return self._reference_vectors[encoder.model_id]

    def _text_in_filter(self, found: list[fusion.Candidate], filters: SearchFilter) -> list[fusion.Candidate]:
        """Text candidates inside the filter's time range and cluster (visual ones were filtered as frames)."""
        if filters.start_s is None and filters.end_s is None and filters.cluster_id is None:
            return found
        spans = self._cluster_spans(filters.cluster_id) if filters.cluster_id is not None else None
        kept = []
        for c in found:
            if c.modality == "visual":
                kept.append(c)
                continue
            if filters.start_s is not None and c.end_s < filters.start_s:
                continue
            if filters.end_s is not None and c.start_s > filters.end_s:
                continue
            if spans is not None and not any(c.end_s >= s and c.start_s <= e for s, e in spans.get(c.media_id, ())):
                continue
            kept.append(c)
        return kept

    def _cluster_spans(self, cluster_id: int) -> dict[int, list[tuple[float, float]]]:
        """The time spans of the shots of a cluster, per file (a text row inside one belongs to the cluster)."""
        frame_ids = self._cluster_frames(cluster_id)
        if not len(frame_ids):
            return {}
        rows = catalog.query(
            self.warehouse,
            "SELECT DISTINCT s.media_id, s.start_s, s.end_s FROM shots s JOIN frames f ON f.media_id = s.media_id "
            "AND f.seq BETWEEN s.start_seq AND s.end_seq WHERE f.frame_id IN (SELECT unnest(?))",
            [frame_ids.tolist()],
        ).to_pylist()
        spans: dict[int, list[tuple[float, float]]] = {}
        for row in rows:
            spans.setdefault(row["media_id"], []).append((row["start_s"], row["end_s"]))
        return spans

    def _fused_moment(
        self,
        group: fusion.FusedGroup,
        weights: dict[str, float],
        query: str,
        table: FrameTable,
        segments: dict[int, tuple[list[dict], list[dict]]],
    ) -> FusedMoment | None:
        media = table.media.get(group.media_id)
        if media is None:
            table = self.frames.refresh()
            media = table.media.get(group.media_id)
            if media is None:  # the file left the catalog since its rows were found
                return None
        words = [w for w in query_words(query) if w not in fusion.STOP_WORDS]
        members = sorted(group.members.values(), key=lambda c: (-weights[c.modality] * c.evidence, c.modality))
        why = tuple(self._reason(c, words, segments) for c in members)
        # the picture of the strongest reason: the visual match's frame, else the frame shown when the words
        # were said or the line was on screen (where the page plays the moment from)
        strongest = members[0] if members else None
        best_frame, best_time, thumbnail = None, None, None
        if strongest is not None and strongest.modality == "visual" and strongest.frame_id is not None:
            row = table.rows_of(np.array([strongest.frame_id]))[0]
        else:
            row = _frame_at(table, group.media_id, why[0].start_s if why else group.start_s)
        if row >= 0:
            best_frame, best_time = int(table.frame_id[row]), float(table.timestamp_s[row])
            thumbnail = str(self.warehouse.root / table.thumbnail_path[row])
        return FusedMoment(
            media_id=group.media_id,
            media_path=media["path"],
            partition_key=media["partition_key"],
            kind=media["kind"],
            start_s=float(group.start_s),
            end_s=float(group.end_s),
            similarity=float(np.clip(group.score, 0.0, 1.0)),
            modalities=group.matched(),
            why=why,
            best_frame_id=best_frame,
            best_timestamp_s=best_time,
            thumbnail_path=thumbnail,
        )

    def _reason(
        self, candidate: fusion.Candidate, words: list[str], segments: dict[int, tuple[list[dict], list[dict]]]
    ) -> Reason:
        similarity = None if candidate.modality == "keyword" else float(cosine_to_similarity(candidate.score))
        if candidate.modality == "visual":
            return Reason(
                "visual",
                candidate.start_s,
                candidate.end_s,
                candidate.evidence,
                candidate.score,
                similarity,
                "",
                "",
                (),
                (),
                "frames",
                int(candidate.item_id),
            )
        start, end, text, item_id, timed = candidate.start_s, candidate.end_s, candidate.text, candidate.item_id, ()
        if candidate.kind == "transcript":
            if candidate.media_id not in segments:
                segments[candidate.media_id] = _transcript_of(self.warehouse, candidate.media_id)
            window = [
                s for s in segments[candidate.media_id][0] if s["start_s"] >= start - 1e-6 and s["end_s"] <= end + 1e-6
            ]
            said = [s for s in window if fusion.mark_words(s["text"], words)[1]]
            if said:  # the segments holding the words, with their own times
                start, end = said[0]["start_s"], max(s["end_s"] for s in said)
                text, item_id = " ".join(s["text"] for s in said), said[0]["segment_id"]
                ids = {s["segment_id"] for s in said}
                stems = {fusion.stem(w) for w in words}
                timed = tuple(
                    WordTime(w["word"].strip(), w["start_s"], w["end_s"])
                    for w in segments[candidate.media_id][1]
                    if w["segment_id"] in ids and fusion.stem(w["word"].strip(" .,!?;:'\"").lower()) in stems
                )
        marked, matched = fusion.mark_words(text, words)
        return Reason(
            candidate.modality,
            float(start),
            float(end),
            candidate.evidence,
            candidate.score,
            similarity,
            text,
            marked,
            matched,
            timed,
            candidate.kind,
            int(item_id),
        )

    # -- moments, timelines, videos -----------------------------------------------------------------

    def moments(
        self,
        query,
        k: int = 10,
        *,
        offset: int = 0,
        filters: SearchFilter | None = None,
        candidates: int | None = None,
        max_gap: int = 1,
        match_margin: float = MOMENT_MATCH_MARGIN,
    ) -> MomentResults:
        """Time ranges of files where the query matches, best first (see the module docstring)."""
        k, offset = _check_k(k), _check_offset(offset)
        if not isinstance(max_gap, int) or max_gap < 0:
            raise SearchError(f"max_gap must be a whole number ≥ 0, got {max_gap!r}")
        if not isinstance(match_margin, (int, float)) or not 0 <= match_margin <= 2:
            raise SearchError(f"match_margin must be a cosine difference in [0, 2], got {match_margin!r}")
        pool = candidates if candidates is not None else max(200, 20 * (k + offset))
        if not isinstance(pool, int) or not 1 <= pool <= 100_000:
            raise SearchError(f"candidates must be between 1 and 100000, got {pool!r}")
        vector = self.query_vector(query)
        scored = dict(self._rank(vector, pool, self._allowed(filters)))
        table = self.frames.get()
        if not scored:
            return MomentResults([])
        # matching rows: the candidates and the duplicates that repeat them (same picture, same score)
        row_score = {}
        vector_ids = table.vector_frame_id
        matched = np.isin(vector_ids, np.fromiter(scored, np.int64, len(scored)))
        for row in np.flatnonzero(matched):
            row_score[int(row)] = scored[int(vector_ids[row])]
        by_media: dict[int, list[int]] = {}
        for row in row_score:
            by_media.setdefault(int(table.media_id[row]), []).append(row)
        moments = []
        for media_id, rows in by_media.items():
            best = max(row_score[r] for r in rows)
            rows = [r for r in rows if row_score[r] >= best - match_margin]
            rows.sort(key=lambda r: (table.seq[r], table.frame_id[r]))
            group = [rows[0]]
            for row in rows[1:]:
                if table.seq[row] - table.seq[group[-1]] <= max_gap + 1:
                    group.append(row)
                else:
                    moments.append(self._moment(table, media_id, group, row_score))
                    group = [row]
            moments.append(self._moment(table, media_id, group, row_score))
        moments.sort(key=lambda m: (-m.similarity, m.partition_key, m.start_s))
        return MomentResults(moments[offset : offset + k])

    def _moment(self, table: FrameTable, media_id: int, rows: list[int], row_score: dict[int, float]) -> Moment:
        media = table.media[media_id]
        best = max(rows, key=lambda r: (row_score[r], -table.timestamp_s[r]))
        start = float(table.timestamp_s[rows[0]])
        last = float(table.timestamp_s[rows[-1]])
        step = media["step_s"] or 0.0
        end = min(last + step, media["duration_s"] or last + step) if media["kind"] == "video" else last
        return Moment(
            media_id=media_id,
            media_path=media["path"],
            partition_key=media["partition_key"],
            kind=media["kind"],
            start_s=start,
            end_s=max(end, start),
            best_frame_id=int(table.frame_id[best]),
            best_timestamp_s=float(table.timestamp_s[best]),
            thumbnail_path=str(self.warehouse.root / table.thumbnail_path[best]),
            similarity=float(cosine_to_similarity(row_score[best])),
            frames=len(rows),
        )

    def timeline(self, query, media_id: int, *, buckets: int | None = None, bucket_s: float | None = None) -> Timeline:
        """The query's similarity over one file's time, in buckets (default: one per sampled frame, at
        most 200)."""
        return self._timeline(self.query_vector(query), media_id, buckets=buckets, bucket_s=bucket_s)

    def timelines(self, query, media_ids: Sequence[int], **kwargs) -> list[Timeline]:
        """`timeline` for several files with one query encoding."""
        vector = self.query_vector(query)
        return [self._timeline(vector, m, **kwargs) for m in media_ids]

    def _timeline(
        self, vector: np.ndarray, media_id: int, *, buckets: int | None = None, bucket_s: float | None = None
    ) -> Timeline:
        table = self.frames.get()
        media = table.media.get(_check_id(media_id, "media_id"))
        if media is None:
            raise UnknownIdError(f"unknown media id {media_id}")
        rows = table.rows_of_media(int(media_id))
        duration = float(media["duration_s"] or 0.0)
        if buckets is not None and (not isinstance(buckets, int) or not 1 <= buckets <= 10_000):
            raise SearchError(f"buckets must be between 1 and 10000, got {buckets!r}")
        if bucket_s is not None and not (isinstance(bucket_s, (int, float)) and bucket_s > 0):
            raise SearchError(f"bucket_s must be a positive number of seconds, got {bucket_s!r}")
        if duration <= 0 or media["kind"] != "video":
            count, width = 1, max(duration, 0.0)
        elif bucket_s is not None:
            width = float(bucket_s)
            count = max(1, int(np.ceil(duration / width)))
            if count > 10_000:
                raise SearchError(f"bucket_s={bucket_s} gives {count} buckets; at most 10000")
        else:
            count = buckets or int(min(200, max(1, round(duration / (media["step_s"] or 1.0)))))
            width = duration / count
        scores: list[float | None] = [None] * count
        if len(rows):
            vectors = self._vectors_of(table.vector_frame_id[rows], missing_ok=True)
            cosines = vectors @ vector
            times = table.timestamp_s[rows]
            position = np.minimum(
                (times / width).astype(np.int64) if width > 0 else np.zeros(len(rows), np.int64), count - 1
            )
            for bucket, cosine in zip(position.tolist(), cosines.tolist(), strict=True):
                if cosine == cosine:  # NaN: a frame without a vector
                    similarity = float(cosine_to_similarity(cosine))
                    if scores[bucket] is None or similarity > scores[bucket]:
                        scores[bucket] = similarity
            # a sampled frame stands for its time until the next one: buckets between samples take the score
            # of the last frame before them (buckets before the first frame stay None)
            last = None
            for bucket in range(count):
                if scores[bucket] is None:
                    scores[bucket] = last
                else:
                    last = scores[bucket]
        return Timeline(int(media_id), media["partition_key"], duration, width, scores)

    def similar_videos(self, media_id: int, k: int = 10, *, offset: int = 0) -> VideoResults:
        """Files most like `media_id`: for each of its shots the most similar shot of the other file,
        averaged (from frame vectors when shots are missing). The file itself is left out."""
        k, offset = _check_k(k), _check_offset(offset)
        media_id = _check_id(media_id, "media_id")
        table = self.frames.get()
        if media_id not in table.media:
            raise UnknownIdError(f"unknown media id {media_id}")
        shot_store = serving_store(self.warehouse, SHOT_VECTORS)
        shot_store = self._stores.setdefault(shot_store.name, shot_store)
        basis, ids, owners, vectors = "shots", *shot_store.load_all()
        if not np.any(owners == media_id):
            basis, (ids, owners, vectors) = "frames", self._serving()[0].load_all()
        mine = owners == media_id
        if not mine.any():
            raise UnknownIdError(f"media {media_id} has no vectors yet (it is not embedded)")
        others = ~mine
        if not others.any():
            return VideoResults([])
        order = np.argsort(owners[others], kind="stable")
        other_ids, other_owners, other_vectors = ids[others][order], owners[others][order], vectors[others][order]
        starts = np.flatnonzero(np.r_[True, other_owners[1:] != other_owners[:-1]])
        cosines = vectors[mine] @ other_vectors.T  # [mine, others]
        best_per_video = np.maximum.reduceat(cosines, starts, axis=1)  # [mine, videos]
        score = best_per_video.mean(axis=0)
        ranking = np.lexsort((other_owners[starts], -score))[offset : offset + k]
        hits = []
        for v in ranking:
            stop = starts[v + 1] if v + 1 < len(starts) else len(other_owners)
            column = int(np.argmax(cosines[:, starts[v] : stop].max(axis=0))) + starts[v]
            best_frame = self._frame_of(basis, int(other_ids[column]))
            owner = int(other_owners[starts[v]])
            media = table.media.get(owner)
            if media is None:
                continue
            row = table.rows_of(np.array([best_frame]))[0]
            hits.append(
                VideoHit(
                    media_id=owner,
                    media_path=media["path"],
                    partition_key=media["partition_key"],
                    kind=media["kind"],
                    similarity=float(cosine_to_similarity(score[v])),
                    basis=basis,
                    best_frame_id=best_frame,
                    best_timestamp_s=float(table.timestamp_s[row]) if row >= 0 else 0.0,
                )
            )
        return VideoResults(hits)

    def _frame_of(self, basis: str, item_id: int) -> int:
        if basis == "frames":
            return item_id
        rows = catalog.query(
            self.warehouse,
            "SELECT coalesce(min(frame_id) FILTER (WHERE role IN ('median', 'middle')), min(frame_id)) AS frame_id "
            "FROM keyframes WHERE shot_id = ?",
            [item_id],
        ).to_pylist()
        return int(rows[0]["frame_id"]) if rows and rows[0]["frame_id"] is not None else item_id

    # -- query vectors ------------------------------------------------------------------------------

    def text_vector(self, query: str) -> np.ndarray:
        if not isinstance(query, str) or not query.strip():
            raise SearchError("the text query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise SearchError(f"the text query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are accepted")
        with self._text_cache_lock:
            cached = self._text_cache.get(query)
            if cached is not None:
                self._text_cache.move_to_end(query)
        if cached is None:
            cached = self.encoder.encode_text([query])[0]
            cached.flags.writeable = False
            with self._text_cache_lock:
                self._text_cache[query] = cached
                while len(self._text_cache) > TEXT_CACHE_SIZE:
                    self._text_cache.popitem(last=False)
        return self._adapt(cached)

    def image_vector(self, image: str | Path | np.ndarray) -> np.ndarray:
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise SearchError(f"an image query must be an HxWx3 uint8 array, got {image.dtype} {image.shape}")
            pixels = image
        else:
            if not Path(image).is_file():
                raise SearchError(f"query image {image} does not exist")
            try:
                pixels = load_image(Path(image))
            except MediaReadError as exc:
                raise SearchError(f"cannot use {image} as a query image: {exc.reason}") from exc
        return self._adapt(self.encoder.encode_images([pixels])[0])

    def expression_vector(self, expression: str | Sequence[QueryTerm], *, allow_files: bool = True) -> np.ndarray:
        try:
            terms = (
                parse_expression(expression, allow_files=allow_files)
                if isinstance(expression, str)
                else list(expression)
            )
        except QueryExpressionError as exc:
            raise SearchError(str(exc)) from exc
        if not terms or not all(isinstance(t, QueryTerm) for t in terms):
            raise SearchError("an expression is a string or a non-empty list of QueryTerm")
        total = None
        for term in terms:
            if term.kind == "text":
                vector = self.text_vector(str(term.value))
            elif term.kind == "image":
                vector = self.image_vector(term.value)
            else:
                vector = self._stored_frame_vector(int(term.value))[0]
            total = term.weight * vector if total is None else total + term.weight * vector
        norm = float(np.linalg.norm(total))
        if not norm > 1e-6:
            raise SearchError("the expression's terms cancel out; there is nothing left to search for")
        return (total / norm).astype(np.float32)

    def query_vector(self, query) -> np.ndarray:
        """The unit vector of a query: text (str), an image (a Path, or a BGR uint8 array), terms (a list
        of QueryTerm), or a vector of the base model (a 1-d float array). With a promoted embedding adapter
        the vector is in the adapted space, as the vectors searched are."""
        if isinstance(query, str):
            return self.text_vector(query)
        if isinstance(query, np.ndarray) and query.ndim == 1 and query.dtype.kind == "f":
            norm = float(np.linalg.norm(query))
            if not np.isfinite(query).all() or norm == 0:
                raise SearchError("a query vector must be finite and non-zero")
            return self._adapt((query / norm).astype(np.float32))
        if isinstance(query, (Path, np.ndarray)):
            return self.image_vector(query)
        if isinstance(query, (list, tuple)) and query and all(isinstance(t, QueryTerm) for t in query):
            return self.expression_vector(query)
        raise SearchError(
            f"a query is text, an image (path or array) or a list of QueryTerm, got {type(query).__name__}"
        )

    # -- internals ----------------------------------------------------------------------------------

    @property
    def encoder(self) -> ClipEncoder:
        with self._encoder_lock:
            if self._encoder is None:
                stored = self.vectors.model_ids()
                if len(stored) > 1:
                    raise SearchError(f"the vector store mixes models {stored}; re-embed with one model")
                model = self._model or (stored[0] if stored else None)
                if self._model and stored and stored[0] != self._model:
                    raise SearchError(f"the vectors were made with {stored[0]!r}, not {self._model!r}")
                self._encoder = ClipEncoder.load(model, device=self._device, text_quantization=self._text_quantization)
            return self._encoder

    def _serving(self) -> tuple[VectorStore, object | None]:
        """The frame vectors searched now and the adapter their queries need: with a promoted embedding
        adapter, its adapted vectors (once written) and the adapter; else the base vectors and None.
        Checked at most once a second."""
        with self._serving_lock:
            now = time.monotonic()
            if now - self._serving_checked >= 1.0:
                self._serving_checked = now
                store = serving_store(self.warehouse)
                version = current_version(self.warehouse) if store.name != self.vectors.name else 0
                if (store.name, version) != self._serving_key:
                    self._serving_key = (store.name, version)
                    self._serving_state = (
                        self._stores.setdefault(store.name, store),
                        _load_adapter(self.warehouse, version),
                    )
            return self._serving_state

    def _adapt(self, vector: np.ndarray) -> np.ndarray:
        adapter = self._serving()[1]
        return vector if adapter is None else adapter.apply(vector[None, :])[0]

    def _stored_frame_vector(self, frame_id) -> tuple[np.ndarray, int]:
        frame_id = _check_id(frame_id, "frame id")
        table = self.frames.get()
        row = table.rows_of(np.array([frame_id]))[0]
        if row < 0:
            table = self.frames.refresh()
            row = table.rows_of(np.array([frame_id]))[0]
            if row < 0:
                raise UnknownIdError(f"unknown frame id {frame_id}")
        lookup_id = int(table.vector_frame_id[row])
        vectors = self._vectors_of(np.array([lookup_id]), missing_ok=True)
        if not np.isfinite(vectors).all():
            raise UnknownIdError(f"frame {frame_id} has no vector (it is not embedded yet)")
        return vectors[0], lookup_id

    def _vectors_of(self, frame_ids: np.ndarray, *, missing_ok: bool = False) -> np.ndarray:
        """Stored vectors of these frame ids, in order (NaN rows for ids without a vector if missing_ok)."""
        ids, _, vectors = self._serving()[0].load_all()
        frame_ids = np.asarray(frame_ids, dtype=np.int64)
        if not len(ids):
            if missing_ok:
                return np.full((len(frame_ids), 1), np.nan, np.float32)
            raise UnknownIdError("there are no frame vectors yet")
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        position = np.minimum(np.searchsorted(sorted_ids, frame_ids), len(sorted_ids) - 1)
        found = sorted_ids[position] == frame_ids
        out = vectors[order[position]].copy()
        if not found.all():
            if not missing_ok:
                raise UnknownIdError(f"frames without vectors: {frame_ids[~found][:5].tolist()}")
            out[~found] = np.nan
        return out

    def _allowed(self, filters: SearchFilter | None) -> np.ndarray | None:
        """Frame ids (with vectors) a filtered search may return; None when nothing is filtered."""
        if filters is None or filters.is_empty:
            return None
        if not isinstance(filters, SearchFilter):
            raise SearchError(f"filters must be a SearchFilter, got {type(filters).__name__}")
        table = self.frames.get()
        keep = table.vector_frame_id == table.frame_id
        if filters.media or filters.kind is not None:
            media_ok = {
                media_id
                for media_id, media in table.media.items()
                if (filters.kind is None or media["kind"] == filters.kind)
                and (not filters.media or any(fnmatch.fnmatchcase(media["partition_key"], p) for p in filters.media))
            }
            keep &= np.isin(table.media_id, np.fromiter(media_ok, np.int64, len(media_ok)))
        if filters.start_s is not None:
            keep &= table.timestamp_s >= filters.start_s
        if filters.end_s is not None:
            keep &= table.timestamp_s <= filters.end_s
        if filters.cluster_id is not None:
            keep &= np.isin(table.frame_id, self._cluster_frames(filters.cluster_id))
        return table.frame_id[keep]

    def _cluster_frames(self, cluster_id: int) -> np.ndarray:
        level = catalog.query(
            self.warehouse, "SELECT level FROM clusters WHERE cluster_id = ?", [cluster_id]
        ).to_pylist()
        if not level:
            raise UnknownIdError(f"unknown cluster id {cluster_id}")
        shots = (
            "SELECT member_id AS shot_id FROM cluster_members WHERE member_kind = 'shot' AND cluster_id = ?"
            if level[0]["level"] == "scene"
            else "SELECT DISTINCT shot_id FROM cluster_members WHERE member_kind = 'face' AND cluster_id = ?"
        )
        rows = catalog.query(
            self.warehouse,
            f"SELECT f.frame_id FROM frames f JOIN shots s ON s.media_id = f.media_id "
            f"AND f.seq BETWEEN s.start_seq AND s.end_seq "
            f"WHERE s.shot_id IN ({shots})",
            [cluster_id],
        )
        return rows["frame_id"].to_numpy()

    def _search(self, query: np.ndarray, k, offset, filters, exclude: set[int] = frozenset()) -> SearchResults:
        k, offset = _check_k(k), _check_offset(offset)
        scored = self._rank(query, k + offset, self._allowed(filters), exclude)
        return SearchResults(self._hits(scored[offset : offset + k]))

    def _rank(
        self, query: np.ndarray, count: int, allowed: np.ndarray | None, exclude: set[int] = frozenset()
    ) -> list[tuple[int, float]]:
        """The `count` best (frame_id, cosine) pairs, best first."""
        if allowed is not None and not len(allowed):
            return []
        index, reason = self.index.get()
        if index is not None and index.dim == query.shape[0]:
            self._fallback_reason = None
            want = min(count + len(exclude), len(index)) if len(index) else 0
            if not want:
                return []
            ids, sims = index.search(
                query, k=want, ef=max(self.ef, want), allowed=None if allowed is None else set(allowed.tolist())
            )
            return [
                (int(i), float(s)) for i, s in zip(ids[0], sims[0], strict=True) if i >= 0 and int(i) not in exclude
            ][:count]
        if reason != self._fallback_reason:
            log.warning("searching exactly: %s", reason)
            self._fallback_reason = reason
        return self._exact_rank(query, count, allowed, exclude)

    def _exact_rank(
        self, query: np.ndarray, count: int, allowed: np.ndarray | None, exclude: set[int]
    ) -> list[tuple[int, float]]:
        frame_ids, _, vectors = self._serving()[0].load_all()
        if not len(frame_ids):
            return []
        if vectors.shape[1] != query.shape[0]:
            raise SearchError(f"query vector has {query.shape[0]} dimensions, stored vectors {vectors.shape[1]}")
        if allowed is not None:
            rows = np.flatnonzero(np.isin(frame_ids, allowed))
            frame_ids, vectors = frame_ids[rows], vectors[rows]
            if not len(frame_ids):
                return []
        scores = vectors @ query.astype(np.float32)
        take = min(count + len(exclude), len(scores))
        # everything tied with the take-th score is a candidate, so ties break by frame id whatever `take` is
        threshold = -np.partition(-scores, take - 1)[take - 1]
        top = np.flatnonzero(scores >= threshold)
        top = top[np.lexsort((frame_ids[top], -scores[top]))][:take]
        return [(int(frame_ids[i]), float(scores[i])) for i in top if int(frame_ids[i]) not in exclude][:count]

    def _hits(self, scored: list[tuple[int, float]]) -> list[SearchHit]:
        if not scored:
            return []
        table = self.frames.get()
        ids = np.array([frame_id for frame_id, _ in scored], dtype=np.int64)
        rows = table.rows_of(ids)
        if (rows < 0).any():  # vectors newer than our copy of the catalog: look again once
            table = self.frames.refresh()
            rows = table.rows_of(ids)
        hits = []
        for (frame_id, cosine), row in zip(scored, rows.tolist(), strict=True):
            if row < 0:  # vector written, catalog row replaced since: skip rather than show a ghost
                continue
            media = table.media.get(int(table.media_id[row]))
            if media is None:
                continue
            hits.append(
                SearchHit(
                    frame_id=frame_id,
                    media_id=int(table.media_id[row]),
                    media_path=media["path"],
                    partition_key=media["partition_key"],
                    kind=media["kind"],
                    timestamp_s=float(table.timestamp_s[row]),
                    thumbnail_path=str(self.warehouse.root / table.thumbnail_path[row]),
                    similarity=float(cosine_to_similarity(cosine)),
                )
            )
        return hits


def _check_filters(filters) -> SearchFilter:
    if filters is None:
        return SearchFilter()
    if not isinstance(filters, SearchFilter):
        raise SearchError(f"filters must be a SearchFilter, got {type(filters).__name__}")
    return filters


def _spread(rows: np.ndarray, count: int = fusion.BACKGROUND_SAMPLE) -> np.ndarray:
    """At most `count` of `rows`, evenly spread (rows are stored file by file, in time order)."""
    if len(rows) <= count:
        return rows
    return rows[np.linspace(0, len(rows) - 1, count).astype(np.int64)]


def _text_candidate(modality: str, hit: TextHit, evidence: float, z: float) -> fusion.Candidate:
    return fusion.Candidate(
        modality,
        hit.media_id,
        hit.start_s,
        hit.end_s,
        hit.score,
        evidence,
        z,
        item_id=hit.item_id,
        kind=hit.kind,
        text=hit.text,
    )


def _frame_at(table: FrameTable, media_id: int, time_s: float) -> int:
    """The row of the frame shown at `time_s` in a file (the last sampled at or before it; else its first), or
    -1 for a file without frames."""
    rows = table.rows_of_media(media_id)
    if not len(rows):
        return -1
    before = rows[table.timestamp_s[rows] <= time_s + 1e-6]
    return int(before[-1] if len(before) else rows[0])


def _transcript_of(warehouse: Warehouse, media_id: int) -> tuple[list[dict], list[dict]]:
    """A file's transcript segments and timed words (empty lists when there are none)."""
    segments = catalog.read_partition(warehouse, "transcript_segments", media_id)
    words = catalog.read_partition(warehouse, "transcript_words", media_id)
    return (
        [] if segments is None else sorted(segments.to_pylist(), key=lambda s: (s["start_s"], s["segment_id"])),
        [] if words is None else words.to_pylist(),
    )


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise SearchError(f"k must be a whole number, got {k!r}")
    if not 1 <= k <= MAX_K:
        raise SearchError(f"k must be between 1 and {MAX_K}, got {k}")
    return int(k)


def _check_offset(offset) -> int:
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise SearchError(f"offset must be a whole number, got {offset!r}")
    if not 0 <= offset <= MAX_OFFSET:
        raise SearchError(f"offset must be between 0 and {MAX_OFFSET}, got {offset}")
    return int(offset)


def _check_id(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SearchError(f"{what} must be an integer, got {value!r}")
    if not 0 <= int(value) <= MAX_ID:
        raise UnknownIdError(f"unknown {what} {value} (ids are integers in [0, 2^63))")
    return int(value)


def _load_adapter(warehouse: Warehouse, version: int) -> EmbeddingAdapter | None:
    """The embedding adapter of a version (None for version 0: no adapter)."""
    return None if version == 0 else EmbeddingAdapter.load(version_dir(warehouse, version))[0]
