"""The clusters stage: scene and character clusters over the whole library, and the checks that keep them honest.

`update_clusters` reads every shot vector and face vector (LanceDB), the `shots`, `keyframes` and `faces`
rows, the clusters and members the last run wrote, and the current pins; `clustering.cluster_library`
does the clustering; the result replaces the global `clusters` and `cluster_members` tables together (one
commit: a crash leaves both old or both new).

Pins and names (what people say about clusters) are `feedback.pins`: the clustering applies the current
pins (`current_pins`) and issues ids above every id ever issued or named (`feedback.table.issued_cluster_ids`).

The asset checks' logic lives here too: `check_shot_membership`, `check_face_links`, `check_stability`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from media_assets.feedback.pins import current_pins
from media_assets.feedback.table import issued_cluster_ids
from media_assets.media.previews import contact_sheet, markdown_image
from media_assets.models.clusters import ClusterResult, Member, cluster_library, previous_from_rows
from media_assets.store import catalog
from media_assets.store.adapters import serving_store
from media_assets.store.sql import open_catalog
from media_assets.store.vectors import FACE_VECTORS, SHOT_VECTORS
from media_assets.warehouse import Warehouse


@dataclass
class ClusterReport:
    scene_clusters: int
    character_clusters: int
    scene_noise: int
    character_noise: int
    shots: int
    faces: int
    ids_kept: int
    ids_new: int
    pins_applied: int
    pins_stale: int  # pins whose shot or face is gone (its file re-ingested without it)
    elapsed_s: float
    clusters: list[dict]

    def summary(self) -> str:
        return (
            f"{self.scene_clusters} scene clusters ({self.scene_noise} of {self.shots} shots in noise), "
            f"{self.character_clusters} character clusters ({self.character_noise} of {self.faces} faces in noise); "
            f"{self.ids_kept} ids kept, {self.ids_new} new"
        )


# -- inputs ---------------------------------------------------------------------------------------------


def _vectors_by_id(warehouse: Warehouse, table: str) -> dict[int, np.ndarray]:
    """Vectors by id from the table served now: adapted ones when an embedding adapter is current."""
    ids, _, vectors = serving_store(warehouse, table).load_all()
    return {int(i): vectors[k] for k, i in enumerate(ids.tolist())}


def library_members(warehouse: Warehouse) -> tuple[list[Member], list[Member]]:
    """Every shot and every face of the catalog as clustering members, with their vectors (None when a
    shot has no vector)."""
    con = open_catalog(warehouse)
    try:
        shot_rows = con.sql(
            """
            SELECT s.shot_id, s.media_id,
                   coalesce(min(k.frame_id) FILTER (WHERE k.role IN ('median', 'middle')), min(k.frame_id),
                            s.start_frame_id) AS frame_id
            FROM shots s LEFT JOIN keyframes k USING (shot_id)
            GROUP BY s.shot_id, s.media_id, s.start_frame_id ORDER BY s.shot_id
            """
        ).fetchall()
        face_rows = con.sql("SELECT face_id, media_id, frame_id, shot_id FROM faces ORDER BY face_id").fetchall()
    finally:
        con.close()
    shot_vectors = _vectors_by_id(warehouse, SHOT_VECTORS)
    face_vectors = _vectors_by_id(warehouse, FACE_VECTORS)
    shots = [Member("shot", s, m, f, shot_vectors.get(s), s) for s, m, f in shot_rows]
    faces = [Member("face", i, m, f, face_vectors.get(i), s) for i, m, f, s in face_rows]
    return shots, faces


def _previous(warehouse: Warehouse):
    previous = previous_from_rows(
        catalog.read_table(warehouse, "clusters").to_pylist(),
        catalog.read_table(warehouse, "cluster_members").to_pylist(),
    )
    previous_max = max(previous.max_id, issued_cluster_ids(warehouse))
    return type(previous)(previous.members, previous.levels, previous.parents, previous_max)


def _cluster(warehouse: Warehouse) -> tuple[ClusterResult, int, int, int]:
    shots, faces = library_members(warehouse)
    pins, stale = current_pins(warehouse)
    result = cluster_library(shots, faces, previous=_previous(warehouse), pins=pins)
    return result, len(shots), len(faces), stale


# -- the stage ------------------------------------------------------------------------------------------


def update_clusters(warehouse: Warehouse, *, run_id: str = "") -> ClusterReport:
    """Re-cluster the whole library and replace `clusters` and `cluster_members`."""
    started = time.perf_counter()
    previous_ids = set(catalog.read_table(warehouse, "clusters")["cluster_id"].to_pylist())
    result, shot_count, face_count, stale_pins = _cluster(warehouse)
    now = datetime.now(UTC)
    cluster_rows = [c | {"run_id": run_id, "clustered_at": now} for c in result.clusters]
    member_rows = [m | {"run_id": run_id} for m in result.members]
    # both at once: members naming clusters the other file does not have would fail the next run's reading
    catalog.replace_tables(warehouse, {"cluster_members": member_rows, "clusters": cluster_rows})
    ids = {c["cluster_id"] for c in result.clusters}
    members = result.members
    return ClusterReport(
        scene_clusters=sum(1 for c in result.clusters if c["level"] == "scene"),
        character_clusters=sum(1 for c in result.clusters if c["level"] == "character"),
        scene_noise=sum(1 for m in members if m["member_kind"] == "shot" and m["is_noise"]),
        character_noise=sum(1 for m in members if m["member_kind"] == "face" and m["is_noise"]),
        shots=shot_count,
        faces=face_count,
        ids_kept=len(ids & previous_ids),
        ids_new=len(ids - previous_ids),
        pins_applied=sum(1 for m in members if m["pinned"]),
        pins_stale=stale_pins,
        elapsed_s=time.perf_counter() - started,
        clusters=cluster_rows,
    )


def cluster_overview_markdown(
    warehouse: Warehouse, report: ClusterReport, *, max_clusters: int = 12, thumbnails: int = 4
) -> str:
    """Cluster sizes and a few representative thumbnails per cluster, for the Dagster UI."""
    paths = {
        r["frame_id"]: r["thumbnail_path"]
        for r in catalog.query(warehouse, "SELECT frame_id, thumbnail_path FROM frames").to_pylist()
    }
    names = {
        r["cluster_id"]: r["name"]
        for r in catalog.query(warehouse, "SELECT cluster_id, name FROM clusters").to_pylist()
    }
    lines = [
        f"**{report.scene_clusters} scene clusters, {report.character_clusters} character clusters; noise bucket: "
        f"{report.scene_noise} shots, {report.character_noise} faces.**",
        "",
        "| cluster | level | parent | name | size | videos | cohesion |",
        "|---:|:---|---:|:---|---:|---:|---:|",
    ]
    ordered = sorted(report.clusters, key=lambda c: (c["level"] != "scene", -c["size"], c["cluster_id"]))
    for c in ordered:
        lines.append(
            f"| {c['cluster_id']} | {c['level']} | {c['parent_id'] or ''} | {names.get(c['cluster_id']) or ''} | "
            f"{c['size']} | "
            f"{c['media_count']} | {c['cohesion']:.3f} |"
        )
    for c in ordered[:max_clusters]:
        frames = [warehouse.root / paths[f] for f in c["representative_frame_ids"][:thumbnails] if f in paths]
        sheet = contact_sheet(frames, tile_width=96, columns=thumbnails)
        if sheet is not None:
            lines += [
                "",
                f"cluster {c['cluster_id']} ({c['level']}, {c['size']} members)",
                "",
                markdown_image(sheet, f"cluster {c['cluster_id']}"),
            ]
    return "\n".join(lines)


# -- checks ---------------------------------------------------------------------------------------------


def check_shot_membership(warehouse: Warehouse) -> dict:
    """Every shot has exactly one `cluster_members` row: in an existing scene cluster, or noise."""
    row = catalog.query(
        warehouse,
        """
        WITH m AS (SELECT * FROM cluster_members WHERE member_kind = 'shot'),
        per_shot AS (SELECT s.shot_id, count(m.member_id) AS rows FROM shots s LEFT JOIN m ON m.member_id = s.shot_id
                     GROUP BY s.shot_id)
        SELECT
          (SELECT count(*) FROM shots) AS shots,
          (SELECT count(*) FROM per_shot WHERE rows = 0) AS unassigned,
          (SELECT count(*) FROM per_shot WHERE rows > 1) AS in_several,
          (SELECT count(*) FROM m WHERE is_noise) AS noise,
          (SELECT count(*) FROM m WHERE NOT is_noise AND cluster_id NOT IN
              (SELECT cluster_id FROM clusters WHERE level = 'scene')) AS bad_cluster,
          (SELECT count(*) FROM m WHERE is_noise = (cluster_id IS NOT NULL)) AS inconsistent,
          (SELECT count(*) FROM m WHERE member_id NOT IN (SELECT shot_id FROM shots)) AS stale
        """,
    ).to_pylist()[0]
    passed = (
        row["unassigned"] == 0
        and row["in_several"] == 0
        and row["bad_cluster"] == 0
        and row["inconsistent"] == 0
        and row["stale"] == 0
    )
    return {"passed": passed, "metadata": {k: int(v) for k, v in row.items()}}


def check_face_links(warehouse: Warehouse) -> dict:
    row = catalog.query(
        warehouse,
        """
        SELECT
          (SELECT count(*) FROM faces) AS faces,
          (SELECT count(*) FROM faces WHERE shot_id NOT IN (SELECT shot_id FROM shots)) AS faces_without_shot,
          (SELECT count(*) FROM faces f WHERE NOT EXISTS
              (SELECT 1 FROM keyframes k WHERE k.frame_id = f.frame_id AND k.shot_id = f.shot_id))
              AS faces_not_on_a_keyframe,
          (SELECT count(*) FROM cluster_members WHERE member_kind = 'face' AND member_id NOT IN
              (SELECT face_id FROM faces)) AS members_without_face,
          (SELECT count(*) FROM faces WHERE face_id NOT IN
              (SELECT member_id FROM cluster_members WHERE member_kind = 'face')) AS faces_unassigned
        """,
    ).to_pylist()[0]
    passed = all(
        row[k] == 0
        for k in ("faces_without_shot", "faces_not_on_a_keyframe", "members_without_face", "faces_unassigned")
    )
    return {"passed": passed, "metadata": {k: int(v) for k, v in row.items()}}


def _assignment(rows: list[dict]) -> dict[tuple[str, int], tuple]:
    return {(r["member_kind"], r["member_id"]): (r["cluster_id"], r["is_noise"]) for r in rows}


def check_stability(warehouse: Warehouse) -> dict:
    """Cluster the library again from the stored state: every id and every membership must come out the
    same (the library has not changed in between, so anything else would rename people's clusters)."""
    stored_clusters = catalog.read_table(warehouse, "clusters").to_pylist()
    stored = _assignment(catalog.read_table(warehouse, "cluster_members").to_pylist())
    result, _, _, _ = _cluster(warehouse)
    again = _assignment(result.members)
    changed = sorted(k for k in stored.keys() | again.keys() if stored.get(k) != again.get(k))
    ids_before = sorted(c["cluster_id"] for c in stored_clusters)
    ids_after = sorted(c["cluster_id"] for c in result.clusters)
    return {
        "passed": not changed and ids_before == ids_after,
        "metadata": {
            "clusters": len(ids_before),
            "members": len(stored),
            "members_changed": len(changed),
            "ids_same": ids_before == ids_after,
            "first_changed": ", ".join(f"{k}:{i}" for k, i in changed[:5]) or "none",
        },
    }
