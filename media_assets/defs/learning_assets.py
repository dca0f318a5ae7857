"""The learning loop in Dagster: `feedback_sensor` → job `learn_from_feedback`: `embedding_adapter`
(a candidate), its blocking check `adapter_improves_held_out` (the promotion gate), `promoted_adapter`,
`adapted_vectors`, then `hnsw_index` and `clusters` from the adapted vectors. A refused candidate stops
the run at the gate: nothing downstream changes. Thin: `media_assets.learning` does the work."""

import json
import os
from dataclasses import dataclass

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    Config,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    sensor,
)
from pydantic import Field

from .. import learning
from ..feedback import settled_seq, settled_seqs
from .assets import frame_embeddings
from .film_assets import faces, shots
from .resources import ClipEncoderResource, WarehouseResource

# how many new feedback rows start a retraining (MEDIA_ASSETS_FEEDBACK_MIN_ROWS overrides)
DEFAULT_MIN_NEW_ROWS = 5


class AdapterConfig(Config):
    through_seq: int = Field(default=0, ge=0, description="Train on the feedback rows up to this seq (0: every settled row)")
    epochs: int = Field(default=0, ge=0, description="Training epochs (0: the library's default)")
    seed: int = Field(default=0, description="Seed: the same feedback and seed give the same adapter")


feedback_table = AssetSpec(
    "feedback",
    group_name="learning",
    kinds={"duckdb"},
    description="People's feedback (moves, merges, splits, same/different pairs, relevance judgements): the append-only "
    "`feedback` table, written through media_assets.feedback by the search client, the HTTP API, the web page and the CLI.",
)


