"""The learning loop in Dagster: `feedback_sensor` → job `learn_from_feedback`: `embedding_adapter`
(a candidate), its blocking check `adapter_improves_held_out` (the promotion gate), `promoted_adapter`,
`adapted_vectors`, then `hnsw_index` and `clusters` from the adapted vectors. A refused candidate stops
the run at the gate: nothing downstream changes. Thin: `stages.adapter` does the work."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSpec,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from media_assets.defs.automation import ADAPTED_WHEN_VECTORS_CHANGE
from media_assets.defs.resources import ClipEncoderResource, WarehouseResource
from media_assets.feedback.table import settled_seq
from media_assets.models.adapter import AdapterSettings
from media_assets.stages import adapter as adapter_stage
from media_assets.store import adapters


class AdapterConfig(Config):
    through_seq: int = Field(
        default=0, ge=0, description="Train on the feedback rows up to this seq (0: every settled row)"
    )
    epochs: int = Field(default=0, ge=0, description="Training epochs (0: the library's default)")
    seed: int = Field(default=0, description="Seed: the same feedback and seed give the same adapter")


feedback_table = AssetSpec(
    "feedback",
    group_name="learning",
    kinds={"duckdb"},
    description=(
        "People's feedback (moves, merges, splits, same/different pairs, relevance judgements): the append-only "
        "`feedback` table, written through media_assets.feedback.table by the search client, the HTTP API, "
        "the web page and the CLI."
    ),
)


@asset(
    deps=[feedback_table, "frame_embeddings", "shots", "faces"],
    group_name="learning",
    kinds={"pytorch"},
    description="A candidate embedding adapter (residual projection, identity at start) trained on people's feedback "
    "with a triplet loss; saved as a new version under models/adapters/ with its feedback range and metrics.",
)
def embedding_adapter(
    context, config: AdapterConfig, warehouse: WarehouseResource, clip: ClipEncoderResource
) -> MaterializeResult:
    wh = warehouse.get()
    through = config.through_seq or settled_seq(wh, settle_s=0.0)
    settings = AdapterSettings(seed=config.seed, **({"epochs": config.epochs} if config.epochs else {}))
    try:
        candidate = adapter_stage.train_candidate(
            wh, through_seq=through, settings=settings, run_id=context.run_id, device=clip.device
        )
    except adapter_stage.LearningError as exc:
        raise Failure(description=str(exc)) from exc
    meta = candidate.metadata
    held = meta["held_out"]
    return MaterializeResult(
        metadata={
            "version": MetadataValue.int(candidate.version),
            "path": MetadataValue.path(str(candidate.folder)),
            "base_model_id": meta["base_model_id"],
            "feedback_rows": MetadataValue.int(meta["feedback_rows"]),
            "feedback_range": f"{meta['feedback_from_seq']} … {meta['feedback_through_seq']}",
            "items": MetadataValue.int(meta["items"]),
            "held_out": MetadataValue.json(held),
            "generic_retrieval": MetadataValue.json(meta["generic_retrieval"]),
            "gate_says": meta["decision"]["reason"],
            "train_seconds": MetadataValue.float(float(meta["seconds"])),
        }
    )


@asset_check(
    asset=embedding_adapter,
    blocking=True,
    description="Promote only if the candidate beats the current adapter and no adapter on held-out feedback by the "
    "documented margin without making generic retrieval worse; otherwise the run stops here and says why.",
)
def adapter_improves_held_out(context, warehouse: WarehouseResource) -> AssetCheckResult:
    wh = warehouse.get()
    try:  # the candidate this run trained, whatever other runs trained meanwhile
        version = adapter_stage.candidate_of_run(wh, context.run.run_id)
    except adapter_stage.LearningError as exc:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.ERROR, description=str(exc), metadata={"reason": str(exc)}
        )
    meta = adapter_stage.candidate_metadata(wh, version)
    decision = meta["decision"]
    return AssetCheckResult(
        passed=bool(decision["promote"]),
        severity=AssetCheckSeverity.ERROR,
        description=decision["reason"],
        metadata={
            "candidate_version": MetadataValue.text(f"v{version}"),
            "compared_with_version": MetadataValue.text(
                f"v{meta['compared_with_version']}" if meta["compared_with_version"] else "none (base model)"
            ),
            "reason": decision["reason"],
            "held_out": MetadataValue.json(meta["held_out"]),
            "generic_retrieval": MetadataValue.json(meta["generic_retrieval"]),
        },
    )


@asset(
    deps=[embedding_adapter],
    group_name="learning",
    description="The adapter in use (models/adapters/current.json): the candidate, once the gate let it through.",
)
def promoted_adapter(context, warehouse: WarehouseResource) -> MaterializeResult:
    wh = warehouse.get()
    previous = adapters.current_version(wh)
    try:
        # this run's candidate, and only if its gate passed it against the adapter current now
        version = adapter_stage.candidate_of_run(wh, context.run_id)
        reason = adapter_stage.candidate_metadata(wh, version)["decision"]["reason"]
        adapter_stage.promote(wh, version, reason=reason, run_id=context.run_id)
    except adapter_stage.LearningError as exc:
        raise Failure(description=f"nothing promoted: {exc}") from exc
    return MaterializeResult(
        metadata={
            "version": MetadataValue.int(version),
            "previous_version": MetadataValue.int(previous),
            "reason": reason,
        }
    )


@asset(
    deps=[promoted_adapter, "frame_embeddings", "shots", "faces"],
    group_name="learning",
    kinds={"lancedb"},
    automation_condition=ADAPTED_WHEN_VECTORS_CHANGE,
    description="Every frame, shot and face vector through the current adapter into adapted_* LanceDB tables, each row "
    "with the adapter version that made it (dropped when no adapter is current). Index, clusters and search read them.",
)
def adapted_vectors(context, warehouse: WarehouseResource) -> MaterializeResult:
    wh = warehouse.get()
    try:
        written = adapter_stage.write_adapted_vectors(wh, run_id=context.run_id)
    except adapter_stage.LearningError as exc:  # an adapter of another model's space: search serves the base vectors
        raise Failure(description=str(exc)) from exc
    return MaterializeResult(
        metadata={"adapter_version": MetadataValue.int(adapters.current_version(wh))}
        | {name: MetadataValue.int(rows) for name, rows in written.items()}
    )
