"""What a feedback row's members looked like when a person spoke about them: their anchors.

Shot, face and frame ids are positional (`media_id << 20 | index`): re-ingesting a changed file (a shot
cut or inserted), sampling it at another rate or detecting its shots with other settings gives the same
id to other content. So every feedback row records, beside each member id, an **anchor**: a small JSON
object saying where the member was and what it looked like:

- shot: `{"media_id", "start_s", "end_s", "hashes"}`: its time span and its keyframes' perceptual hashes;
- face: `{"media_id", "time_s", "box", "phash"}`: its frame's time and hash, and its box (x, y, width,
  height in fractions of the frame);
- frame: `{"media_id", "time_s", "phash"}`.

Before pins or training use a row, `resolve_rows` finds the member of the same file that matches the anchor
best: first by **content** (perceptual hashes within `MAX_HASH_BITS`: re-encoding and re-sampling a still
move the 64-bit DCT hash 0-4 bits, a cut 18-42; faces also need their boxes to overlap, IoU ≥
`MIN_BOX_IOU`), then by **time** (shots: time spans overlapping, IoU ≥ `MIN_SPAN_IOU`; frames and faces:
within `MAX_TIME_S`), ties broken by the nearer hash, then the nearer time. A member matching neither
way is gone: the row is stale and left out, so a pin never lands on a shot nobody pinned. The member the
id names now is kept when it is (one of) the best. Rows without anchors (written before anchors existed)
are used as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from media_assets.media.signals import hash_distance
from media_assets.models.faces import box_iou
from media_assets.store import catalog
from media_assets.warehouse import Warehouse

MAX_HASH_BITS = 10
MIN_SPAN_IOU = 0.5
MIN_BOX_IOU = 0.5
MAX_TIME_S = 0.25

_SQL = {
    "shot": "SELECT s.shot_id AS id, s.media_id, s.start_s, s.end_s, list(fr.phash ORDER BY fr.frame_id) "
    "FILTER (WHERE fr.phash IS NOT NULL) AS hashes FROM shots s LEFT JOIN keyframes k ON k.shot_id = s.shot_id "
    "LEFT JOIN frames fr ON fr.frame_id = k.frame_id WHERE {where} GROUP BY s.shot_id, s.media_id, s.start_s, s.end_s",
    "face": "SELECT f.face_id AS id, f.media_id, fr.timestamp_s AS time_s, fr.phash, f.x, f.y, f.width, f.height "
    "FROM faces f JOIN frames fr ON fr.frame_id = f.frame_id WHERE {where}",
    "frame": "SELECT frame_id AS id, media_id, timestamp_s AS time_s, phash FROM frames WHERE {where}",
}
_ID_COLUMN = {"shot": "s.shot_id", "face": "f.face_id", "frame": "frame_id"}
_MEDIA_COLUMN = {"shot": "s.media_id", "face": "f.media_id", "frame": "media_id"}


def _query(warehouse: Warehouse, kind: str, column: dict, values: list[int]) -> list[dict]:
    sql = _SQL[kind].format(where=f"{column[kind]} IN (SELECT unnest(?::BIGINT[]))")
    return catalog.query(warehouse, sql, [values]).to_pylist()


def _anchor(kind: str, row: dict) -> dict:
    if kind == "shot":
        return {
            "media_id": row["media_id"],
            "start_s": round(row["start_s"], 4),
            "end_s": round(row["end_s"], 4),
            "hashes": [int(h) for h in row["hashes"] or []],
        }
    anchor = {
        "media_id": row["media_id"],
        "time_s": round(row["time_s"], 4),
        "phash": None if row["phash"] is None else int(row["phash"]),
    }
    if kind == "face":
        anchor["box"] = [round(row[k], 5) for k in ("x", "y", "width", "height")]
    return anchor


def anchors_of(warehouse: Warehouse, kind: str, ids: Iterable[int]) -> dict[int, str]:
    """id -> anchor (JSON text) of the members of `kind` that exist; ids that do not are left out."""
    ids = sorted({int(i) for i in ids})
    if not ids:
        return {}
    return {r["id"]: json.dumps(_anchor(kind, r), sort_keys=True) for r in _query(warehouse, kind, _ID_COLUMN, ids)}


def _span_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else float(a == b)


def _hash_bits(anchor_hashes, row_hashes) -> int | None:
    pairs = [hash_distance(a, b) for a in anchor_hashes if a is not None for b in row_hashes if b is not None]
    return min(pairs) if pairs else None


def _score(kind: str, anchor: dict, row: dict) -> tuple | None:
    """How well a current member matches an anchor, as a sort key (higher is better); None: no match."""
    if kind == "shot":
        bits = _hash_bits(anchor.get("hashes") or [], row["hashes"] or [])
        near = -abs(anchor["start_s"] - row["start_s"])
        iou = _span_iou((anchor["start_s"], anchor["end_s"]), (row["start_s"], row["end_s"]))
        same_time = iou >= MIN_SPAN_IOU
    else:
        bits = _hash_bits([anchor.get("phash")], [row["phash"]])
        near = -abs(anchor["time_s"] - row["time_s"])
        same_time = -near <= MAX_TIME_S
        if kind == "face" and box_iou(anchor["box"], (row["x"], row["y"], row["width"], row["height"])) < MIN_BOX_IOU:
            return None
    same_content = bits is not None and bits <= MAX_HASH_BITS
    if not (same_content or same_time):
        return None
    return (same_content, same_time, -(bits if bits is not None else 64), near)


class _Members:
    """The current members of the media files some anchors name, loaded once per kind."""

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self.by_kind: dict[str, dict[int, list[dict]]] = {}  # kind -> media id -> its current members

    def load(self, kind: str, media_ids: set[int]) -> None:
        by_media: dict[int, list[dict]] = {}
        for r in _query(self.warehouse, kind, _MEDIA_COLUMN, sorted(media_ids)):
            by_media.setdefault(r["media_id"], []).append(r)
        self.by_kind[kind] = by_media

    def resolve(self, kind: str, member_id: int, anchor_text: str | None) -> tuple[int | None, str]:
        """(the id to use, 'kept' | 'moved' | 'stale' | 'unanchored')."""
        if not anchor_text:
            return member_id, "unanchored"
        anchor = json.loads(anchor_text)
        scored = [
            (score, -r["id"], r["id"])
            for r in self.by_kind[kind].get(anchor["media_id"], [])
            if (score := _score(kind, anchor, r)) is not None
        ]
        if not scored:
            return None, "stale"
        best = max(scored)
        if any(score == best[0] and member == member_id for score, _, member in scored):
            return member_id, "kept"
        return best[2], "moved"


def resolve_rows(warehouse: Warehouse, rows: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """The feedback rows with their member ids checked against their anchors (see the module docstring):
    ids that moved are replaced, rows with a member that is gone are dropped. Returns (rows, counts of
    members kept / moved / stale / unanchored)."""
    counts = {"kept": 0, "moved": 0, "stale": 0, "unanchored": 0}
    wanted: dict[str, set[int]] = {}
    for row in rows:
        for anchor in (row.get("member_anchor"), row.get("other_member_anchor")):
            if anchor and row.get("member_kind") in _SQL:
                wanted.setdefault(row["member_kind"], set()).add(json.loads(anchor)["media_id"])
    members = _Members(warehouse)
    for kind, media_ids in wanted.items():
        members.load(kind, media_ids)
    out = []
    for row in rows:
        kind = row.get("member_kind")
        if kind not in wanted:
            counts["unanchored"] += (row.get("member_id") is not None) + (row.get("other_member_id") is not None)
            out.append(row)
            continue
        resolved, stale = dict(row), False
        for id_key, anchor_key in (("member_id", "member_anchor"), ("other_member_id", "other_member_anchor")):
            if row.get(id_key) is None:
                continue
            new_id, outcome = members.resolve(kind, int(row[id_key]), row.get(anchor_key))
            counts[outcome] += 1
            if new_id is None:
                stale = True
            else:
                resolved[id_key] = new_id
        if not stale and not (
            resolved.get("other_member_id") is not None and resolved["other_member_id"] == resolved["member_id"]
        ):
            out.append(resolved)
    return out, counts
