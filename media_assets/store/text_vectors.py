"""The text-vector store: LanceDB table `text_vectors`, the words of a media file made searchable by meaning
(sentence vectors) and by their exact words (a BM25 full-text index), beside `frame_vectors` in the same
LanceDB database (`Warehouse.vectors_uri`).

One row per embedded piece of text:
    text_id BIGINT (= media_id << 20 | n, see `text_row_id`), kind VARCHAR ('transcript': a window of
    consecutive transcript segments; 'screen_text': the lines read together on screen over one time span;
    'summary', later), item_id BIGINT (the window's first `transcript_segments.segment_id`, or the span's
    first `screen_text.text_id`), media_id BIGINT, start_s, end_s DOUBLE (seconds in the file), text VARCHAR
    (what was embedded and indexed), vector FLOAT[dim] (L2-normalised: cosine = dot), model_id VARCHAR (the
    text encoder), run_id VARCHAR, embedded_at TIMESTAMP.

Ids: n is numbered per file in one block of 2^18 per kind (`n = kind_index << 18 | i`), so a writer that
replaces one kind (a re-transcription, summaries later) can never take the id of a row of another kind it
leaves in place; 262,144 rows per kind and file (a 24 h recording in 20 s windows is 4,320).

Writes: `replace_media` makes one file's rows (of the kinds it names) exactly the given ones in one
`merge_insert` commit, as `store.vectors` does (readers never see half a file; concurrent writers are
serialised by Lance's optimistic commits and a lost race is retried).

Full text: a Lance native inverted index (BM25, k1 = 1.2, b = 0.75; English tokenizer: lower case, ASCII
folding, Snowball stemming, stop words removed; with positions, so quoted phrases work) on `text`, named
`text_idx`. Lance searches the rows the index has not seen yet by a flat scan, so a row is findable the
moment its commit lands; the scan costs ≈ 6 ms per 1,000 unindexed rows (100k-row table, 1 thread). So
after every write the new rows get a delta segment of the index (`optimize_indices(num_indices_to_merge=0)`,
20-60 ms at 100k rows), and once more than `FTS_MAX_SEGMENTS` segments piled up they are merged into one
(≈ 0.8 s at 100k rows). Creating the index the first time: ≈ 1.9 s at 100k rows. A whole `replace_media` of
100 rows into a 10k-row table: p50 150 ms (commit and index). A failed index update only logs: the rows stay
findable through the flat scan and the next write tries again. A full-text query: ≈ 6 ms at 100k rows in
Lance, ≈ 23 ms through LanceDB's Python client with its overhead (10k rows, 100 hits).

Vector search is exact over an in-memory copy of the table's vectors and columns, refreshed when the table
version changes (LanceDB's own flat scan costs ≈ 220 ms at 100k × 384; numpy's ≈ 5 ms; the copy is
≈ 1.6 kB a row: 160 MB per 100k rows).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import lancedb
import numpy as np
import pyarrow as pa

from media_assets.errors import storage_full_as_error
from media_assets.ids import FRAME_SEQ_BITS, text_id_for
from media_assets.store.catalog import retry
from media_assets.store.vectors import VectorDimensionError, vector_matrix
from media_assets.warehouse import Warehouse

log = logging.getLogger(__name__)

TEXT_VECTORS = "text_vectors"
TEXT_KINDS = ("transcript", "screen_text", "summary")
KIND_BLOCK_BITS = 18  # n = kind_index << 18 | i: 4 blocks of 2^18 fill the 20 bits of an id's n
MAX_ROWS_PER_KIND = 1 << KIND_BLOCK_BITS
FTS_INDEX = "text_idx"
# Segments of the full-text index before they are merged into one: a query reads every segment (4 cost what
# 1 does at 100k rows, ≈ 5 ms; 17 made a 10k-row table's queries ≈ 10% slower than 9); merging costs ≈ 0.8 s
# at 100k rows, so it is done every 9th write.
FTS_MAX_SEGMENTS = 8
# Errors Lance raises when a concurrent commit or a table creation raced ours; worth retrying.
_RETRYABLE = (OSError, RuntimeError, ValueError)
_WORD = re.compile(r"\w+", re.UNICODE)
_PHRASE = re.compile(r'"([^"]+)"')

assert len(TEXT_KINDS) <= 1 << (FRAME_SEQ_BITS - KIND_BLOCK_BITS)


def text_vectors_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("text_id", pa.int64()),
            ("kind", pa.string()),
            ("item_id", pa.int64()),
            ("media_id", pa.int64()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("text", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("model_id", pa.string()),
            ("run_id", pa.string()),
            ("embedded_at", pa.timestamp("us", tz="UTC")),
        ]
    )


def text_row_id(media_id: int, kind: str, index: int) -> int:
    """The text_id of a file's `index`-th row of `kind` (`ids.text_id_for` with a block per kind)."""
    if kind not in TEXT_KINDS:
        raise ValueError(f"unknown text kind {kind!r}; known: {', '.join(TEXT_KINDS)}")
    if not 0 <= index < MAX_ROWS_PER_KIND:
        raise ValueError(f"text row index {index} of kind {kind} is outside [0, {MAX_ROWS_PER_KIND})")
    return text_id_for(media_id, TEXT_KINDS.index(kind) << KIND_BLOCK_BITS | index)


