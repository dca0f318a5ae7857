"""Scene clusters of shots, character sub-clusters of faces, a noise bucket, and ids that survive re-clustering.

Shots (one L2-normalised CLIP vector each) are grouped into **scene clusters** across all videos ("the
kitchen", recurring); inside each scene cluster the **faces** found on its shots (CLIP vectors of the face
crops) are grouped into **character** clusters. What no cluster claims confidently is **noise**. Ids stay
the same across re-clustering, so the names people give clusters survive, and a member a person **pinned**
to a cluster stays there. Pure numpy/scipy/scikit-learn: no Dagster, no I/O (`cluster_library`,
`previous_from_rows`).

Why not fixed thresholds
    CLIP cosines live in a narrow band whose position depends on the material: unrelated pictures often
    reach 0.5-0.7 and the same scene 0.8-0.95. The original rule (a shot joins a scene at cosine ≥ 0.85, a
    face a character at ≥ 0.75, < 0.5 is noise) works only where the band happens to sit: below it, it
    shreds real scenes into noise; above it, look-alike scenes merge (`docs/calibration.md`).

Method, per level
    1. Distances. On unit vectors the euclidean distance sqrt(2 - 2 cos) is monotone in cosine; HDBSCAN
       (scikit-learn, excess-of-mass selection) runs brute force on that precomputed float32 matrix, with
       `min_cluster_size` 2 (demo libraries are small) and `min_samples` = `min_cluster_size`. Density is
       relative: a cluster is a group denser than its surroundings, wherever the band sits.
    2. Noise rule, applied to every HDBSCAN cluster (HDBSCAN's own noise stays noise): a member is noise
       when its cosine to the cluster centroid is below `noise_floor` (0.5, absolute) or when its cosine
       distance to the centroid (1 - cos) is more than `outlier_ratio` (2) times the cluster's median
       distance, that median taken as at least `spread_floor` (0.02, so a cluster of near-duplicates does
       not expel a member for being a hair further away). A cluster left with fewer than
       `min_cluster_size` members dissolves into noise.
    3. Characters are clustered per scene, but each scene's HDBSCAN run also sees up to `context_size`
       (100) faces of other scenes, evenly spaced in face-id order; they never become members. Alone, a
       scene's faces have no background, and one-person scenes came back split or as noise (measured: 7%
       of the true members of the low band went to noise without context, 1-2% with it).
    4. Nothing to contrast with (scenes always; faces when no other scene has faces): HDBSCAN never
       returns one cluster for everything, so a set that is one group comes back in fragments or as noise.
       Such a set is made one cluster (then step 2) when its mean pairwise cosine reaches
       `lone_cluster_min_cosine` (0.85 scenes, 0.75 faces: the old fixed rule, only as this last resort)
       and HDBSCAN's clusters are fewer than two or have a mean silhouette (cosine distance) below
       `min_silhouette` (0.3). Measured in 512 dimensions over 30 random sets each: fragments of one group
       0.07-0.13; two or three real groups 0.52 or more (any band above); the calibration libraries
       0.41-0.51 (and their mean pairwise cosine is below 0.85, so the test does not even run there).
    Faces whose shot is noise, or whose shot_id is not among the shots given (counted in
    `stats['faces_unknown_shot']`), are noise; so are members without a usable vector (None, NaN, inf, 0).

Pins and stable ids
    Pinned members take part in HDBSCAN (their vectors are real evidence) but are then taken out of the
    algorithm's clusters, which are matched to the previous run's clusters of the same level (characters
    across all scenes at once, so a character whose faces now sit in another scene, after scenes merged or
    split, keeps its id and name; a face is in one shot, so the overlaps never mix scenes)
    by membership: a one-to-one assignment
    maximising the overlap (scipy `linear_sum_assignment`), counting only members given now and not pinned.
    A pair is accepted when the overlap is at least half of the new cluster or half of the old one (so a
    cluster that grew, shrank, or lost members to deleted media keeps its id; of a split, the bigger part
    keeps it; of a merge, the new cluster takes the id of the old one it overlaps most). Unmatched clusters
    get fresh ids above the previous `max_id`, every previous id and every pinned id, in order of their
    smallest member id (scenes first). Ids are never reused: rows carry `max_id_issued`. Then the pins:
    a pinned member joins its cluster, which is created when the clustering did not produce it (level
    from the member kind; a character made only by pins gets as parent the commonest scene of its faces'
    shots, else its previous parent if that scene still exists, else None). A pin to an id of the other
    level is a ValueError; pins of members not given are ignored (`stats['pins_unused']`).
    Determinism: members are sorted by id before anything else, ties break on ids, floats in rows are
    rounded to 6 decimals; the same input gives identical rows.

Rows (`ClusterResult`)
    Cluster rows carry, besides the keys of the interface, `pinned_count` and `max_id_issued` (the highest
    id issued so far, so that `previous_from_rows` never hands out an id again). Member rows: a face's
    `scene_id` is the scene of its shot even when a pin put the face into a character of another scene;
    a noise member's `similarity`/`nearest_cluster_id` name the nearest centroid of its level (faces: among
    the characters of its shot's scene), a suggestion for pinning. `stats`: counts of members, clusters,
    noise (`scene_noise`, `character_noise`, `faces_on_noise_shots`, `faces_unknown_shot`,
    `members_without_vector`), pins (`pinned`, `pins_unused`), ids (`scene_ids_kept`, `scene_ids_new`,
    `character_ids_kept`, `character_ids_new`: kept = the id existed in the previous run; `ids_vanished`,
    `max_id`).

Calibration
    On synthetic libraries in three similarity bands (`narrow_band_library`), HDBSCAN with the relative
    noise rule keeps NMI at 0.94-0.97 and true members in noise at 1-3 % in every band, where the fixed
    thresholds lose up to 74 % of a scene's shots to noise or merge look-alike scenes. The tables, the
    alternatives measured, and the cost at scale (`python -m media_assets.models.clusters` prints them;
    the tests check seed 0) are in `docs/calibration.md` (Clusters).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import HDBSCAN
from sklearn.metrics import normalized_mutual_info_score
from threadpoolctl import threadpool_limits

SHOT, FACE = "shot", "face"
SCENE, CHARACTER = "scene", "character"
LEVEL_OF_KIND = {SHOT: SCENE, FACE: CHARACTER}
REPRESENTATIVE_FRAMES = 4  # thumbnails per cluster row
_DECIMALS = 6  # similarities and cohesion are rounded so rows compare exactly


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class ClusterSettings:
    """How one level (scenes of shots, characters of faces) is clustered; the module docstring has the numbers."""

    # HDBSCAN: the smallest cluster, and the neighbourhood that makes a point dense (None: = min_cluster_size)
    min_cluster_size: int = 2
    min_samples: int | None = None
    # a member whose cosine to its cluster's centroid is below this is always noise
    noise_floor: float = 0.5
    # relative rule: a member whose cosine distance to the centroid (1 - cos) exceeds `outlier_ratio` times
    # the cluster's median distance is noise; the median is taken as at least `spread_floor`, so members of
    # a cluster of near-duplicates are not noise for being a hair further away than the rest
    outlier_ratio: float = 2.0
    spread_floor: float = 0.02
    # a set with nothing to contrast it with (no context, see below) is one cluster when its mean pairwise
    # cosine reaches `lone_cluster_min_cosine` (the old fixed rule, as a last resort) and HDBSCAN's clusters
    # in it are fewer than two or have a mean silhouette below `min_silhouette` (fragments of one group)
    lone_cluster_min_cosine: float = 0.85
    min_silhouette: float = 0.3
    # sub-levels only (faces within one scene): up to this many vectors from outside the group (faces of
    # other scenes) join each HDBSCAN run as context, so that a scene with one person has a background
    context_size: int = 0

    def __post_init__(self) -> None:
        if not _is_int(self.min_cluster_size) or self.min_cluster_size < 2:
            raise ValueError(f"ClusterSettings.min_cluster_size must be an integer >= 2, got {self.min_cluster_size!r}")
        if self.min_samples is not None and (not _is_int(self.min_samples) or self.min_samples < 1):
            raise ValueError(f"ClusterSettings.min_samples must be None or an integer >= 1, got {self.min_samples!r}")
        for name in ("noise_floor", "lone_cluster_min_cosine"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"ClusterSettings.{name} is a cosine and must be in [-1, 1], got {value!r}")
        if not self.outlier_ratio >= 1.0:
            raise ValueError(f"ClusterSettings.outlier_ratio must be >= 1, got {self.outlier_ratio!r}")
        if not -1.0 <= self.min_silhouette <= 1.0:
            raise ValueError(f"ClusterSettings.min_silhouette must be in [-1, 1], got {self.min_silhouette!r}")
        if not 0.0 <= self.spread_floor <= 2.0:
            raise ValueError(f"ClusterSettings.spread_floor is a cosine distance in [0, 2], got {self.spread_floor!r}")
        if not _is_int(self.context_size) or self.context_size < 0:
            raise ValueError(f"ClusterSettings.context_size must be an integer >= 0, got {self.context_size!r}")


# calibrated on the synthetic bands of the module docstring
SCENE_SETTINGS = ClusterSettings(
    min_cluster_size=2,
    noise_floor=0.5,
    outlier_ratio=2.0,
    spread_floor=0.02,
    lone_cluster_min_cosine=0.85,
    min_silhouette=0.3,
    context_size=0,
)
CHARACTER_SETTINGS = ClusterSettings(
    min_cluster_size=2,
    noise_floor=0.5,
    outlier_ratio=2.0,
    spread_floor=0.02,
    lone_cluster_min_cosine=0.75,
    min_silhouette=0.3,
    context_size=100,
)


@dataclass(frozen=True)
class Member:
    kind: str  # 'shot' or 'face'
    member_id: int  # shot_id or face_id (int64)
    media_id: int
    frame_id: int  # the frame that shows it (shot: its first keyframe; face: the frame it was found on)
    vector: np.ndarray | None  # L2-normalised float32, or None when the member has no vector (-> noise)
    shot_id: int | None = None  # for faces: the shot it belongs to


@dataclass(frozen=True)
class PreviousClusters:
    """What the last materialization wrote (empty on the first run)."""

    members: dict[int, set[tuple[str, int]]]  # cluster_id -> {(kind, member_id)}
    levels: dict[int, str]  # cluster_id -> 'scene' | 'character'
    parents: dict[int, int | None]  # cluster_id -> parent scene cluster id (characters) or None
    max_id: int = 0  # highest cluster id ever issued (ids are never reused)


@dataclass
class ClusterResult:
    clusters: list[dict]  # one per cluster, sorted by cluster_id
    members: list[dict]  # one per member given, sorted by (member_kind, member_id)
    stats: dict  # counts, noise sizes, ids kept from the previous run and new ones


# ---------------------------------------------------------------------------------------------- input


def _checked_int(value, what: str) -> int:
    if not _is_int(value):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class _Level:
    """The members of one kind, sorted by id, with their unit vectors (rows of `vectors` where `has_vector`)."""

    kind: str
    ids: list[int]
    media_ids: list[int]
    frame_ids: list[int]
    shot_ids: list[int | None]
    vectors: np.ndarray  # float64 [n, dim]; zero rows where has_vector is False
    has_vector: np.ndarray  # bool [n]

    def key(self, index: int) -> tuple[str, int]:
        return (self.kind, self.ids[index])


def _checked_level(members: Iterable[Member], kind: str, argument: str) -> _Level:
    members = list(members)
    for member in members:
        if not isinstance(member, Member):
            raise ValueError(f"{argument} must hold Member objects, got {type(member).__name__}")
        if member.kind not in LEVEL_OF_KIND:
            raise ValueError(f"unknown member kind {member.kind!r} (expected 'shot' or 'face')")
        if member.kind != kind:
            raise ValueError(
                f"{argument} must hold kind {kind!r} members, got {member.kind!r} (id {member.member_id!r})"
            )
    members.sort(key=lambda m: _checked_int(m.member_id, f"{kind} member_id"))
    ids = [int(m.member_id) for m in members]
    duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate {kind} member_id(s): {duplicates[:10]}")
    dims = set()
    rows = []
    for member in members:
        if member.vector is None:
            rows.append(None)
            continue
        vector = np.asarray(member.vector, dtype=np.float64)
        if vector.ndim != 1 or vector.size == 0:
            raise ValueError(f"{kind} {member.member_id}: vector must be 1-D and non-empty, got shape {vector.shape}")
        dims.add(vector.size)
        if len(dims) > 1:
            raise ValueError(f"{kind} vectors must all have one dimension, got {sorted(dims)}")
        norm = float(np.linalg.norm(vector)) if np.isfinite(vector).all() else 0.0
        rows.append(vector / norm if norm > 0 else None)  # NaN, inf or zero: treated as missing
    dim = dims.pop() if dims else 0
    vectors = np.zeros((len(members), dim))
    has_vector = np.array([row is not None for row in rows], dtype=bool)
    for index, row in enumerate(rows):
        if row is not None:
            vectors[index] = row
    shot_ids = []
    for member in members:
        if kind == SHOT:
            shot_ids.append(int(member.member_id))
        else:
            shot_ids.append(None if member.shot_id is None else _checked_int(member.shot_id, "face shot_id"))
    return _Level(
        kind=kind,
        ids=ids,
        media_ids=[_checked_int(m.media_id, f"{kind} media_id") for m in members],
        frame_ids=[_checked_int(m.frame_id, f"{kind} frame_id") for m in members],
        shot_ids=shot_ids,
        vectors=vectors,
        has_vector=has_vector,
    )


def _checked_previous(previous: PreviousClusters | None) -> PreviousClusters:
    if previous is None:
        return PreviousClusters(members={}, levels={}, parents={}, max_id=0)
    for cluster_id in set(previous.members) | set(previous.levels):
        if previous.levels.get(cluster_id) not in (SCENE, CHARACTER):
            raise ValueError(
                f"previous cluster {cluster_id!r} needs a level 'scene' or 'character', "
                f"got {previous.levels.get(cluster_id)!r}"
            )
    return previous


def _checked_pins(pins, previous: PreviousClusters) -> dict[tuple[str, int], int]:
    checked: dict[tuple[str, int], int] = {}
    for key, cluster_id in (pins or {}).items():
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] in LEVEL_OF_KIND):
            raise ValueError(f"a pin's key must be ('shot' | 'face', member_id), got {key!r}")
        member = (key[0], _checked_int(key[1], "pinned member_id"))
        checked[member] = _checked_int(cluster_id, f"cluster id of the pin of {member}")
        if checked[member] < 1:
            raise ValueError(f"{member} is pinned to cluster {cluster_id}; cluster ids start at 1")
    level_of_pinned_id: dict[int, str] = {}
    for member, cluster_id in sorted(checked.items()):
        level = LEVEL_OF_KIND[member[0]]
        known = previous.levels.get(cluster_id) or level_of_pinned_id.get(cluster_id, level)
        if known != level:
            raise ValueError(
                f"{member} is pinned to cluster {cluster_id}, which is a {known} cluster; "
                f"a {member[0]} can only be pinned to a {level} cluster"
            )
        level_of_pinned_id[cluster_id] = level
    return dict(sorted(checked.items()))


# ------------------------------------------------------------------------------------------ algorithm


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _hdbscan_labels(vectors: np.ndarray, settings: ClusterSettings) -> np.ndarray:
    """HDBSCAN over euclidean distances of unit vectors, sqrt(2 - 2 cos): brute force on a precomputed
    float32 matrix, built in place (5,000 vectors: 100 MB)."""
    single = vectors.astype(np.float32)
    distances = single @ single.T
    distances *= -2.0
    distances += 2.0
    np.maximum(distances, 0.0, out=distances)
    np.sqrt(distances, out=distances)
    np.fill_diagonal(distances, 0.0)
    min_samples = min(settings.min_samples or settings.min_cluster_size, len(vectors))
    model = HDBSCAN(
        min_cluster_size=settings.min_cluster_size, min_samples=min_samples, metric="precomputed", copy=False
    )
    return model.fit_predict(distances)


def _without_outliers(vectors: np.ndarray, members: np.ndarray, settings: ClusterSettings) -> np.ndarray:
    """The noise rule: members far below the floor, or far from the centroid relative to the rest, leave."""
    cosine = vectors[members] @ _unit(vectors[members].mean(axis=0))
    distance = 1.0 - cosine
    scale = max(float(np.median(distance)), settings.spread_floor)
    return members[(cosine >= settings.noise_floor) & (distance <= settings.outlier_ratio * scale)]


def _silhouette(vectors: np.ndarray, groups: list[np.ndarray]) -> float:
    """Mean silhouette (cosine distance) of the members of `groups`; -1 for fewer than two groups.

    Exact from cluster sums: the mean cosine distance of v to the members of C is 1 - v·sum(C)/|C|
    (without v itself when v is in C)."""
    if len(groups) < 2:
        return -1.0
    members = np.concatenate(groups)
    own = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
    sums = np.array([vectors[group].sum(axis=0) for group in groups])
    sizes = np.array([len(group) for group in groups], dtype=np.float64)
    mean_distance = 1.0 - (vectors[members] @ sums.T) / sizes
    rows = np.arange(len(members))
    within = 1.0 - ((1.0 - mean_distance[rows, own]) * sizes[own] - 1.0) / (sizes[own] - 1.0)
    mean_distance[rows, own] = np.inf
    between = mean_distance.min(axis=1)
    return float(np.mean((between - within) / np.maximum(np.maximum(between, within), 1e-12)))


def _density_clusters(
    vectors: np.ndarray, settings: ClusterSettings, context: np.ndarray | None = None
) -> list[np.ndarray]:
    """Clusters (row indices, ascending, ordered by first row) of `vectors`; rows in none are noise.

    `context` rows take part in HDBSCAN's density estimate but are never members."""
    n = len(vectors)
    has_context = context is not None and len(context) > 0
    if n == 0 or (n < 2 and not has_context):
        return []
    labels = _hdbscan_labels(np.vstack([vectors, context]) if has_context else vectors, settings)[:n]
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels[labels >= 0])]
    if not has_context and n >= settings.min_cluster_size:
        # nothing to contrast with: a homogeneous set that HDBSCAN found no real structure in is one cluster
        total = vectors.sum(axis=0)
        mean_pairwise = (float(total @ total) - n) / (n * (n - 1))
        if mean_pairwise >= settings.lone_cluster_min_cosine and _silhouette(vectors, groups) < settings.min_silhouette:
            groups = [np.arange(n)]
    kept = [_without_outliers(vectors, group, settings) for group in groups if len(group) >= settings.min_cluster_size]
    kept = [group for group in kept if len(group) >= settings.min_cluster_size]
    return sorted(kept, key=lambda group: int(group[0]))


