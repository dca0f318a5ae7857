"""The Dagster code location (`workspace.yaml` loads `defs` from here)."""

from __future__ import annotations

from dagster import Definitions, multiprocess_executor

from .defs.assets import every_kept_frame_has_a_vector, frame_embeddings, frames
from .defs.film_assets import (
    cluster_ids_stable,
    clusters,
    clusters_automation,
    clusters_job,
    every_face_in_a_shot,
    every_shot_in_one_scene,
    faces,
    shots,
)
from .defs.index_assets import hnsw_index, hnsw_recall, index_automation, index_job
from .defs.learning_assets import (
    adapted_vectors,
    adapted_vectors_automation,
    adapter_improves_held_out,
    embedding_adapter,
    feedback_table,
    feedback_sensor,
    learning_job,
    promoted_adapter,
    refresh_job,
)
from .defs.resources import ClipEncoderResource, WarehouseResource
from .defs.sensors import ingest_job, media_sensor


# Runs execute their steps in child processes forked from a per-run forkserver that has already imported the
# heavy libraries once (instead of every step process importing torch and transformers anew).
executor = multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["media_assets.definitions", "torch", "transformers"]}}},
    name="multiprocess_preloaded",
)


def build_definitions(
    warehouse: str = "", *, media_root: str = "", clip_model: str = "", device: str = "auto", batch_size: int = 32
) -> Definitions:
    """Definitions over one warehouse; empty arguments fall back to the environment and defaults."""
    return Definitions(
        assets=[frames, frame_embeddings, hnsw_index, shots, faces, clusters, feedback_table, embedding_adapter, promoted_adapter, adapted_vectors],
        asset_checks=[
            every_kept_frame_has_a_vector, hnsw_recall, every_shot_in_one_scene, every_face_in_a_shot, cluster_ids_stable,
            adapter_improves_held_out,
        ],
        jobs=[ingest_job, index_job, clusters_job, learning_job, refresh_job],
        sensors=[media_sensor, index_automation, clusters_automation, feedback_sensor, adapted_vectors_automation],
        executor=executor,
        resources={
            "warehouse": WarehouseResource(root=warehouse, media_root=media_root),
            "clip": ClipEncoderResource(model=clip_model, device=device, batch_size=batch_size),
        },
    )


defs = build_definitions()
