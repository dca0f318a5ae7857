"""The search client: text → frames, image → frames, frame → similar frames.

```python
from media_assets import SearchClient
client = SearchClient(warehouse="warehouse")
hits = client.search_text("a cat on a sofa", k=10)
hits.to_polars()
```

Search goes through our HNSW index (`media_assets.frame_index`) when it is present and current, and
is exact otherwise (a dot product over every stored frame vector, with a logged warning saying why);
vectors are L2-normalised, so the dot product is the cosine. Each hit carries `similarity = (1 + cosine) / 2`, which maps cosine's [-1, 1] onto
[0, 1]: higher is better, 1 is the same direction, 0.5 is unrelated (orthogonal). CLIP's text-to-image
cosines are small in absolute terms (≈0.2-0.35 for good matches), so compare similarities with each other,
not with a fixed cut-off.

Queries are encoded with the model that made the stored vectors (their `model_id`), so a search always
compares like with like. Safe to use from several threads at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa

from . import catalog
from .decoding import MediaReadError, load_image
from .encoders import ClipEncoder
from .frame_index import IndexReader
from .vectors import VectorStore
from .warehouse import Warehouse

log = logging.getLogger(__name__)

MAX_K = 1000
MAX_QUERY_CHARS = 2000


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


def cosine_to_similarity(cosine: np.ndarray | float) -> np.ndarray | float:
    return np.clip((np.asarray(cosine, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)


class SearchClient:
    """Search one warehouse. `model` overrides the CLIP model used for queries (it must be the one the
    vectors were made with); by default that model is read from the vector store."""

    def __init__(self, warehouse: str | Path | Warehouse | None = None, *, model: str | None = None, device: str = "auto"):
        self.warehouse = warehouse if isinstance(warehouse, Warehouse) else Warehouse.at(warehouse)
        self.vectors = VectorStore(self.warehouse)
        self.index = IndexReader(self.warehouse, self.vectors)
        self._fallback_reason: str | None = None
        self._model = model
        self._device = device
        self._encoder: ClipEncoder | None = None
        self._encoder_lock = threading.Lock()

    # -- queries ------------------------------------------------------------------------------------

    def search_text(self, query: str, k: int = 10) -> SearchResults:
        k = _check_k(k)
        if not isinstance(query, str) or not query.strip():
            raise SearchError("the text query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise SearchError(f"the text query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are accepted")
        vector = self.encoder.encode_text([query])[0]
        return self._nearest(vector, k)

    def search_image(self, image: str | Path | np.ndarray, k: int = 10) -> SearchResults:
        """Frames that look like `image`: a file path or a BGR uint8 array (as OpenCV gives)."""
        k = _check_k(k)
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
        vector = self.encoder.encode_images([pixels])[0]
        return self._nearest(vector, k)

    def similar_frames(self, frame_id: int, k: int = 10) -> SearchResults:
        """Frames most like a stored frame (the frame itself is left out). A near-duplicate frame, which
        has no vector of its own, is looked up through the kept frame it duplicates."""
        k = _check_k(k)
        frame_ids, _, vectors = self.vectors.load_all()
        lookup_id = self._vector_frame_id(int(frame_id))
        rows = np.flatnonzero(frame_ids == lookup_id)
        if not len(rows):
            raise UnknownIdError(f"frame {frame_id} has no vector (it is not embedded yet)")
        return self._nearest(vectors[rows[0]], k, exclude={int(frame_id), lookup_id})

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
                self._encoder = ClipEncoder.load(model, device=self._device)
            return self._encoder

    def _vector_frame_id(self, frame_id: int) -> int:
        found = catalog.query(
            self.warehouse, "SELECT coalesce(duplicate_of, frame_id) FROM frames WHERE frame_id = ?", [frame_id]
        )
        if not len(found):
            raise UnknownIdError(f"unknown frame id {frame_id}")
        return int(found.column(0)[0].as_py())

    def _nearest(self, query: np.ndarray, k: int, exclude: set[int] = frozenset()) -> SearchResults:
        index, reason = self.index.get()
        if index is not None and index.dim == query.shape[0]:
            self._fallback_reason = None
            ids, sims = index.search(query, k=k + len(exclude))
            chosen = [(int(i), float(s)) for i, s in zip(ids[0], sims[0]) if i >= 0 and int(i) not in exclude][:k]
            return SearchResults(self._hits(chosen))
        if reason != self._fallback_reason:
            log.warning("searching exactly: %s", reason)
            self._fallback_reason = reason
        return self._exact_nearest(query, k, exclude)

    def _exact_nearest(self, query: np.ndarray, k: int, exclude: set[int] = frozenset()) -> SearchResults:
        frame_ids, _, vectors = self.vectors.load_all()
        if not len(frame_ids):
            return SearchResults([])
        if vectors.shape[1] != query.shape[0]:
            raise SearchError(f"query vector has {query.shape[0]} dimensions, stored vectors {vectors.shape[1]}")
        scores = vectors @ query.astype(np.float32)
        take = min(k + len(exclude), len(scores))
        top = np.argpartition(-scores, take - 1)[:take]
        top = top[np.argsort(-scores[top], kind="stable")]
        chosen = [(int(frame_ids[i]), float(scores[i])) for i in top if int(frame_ids[i]) not in exclude][:k]
        return SearchResults(self._hits(chosen))

    def _hits(self, scored: list[tuple[int, float]]) -> list[SearchHit]:
        if not scored:
            return []
        ids = [frame_id for frame_id, _ in scored]
        rows = catalog.query(
            self.warehouse,
            """
            SELECT f.frame_id, f.media_id, m.path, m.partition_key, m.kind, f.timestamp_s, f.thumbnail_path
            FROM frames f JOIN media m USING (media_id)
            WHERE f.frame_id IN (SELECT unnest(?::BIGINT[]))
            """,
            [ids],
        ).to_pylist()
        by_id = {row["frame_id"]: row for row in rows}
        hits = []
        for frame_id, cosine in scored:
            row = by_id.get(frame_id)
            if row is None:  # vector written, catalog row replaced since: skip rather than show a ghost
                continue
            hits.append(
                SearchHit(
                    frame_id=frame_id,
                    media_id=row["media_id"],
                    media_path=row["path"],
                    partition_key=row["partition_key"],
                    kind=row["kind"],
                    timestamp_s=row["timestamp_s"],
                    thumbnail_path=str(self.warehouse.root / row["thumbnail_path"]),
                    similarity=float(cosine_to_similarity(cosine)),
                )
            )
        return hits


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise SearchError(f"k must be a whole number, got {k!r}")
    if not 1 <= k <= MAX_K:
        raise SearchError(f"k must be between 1 and {MAX_K}, got {k}")
    return int(k)