def check_kinds(kinds: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validated kinds (None: all)."""
    if kinds is None:
        return TEXT_KINDS
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = [k for k in kinds if k not in TEXT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"text kinds must be some of {', '.join(TEXT_KINDS)}, got {list(kinds)}")
    return kinds


@dataclass(frozen=True)
class TextHit:
    """One stored row found by a search, with its score: the cosine (vector search) or BM25 (full text)."""

    text_id: int
    kind: str
    item_id: int
    media_id: int
    start_s: float
    end_s: float
    text: str
    score: float


@dataclass(frozen=True)
class TextRows:
    """The in-memory copy of the table (one version): columns as arrays, rows in the same order."""

    version: int
    text_id: np.ndarray  # int64
    kind: np.ndarray  # int8: index into TEXT_KINDS
    item_id: np.ndarray  # int64
    media_id: np.ndarray  # int64
    start_s: np.ndarray  # float64
    end_s: np.ndarray  # float64
    text: list[str]
    vectors: np.ndarray  # float32 [n, dim]

    def __len__(self) -> int:
        return len(self.text_id)

    def mask(self, kinds: Sequence[str] | None = None, media_ids: Iterable[int] | None = None) -> np.ndarray:
        """Rows of these kinds (None: all) in these files (None: all)."""
        keep = np.ones(len(self), bool)
        if kinds is not None and set(kinds) != set(TEXT_KINDS):
            keep &= np.isin(self.kind, [TEXT_KINDS.index(k) for k in kinds])
        if media_ids is not None:
            keep &= np.isin(self.media_id, np.fromiter(media_ids, np.int64))
        return keep

    def hit(self, row: int, score: float) -> TextHit:
        return TextHit(
            text_id=int(self.text_id[row]),
            kind=TEXT_KINDS[int(self.kind[row])],
            item_id=int(self.item_id[row]),
            media_id=int(self.media_id[row]),
            start_s=float(self.start_s[row]),
            end_s=float(self.end_s[row]),
            text=self.text[row],
            score=float(score),
        )


def _empty_rows() -> TextRows:
    z = np.zeros(0, np.int64)
    return TextRows(-1, z, np.zeros(0, np.int8), z, z, np.zeros(0), np.zeros(0), [], np.zeros((0, 0), np.float32))


class TextVectorStore:
    """The `text_vectors` table of a warehouse. Cheap to create; the connection opens lazily; thread-safe."""

    name = TEXT_VECTORS

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self._db = None
        self._handle = None
        self._lock = threading.Lock()
        self._cache: TextRows | None = None

    @property
    def db(self):
        if self._db is None:
            self._db = lancedb.connect(self.warehouse.vectors_uri)
        return self._db

    def table(self):
        """The LanceDB table at its latest version, or None before any text was embedded."""
        if self._handle is None:
            try:
                self._handle = self.db.open_table(self.name)
            except (FileNotFoundError, ValueError):
                return None
        else:
            self._handle.checkout_latest()
        return self._handle

    def dataset(self):
        """The table as a Lance dataset (DuckDB and pyarrow can scan it), or None before any text."""
        table = self.table()
        return None if table is None else table.to_lance()

    def count(self, kinds: Sequence[str] | None = None) -> int:
        table = self.table()
        if table is None:
            return 0
        kinds = check_kinds(kinds)
        return table.count_rows(None if set(kinds) == set(TEXT_KINDS) else _kinds_sql(kinds))

    def model_ids(self) -> list[str]:
        dataset = self.dataset()
        if dataset is None:
            return []
        return sorted(set(dataset.to_table(columns=["model_id"])["model_id"].to_pylist()))

    # -- writes -------------------------------------------------------------------------------------

    def _open_or_create(self, dim: int):
        def open_or_create():
            table = self.table()
            if table is None:
                self.db.create_table(self.name, schema=text_vectors_schema(dim), exist_ok=True)
                table = self.table()
            return table

        table = retry(open_or_create, _RETRYABLE, what=f"open {self.name}")
        stored_dim = table.schema.field("vector").type.list_size
        if stored_dim != dim:
            raise VectorDimensionError(
                f"{self.name} holds {stored_dim}-dimensional vectors but the text encoder makes {dim}: the model "
                f"changed; delete {self.warehouse.vectors_uri}/{self.name}.lance and re-materialize the text "
                "vectors of every file to re-embed with the new model"
            )
        return table

    def replace_media(
        self,
        media_id: int,
        rows: pa.Table | Sequence[dict],
        vectors: np.ndarray,
        *,
        kinds: Sequence[str] = ("transcript", "screen_text"),
        model_id: str,
        run_id: str = "",
    ) -> int:
        """Make `media_id`'s rows of `kinds` exactly `rows` (columns text_id, kind, item_id, start_s, end_s,
        text; one vector each) in one commit; its rows of other kinds and other files are untouched. Then
        brings the full-text index up to date. Returns the number of rows written."""
        kinds = check_kinds(kinds)
        data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(data) == 0:
            self.delete_media(media_id, kinds)
            return 0
        if vectors.ndim != 2 or len(vectors) != len(data):
            raise ValueError(f"expected {len(data)} vectors as a 2-d array, got shape {vectors.shape}")
        stray = set(data["kind"].to_pylist()) - set(kinds)
        if stray:
            raise ValueError(f"rows of media {media_id} have kinds {sorted(stray)} outside the kinds replaced {kinds}")
        ids = data["text_id"].to_numpy()
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"rows of media {media_id} repeat text ids")
        if np.any(ids >> FRAME_SEQ_BITS != media_id):
            raise ValueError(f"rows for media {media_id} carry text ids of another file")
        if not np.isfinite(vectors).all():
            raise ValueError(f"vectors of media {media_id} are not all finite")
        dim = vectors.shape[1]
        table = self._open_or_create(dim)
        count = len(data)
        now = datetime.now(UTC)
        batch = pa.table(
            {
                "text_id": pa.array(ids, pa.int64()),
                "kind": data["kind"].cast(pa.string()),
                "item_id": data["item_id"].cast(pa.int64()),
                "media_id": pa.array(np.full(count, media_id, dtype=np.int64)),
                "start_s": data["start_s"].cast(pa.float64()),
                "end_s": data["end_s"].cast(pa.float64()),
                "text": data["text"].cast(pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
                "model_id": pa.array([model_id] * count, pa.string()),
                "run_id": pa.array([run_id] * count, pa.string()),
                "embedded_at": pa.array([now] * count, pa.timestamp("us", tz="UTC")),
            },
            schema=text_vectors_schema(dim),
        )
        gone = f"media_id = {int(media_id)} AND {_kinds_sql(kinds)}"

        def commit():
            table.checkout_latest()
            (
                table.merge_insert("text_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(gone)
                .execute(batch)
            )

        dataset_path = f"{self.warehouse.vectors_uri}/{self.name}.lance"
        with storage_full_as_error(f"{self.name} of media {media_id}", dataset_path):
            retry(commit, _RETRYABLE, what=f"write {self.name} of media {media_id}", timeout_s=120)
            self.update_fts_index()
        return count

    def delete_media(self, media_id: int, kinds: Sequence[str] | None = None) -> None:
        """Remove a file's rows (of `kinds`; None: all of them)."""
        table = self.table()
        if table is None:
            return
        kinds = check_kinds(kinds)
        where = f"media_id = {int(media_id)}"
        if set(kinds) != set(TEXT_KINDS):
            where += f" AND {_kinds_sql(kinds)}"
        retry(lambda: table.delete(where), _RETRYABLE, what=f"delete {self.name} of media {media_id}")

    def drop(self) -> None:
        if self.table() is not None:
            retry(lambda: self.db.drop_table(self.name), _RETRYABLE, what=f"drop {self.name}")
            self._handle = None

    # -- the full-text index ------------------------------------------------------------------------

    def fts_status(self) -> dict | None:
        """The full-text index: {'indexed_rows', 'unindexed_rows', 'segments'}, or None without one."""
        table = self.table()
        if table is None:
            return None
        config = next((c for c in table.list_indices() if c.name == FTS_INDEX), None)
        if config is None:
            return None
        stats = table.index_stats(FTS_INDEX)
        return {
            "indexed_rows": int(stats.num_indexed_rows),
            "unindexed_rows": int(stats.num_unindexed_rows),
            "segments": int(getattr(config, "num_segments", None) or stats.num_indices or 1),
        }

    def update_fts_index(self) -> str:
        """Create the full-text index when it is missing, index the rows written since (a delta segment), and
        merge the segments once there are more than FTS_MAX_SEGMENTS. Returns what it did ('created',
        'appended', 'merged', 'current', 'no table'); a failure is logged and left for the next write."""
        from lancedb.index import FTS

        table = self.table()
        if table is None:
            return "no table"
        try:
            status = self.fts_status()
            if status is None:
                retry(
                    lambda: table.create_index("text", config=FTS(with_position=True), replace=True, name=FTS_INDEX),
                    _RETRYABLE,
                    what=f"create the full-text index of {self.name}",
                )
                return "created"
            if status["segments"] > FTS_MAX_SEGMENTS:
                retry(
                    lambda: table.to_lance().optimize.optimize_indices(index_names=[FTS_INDEX]),
                    _RETRYABLE,
                    what=f"merge the full-text index of {self.name}",
                )
                return "merged"
            if status["unindexed_rows"]:
                retry(
                    lambda: table.to_lance().optimize.optimize_indices(index_names=[FTS_INDEX], num_indices_to_merge=0),
                    _RETRYABLE,
                    what=f"index new rows of {self.name}",
                )
                return "appended"
            return "current"
        except _RETRYABLE as exc:
            log.warning(
                "could not update the full-text index of %s (%s); new rows stay findable by a slower scan",
                self.name,
                exc,
            )
            return "failed"

    # -- reads --------------------------------------------------------------------------------------

    def load_all(self) -> TextRows:
        """Every row (vectors and columns), cached until the table's version changes."""
        with self._lock:
            table = self.table()
            if table is None:
                return _empty_rows()
            version = table.version
            if self._cache is None or self._cache.version != version:
                columns = ["text_id", "kind", "item_id", "media_id", "start_s", "end_s", "text", "vector"]
                data = table.to_lance().to_table(columns=columns)
                kind_codes = {kind: code for code, kind in enumerate(TEXT_KINDS)}
                self._cache = TextRows(
                    version=version,
                    text_id=data["text_id"].to_numpy(),
                    kind=np.array([kind_codes[k] for k in data["kind"].to_pylist()], np.int8),
                    item_id=data["item_id"].to_numpy(),
                    media_id=data["media_id"].to_numpy(),
                    start_s=data["start_s"].to_numpy(),
                    end_s=data["end_s"].to_numpy(),
                    text=data["text"].to_pylist(),
                    vectors=vector_matrix(data) if len(data) else np.zeros((0, 0), np.float32),
                )
            return self._cache

    def search_vector(
        self,
        query: np.ndarray,
        k: int = 10,
        *,
        kinds: Sequence[str] | None = None,
        media_ids: Iterable[int] | None = None,
    ) -> list[TextHit]:
        """The `k` rows nearest a unit query vector (score: cosine), best first; exact."""
        rows = self.load_all()
        keep = np.flatnonzero(rows.mask(check_kinds(kinds), media_ids))
        if not len(keep) or k < 1:
            return []
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (rows.vectors.shape[1],):
            raise ValueError(f"query vector has shape {query.shape}; {self.name} holds {rows.vectors.shape[1]}-d ones")
        scores = rows.vectors[keep] @ query
        take = min(k, len(keep))
        top = np.argpartition(-scores, take - 1)[:take]
        top = top[np.lexsort((rows.text_id[keep[top]], -scores[top]))]
        return [rows.hit(int(keep[i]), scores[i]) for i in top]

    def search_text(
        self,
        query: str,
        k: int = 10,
        *,
        kinds: Sequence[str] | None = None,
        media_ids: Iterable[int] | None = None,
    ) -> list[TextHit]:
        """Rows holding the query's words (any of them; BM25 ranks rows with more, rarer ones first) or its
        "quoted phrases" (those words in that order), best first (score: BM25). Words are matched after
        lower-casing, ASCII folding and stemming ('foxes' finds 'fox'); stop words alone find nothing.
        No matching word: no rows."""
        table = self.table()
        kinds = check_kinds(kinds)
        fts = fts_query(query)
        if table is None or fts is None or k < 1:
            return []
        if self.fts_status() is None:
            log.warning("%s has no full-text index yet; creating it", self.name)
            self.update_fts_index()
        where = []
        if set(kinds) != set(TEXT_KINDS):
            where.append(_kinds_sql(kinds))
        if media_ids is not None:
            ids = sorted({int(m) for m in media_ids})
            if not ids:
                return []
            where.append(f"media_id IN ({', '.join(map(str, ids))})")
        search = table.search(fts, query_type="fts")
        if where:
            search = search.where(" AND ".join(where), prefilter=True)
        columns = ["text_id", "kind", "item_id", "media_id", "start_s", "end_s", "text"]
        result = retry(
            lambda: search.select([*columns, "_score"]).limit(k).to_arrow(),
            _RETRYABLE,
            what=f"search {self.name}",
            timeout_s=5,
        )
        hits = [
            TextHit(
                text_id=r["text_id"],
                kind=r["kind"],
                item_id=r["item_id"],
                media_id=r["media_id"],
                start_s=r["start_s"],
                end_s=r["end_s"],
                text=r["text"],
                score=float(r["_score"]),
            )
            for r in result.to_pylist()
        ]
        hits.sort(key=lambda h: (-h.score, h.text_id))
        return hits


