"""The Dagster code location (`workspace.yaml` loads `defs` from here): a table of contents.

Asset groups, one module each (`group_name` = module name): `media` (frames, frame_embeddings), `film`
(shots, faces, clusters), `text` (transcripts, screen_text, text_vectors, chapters), `search` (hnsw_index), `learning`
(feedback, embedding_adapter, promoted_adapter, adapted_vectors): their assets and checks are loaded from
them. Then the jobs (`jobs.JOBS`), the sensors (`sensors.SENSORS`), the automation sensors
(`automation.SENSORS`) and the schedules (`health.SCHEDULES`, with `health`'s check `warehouse_is_consistent`),
each listed in its own module.
"""

from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules, multiprocess_executor

from media_assets.defs import automation, film, health, jobs, learning, media, search, sensors, text
from media_assets.defs.resources import (
    ClipEncoderResource,
    SpeechResource,
    SummaryModelResource,
    TextEncoderResource,
    WarehouseResource,
)

GROUPS = (media, film, text, search, learning)

# Runs execute their steps in child processes forked from a per-run forkserver that has already imported the
# heavy libraries once (instead of every step process importing torch and transformers anew).
executor = multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["media_assets.definitions", "torch", "transformers"]}}},
    name="multiprocess_preloaded",
)


def build_definitions(
    warehouse: str = "",
    *,
    media_root: str = "",
    clip_model: str = "",
    asr_model: str = "",
    text_model: str = "",
    summary_model: str = "",
    device: str = "auto",
    batch_size: int = 32,
) -> Definitions:
    """Definitions over one warehouse; empty arguments fall back to the environment and defaults."""
    return Definitions(
        assets=load_assets_from_modules(GROUPS, include_specs=True),
        asset_checks=load_asset_checks_from_modules([*GROUPS, health]),
        jobs=jobs.JOBS,
        sensors=[*sensors.SENSORS, *automation.SENSORS],
        schedules=health.SCHEDULES,
        resources={
            "warehouse": WarehouseResource(root=warehouse, media_root=media_root),
            "clip": ClipEncoderResource(model=clip_model, device=device, batch_size=batch_size),
            "speech": SpeechResource(model=asr_model, device=device),
            "text_encoder": TextEncoderResource(model=text_model, device=device),
            "summary_model": SummaryModelResource(model=summary_model, device=device),
        },
        executor=executor,
    )


defs = build_definitions()
