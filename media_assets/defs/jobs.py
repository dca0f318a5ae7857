"""Every job of the code location. Jobs select assets by key, so this module imports no asset module.

- `ingest_media`: one media file's frames, CLIP vectors, shots, faces, transcript, screen text, text
  vectors and chapters (partitioned by `media_files`);
- `index_frames`: bring the HNSW index up to date; `cluster_library`: re-cluster shots and faces;
- `learn_from_feedback`: train a candidate adapter, gate it, and when promoted refresh what depends on it;
- `refresh_adapted`: re-derive the adapted vectors, the index and the clusters (after a rollback);
- `verify_warehouse`: only the check `warehouse_is_consistent` (on `hnsw_index`), which the schedule of
  `health` requests; the jobs above that build the index leave it out (it reads the whole warehouse, and their
  callers read the index's own checks).
"""

from dagster import AssetCheckKey, AssetKey, AssetSelection, define_asset_job

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

# the whole-warehouse check rides on hnsw_index (the last thing made from every vector) but runs in its own job
WAREHOUSE_CHECK = AssetCheckKey(AssetKey("hnsw_index"), "warehouse_is_consistent")
_WAREHOUSE_CHECK_SELECTION = AssetSelection.checks(WAREHOUSE_CHECK)

index_job = define_asset_job(
    "index_frames",
    selection=AssetSelection.assets("hnsw_index") - _WAREHOUSE_CHECK_SELECTION,
    description="Bring the HNSW frame index up to date.",
)

clusters_job = define_asset_job("cluster_library", selection=["clusters"], description="Re-cluster shots and faces.")

# dagster.yaml lets one run with this tag run at a time: the adapter, its vectors and what is built from them
# change in one place at once (the gate's judgement is against the adapter current when it promotes)
ADAPTER_RUN_TAG = {"media_assets/adapter": "writes"}

learning_job = define_asset_job(
    "learn_from_feedback",
    selection=AssetSelection.assets(
        "embedding_adapter", "promoted_adapter", "adapted_vectors", "hnsw_index", "clusters"
    )
    - _WAREHOUSE_CHECK_SELECTION,
    description=(
        "Train a candidate adapter on the feedback, gate it, and (if promoted) re-derive vectors, index and clusters."
    ),
    tags=ADAPTER_RUN_TAG,
)
refresh_job = define_asset_job(
    "refresh_adapted",
    selection=AssetSelection.assets("adapted_vectors", "hnsw_index", "clusters") - _WAREHOUSE_CHECK_SELECTION,
    description="Re-derive adapted vectors, the index and the clusters for the adapter now current (after a rollback).",
    tags=ADAPTER_RUN_TAG,
)


verify_job = define_asset_job(
    "verify_warehouse",
    selection=AssetSelection.checks(WAREHOUSE_CHECK),
    description="Check that the catalog, vectors, thumbnails, index and adapter registry agree "
    "(the asset check warehouse_is_consistent).",
)


JOBS = [ingest_job, index_job, clusters_job, learning_job, refresh_job, verify_job]