def query_words(query: str) -> list[str]:
    """The words of a query, lower-cased, in order (what the full-text search and the highlighting use)."""
    return [w.lower() for w in _WORD.findall(query or "")]


def fts_query(query: str):
    """A LanceDB full-text query for a user's text: "quoted phrases" as phrase queries, the other words as
    one OR match (built as query objects, so no character of the text is query syntax). None: no words."""
    from lancedb.query import BooleanQuery, MatchQuery, Occur, PhraseQuery

    if not isinstance(query, str):
        return None
    phrases = [" ".join(query_words(p)) for p in _PHRASE.findall(query)]
    phrases = [p for p in phrases if p]
    words = query_words(_PHRASE.sub(" ", query))
    parts = [PhraseQuery(p, "text") if " " in p else MatchQuery(p, "text") for p in phrases]
    if words:
        parts.append(MatchQuery(" ".join(words), "text"))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else BooleanQuery([(Occur.SHOULD, part) for part in parts])


def bm25_single_term(rows: int) -> float:
    """The BM25 of one query word found once in one row of average length, in a table of `rows` rows: the
    inverse document frequency ln(1 + (N - 0.5) / 1.5) (k1 and b drop out at tf = 1, average length). The
    scale full-text scores are read against: a row holding one of the rarest words scores about this."""
    return float(np.log1p((max(rows, 1) - 0.5) / 1.5))


def _kinds_sql(kinds: Sequence[str]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in check_kinds(kinds)) + ")"
