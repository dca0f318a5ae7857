"""People's feedback: one append-only table, written through this module only.

Kinds of row (`feedback.kind`):
- `move`: shot or face `member_id` belongs to cluster `cluster_id` (NULL: take it out again) — the drag
  from the noise bucket; the clusters stage honours it as a pin;
- `merge`: cluster `other_cluster_id` was merged into `cluster_id` (one row per member it had then, each
  also a pin into `cluster_id`);
- `split`: members taken out of `other_cluster_id` into a new cluster `cluster_id` (one row per member);
- `same` / `different`: `member_id` and `other_member_id` (both shots, faces or frames) show the same
  scene or person, or not;
- `relevance`: frame `member_id` is (`relevant`) or is not a good result for the text `query`.

Every row has `feedback_id` (unique), `seq` (the write's time in ns: the order the sensor follows),
`source` ('python', 'cli', 'api', …), `created_at`, and for each member named an anchor (`member_anchor`,
`other_member_anchor`: its file and time span, time and box, or time), so that pins and training follow
the member through a re-ingest that renumbers ids (`resolved_rows`, `feedback.anchors`).
Each write is one new Parquet file (renamed into
place), so concurrent writers lose nothing. Rows naming unknown ids, ids of the wrong kind, clusters of
the wrong level or empty queries are refused with `FeedbackError` before anything is written.

The view `cluster_pins` is the move, merge and split rows (what the clusters stage pins); `current_pins`
the latest per member.
"""

from __future__ import annotations

import fcntl
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from media_assets.feedback.anchors import anchors_of, resolve_rows
from media_assets.store import catalog
from media_assets.warehouse import Warehouse

KINDS = ("move", "merge", "split", "same", "different", "relevance")
MEMBER_KINDS = ("shot", "face", "frame")
CLUSTER_LEVEL_OF = {"shot": "scene", "face": "character"}
MAX_QUERY_CHARS = 2000
SETTLE_S = 2.0  # a row this old can no longer be overtaken by a write in flight (see settled_seq)


class FeedbackError(ValueError):
    """Feedback that cannot be recorded as given (unknown ids, wrong kinds, bad values)."""


