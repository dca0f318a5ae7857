"""The metadata catalog: DuckDB over per-partition Parquet files.

Every partitioned table (`media`, `frames`, `ingest_errors`) is a folder `tables/<table>/` holding one
Parquet file per media file, `<media_id>.parquet`, written to a temporary name and renamed into place.
Re-materializing a partition replaces exactly its file; deleting a media file removes it. Writers never
open a database file, so any number of Dagster processes write at once while people and the search client
read, and nobody waits on DuckDB's one-writer-per-file lock.

`warehouse/catalog.duckdb` holds views over those folders (refreshed by `sync_catalog_file`), so a person can
`duckdb warehouse/catalog.duckdb` and query `media`, `frames`, `ingest_errors`. The library reads through
`open_catalog`, an in-memory DuckDB with the same views (plus `frame_vectors` from LanceDB when asked).

Column reference (stable names; later issues add tables, not renames):

media: one row per media file that was probed
    media_id BIGINT, partition_key VARCHAR (path relative to the media root), path VARCHAR (absolute),
    kind VARCHAR ('video'|'image'), size_bytes BIGINT, mtime_ns BIGINT, container VARCHAR, codec VARCHAR,
    width INT, height INT (upright, EXIF applied), fps DOUBLE (nominal; NULL for images),
    duration_s DOUBLE, frame_count BIGINT (as the container reports it), frames_sampled INT,
    duplicate_frames INT, undecodable_frames INT, sampling VARCHAR ('fps=1' or 'every=30'),
    run_id VARCHAR (the Dagster run that wrote the row), ingested_at TIMESTAMP

frames: one row per sampled frame
    frame_id BIGINT (= media_id << 20 | seq), media_id BIGINT, seq INT (position among sampled frames),
    frame_index BIGINT (decoded frame number in the file), timestamp_s DOUBLE (presentation time),
    width INT, height INT (of the source frame), thumbnail_path VARCHAR (relative to the warehouse root),
    phash UBIGINT (64-bit DCT perceptual hash), sharpness REAL (variance of the Laplacian),
    change_score REAL (HSV-histogram distance to the previous sampled frame, 0..1),
    pixel_change REAL (mean absolute grey-level difference to the previous sampled frame, 0..1),
    is_duplicate BOOLEAN (near-duplicate of an earlier kept frame: not embedded),
    duplicate_of BIGINT (frame_id of that kept frame), run_id VARCHAR

ingest_errors: the current error of each media file whose last materialization failed
    media_id BIGINT, partition_key VARCHAR, path VARCHAR, stage VARCHAR ('frames'|'frame_embeddings'),
    error_type VARCHAR, message VARCHAR, run_id VARCHAR, failed_at TIMESTAMP
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .warehouse import Warehouse

log = logging.getLogger(__name__)
T = TypeVar("T")

MEDIA_SCHEMA = pa.schema(
    [
        ("media_id", pa.int64()),
        ("partition_key", pa.string()),
        ("path", pa.string()),
        ("kind", pa.string()),
        ("size_bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("container", pa.string()),
        ("codec", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.float64()),
        ("duration_s", pa.float64()),
        ("frame_count", pa.int64()),
        ("frames_sampled", pa.int32()),
        ("duplicate_frames", pa.int32()),
        ("undecodable_frames", pa.int32()),
        ("sampling", pa.string()),
        ("run_id", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)

FRAMES_SCHEMA = pa.schema(
    [
        ("frame_id", pa.int64()),
        ("media_id", pa.int64()),
        ("seq", pa.int32()),
        ("frame_index", pa.int64()),
        ("timestamp_s", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("thumbnail_path", pa.string()),
        ("phash", pa.uint64()),
        ("sharpness", pa.float32()),
        ("change_score", pa.float32()),
        ("pixel_change", pa.float32()),
        ("is_duplicate", pa.bool_()),
        ("duplicate_of", pa.int64()),
        ("run_id", pa.string()),
    ]
)

INGEST_ERRORS_SCHEMA = pa.schema(
    [
        ("media_id", pa.int64()),
        ("partition_key", pa.string()),
        ("path", pa.string()),
        ("stage", pa.string()),
        ("error_type", pa.string()),
        ("message", pa.string()),
        ("run_id", pa.string()),
        ("failed_at", pa.timestamp("us", tz="UTC")),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "media": MEDIA_SCHEMA,
    "frames": FRAMES_SCHEMA,
    "ingest_errors": INGEST_ERRORS_SCHEMA,
}

# An empty file with the table's schema, so a view over a folder with no partitions yet still works.
SCHEMA_FILE = "_schema.parquet"


def table_schema(table: str) -> pa.Schema:
    if table not in TABLES:
        raise ValueError(f"unknown catalog table {table!r}; known: {', '.join(TABLES)}")
    return TABLES[table]


def table_dir(warehouse: Warehouse, table: str) -> Path:
    table_schema(table)
    return warehouse.tables_dir / table


def _write_parquet_atomically(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_tables(warehouse: Warehouse) -> None:
    """Create each table's folder and schema file (idempotent, safe to race)."""
    for name, schema in TABLES.items():
        schema_path = table_dir(warehouse, name) / SCHEMA_FILE
        if not schema_path.exists() or pq.read_schema(schema_path) != schema:
            _write_parquet_atomically(schema.empty_table(), schema_path)


