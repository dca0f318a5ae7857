"""Pins and names: what people say about clusters.

`pin_member` says a shot (or face) belongs to a scene (or character) cluster; `None` takes the pin back.
It is a `move` row of the `feedback` table (`feedback.table`), so a pin is also training signal for the
embedding adapter. `name_cluster` writes a `cluster_names` row. Both tables are append-only, so concurrent
writers lose nothing and the history stays; the latest row per member / cluster wins. Names are joined
into the `clusters` view at query time (they show at once and survive re-clustering, since ids are
stable); pins take effect at the next clustering, which reads them through `current_pins`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np

from media_assets.feedback.table import FeedbackError, cluster_level, record_move, resolved_rows
from media_assets.store import catalog
from media_assets.warehouse import Warehouse

MAX_NAME_LENGTH = 200


# A pin or a name that cannot be recorded (unknown member or cluster, wrong level, bad name).
ClusterAnnotationError = FeedbackError


def current_pins(warehouse: Warehouse) -> tuple[dict[tuple[str, int], int], int]:
    """(member -> cluster of its latest pin, pins left out as stale). The move, merge and split rows are
    followed to their members' current ids by their anchors (`feedback.resolved_rows`): a re-ingest that
    renumbers a file's shots or faces moves a pin with its member; a pin whose member is gone is stale and
    applies to nothing (rather than to whatever now has its old id)."""
    rows, counts = resolved_rows(warehouse, kinds=("move", "merge", "split"))
    latest: dict[tuple[str, int], int | None] = {}
    for r in rows:  # in seq order: the latest row per member wins; a NULL cluster takes the pin back
        latest[(r["member_kind"], int(r["member_id"]))] = r["cluster_id"]
    return {key: cluster for key, cluster in latest.items() if cluster is not None}, counts["stale"]


def pin_member(
    warehouse: Warehouse, member_kind: str, member_id: int, cluster_id: int | None, *, source: str = "python"
) -> dict:
    """Pin a shot (to a scene cluster) or a face (to a character cluster); `cluster_id=None` removes the
    pin. Recorded as a `move` feedback row; takes effect at the next clustering. Returns the row."""
    return record_move(warehouse, member_kind, member_id, cluster_id, source=source)


def name_cluster(warehouse: Warehouse, cluster_id: int, name: str | None, *, source: str = "python") -> dict:
    """Give a cluster a name (`None` or "" clears it). Shows in the `clusters` view at once."""
    cluster_id = _as_id(cluster_id, "cluster_id")
    cluster_level(warehouse, cluster_id)
    if name is not None and not isinstance(name, str):
        raise ClusterAnnotationError(f"a cluster name must be a string, got {type(name).__name__}")
    name = (name or "").strip() or None
    if name is not None and len(name) > MAX_NAME_LENGTH:
        raise ClusterAnnotationError(f"a cluster name may have at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    row = {
        "naming_id": uuid.uuid4().hex,
        "cluster_id": cluster_id,
        "name": name,
        "source": source,
        "named_at": datetime.now(UTC),
    }
    catalog.append_rows(warehouse, "cluster_names", [row])
    return row


def _as_id(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ClusterAnnotationError(f"{what} must be an integer, got {value!r}")
    return int(value)