def _as_id(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise FeedbackError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _check_member(warehouse: Warehouse, member_kind: str, member_id, allowed=MEMBER_KINDS) -> tuple[int, str]:
    """(the id, its anchor: where the member is now, see `media_assets.anchors`); unknown ids are refused."""
    if member_kind not in allowed:
        raise FeedbackError(f"member_kind must be one of {', '.join(allowed)}, got {member_kind!r}")
    member_id = _as_id(member_id, "member_id")
    anchor = anchors_of(warehouse, member_kind, [member_id]).get(member_id)
    if anchor is None:
        raise FeedbackError(f"there is no {member_kind} with id {member_id}")
    return member_id, anchor


def cluster_level(warehouse: Warehouse, cluster_id) -> str:
    """The level of a cluster the last clustering made, or of one a split made since (a split's new
    cluster takes members at once: it exists from the split on, and the next clustering makes it)."""
    cluster_id = _as_id(cluster_id, "cluster_id")
    rows = catalog.query(warehouse, "SELECT level FROM clusters WHERE cluster_id = ?", [cluster_id]).to_pylist()
    if rows:
        return rows[0]["level"]
    split = catalog.query(
        warehouse, "SELECT member_kind FROM feedback WHERE kind = 'split' AND cluster_id = ? LIMIT 1", [cluster_id]
    ).to_pylist()
    if split:
        return CLUSTER_LEVEL_OF[split[0]["member_kind"]]
    raise FeedbackError(f"there is no cluster with id {cluster_id} (materialize clusters first, or check the id)")


def _check_cluster_for(warehouse: Warehouse, member_kind: str, cluster_id) -> int:
    level = cluster_level(warehouse, cluster_id)
    if level != CLUSTER_LEVEL_OF[member_kind]:
        raise FeedbackError(
            f"cluster {cluster_id} is a {level} cluster; "
            f"a {member_kind} can only go to a {CLUSTER_LEVEL_OF[member_kind]} cluster"
        )
    return int(cluster_id)


def _row(kind: str, source: str, seq: int, now: datetime, **fields) -> dict:
    if not isinstance(source, str) or not source.strip():
        raise FeedbackError("source must name who or what gave the feedback ('api', 'cli', 'python', …)")
    return {
        "feedback_id": uuid.uuid4().hex,
        "seq": seq,
        "kind": kind,
        "member_kind": None,
        "member_id": None,
        "other_member_id": None,
        "cluster_id": None,
        "other_cluster_id": None,
        "query": None,
        "relevant": None,
        "source": source,
        "created_at": now,
        "member_anchor": None,
        "other_member_anchor": None,
    } | fields


def _write(warehouse: Warehouse, rows: list[dict]) -> list[dict]:
    catalog.append_rows(warehouse, "feedback", rows)
    return rows


def _clock() -> tuple[int, datetime]:
    seq = time.time_ns()
    return seq, datetime.fromtimestamp(seq / 1e9, UTC)


# -- writers ------------------------------------------------------------------------------------------


def record_move(warehouse: Warehouse, member_kind: str, member_id, cluster_id, *, source: str = "python") -> dict:
    """Shot/face `member_id` belongs in `cluster_id` (None: no longer pinned anywhere)."""
    member_id, anchor = _check_member(warehouse, member_kind, member_id, allowed=tuple(CLUSTER_LEVEL_OF))
    if cluster_id is not None:
        cluster_id = _check_cluster_for(warehouse, member_kind, cluster_id)
    seq, now = _clock()
    return _write(
        warehouse,
        [
            _row(
                "move",
                source,
                seq,
                now,
                member_kind=member_kind,
                member_id=member_id,
                cluster_id=cluster_id,
                member_anchor=anchor,
            )
        ],
    )[0]


def record_merge(warehouse: Warehouse, into_cluster_id, from_cluster_id, *, source: str = "python") -> list[dict]:
    """Cluster `from_cluster_id` belongs to `into_cluster_id`: each of its current members is recorded
    (and pinned) there."""
    into_level, from_level = cluster_level(warehouse, into_cluster_id), cluster_level(warehouse, from_cluster_id)
    if into_cluster_id == from_cluster_id:
        raise FeedbackError("a cluster cannot be merged into itself")
    if into_level != from_level:
        raise FeedbackError(f"cannot merge a {from_level} cluster into a {into_level} cluster")
    members = catalog.query(
        warehouse,
        "SELECT member_kind, member_id FROM cluster_members WHERE cluster_id = ? ORDER BY member_id",
        [int(from_cluster_id)],
    ).to_pylist()
    if not members:
        raise FeedbackError(f"cluster {from_cluster_id} has no members to merge")
    anchors = anchors_of(warehouse, members[0]["member_kind"], [m["member_id"] for m in members])
    seq, now = _clock()
    rows = [
        _row(
            "merge",
            source,
            seq,
            now,
            member_kind=m["member_kind"],
            member_id=m["member_id"],
            cluster_id=int(into_cluster_id),
            other_cluster_id=int(from_cluster_id),
            member_anchor=anchors.get(m["member_id"]),
        )
        for m in members
    ]
    return _write(warehouse, rows)


@contextmanager
def _id_lock(warehouse: Warehouse):
    path = catalog.table_dir(warehouse, "feedback") / ".cluster-ids.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_split(
    warehouse: Warehouse, cluster_id, member_kind: str, member_ids, *, source: str = "python"
) -> tuple[int, list[dict]]:
    """These members of `cluster_id` form a cluster of their own: a new cluster id is issued (never used
    before) and the members are recorded (and pinned) there. Returns (new cluster id, rows)."""
    level = cluster_level(warehouse, cluster_id)
    if member_kind not in CLUSTER_LEVEL_OF or CLUSTER_LEVEL_OF[member_kind] != level:
        raise FeedbackError(f"cluster {cluster_id} is a {level} cluster; its members are not {member_kind}s")
    ids = sorted({_as_id(m, "member_id") for m in member_ids})
    if not ids:
        raise FeedbackError("a split needs at least one member")
    current = {
        r["member_id"]
        for r in catalog.query(
            warehouse,
            "SELECT member_id FROM cluster_members WHERE cluster_id = ? AND member_kind = ?",
            [int(cluster_id), member_kind],
        ).to_pylist()
    }
    strangers = [m for m in ids if m not in current]
    if strangers:
        raise FeedbackError(f"{member_kind}s {strangers[:5]} are not in cluster {cluster_id}")
    if len(ids) == len(current):
        raise FeedbackError(f"a split must leave some members in cluster {cluster_id}; to rename it, name it")
    with _id_lock(warehouse):
        new_id = issued_cluster_ids(warehouse) + 1
        anchors = anchors_of(warehouse, member_kind, ids)
        seq, now = _clock()
        rows = [
            _row(
                "split",
                source,
                seq,
                now,
                member_kind=member_kind,
                member_id=m,
                cluster_id=new_id,
                other_cluster_id=int(cluster_id),
                member_anchor=anchors.get(m),
            )
            for m in ids
        ]
        _write(warehouse, rows)
    return new_id, rows


def record_pair(
    warehouse: Warehouse, member_kind: str, member_id, other_member_id, *, same: bool, source: str = "python"
) -> dict:
    """Two shots, faces or frames show the same scene/person (`same=True`) or not."""
    if not isinstance(same, bool):
        raise FeedbackError(f"same must be true or false, got {same!r}")
    a, a_anchor = _check_member(warehouse, member_kind, member_id)
    b, b_anchor = _check_member(warehouse, member_kind, other_member_id)
    if a == b:
        raise FeedbackError("a pair needs two different members")
    seq, now = _clock()
    return _write(
        warehouse,
        [
            _row(
                "same" if same else "different",
                source,
                seq,
                now,
                member_kind=member_kind,
                member_id=a,
                other_member_id=b,
                member_anchor=a_anchor,
                other_member_anchor=b_anchor,
            )
        ],
    )[0]


