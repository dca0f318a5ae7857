"""The demo library and the generators tests and benchmarks use.

- `library`: a small, realistic demo media library with ground truth.
- `random_clip`: CLIP checkpoints with random weights, for machines without the Hub.
- `synthetic_library`: catalog rows and vectors made from chosen vectors.
"""
