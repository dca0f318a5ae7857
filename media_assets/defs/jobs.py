"""Every job of the code location. Jobs select assets by key, so this module imports no asset module.

- `ingest_media`: one media file's frames, CLIP vectors, shots, faces, transcript, screen text, text
  vectors and chapters (partitioned by `media_files`);
- `index_frames`: bring the HNSW index up to date; `cluster_library`: re-cluster shots and faces;
- `learn_from_feedback`: train a candidate adapter, gate it, and when promoted refresh what depends on it;
- `refresh_adapted`: re-derive the adapted vectors, the index and the clusters (after a rollback).
"""

from dagster import define_asset_job

from media_assets.defs.partitions import media_files

ingest_job = define_asset_job(
    "ingest_media",
    selection=[
        "frames",
        "frame_embeddings",
        "shots",
        "faces",
        "transcripts",
        "screen_text",
        "text_vectors",
        "chapters",
    ],
    partitions_def=media_files,
    description="Frames, CLIP embeddings, shots, faces, transcript, screen text, text vectors and chapters of one "
    "media file.",
)

index_job = define_asset_job(
    "index_frames", selection=["hnsw_index"], description="Bring the HNSW frame index up to date."
)

clusters_job = define_asset_job("cluster_library", selection=["clusters"], description="Re-cluster shots and faces.")

# dagster.yaml lets one run with this tag run at a time: the adapter, its vectors and what is built from them
# change in one place at once (the gate's judgement is against the adapter current when it promotes)
ADAPTER_RUN_TAG = {"media_assets/adapter": "writes"}

learning_job = define_asset_job(
    "learn_from_feedback",
    selection=["embedding_adapter", "promoted_adapter", "adapted_vectors", "hnsw_index", "clusters"],
    description=(
        "Train a candidate adapter on the feedback, gate it, and (if promoted) re-derive vectors, index and clusters."
    ),
    tags=ADAPTER_RUN_TAG,
)
refresh_job = define_asset_job(
    "refresh_adapted",
    selection=["adapted_vectors", "hnsw_index", "clusters"],
    description="Re-derive adapted vectors, the index and the clusters for the adapter now current (after a rollback).",
    tags=ADAPTER_RUN_TAG,
)


JOBS = [ingest_job, index_job, clusters_job, learning_job, refresh_job]
