"""One DuckDB connection that knows the whole warehouse: the catalog's views and the LanceDB vector tables.

`open_catalog(warehouse, with_vectors=True)` (what `media-assets sql` opens) registers each vector table's
Lance dataset under its name beside the catalog views, so
`SELECT * FROM frames JOIN frame_vectors USING (frame_id)` works. It lives apart from `catalog` and
`vectors` because it is the one place that needs both.
"""

from __future__ import annotations

import duckdb

from media_assets.store.catalog import create_views
from media_assets.store.text_vectors import TEXT_VECTORS, TextVectorStore, text_vectors_schema
from media_assets.store.vectors import ID_COLUMNS, VectorStore
from media_assets.warehouse import Warehouse


def open_catalog(warehouse: Warehouse, *, with_vectors: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the catalog's views; with the vector tables (`frame_vectors`,
    `shot_vectors`, `face_vectors`, `text_vectors`) too if asked."""
    con = duckdb.connect(":memory:")
    create_views(con, warehouse)
    if with_vectors:
        datasets = {name: VectorStore(warehouse, name).dataset() for name in ID_COLUMNS}
        # text_vectors is made at the first file with text; until then it is an empty table, so queries run
        datasets[TEXT_VECTORS] = TextVectorStore(warehouse).dataset() or text_vectors_schema(0).empty_table()
        for name, dataset in datasets.items():
            if dataset is not None:
                con.register(name, dataset)
    return con
