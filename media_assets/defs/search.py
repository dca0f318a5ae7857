"""`hnsw_index`: our HNSW index over every frame vector, kept up to date incrementally, and the blocking
check `hnsw_recall` that guards every build against exact search."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from media_assets.defs.automation import INDEX_WHEN_VECTORS_CHANGE
from media_assets.defs.resources import WarehouseResource
from media_assets.stages.hnsw_index import IndexParams, measure_recall, update_frame_index

MIN_RECALL = 0.95


class IndexConfig(Config):
    M: int = Field(default=16, ge=2, le=128, description="Graph degree (layer 0 keeps 2M links)")
    ef_construction: int = Field(default=200, ge=1, description="Beam width while building")
    ef_search: int = Field(default=50, ge=1, description="Default beam width of queries (and of the recall check)")


@asset(
    deps=["frame_embeddings", "adapted_vectors"],
    group_name="search",
    kinds={"numba"},
    automation_condition=INDEX_WHEN_VECTORS_CHANGE,
    description="Our HNSW index over all frame vectors (index/frames.hnsw + manifest), adapted ones when an embedding "
    "adapter is current. Built the first time; afterwards only media files whose vectors were added, re-written or "
    "removed are applied.",
)
def hnsw_index(context, config: IndexConfig, warehouse: WarehouseResource) -> MaterializeResult:
    report = update_frame_index(
        warehouse.get(), IndexParams(M=config.M, ef_construction=config.ef_construction, ef_search=config.ef_search)
    )
    context.log.info(f"{report.mode}: {report.reason}")
    return MaterializeResult(
        metadata={
            "mode": report.mode,
            "reason": report.reason,
            "nodes": MetadataValue.int(report.node_count),
            "live_nodes": MetadataValue.int(report.live_count),
            "tombstones": MetadataValue.int(report.node_count - report.live_count),
            "media_added": MetadataValue.int(report.added_media),
            "media_changed": MetadataValue.int(report.changed_media),
            "media_removed": MetadataValue.int(report.removed_media),
            "vectors_added": MetadataValue.int(report.vectors_added),
            "vectors_deleted": MetadataValue.int(report.vectors_deleted),
            "compacted": MetadataValue.bool(report.compacted),
            "memory_mb": MetadataValue.float(round(report.memory_bytes / 2**20, 2)),
            "elapsed_s": MetadataValue.float(round(report.elapsed_s, 3)),
            "params": MetadataValue.json(report.params),
            "model_id": report.model_id,
        }
    )


@asset_check(
    asset=hnsw_index,
    blocking=True,
    description=f"recall@10 of the index against exact search, with stored vectors as queries, must be ≥ {MIN_RECALL}.",
)
def hnsw_recall(warehouse: WarehouseResource) -> AssetCheckResult:
    result = measure_recall(warehouse.get(), k=10, sample=200)
    passed = result["recall"] >= MIN_RECALL
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=f"recall@{result['k']} = {result['recall']:.4f} at ef_search={result['ef_search']}"
        + ("" if passed else f", below the required {MIN_RECALL}"),
        metadata={
            "recall": MetadataValue.float(round(result["recall"], 4)),
            "queries": MetadataValue.int(result["queries"]),
            "k": MetadataValue.int(result["k"]),
            "ef_search": MetadataValue.int(result["ef_search"]),
            "required": MetadataValue.float(MIN_RECALL),
        },
    )
