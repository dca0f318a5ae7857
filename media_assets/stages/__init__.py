"""Pipeline stages: each reads what the stage before it wrote, runs a model, and writes the warehouse.
One module per stage, named like its asset or model; stages do not import each other.

- `frames`: probe, sample, thumbnails, hashes and change signals → `media`, `frames`.
- `frame_embeddings`: CLIP vectors of the kept frames → LanceDB `frame_vectors`.
- `shots`: the shot list (shots, keyframes, events) and shot vectors.
- `faces`: faces on keyframes, crops and face vectors.
- `clusters`: scene and character clusters over the whole library, and their checks.
- `hnsw_index`: our HNSW index kept in step with the frame vectors, and its recall check.
- `adapter`: the learning loop: training set, candidate, gate, promotion, adapted vectors.
"""
