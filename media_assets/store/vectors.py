"""The vector store: LanceDB tables keyed by the catalog's ids.

Three tables, one per kind of thing embedded, each with the same columns but its id:
- `frame_vectors`: frame_id BIGINT (a `frames` row), the CLIP image vector of one kept frame;
- `shot_vectors`: shot_id BIGINT (a `shots` row), the normalised mean of the shot's keyframe vectors;
- `face_vectors`: face_id BIGINT (a `faces` row), the CLIP image vector of the face crop;
and in all: media_id BIGINT, vector FLOAT[dim] (L2-normalised, cosine = dot), model_id VARCHAR (the
encoder that made it), run_id VARCHAR (the Dagster run), embedded_at TIMESTAMP.

Replacing a media file's vectors is one `merge_insert` commit (insert/update its new rows and delete its
rows that are gone), so readers never see a half-replaced partition and other partitions are untouched.
Concurrent writers from several processes are serialised by Lance's optimistic commits; a commit that
loses a race is retried.

From DuckDB: `store.sql.open_catalog(warehouse, with_vectors=True)` (or `media-assets sql`) registers each table's
Lance dataset under its name, so `SELECT * FROM frames JOIN frame_vectors USING (frame_id)` works.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import lancedb
import numpy as np
import pyarrow as pa

from media_assets.errors import storage_full_as_error
from media_assets.store.catalog import retry
from media_assets.warehouse import Warehouse

FRAME_VECTORS = "frame_vectors"
SHOT_VECTORS = "shot_vectors"
FACE_VECTORS = "face_vectors"
# table -> its id column (the catalog row the vector belongs to)
ID_COLUMNS = {FRAME_VECTORS: "frame_id", SHOT_VECTORS: "shot_id", FACE_VECTORS: "face_id"}
# the same vectors passed through the current embedding adapter (see `stages.adapter`), with its version
ADAPTED_ID_COLUMNS = {
    "adapted_frame_vectors": "frame_id",
    "adapted_shot_vectors": "shot_id",
    "adapted_face_vectors": "face_id",
}

# Errors Lance raises when a concurrent commit or a table creation raced ours; worth retrying.
_RETRYABLE = (OSError, RuntimeError, ValueError)


def vectors_schema(dim: int, table: str = FRAME_VECTORS) -> pa.Schema:
    fields = [
        ((ID_COLUMNS | ADAPTED_ID_COLUMNS)[table], pa.int64()),
        ("media_id", pa.int64()),
        ("vector", pa.list_(pa.float32(), dim)),
        ("model_id", pa.string()),
        ("run_id", pa.string()),
        ("embedded_at", pa.timestamp("us", tz="UTC")),
    ]
    if table in ADAPTED_ID_COLUMNS:
        fields.append(("adapter_version", pa.int32()))
    return pa.schema(fields)


def vector_matrix(table: pa.Table, column: str = "vector") -> np.ndarray:
    """A fixed-size-list column as a contiguous float32 [rows, dim] array."""
    dim = table.schema.field(column).type.list_size
    flat = table[column].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat.reshape(len(table), dim), dtype=np.float32)


class VectorDimensionError(ValueError):
    pass


def frame_vectors_schema(dim: int) -> pa.Schema:
    return vectors_schema(dim, FRAME_VECTORS)


class VectorStore:
    """One vector table (default `frame_vectors`) of a warehouse. Cheap to create; the connection opens
    lazily."""

    def __init__(self, warehouse: Warehouse, table: str = FRAME_VECTORS):
        columns = ID_COLUMNS | ADAPTED_ID_COLUMNS
        if table not in columns:
            raise ValueError(f"unknown vector table {table!r}; known: {', '.join(columns)}")
        self.warehouse = warehouse
        self.name = table
        self.id_column = columns[table]
        self._db = None
        self._lock = threading.Lock()
        self._cache: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def db(self):
        if self._db is None:
            self._db = lancedb.connect(self.warehouse.vectors_uri)
        return self._db

    def _table(self):
        try:
            return self.db.open_table(self.name)
        except (FileNotFoundError, ValueError):
            return None

    def table(self):
        """The LanceDB table, or None before any vectors."""
        return self._table()

    def dataset(self):
        """The table as a Lance dataset (DuckDB and pyarrow can scan it), or None before any vectors."""
        table = self._table()
        return None if table is None else table.to_lance()

    frame_vectors_dataset = dataset

    def _open_or_create(self, dim: int):
        def open_or_create():
            table = self._table()
            if table is None:
                table = self.db.create_table(self.name, schema=vectors_schema(dim, self.name), exist_ok=True)
            return table

        table = retry(open_or_create, _RETRYABLE, what=f"open {self.name}")
        stored_dim = table.schema.field("vector").type.list_size
        if stored_dim != dim:
            raise VectorDimensionError(
                f"{self.name} holds {stored_dim}-dimensional vectors but the encoder makes {dim}: the model "
                f"changed; delete {self.warehouse.vectors_uri}/{self.name}.lance and re-materialize "
                "the assets that write it to re-embed with the new model"
            )
        return table

    def replace_media(
        self, media_id: int, ids: np.ndarray, vectors: np.ndarray, *, model_id: str, run_id: str = ""
    ) -> int:
        """Make `media_id`'s rows exactly (ids, vectors). Returns the number of rows written."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(f"expected {len(ids)} vectors as a 2-d array, got shape {vectors.shape}")
        if len(ids) == 0:
            self.delete_media(media_id)
            return 0
        with storage_full_as_error(f"{self.name} of media {media_id}", self.path):
            return self._replace_media(media_id, ids, vectors, model_id=model_id, run_id=run_id)

    @property
    def path(self) -> str:
        """Where the table's Lance dataset is (for messages)."""
        return f"{self.warehouse.vectors_uri.rstrip('/')}/{self.name}.lance"

    def _replace_media(self, media_id: int, ids: np.ndarray, vectors: np.ndarray, *, model_id: str, run_id: str) -> int:
        dim = vectors.shape[1]
        table = self._open_or_create(dim)
        now = datetime.now(UTC)
        data = pa.table(
            {
                self.id_column: pa.array(np.asarray(ids, dtype=np.int64)),
                "media_id": pa.array(np.full(len(ids), media_id, dtype=np.int64)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
                "model_id": pa.array([model_id] * len(ids), pa.string()),
                "run_id": pa.array([run_id] * len(ids), pa.string()),
                "embedded_at": pa.array([now] * len(ids), pa.timestamp("us", tz="UTC")),
            },
            schema=vectors_schema(dim, self.name),
        )

        def commit():
            table.checkout_latest()
            (
                table.merge_insert(self.id_column)
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(f"media_id = {int(media_id)}")
                .execute(data)
            )

        retry(commit, _RETRYABLE, what=f"write {self.name} of media {media_id}", timeout_s=120)
        return len(data)

    def replace_all(self, base: pa.Table, vectors: np.ndarray, *, adapter_version: int, run_id: str = "") -> int:
        """Make this (adapted) table exactly `base`'s rows with `vectors` instead of theirs, recording the
        adapter version that made them; one new table version, written in full."""
        if self.name not in ADAPTED_ID_COLUMNS:
            raise ValueError(f"{self.name} is not an adapted table")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        data = pa.table(
            {
                self.id_column: base[self.id_column],
                "media_id": base["media_id"],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
                "model_id": base["model_id"],
                "run_id": pa.array([run_id] * base.num_rows, pa.string()),
                "embedded_at": pa.array([datetime.now(UTC)] * base.num_rows, pa.timestamp("us", tz="UTC")),
                "adapter_version": pa.array([adapter_version] * base.num_rows, pa.int32()),
            },
            schema=vectors_schema(dim, self.name),
        )
        mode = "overwrite" if self._table() is not None else "create"  # (overwriting nothing makes Lance warn)
        with storage_full_as_error(self.name, self.path):
            retry(lambda: self.db.create_table(self.name, data=data, mode=mode), _RETRYABLE, what=f"write {self.name}")
        return data.num_rows

    def drop(self) -> None:
        if self._table() is not None:
            retry(lambda: self.db.drop_table(self.name), _RETRYABLE, what=f"drop {self.name}")

    def delete_media(self, media_id: int) -> None:
        table = self._table()
        if table is not None:
            with storage_full_as_error(f"{self.name} of media {media_id}", self.path):
                retry(
                    lambda: table.delete(f"media_id = {int(media_id)}"),
                    _RETRYABLE,
                    what=f"delete {self.name} of media {media_id}",
                )

    def count(self) -> int:
        table = self._table()
        return 0 if table is None else table.count_rows()

    def model_ids(self) -> list[str]:
        dataset = self.frame_vectors_dataset()
        if dataset is None:
            return []
        return sorted(set(dataset.to_table(columns=["model_id"])["model_id"].to_pylist()))

    def load_all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids int64[n], media_ids int64[n], vectors float32[n, dim]) of every stored vector, cached until
        the table's version changes."""
        table = self._table()
        if table is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        with self._lock:
            table.checkout_latest()
            version = table.version
            if self._cache is None or self._cache[0] != version:
                data = table.to_lance().to_table(columns=[self.id_column, "media_id", "vector"])
                self._cache = (
                    version,
                    data[self.id_column].to_numpy(),
                    data["media_id"].to_numpy(),
                    vector_matrix(data),
                )
            return self._cache[1], self._cache[2], self._cache[3]
