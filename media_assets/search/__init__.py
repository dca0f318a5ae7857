"""Search: the client and what it reads.

- `client`: `SearchClient` — frames, moments, timelines, similar videos; results and filters.
- `index`: the HNSW index when it is current, else why not.
- `frame_lookup`: an in-memory copy of what results need from the catalog.
- `query_terms`: rclip-style weighted query expressions.
"""
