"""What people say: the feedback table and what follows members through a re-ingest.

- `table`: the `feedback` table's one writer (moves, merges, splits, pairs, relevance) and its readers.
- `anchors`: what a feedback row's members looked like, so pins and training follow them.
- `pins`: pins and names of clusters.
"""