@asset(
    deps=[feedback_table, frame_embeddings, shots, faces],
    group_name="learning",
    kinds={"pytorch"},
    description="A candidate embedding adapter (residual projection, identity at start) trained on people's feedback "
    "with a triplet loss; saved as a new version under models/adapters/ with its feedback range and metrics.",
)
def embedding_adapter(context, config: AdapterConfig, warehouse: WarehouseResource, clip: ClipEncoderResource) -> MaterializeResult:
    from ..adapter import AdapterSettings

    wh = warehouse.get()
    through = config.through_seq or settled_seq(wh, settle_s=0.0)
    settings = AdapterSettings(seed=config.seed, **({"epochs": config.epochs} if config.epochs else {}))
    try:
        candidate = learning.train_candidate(wh, through_seq=through, settings=settings, run_id=context.run_id, device=clip.device)
    except learning.LearningError as exc:
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
        version = learning.candidate_of_run(wh, context.run.run_id)
    except learning.LearningError as exc:
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, description=str(exc), metadata={"reason": str(exc)})
    meta = learning.candidate_metadata(wh, version)
    decision = meta["decision"]
    return AssetCheckResult(
        passed=bool(decision["promote"]),
        severity=AssetCheckSeverity.ERROR,
        description=decision["reason"],
        metadata={
            "candidate_version": MetadataValue.text(f"v{version}"),
            "compared_with_version": MetadataValue.text(f"v{meta['compared_with_version']}" if meta["compared_with_version"] else "none (base model)"),
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
    previous = learning.current_version(wh)
    try:
        # this run's candidate, and only if its gate passed it against the adapter current now
        version = learning.candidate_of_run(wh, context.run_id)
        reason = learning.candidate_metadata(wh, version)["decision"]["reason"]
        learning.promote(wh, version, reason=reason, run_id=context.run_id)
    except learning.LearningError as exc:
        raise Failure(description=f"nothing promoted: {exc}") from exc
    return MaterializeResult(metadata={"version": MetadataValue.int(version), "previous_version": MetadataValue.int(previous), "reason": reason})


ADAPTED_WHEN_VECTORS_CHANGE = (
    (AutomationCondition.any_deps_updated()).since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("vectors or adapter changed")


@asset(
    deps=[promoted_adapter, frame_embeddings, shots, faces],
    group_name="learning",
    kinds={"lancedb"},
    automation_condition=ADAPTED_WHEN_VECTORS_CHANGE,
    description="Every frame, shot and face vector through the current adapter into adapted_* LanceDB tables, each row "
    "with the adapter version that made it (dropped when no adapter is current). Index, clusters and search read them.",
)
def adapted_vectors(context, warehouse: WarehouseResource) -> MaterializeResult:
    wh = warehouse.get()
    try:
        written = learning.write_adapted_vectors(wh, run_id=context.run_id)
    except learning.LearningError as exc:  # an adapter of another model's space: search serves the base vectors
        raise Failure(description=str(exc)) from exc
    return MaterializeResult(
        metadata={"adapter_version": MetadataValue.int(learning.current_version(wh))}
        | {name: MetadataValue.int(rows) for name, rows in written.items()}
    )


adapted_vectors_automation = AutomationConditionSensorDefinition(
    "adapted_vectors_automation",
    target=[adapted_vectors],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Keeps the adapted vectors in step with new or changed frame, shot and face vectors.",
)


def min_new_rows() -> int:
    value = os.environ.get("MEDIA_ASSETS_FEEDBACK_MIN_ROWS", "")
    return int(value) if value.strip() else DEFAULT_MIN_NEW_ROWS


# dagster.yaml lets one run with this tag run at a time: the adapter, its vectors and what is built from them
# change in one place at once (the gate's judgement is against the adapter current when it promotes)
ADAPTER_RUN_TAG = {"media_assets/adapter": "writes"}

learning_job = define_asset_job(
    "learn_from_feedback",
    selection=["embedding_adapter", "promoted_adapter", "adapted_vectors", "hnsw_index", "clusters"],
    description="Train a candidate adapter on the feedback, gate it, and (if promoted) re-derive vectors, index and clusters.",
    tags=ADAPTER_RUN_TAG,
)
refresh_job = define_asset_job(
    "refresh_adapted",
    selection=["adapted_vectors", "hnsw_index", "clusters"],
    description="Re-derive adapted vectors, the index and the clusters for the adapter now current (after a rollback).",
    tags=ADAPTER_RUN_TAG,
)


@sensor(
    job=learning_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=f"Requests a learn_from_feedback run once at least {DEFAULT_MIN_NEW_ROWS} new feedback rows "
    "(MEDIA_ASSETS_FEEDBACK_MIN_ROWS) have settled; the cursor moves only past rows that run trains on.",
)
def feedback_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    wh = warehouse.get()
    cursor = FeedbackCursor.parse(context.cursor)
    seqs = settled_seqs(wh)  # every row at or before the newest settled one (all settled, by definition)
    through = seqs[-1] if seqs else None
    # rows after the cursor, and rows that landed behind it after its tick (a write slower than the settling
    # time, a clock that stepped back): the table is append-only, so more rows at or before the cursor's seq
    # than it counted are late ones, and they count as new
    after = sum(1 for seq in seqs if cursor.through is None or seq > cursor.through)
    late = max(0, (len(seqs) - after) - cursor.rows)
    new_rows = after + late
    needed = min_new_rows()
    if new_rows < needed:
        return SkipReason(f"{new_rows} new settled feedback rows; a retraining needs {needed}")
    # the run trains on every row up to `through`, the late ones included
    context.update_cursor(FeedbackCursor(through, len(seqs)).dump())
    return RunRequest(
        run_key=f"feedback-through-{through}-{len(seqs)}",
        run_config={"ops": {"embedding_adapter": {"config": {"through_seq": through}}}},
        tags={"media_assets/feedback_rows": str(new_rows), "media_assets/late_feedback_rows": str(late)},
    )


@dataclass(frozen=True)
class FeedbackCursor:
    """`feedback_sensor`'s cursor: the seq the last requested run trains through, and how many rows had a seq
    at or before it when it was requested."""

    through: int | None = None
    rows: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "FeedbackCursor":
        if not text:
            return cls()
        if text.strip().isdigit():  # the cursor as earlier versions wrote it: a seq alone
            return cls(int(text), 0)
        value = json.loads(text)
        return cls(int(value["through"]), int(value["rows"]))

    def dump(self) -> str:
        return json.dumps({"through": self.through, "rows": self.rows})