class _IdIssuer:
    """Fresh cluster ids above every id the previous run or a pin knows."""

    def __init__(self, previous: PreviousClusters, pins: dict[tuple[str, int], int]):
        known = [
            previous.max_id,
            *previous.members,
            *previous.levels,
            *previous.parents,
            *(parent for parent in previous.parents.values() if parent is not None),
            *pins.values(),
        ]
        self.next_id = max(known, default=0) + 1

    def fresh(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _matched_ids(new: list[set], old: dict[int, set], issuer: _IdIssuer) -> list[int]:
    """Ids for the `new` member sets: the best one-to-one overlap with the `old` clusters (Hungarian
    assignment), a pair kept when the overlap is at least half of either side; the rest get fresh ids."""
    ids: list[int | None] = [None] * len(new)
    old_ids = sorted(cluster_id for cluster_id, members in old.items() if members)
    if new and old_ids:
        overlap = np.array([[len(group & old[cluster_id]) for cluster_id in old_ids] for group in new])
        for row, column in zip(*linear_sum_assignment(overlap, maximize=True), strict=True):
            shared = int(overlap[row, column])
            if shared > 0 and (2 * shared >= len(new[row]) or 2 * shared >= len(old[old_ids[column]])):
                ids[row] = old_ids[column]
    return [cluster_id if cluster_id is not None else issuer.fresh() for cluster_id in ids]


def _previous_sets(previous: PreviousClusters, level: str, present: set, pinned: set) -> dict[int, set]:
    """Previous clusters of `level`, restricted to members given now and not pinned."""
    return {
        cluster_id: (set(members) & present) - pinned
        for cluster_id, members in previous.members.items()
        if previous.levels.get(cluster_id) == level
    }


# ----------------------------------------------------------------------------------------------- rows


@dataclass
class _Cluster:
    cluster_id: int
    level: str
    parent_id: int | None
    members: list[int]  # indices into the level's members


def _cluster_rows(level: _Level, clusters: list[_Cluster], pinned: set, max_id: int):
    """Cluster rows; per member index in a cluster, (cluster_id, similarity); the clusters' centroids."""
    rows, placed, centroids = [], {}, {}
    for cluster in clusters:
        indices = np.array(sorted(cluster.members))
        with_vector = indices[level.has_vector[indices]]
        cosine = {}
        if len(with_vector):
            centroid = _unit(level.vectors[with_vector].mean(axis=0))
            centroids[cluster.cluster_id] = centroid
            cosine = dict(zip(with_vector.tolist(), (level.vectors[with_vector] @ centroid).tolist(), strict=True))
        nearest_first = sorted(
            indices.tolist(), key=lambda i: (i not in cosine, -round(cosine.get(i, 0.0), _DECIMALS), level.ids[i])
        )
        frame_ids = list(dict.fromkeys(level.frame_ids[i] for i in nearest_first))
        rows.append(
            {
                "cluster_id": cluster.cluster_id,
                "level": cluster.level,
                "parent_id": cluster.parent_id,
                "size": len(indices),
                "representative_member_id": level.ids[nearest_first[0]],
                "representative_frame_id": level.frame_ids[nearest_first[0]],
                "representative_frame_ids": frame_ids[:REPRESENTATIVE_FRAMES],
                "cohesion": round(float(np.mean(list(cosine.values()))), _DECIMALS) if cosine else None,
                "media_count": len({level.media_ids[i] for i in indices}),
                "pinned_count": sum(level.key(i) in pinned for i in indices),
                "max_id_issued": max_id,
            }
        )
        for i in indices.tolist():
            placed[i] = (cluster.cluster_id, round(cosine[i], _DECIMALS) if i in cosine else None)
    return rows, placed, _Centroids(centroids, level.vectors.shape[1])


class _Centroids:
    """The centroids of one level's clusters, for the nearest-cluster suggestion of noise members."""

    def __init__(self, centroids: dict[int, np.ndarray], dim: int):
        self.ids = sorted(centroids)
        self.matrix = np.array([centroids[cluster_id] for cluster_id in self.ids]).reshape(len(self.ids), dim)
        self.row_of = {cluster_id: row for row, cluster_id in enumerate(self.ids)}

    def nearest(self, vector: np.ndarray, candidates: Iterable[int] | None = None) -> tuple[int | None, float | None]:
        """The most similar centroid among `candidates` (None: all), smallest id on ties, and its cosine."""
        rows = (
            list(range(len(self.ids)))
            if candidates is None
            else sorted(self.row_of[c] for c in candidates if c in self.row_of)
        )
        if not rows:
            return None, None
        similarities = np.round((self.matrix if candidates is None else self.matrix[rows]) @ vector, _DECIMALS)
        best = int(np.argmax(similarities))
        return self.ids[rows[best]], float(similarities[best])


# ------------------------------------------------------------------------------------------------ API


def cluster_library(
    shots: list[Member],
    faces: list[Member],
    *,
    previous: PreviousClusters | None = None,
    pins: dict[tuple[str, int], int] | None = None,
    scene_settings: ClusterSettings = SCENE_SETTINGS,
    character_settings: ClusterSettings = CHARACTER_SETTINGS,
) -> ClusterResult:
    """Scene clusters of `shots`, character clusters of `faces` within them; see the module docstring."""
    shot_level = _checked_level(shots, SHOT, "shots")
    face_level = _checked_level(faces, FACE, "faces")
    previous = _checked_previous(previous)
    all_pins = _checked_pins(pins, previous)
    present = {level.key(i) for level in (shot_level, face_level) for i in range(len(level.ids))}
    pins = {key: cluster_id for key, cluster_id in all_pins.items() if key in present}
    pinned = set(pins)
    issuer = _IdIssuer(previous, all_pins)
    stats: dict = {
        "shots": len(shot_level.ids),
        "faces": len(face_level.ids),
        "pinned": len(pins),
        "pins_unused": len(all_pins) - len(pins),
    }

    # scenes: density clusters of all shots with vectors, noise rule, pinned shots out, ids matched, pins in
    with_vector = np.flatnonzero(shot_level.has_vector)
    groups = [with_vector[g] for g in _density_clusters(shot_level.vectors[with_vector], scene_settings)]
    groups = [[i for i in g.tolist() if shot_level.key(i) not in pinned] for g in groups]
    groups = [g for g in groups if len(g) >= scene_settings.min_cluster_size]
    scene_ids = _matched_ids(
        [{shot_level.key(i) for i in g} for g in groups], _previous_sets(previous, SCENE, present, pinned), issuer
    )
    scenes = {cluster_id: _Cluster(cluster_id, SCENE, None, g) for cluster_id, g in zip(scene_ids, groups, strict=True)}
    for i, shot_id in enumerate(shot_level.ids):
        if (SHOT, shot_id) in pins:
            cluster_id = pins[(SHOT, shot_id)]
            scenes.setdefault(cluster_id, _Cluster(cluster_id, SCENE, None, [])).members.append(i)
    scene_of_shot = {shot_level.ids[i]: cluster.cluster_id for cluster in scenes.values() for i in cluster.members}

    # characters: per scene, density clusters of its faces against faces elsewhere, then the same steps
    face_scene = [scene_of_shot.get(shot_id) for shot_id in face_level.shot_ids]
    known_shots = set(shot_level.ids)
    stats["faces_unknown_shot"] = sum(shot_id not in known_shots for shot_id in face_level.shot_ids)
    stats["faces_on_noise_shots"] = sum(
        shot_id in known_shots and scene is None for shot_id, scene in zip(face_level.shot_ids, face_scene, strict=True)
    )
    characters: dict[int, _Cluster] = {}
    found_characters: list[tuple[int, list[int]]] = []  # (scene id, member indices), in scene order
    face_with_vector = np.flatnonzero(face_level.has_vector)
    scene_of_face_with_vector = np.array([face_scene[i] or 0 for i in face_with_vector.tolist()], dtype=np.int64)
    # many small matrices: a second BLAS thread only adds synchronisation (3x slower when the cores are busy)
    with threadpool_limits(limits=1, user_api="blas"):
        for scene_id in sorted(scenes):
            in_scene = face_with_vector[scene_of_face_with_vector == scene_id]
            if len(in_scene) == 0:
                continue
            elsewhere = face_with_vector[scene_of_face_with_vector != scene_id]
            take = min(character_settings.context_size, len(elsewhere))
            context = elsewhere[np.linspace(0, len(elsewhere) - 1, take).round().astype(int)] if take else elsewhere[:0]
            found = _density_clusters(face_level.vectors[in_scene], character_settings, face_level.vectors[context])
            groups = [[i for i in in_scene[g].tolist() if face_level.key(i) not in pinned] for g in found]
            found_characters += [(scene_id, g) for g in groups if len(g) >= character_settings.min_cluster_size]
    # matched across all scenes at once: a face is in one shot, so in one scene, and a person whose faces now
    # sit in another scene (scenes merged, split, or a shot pinned elsewhere) keeps the character's id and name
    ids = _matched_ids(
        [{face_level.key(i) for i in g} for _, g in found_characters],
        _previous_sets(previous, CHARACTER, present, pinned),
        issuer,
    )
    characters.update(
        {cid: _Cluster(cid, CHARACTER, scene_id, g) for cid, (scene_id, g) in zip(ids, found_characters, strict=True)}
    )
    for i, face_id in enumerate(face_level.ids):
        if (FACE, face_id) in pins:
            cluster_id = pins[(FACE, face_id)]
            characters.setdefault(cluster_id, _Cluster(cluster_id, CHARACTER, None, [])).members.append(i)
    for cluster in characters.values():
        if cluster.parent_id is None:  # made by pins only: the commonest scene of its faces' shots, else the old parent
            votes = Counter(face_scene[i] for i in cluster.members if face_scene[i] is not None)
            old_parent = previous.parents.get(cluster.cluster_id)
            cluster.parent_id = (
                min(votes, key=lambda s: (-votes[s], s)) if votes else old_parent if old_parent in scenes else None
            )

    # rows
    previous_ids = set(previous.members) | set(previous.levels)
    max_id = max([issuer.next_id - 1, *scenes, *characters])
    scene_rows, scene_placed, scene_centroids = _cluster_rows(
        shot_level, [scenes[c] for c in sorted(scenes)], pinned, max_id
    )
    character_rows, face_placed, face_centroids = _cluster_rows(
        face_level, [characters[c] for c in sorted(characters)], pinned, max_id
    )
    characters_of_scene: dict[int, list[int]] = {}
    for cluster in characters.values():
        characters_of_scene.setdefault(cluster.parent_id, []).append(cluster.cluster_id)

    member_rows = []
    for level, placed, centroids in (
        (face_level, face_placed, face_centroids),
        (shot_level, scene_placed, scene_centroids),
    ):
        for i, member_id in enumerate(level.ids):
            scene_id = scene_of_shot.get(level.shot_ids[i])
            if i in placed:
                cluster_id, similarity = placed[i]
                nearest_id = cluster_id
            else:
                cluster_id = None
                candidates = None if level.kind == SHOT else characters_of_scene.get(scene_id, []) if scene_id else []
                nearest_id, similarity = (
                    centroids.nearest(level.vectors[i], candidates) if level.has_vector[i] else (None, None)
                )
            member_rows.append(
                {
                    "member_kind": level.kind,
                    "member_id": member_id,
                    "media_id": level.media_ids[i],
                    "frame_id": level.frame_ids[i],
                    "shot_id": level.shot_ids[i],
                    "level": LEVEL_OF_KIND[level.kind],
                    "cluster_id": cluster_id,
                    "scene_id": scene_id,
                    "similarity": similarity,
                    "nearest_cluster_id": nearest_id,
                    "is_noise": cluster_id is None,
                    "pinned": level.key(i) in pinned,
                }
            )

    stats.update(
        {
            "scenes": len(scenes),
            "characters": len(characters),
            "scene_noise": sum(r["is_noise"] for r in member_rows if r["member_kind"] == SHOT),
            "character_noise": sum(r["is_noise"] for r in member_rows if r["member_kind"] == FACE),
            "members_without_vector": int((~shot_level.has_vector).sum() + (~face_level.has_vector).sum()),
            "scene_ids_new": len(set(scenes) - previous_ids),
            "character_ids_new": len(set(characters) - previous_ids),
            "ids_vanished": len(previous_ids - set(scenes) - set(characters)),
            "max_id": max_id,
        }
    )
    stats["scene_ids_kept"] = len(scenes) - stats["scene_ids_new"]
    stats["character_ids_kept"] = len(characters) - stats["character_ids_new"]
    return ClusterResult(
        clusters=sorted(scene_rows + character_rows, key=lambda row: row["cluster_id"]),
        members=member_rows,
        stats=stats,
    )


def previous_from_rows(cluster_rows: list[dict], member_rows: list[dict], *, max_id: int = 0) -> PreviousClusters:
    """The PreviousClusters that the rows of a `ClusterResult` (as stored and read back) describe.

    `max_id`: the highest id ever issued, if known beyond the rows (a run that ended with no clusters keeps
    no row to carry its `max_id_issued`; pass the stored `stats['max_id']` then)."""
    levels: dict[int, str] = {}
    parents: dict[int, int | None] = {}
    highest = _checked_int(max_id, "max_id")
    for row in cluster_rows:
        cluster_id = _checked_int(row["cluster_id"], "cluster_id")
        levels[cluster_id] = str(row["level"])
        parents[cluster_id] = None if row.get("parent_id") is None else _checked_int(row["parent_id"], "parent_id")
        highest = max(highest, cluster_id, _checked_int(row.get("max_id_issued") or 0, "max_id_issued"))
    members: dict[int, set[tuple[str, int]]] = {cluster_id: set() for cluster_id in levels}
    for row in member_rows:
        if row.get("cluster_id") is not None:
            cluster_id = _checked_int(row["cluster_id"], "cluster_id")
            if cluster_id not in members:
                raise ValueError(
                    f"member ({row['member_kind']}, {row['member_id']}) names cluster {cluster_id}, "
                    "which has no cluster row"
                )
            members[cluster_id].add((str(row["member_kind"]), _checked_int(row["member_id"], "member_id")))
    return PreviousClusters(members=members, levels=levels, parents=parents, max_id=highest)


# ---------------------------------------------------------------------------------------- calibration
# Synthetic CLIP-like libraries with known groups, the fixed-threshold rule they are compared with, and the
# scores in the module docstring (`python -m media_assets.models.clusters` prints them; the tests check them).

# band -> (cosine between groups, range of cosines within a group)
SCENE_BANDS = {"low": (0.55, (0.72, 0.86)), "mid": (0.70, (0.82, 0.94)), "high": (0.80, (0.90, 0.97))}
FACE_BANDS = {"low": (0.50, (0.68, 0.82)), "mid": (0.60, (0.75, 0.90)), "high": (0.70, (0.82, 0.94))}
FIXED_SCENE_JOIN, FIXED_CHARACTER_JOIN = 0.85, 0.75  # the original design's thresholds (and < 0.5 is noise)


@dataclass(frozen=True)
class SyntheticLibrary:
    shots: list[Member]
    faces: list[Member]
    scene_of_shot: dict[int, int]  # shot_id -> true scene (-1: an outlier shot)
    character_of_face: dict[int, int]  # face_id -> true character, unique across scenes (-1: an extra)


def _random_units(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _narrow_band_groups(rng, mean, sizes, band, family, outliers, dim):
    """Unit vectors of groups of the given sizes, then `outliers` vectors (label -1).

    A group's centre is sqrt(a2)·mean + sqrt(f2)·family + sqrt(b2)·own, a2 = between ± 0.03, f2 = `family`
    for two of every three groups (pairs share a family direction: look-alike scenes), |centre|² = w drawn
    from the band's within range; a member adds noise of squared size (1 - w)·U(0.5, 1.5), so members of a
    group have cosine ≈ w to each other and groups ≈ a2 (+ f2). Outliers: half stray (mean plus noise, as far
    from every group as groups are from each other), half near a group (20% of its centre direction)."""
    between, (within_low, within_high) = band
    families = _random_units(rng, len(sizes) // 3 + 1, dim)
    vectors, labels, centres = [], [], []
    for group, size in enumerate(sizes):
        a2 = between + rng.uniform(-0.03, 0.03)
        f2 = family if group % 3 != 2 else 0.0
        w = max(rng.uniform(within_low, within_high), a2 + f2 + 0.02)
        own = _random_units(rng, 1, dim)[0]
        centre = np.sqrt(a2) * mean + np.sqrt(f2) * families[group // 3] + np.sqrt(w - a2 - f2) * own
        spread = np.sqrt((1 - w) * rng.uniform(0.5, 1.5, size=(size, 1)))
        vectors.append(centre + spread * _random_units(rng, size, dim))
        labels += [group] * size
        centres.append(_unit(centre))
    for index in range(outliers):
        a2 = between + rng.uniform(-0.03, 0.03)
        stray = np.sqrt(a2) * mean + np.sqrt(1 - a2) * _random_units(rng, 1, dim)[0]
        if index % 2:
            stray = np.sqrt(0.2) * centres[rng.integers(len(centres))] + np.sqrt(0.8) * stray
        vectors.append(stray[None, :])
        labels.append(-1)
    stacked = np.vstack(vectors)
    return (stacked / np.linalg.norm(stacked, axis=1, keepdims=True)).astype(np.float32), labels


def narrow_band_library(
    seed: int, band: str = "mid", *, n_scenes: int = 24, dim: int = 512, outlier_fraction: float = 0.1
) -> SyntheticLibrary:
    """A library of `n_scenes` scenes (2-25 shots each, ~`outlier_fraction` outlier shots) in the named
    CLIP-like band (`SCENE_BANDS`, faces in `FACE_BANDS`); each scene shows 1-4 characters with 2-12 face
    crops each, plus ~15% extras, on random shots of the scene. Deterministic for a seed."""
    if band not in SCENE_BANDS:
        raise ValueError(f"unknown band {band!r}; expected one of {sorted(SCENE_BANDS)}")
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 26, size=n_scenes).tolist()
    shot_vectors, scene_labels = _narrow_band_groups(
        rng, _random_units(rng, 1, dim)[0], sizes, SCENE_BANDS[band], 0.08, round(outlier_fraction * sum(sizes)), dim
    )
    shot_ids = (rng.permutation(len(scene_labels)) + 1).tolist()
    n_media = max(1, n_scenes // 2)
    shots, scene_of_shot, shots_of_scene, media_of_shot = [], {}, {}, {}
    for shot_id, vector, scene in zip(shot_ids, shot_vectors, scene_labels, strict=True):
        media_of_shot[shot_id] = int(rng.integers(n_media)) + 1
        shots.append(Member(SHOT, shot_id, media_of_shot[shot_id], 10 * shot_id, vector))
        scene_of_shot[shot_id] = scene
        shots_of_scene.setdefault(scene, []).append(shot_id)
    face_mean = _random_units(rng, 1, dim)[0]
    faces, character_of_face = [], {}
    for scene in range(n_scenes):
        character_sizes = rng.integers(2, 13, size=int(rng.integers(1, 5))).tolist()
        extras = max(1, round(0.15 * sum(character_sizes)))
        vectors, labels = _narrow_band_groups(rng, face_mean, character_sizes, FACE_BANDS[band], 0.0, extras, dim)
        for vector, label in zip(vectors, labels, strict=True):
            face_id = len(faces) + 1
            shot_id = int(rng.choice(shots_of_scene[scene]))
            faces.append(Member(FACE, face_id, media_of_shot[shot_id], 10 * shot_id, vector, shot_id))
            character_of_face[face_id] = -1 if label < 0 else 100 * scene + label
    return SyntheticLibrary(shots, faces, scene_of_shot, character_of_face)


def fixed_threshold_labels(vectors: np.ndarray, join: float, noise_floor: float = 0.5, min_size: int = 2) -> np.ndarray:
    """The fixed rule the density clustering replaced: average-linkage groups whose mean pairwise cosine is
    at least `join`; groups smaller than `min_size` and members below `noise_floor` to their centroid are
    noise (-1)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) < 2:
        return np.full(len(vectors), -1)
    labels = fcluster(linkage(vectors, method="average", metric="cosine"), t=1.0 - join, criterion="distance")
    counts = Counter(labels.tolist())
    result = np.full(len(vectors), -1)
    for label, count in counts.items():
        members = np.flatnonzero(labels == label)
        if count >= min_size:
            members = members[vectors[members] @ _unit(vectors[members].mean(axis=0)) >= noise_floor]
            result[members] = label
    return result


def clustering_scores(truth: list[int], predicted: list[int | None]) -> dict:
    """Purity (share of clustered members that belong to their cluster's majority true group; true
    outliers count as wrong), NMI (noise is one label on either side), how much is noise, and which."""
    truth_array = np.array(truth)
    predicted_array = np.array([-1 if p is None else p for p in predicted])
    clustered = predicted_array >= 0
    correct = 0
    for cluster in np.unique(predicted_array[clustered]):
        true_groups = truth_array[(predicted_array == cluster) & (truth_array >= 0)]
        correct += Counter(true_groups.tolist()).most_common(1)[0][1] if len(true_groups) else 0
    outliers = truth_array < 0
    return {
        "purity": correct / max(int(clustered.sum()), 1),
        "nmi": float(normalized_mutual_info_score(truth_array, predicted_array)),
        "noise_rate": float(np.mean(~clustered)),
        "outliers_in_noise": float(np.mean(~clustered[outliers])) if outliers.any() else 1.0,
        "members_in_noise": float(np.mean(~clustered[~outliers])),
        "clusters": int(len(np.unique(predicted_array[clustered]))),
        "true_clusters": int(len(np.unique(truth_array[~outliers]))),
    }


def calibration_report(
    seeds: Iterable[int] = (0, 1, 2, 3, 4),
    bands: Iterable[str] = ("low", "mid", "high"),
    *,
    n_scenes: int = 24,
    scene_settings: ClusterSettings = SCENE_SETTINGS,
    character_settings: ClusterSettings = CHARACTER_SETTINGS,
) -> list[dict]:
    """Scores of `cluster_library` (with the given settings) and of the fixed rule on `narrow_band_library`s,
    mean over `seeds`: one row per (level, band, method). Characters are scored on the true scenes (shots
    pinned to them) so that scene mistakes do not count twice."""
    rows = []
    for band in bands:
        runs: dict[tuple[str, str], list[dict]] = {}
        for seed in seeds:
            library = narrow_band_library(seed, band, n_scenes=n_scenes)
            scene_rows = cluster_library(library.shots, [], scene_settings=scene_settings).members
            truth = [library.scene_of_shot[row["member_id"]] for row in scene_rows]
            runs.setdefault((SCENE, "hdbscan"), []).append(
                clustering_scores(truth, [r["cluster_id"] for r in scene_rows])
            )
            truth = [library.scene_of_shot[shot.member_id] for shot in library.shots]
            fixed = fixed_threshold_labels(np.array([shot.vector for shot in library.shots]), FIXED_SCENE_JOIN)
            runs.setdefault((SCENE, "fixed"), []).append(clustering_scores(truth, fixed.tolist()))

            true_scene_pins = {
                (SHOT, shot_id): scene + 1 for shot_id, scene in library.scene_of_shot.items() if scene >= 0
            }
            face_rows = cluster_library(
                library.shots,
                library.faces,
                pins=true_scene_pins,
                scene_settings=scene_settings,
                character_settings=character_settings,
            ).members
            faces = sorted(library.faces, key=lambda face: face.member_id)
            truth = [library.character_of_face[face.member_id] for face in faces]
            runs.setdefault((CHARACTER, "hdbscan"), []).append(
                clustering_scores(truth, [r["cluster_id"] for r in face_rows if r["member_kind"] == FACE])
            )
            fixed = np.full(len(faces), -1)
            for scene in sorted(set(library.scene_of_shot.values()) - {-1}):
                in_scene = np.array([i for i, face in enumerate(faces) if library.scene_of_shot[face.shot_id] == scene])
                labels = fixed_threshold_labels(np.array([faces[i].vector for i in in_scene]), FIXED_CHARACTER_JOIN)
                fixed[in_scene] = np.where(labels >= 0, 1000 * scene + labels, -1)
            runs.setdefault((CHARACTER, "fixed"), []).append(clustering_scores(truth, fixed.tolist()))
        for (level, method), scores in runs.items():
            rows.append(
                {
                    "level": level,
                    "band": band,
                    "method": method,
                    **{name: float(np.mean([s[name] for s in scores])) for name in scores[0]},
                }
            )
    return rows


def format_report(rows: list[dict]) -> str:
    names = ["purity", "nmi", "noise_rate", "outliers_in_noise", "members_in_noise", "clusters", "true_clusters"]
    lines = ["level      band  method   " + " ".join(f"{name:>17}" for name in names)]
    for row in sorted(rows, key=lambda r: (r["level"] != SCENE, list(SCENE_BANDS).index(r["band"]), r["method"])):
        values = " ".join(f"{row[name]:>17.3f}" for name in names)
        lines.append(f"{row['level']:<10} {row['band']:<5} {row['method']:<8} {values}")
    return "\n".join(lines)


if __name__ == "__main__":
    import time

    print(format_report(calibration_report()))
    big = narrow_band_library(0, "mid", n_scenes=400)
    shots = big.shots[:5000]
    kept_shots = {shot.member_id for shot in shots}
    faces = [face for face in big.faces if face.shot_id in kept_shots]
    for attempt in ("first call", "second call"):
        started = time.perf_counter()
        scenes_only = cluster_library(shots, [])
        middle = time.perf_counter()
        cluster_library(shots, faces)
        print(
            f"{attempt}: {len(shots)} shots (dim 512): {middle - started:.2f} s, "
            f"{scenes_only.stats['scenes']} scenes; "
            f"with {len(faces)} faces: {time.perf_counter() - middle:.2f} s"
        )