def replace_partition(warehouse: Warehouse, table: str, media_id: int, rows: pa.Table | list[dict]) -> int:
    """Replace all rows of `media_id` in `table` with `rows` (atomically); returns the row count."""
    schema = table_schema(table)
    data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    data = data.select(schema.names).cast(schema)
    if len(data) and not pc.all(pc.equal(data["media_id"], media_id)).as_py():
        raise ValueError(f"rows for partition {media_id} of {table} carry another media_id")
    ensure_tables(warehouse)
    _write_parquet_atomically(data, table_dir(warehouse, table) / f"{media_id}.parquet")
    return len(data)


def delete_partition(warehouse: Warehouse, media_id: int, tables: list[str] | None = None) -> None:
    """Remove `media_id`'s rows from the given tables (default: all)."""
    for table in tables or list(TABLES):
        (table_dir(warehouse, table) / f"{media_id}.parquet").unlink(missing_ok=True)


def read_partition(warehouse: Warehouse, table: str, media_id: int) -> pa.Table | None:
    path = table_dir(warehouse, table) / f"{media_id}.parquet"
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        return None


def _view_sql(warehouse: Warehouse, table: str) -> str:
    pattern = (table_dir(warehouse, table) / "*.parquet").as_posix().replace("'", "''")
    return f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet('{pattern}', union_by_name = true)"


def create_views(con: duckdb.DuckDBPyConnection, warehouse: Warehouse) -> None:
    ensure_tables(warehouse)
    for table in TABLES:
        con.execute(_view_sql(warehouse, table))


def open_catalog(warehouse: Warehouse, *, with_vectors: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the catalog's views; with `frame_vectors` too if asked."""
    con = duckdb.connect(":memory:")
    create_views(con, warehouse)
    if with_vectors:
        from .vectors import VectorStore

        dataset = VectorStore(warehouse).frame_vectors_dataset()
        if dataset is not None:
            con.register("frame_vectors", dataset)
    return con


def query(warehouse: Warehouse, sql: str, params: list | None = None) -> pa.Table:
    """Run one SQL statement against the catalog; retried if a partition file is replaced mid-read."""

    def run() -> pa.Table:
        con = open_catalog(warehouse)
        try:
            return con.sql(sql, params=params or None).to_arrow_table()
        finally:
            con.close()

    return retry(run, (duckdb.IOException,), what="catalog query")


def recorded_signatures(warehouse: Warehouse) -> dict[str, str]:
    """partition key → the file signature (size:mtime) each media row was made from."""
    from .media import file_signature

    rows = query(warehouse, "SELECT partition_key, size_bytes, mtime_ns FROM media").to_pylist()
    return {r["partition_key"]: file_signature(r["size_bytes"], r["mtime_ns"]) for r in rows}


def retry(fn: Callable[[], T], errors: tuple[type[BaseException], ...], *, what: str, timeout_s: float = 30.0) -> T:
    """Call `fn`, retrying with backoff while it raises one of `errors` (lock conflicts, files replaced
    under a reader), for at most `timeout_s`. The one helper every writer and reader uses."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            return fn()
        except errors as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.debug("%s: %s; retrying in %.2fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def connect_file(path: Path, *, read_only: bool = False, timeout_s: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB database file, waiting (with backoff) while another process holds its lock."""
    return retry(
        lambda: duckdb.connect(str(path), read_only=read_only),
        (duckdb.IOException,),
        what=f"open {path}",
        timeout_s=timeout_s,
    )


def sync_catalog_file(warehouse: Warehouse, *, timeout_s: float = 5.0) -> bool:
    """(Re)create the views in `catalog.duckdb`. Returns False (with a warning) when another process,
    say a person's open DuckDB shell, holds the file's lock for longer than `timeout_s`; the views stay as
    they were, which is harmless since they read the folders at query time."""
    warehouse.root.mkdir(parents=True, exist_ok=True)
    try:
        con = connect_file(warehouse.catalog_path, timeout_s=timeout_s)
    except duckdb.IOException as exc:
        log.warning("could not refresh the views in %s (%s); they are used as they are", warehouse.catalog_path, exc)
        return False
    try:
        create_views(con, warehouse)
    finally:
        con.close()
    return True
