"""Persistence: one owner per file under the warehouse folder.

- `catalog`: the DuckDB catalog over Parquet (tables, views, atomic partition writes).
- `vectors`: the LanceDB vector tables keyed by the catalog's ids.
- `sql`: one DuckDB connection that knows both (what `media-assets sql` opens).
- `adapters`: embedding adapters on disk, which one is current, which vectors to serve.
- `index_files`: the HNSW index's files and manifest.
"""
