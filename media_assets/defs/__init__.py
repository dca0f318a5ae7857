"""The Dagster layer: thin assets over the library, and what runs them (`media_assets.definitions` loads it).

- asset groups, one module each: `media`, `film`, `search`, `learning`;
- `jobs`, `automation` (conditions and automation sensors), `sensors`, `partitions`, `resources`;
- `instance` (a warehouse's Dagster instance), `runner` (what `media-assets ingest` and friends run).
"""
