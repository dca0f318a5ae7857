"""Pure algorithms and models: arrays in, arrays out, no warehouse.

- `clip`: CLIP image and text encoders through `transformers`.
- `hnsw`: our HNSW approximate nearest-neighbour index (numba).
- `shots`: shot boundaries, static/dynamic shots, keyframes and in-shot events.
- `faces`: face boxes (Haar or YuNet) and the crops that go to CLIP.
- `clusters`: scene and character clusters (HDBSCAN), a noise bucket, stable ids.
- `adapter`: the feedback-trained embedding adapter, its evaluation and the promotion rule.
"""