def record_relevance(warehouse: Warehouse, query: str, frame_id, *, relevant: bool, source: str = "python") -> dict:
    """Frame `frame_id` is (or is not) a good result for the text `query`."""
    if not isinstance(query, str) or not query.strip():
        raise FeedbackError("a relevance judgement needs the query text")
    if len(query) > MAX_QUERY_CHARS:
        raise FeedbackError(f"the query is {len(query)} characters long; at most {MAX_QUERY_CHARS}")
    if not isinstance(relevant, bool):
        raise FeedbackError(f"relevant must be true or false, got {relevant!r}")
    frame_id, anchor = _check_member(warehouse, "frame", frame_id)
    seq, now = _clock()
    return _write(
        warehouse,
        [
            _row(
                "relevance",
                source,
                seq,
                now,
                member_kind="frame",
                member_id=frame_id,
                query=query.strip(),
                relevant=relevant,
                member_anchor=anchor,
            )
        ],
    )[0]


# -- readers ------------------------------------------------------------------------------------------


def feedback_rows(warehouse: Warehouse, *, after_seq: int | None = None, through_seq: int | None = None) -> pa.Table:
    """Rows with after_seq < seq ≤ through_seq, in order."""
    table = catalog.read_table(warehouse, "feedback")
    rows = [
        r
        for r in table.to_pylist()
        if (after_seq is None or r["seq"] > after_seq) and (through_seq is None or r["seq"] <= through_seq)
    ]
    rows.sort(key=lambda r: (r["seq"], r["feedback_id"]))
    return pa.Table.from_pylist(rows, schema=catalog.FEEDBACK_SCHEMA)


def resolved_rows(
    warehouse: Warehouse, *, through_seq: int | None = None, kinds: tuple[str, ...] = KINDS
) -> tuple[list[dict], dict]:
    """The rows up to `through_seq` of these kinds, in order, with member ids checked against their anchors:
    moved members get their current ids, rows naming a member that is gone are left out (counts in the
    second value; see `media_assets.anchors.resolve_rows`). What pins and training read."""
    rows = [r for r in feedback_rows(warehouse, through_seq=through_seq).to_pylist() if r["kind"] in kinds]
    return resolve_rows(warehouse, rows)


def settled_seqs(warehouse: Warehouse, *, settle_s: float | None = None) -> list[int]:
    """The seqs, in order, that no write still in flight can precede: writes take their seq before writing
    (one small Parquet file, milliseconds), so a row whose seq is older than `settle_s` (SETTLE_S) ago is
    final."""
    limit = time.time_ns() - int((SETTLE_S if settle_s is None else settle_s) * 1e9)
    return sorted(s for s in catalog.read_table(warehouse, "feedback")["seq"].to_pylist() if s <= limit)


def settled_seq(warehouse: Warehouse, *, settle_s: float | None = None) -> int | None:
    """The newest settled seq (see `settled_seqs`); None when there is no such row."""
    seqs = settled_seqs(warehouse, settle_s=settle_s)
    return seqs[-1] if seqs else None


class FeedbackWriter:
    """The writers bound to one warehouse and source:
    `SearchClient(...).feedback.relevance("a cat", frame_id, True)`."""

    def __init__(self, warehouse: Warehouse, source: str = "python"):
        self.warehouse = warehouse
        self.source = source

    def move(self, member_kind: str, member_id, cluster_id) -> dict:
        return record_move(self.warehouse, member_kind, member_id, cluster_id, source=self.source)

    def merge(self, into_cluster_id, from_cluster_id) -> list[dict]:
        return record_merge(self.warehouse, into_cluster_id, from_cluster_id, source=self.source)

    def split(self, cluster_id, member_kind: str, member_ids) -> tuple[int, list[dict]]:
        return record_split(self.warehouse, cluster_id, member_kind, member_ids, source=self.source)

    def same(self, member_kind: str, member_id, other_member_id) -> dict:
        return record_pair(self.warehouse, member_kind, member_id, other_member_id, same=True, source=self.source)

    def different(self, member_kind: str, member_id, other_member_id) -> dict:
        return record_pair(self.warehouse, member_kind, member_id, other_member_id, same=False, source=self.source)

    def relevance(self, query: str, frame_id, relevant: bool) -> dict:
        return record_relevance(self.warehouse, query, frame_id, relevant=relevant, source=self.source)


def issued_cluster_ids(warehouse: Warehouse) -> int:
    """The highest cluster id ever issued or referred to (ids are never reused)."""
    row = catalog.query(
        warehouse,
        """SELECT greatest(
               coalesce((SELECT max(cluster_id) FROM clusters), 0),
               coalesce((SELECT max(max_id_issued) FROM clusters), 0),
               coalesce((SELECT max(cluster_id) FROM cluster_names), 0),
               coalesce((SELECT max(cluster_id) FROM cluster_pins), 0)) AS max_id""",
    ).to_pylist()[0]
    return int(row["max_id"])
