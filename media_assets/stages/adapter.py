"""The learning loop's stages: feedback → a candidate adapter → the promotion gate → adapted vectors.

- `train_candidate` turns the `feedback` rows up to a cursor into training signal (`adapter.Feedback`):
  moves, merges and splits put members in groups (with the cluster's current members as their
  companions), same/different pairs as given, relevance judgements as (query vector, frame) pairs. It
  holds out a quarter (deterministically), trains an adapter on the rest (`adapter.train_adapter`) and
  saves it as a new version under `warehouse/models/adapters/v<NNNN>/` with the feedback range, the
  base model id, the metrics and the gate's decision; the `adapters` table gets a `candidate` row.
- `gate_decision` is what the blocking asset check reports: the candidate against the current adapter and
  against none on the held-out feedback, and generic retrieval on vectors no feedback touched
  (`adapter.promotion_decision`).
- `promote` makes a version current (`models/adapters/current.json` and a `promoted` row); version 0 is
  "no adapter". After training (`gate=True`) it takes only a candidate its gate passed, judged against the
  adapter current at promotion time (a judgement against another version is stale and refused), and the
  Dagster assets find "their" candidate by run id (`candidate_of_run`), so overlapping runs cannot promote
  each other's candidates; version numbers are reserved by creating their folder. `rollback` steps back to
  the newest promoted version older than the current one: one command. No adapter is promoted or applied
  to vectors of a model other than the one it was trained for (`check_applies`).
- `write_adapted_vectors` applies the current adapter to every frame, shot and face vector into the
  LanceDB tables `adapted_frame_vectors`, `adapted_shot_vectors`, `adapted_face_vectors`, each row with
  the `adapter_version` that made it (the base tables are what no adapter touched: version 0).
  `serving_store` is what the index, the clusters and the search client read: the adapted table when it
  was made by the current adapter, else the base table.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from media_assets.feedback.table import resolved_rows
from media_assets.ids import media_id_of_frame
from media_assets.models.adapter import (
    MANIFEST,
    AdapterFileError,
    AdapterSettings,
    EmbeddingAdapter,
    evaluate,
    feedback_from_rows,
    generic_retrieval_score,
    promotion_decision,
    split_feedback,
    train_adapter,
)
from media_assets.models.clip import ClipEncoder
from media_assets.store import catalog
from media_assets.store.adapters import (
    ADAPTED,
    adapters_dir,
    current_version,
    stamp_path,
    version_dir,
    write_json,
)
from media_assets.store.vectors import FACE_VECTORS, FRAME_VECTORS, SHOT_VECTORS, VectorStore, vector_matrix
from media_assets.warehouse import Warehouse

MEMBER_TABLE = {"frame": FRAME_VECTORS, "shot": SHOT_VECTORS, "face": FACE_VECTORS}
GROUP_COMPANIONS = 20  # current members of a cluster taken as a moved member's companions (nearest the centroid)
HELD_OUT = 0.25


class LearningError(RuntimeError):
    pass


_loaded: dict[tuple[str, int], object] = {}


def load_adapter(warehouse: Warehouse, version: int):
    """The adapter of a version (None for version 0), loaded once per process."""
    if version == 0:
        return None
    key = (str(warehouse.root), version)
    if key not in _loaded:
        _loaded[key] = EmbeddingAdapter.load(version_dir(warehouse, version))[0]
    return _loaded[key]


def current_adapter(warehouse: Warehouse):
    version = current_version(warehouse)
    return load_adapter(warehouse, version), version


# -- feedback → training signal -----------------------------------------------------------------------


@dataclass
class TrainingSet:
    feedback: object  # adapter.Feedback
    items: list[tuple[str, int]]  # (member kind, id) per row of feedback.vectors
    counts: dict  # what was used and skipped (adapter.feedback_from_rows)
    rows_used: int
    from_seq: int | None
    through_seq: int | None
    companions: set = dataclasses.field(default_factory=set)  # items only the clustering put in a group, no person


def _vectors_by_key(warehouse: Warehouse) -> dict[tuple[str, int], np.ndarray]:
    """(member kind, id) -> base vector, for frames, shots and faces (never adapted vectors)."""
    out: dict[tuple[str, int], np.ndarray] = {}
    for kind, table in MEMBER_TABLE.items():
        ids, _, vectors = VectorStore(warehouse, table).load_all()
        out.update(((kind, int(i)), vectors[k]) for k, i in enumerate(ids.tolist()))
    return out


def query_encoder(warehouse: Warehouse, device: str = "auto"):
    """The text encoder for relevance queries: the model that made the stored vectors (as the search
    client uses), loaded only when called."""
    models = VectorStore(warehouse, FRAME_VECTORS).model_ids()
    if len(models) != 1:
        raise LearningError(
            f"relevance judgements need the one model the frame vectors were made with; found {models or 'none'}"
        )
    return ClipEncoder.load(models[0], device=device)


def build_training_set(
    warehouse: Warehouse,
    encoder=None,
    *,
    through_seq: int | None,
    device: str = "auto",
    vectors: dict[tuple[str, int], np.ndarray] | None = None,
) -> TrainingSet:
    """`adapter.Feedback` from the feedback rows up to `through_seq`.

    A move (merge, split) says "this member belongs with that cluster's members", so the cluster's current
    members nearest its centroid (up to GROUP_COMPANIONS) join the group as companions: they come before
    every real row, so a later row about one of them wins. Relevance queries are encoded with the text
    encoder (`query_encoder` when None, loaded only if there are any); items are keyed by
    (member kind, id) so the held-out split stays put as feedback grows."""
    # members followed to their current ids by their anchors; rows about members that are gone are left out
    rows, anchor_counts = resolved_rows(warehouse, through_seq=through_seq)
    if not rows and not anchor_counts["stale"]:
        raise LearningError(f"there is no feedback up to seq {through_seq}: nothing to learn from")
    if not rows:
        raise LearningError(
            f"the feedback up to seq {through_seq} names only members that are gone (re-ingested "
            f"files): {anchor_counts['stale']} stale"
        )
    vectors = _vectors_by_key(warehouse) if vectors is None else vectors
    moved_to = {
        r["cluster_id"] for r in rows if r["kind"] in ("move", "merge", "split") and r["cluster_id"] is not None
    }
    companion_rows = [
        {
            "seq": -1,
            "feedback_id": "",
            "kind": "move",
            "member_kind": kind,
            "member_id": member_id,
            "cluster_id": cluster_id,
        }
        for cluster_id, members in _cluster_companions(warehouse, moved_to).items()
        for kind, member_id in members
    ]
    texts = sorted({r["query"] for r in rows if r["kind"] == "relevance" and r["query"]})
    query_vectors = {}
    if texts:
        encoder = encoder or query_encoder(warehouse, device)
        query_vectors = dict(zip(texts, encoder.encode_text(texts), strict=True))
    try:
        feedback, keys, counts = feedback_from_rows(companion_rows + rows, vectors, query_vectors)
    except ValueError as error:
        raise LearningError(f"the feedback up to seq {through_seq} gives nothing to train on: {error}") from error
    named = {(r["member_kind"], int(r["member_id"])) for r in rows if r["member_id"] is not None}
    named |= {(r["member_kind"], int(r["other_member_id"])) for r in rows if r["other_member_id"] is not None}
    companions = {(r["member_kind"], r["member_id"]) for r in companion_rows} - named
    counts = counts | {
        "members_moved_by_anchor": anchor_counts["moved"],
        "skipped_stale_members": anchor_counts["stale"],
    }
    return TrainingSet(feedback, keys, counts, len(rows), rows[0]["seq"], rows[-1]["seq"], companions)


def _cluster_companions(warehouse: Warehouse, cluster_ids: set[int]) -> dict[int, list[tuple[str, int]]]:
    if not cluster_ids:
        return {}
    rows = catalog.query(
        warehouse,
        "SELECT cluster_id, member_kind, member_id FROM cluster_members "
        "WHERE cluster_id IN (SELECT unnest(?::BIGINT[])) "
        "AND NOT is_noise ORDER BY cluster_id, similarity DESC NULLS LAST, member_id",
        [sorted(cluster_ids)],
    ).to_pylist()
    out: dict[int, list[tuple[str, int]]] = {}
    for r in rows:
        members = out.setdefault(r["cluster_id"], [])
        if len(members) < GROUP_COMPANIONS:
            members.append((r["member_kind"], r["member_id"]))
    return out


# -- candidate, gate, promotion -----------------------------------------------------------------------


@dataclass
class Candidate:
    version: int
    folder: Path
    metadata: dict

    @property
    def decision(self) -> dict:
        return self.metadata["decision"]


def _versions(warehouse: Warehouse) -> list[int]:
    """Every version folder, saved or only reserved, in order."""
    return sorted(int(p.name[1:]) for p in adapters_dir(warehouse).glob("v[0-9][0-9][0-9][0-9]") if p.is_dir())


def _reserve_version(warehouse: Warehouse) -> int:
    """A new version number, taken by creating its folder (mkdir is atomic: two runs training at once
    never get the same number)."""
    adapters_dir(warehouse).mkdir(parents=True, exist_ok=True)
    while True:
        version = max(_versions(warehouse), default=0) + 1
        try:
            version_dir(warehouse, version).mkdir()
            return version
        except FileExistsError:
            continue


MIN_GENERIC_VECTORS = 200


def _untouched_samples(
    vectors: dict[tuple[str, int], np.ndarray], touched: set[tuple[str, int]], size: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, str]:
    """Two disjoint samples of frame vectors no feedback speaks about: one for training's identity
    regulariser (`Feedback.background`), one for the gate's generic retrieval check (so the check is not
    made on the vectors training was told to keep). Frames of media files no feedback touched (every id
    carries its media id) when there are at least MIN_GENERIC_VECTORS of them; else frames not touched
    themselves (a library with feedback on nearly every file). Returns (background, generic, basis)."""
    touched_media = {media_id_of_frame(member_id) for _, member_id in touched}
    frames = [key for key in vectors if key[0] == "frame"]
    keys = [key for key in frames if media_id_of_frame(key[1]) not in touched_media]
    basis = "frames of media files no feedback touched"
    if len(keys) < MIN_GENERIC_VECTORS:
        keys = [key for key in frames if key not in touched]
        basis = "frames no feedback names (few files are untouched)"
    order = np.random.default_rng(seed).permutation(len(keys))
    half = min(size, len(keys) // 2)

    def matrix(positions) -> np.ndarray:
        if len(positions) == 0:
            return np.zeros((0, 0), np.float32)
        return np.stack([vectors[keys[i]] for i in positions]).astype(np.float32)

    return matrix(order[:half]), matrix(order[half : 2 * half]), basis


def train_candidate(
    warehouse: Warehouse,
    encoder=None,
    *,
    through_seq: int | None,
    settings=None,
    run_id: str = "",
    device: str = "auto",
) -> Candidate:
    """Train, evaluate and save a candidate adapter on the feedback up to `through_seq`."""
    settings = settings or AdapterSettings()
    started = time.perf_counter()
    vectors = _vectors_by_key(warehouse)
    training = build_training_set(warehouse, encoder, through_seq=through_seq, device=device, vectors=vectors)
    background, generic_vectors, generic_basis = _untouched_samples(vectors, set(training.items), seed=settings.seed)
    if len(background):
        training.feedback = dataclasses.replace(training.feedback, background=background)
    try:
        # only what people said is held out: companions (the clustering's labels) always train, and serve
        # as the gallery a held-out member must find its group in
        train, held_out = split_feedback(
            training.feedback, held_out=HELD_OUT, seed=settings.seed, train_only=training.companions
        )
        adapter, train_metrics = train_adapter(train, settings)
    except ValueError as error:
        raise LearningError(
            f"cannot train on the feedback up to seq {through_seq} ({len(training.items)} items): {error}"
        ) from error
    current, current_version_ = current_adapter(warehouse)
    scores = {
        "candidate": evaluate(adapter, held_out, gallery=train),
        "current": evaluate(current, held_out, gallery=train),
        "none": evaluate(None, held_out, gallery=train),
    }
    enough = len(generic_vectors) > 10
    generic = {
        "candidate": generic_retrieval_score(adapter, generic_vectors) if enough else 1.0,
        "current": generic_retrieval_score(current, generic_vectors) if enough and current is not None else 1.0,
        "vectors": len(generic_vectors),
        "basis": generic_basis,
    }
    promote_it, reason = promotion_decision(
        scores["candidate"], scores["current"], scores["none"], generic["candidate"], generic["current"]
    )
    if not enough:
        reason += f" (generic retrieval not measured: only {len(generic_vectors)} untouched frames)"
    for result in scores.values():
        result.pop("primary_per_query", None)  # one number per held-out query: not for the metadata
    version = _reserve_version(warehouse)
    metadata = {
        "version": version,
        "base_model_id": ",".join(VectorStore(warehouse, FRAME_VECTORS).model_ids()),
        "feedback_from_seq": training.from_seq,
        "feedback_through_seq": training.through_seq,
        "feedback_rows": training.rows_used,
        "items": len(training.items),
        "companion_items": len(training.companions),
        "training_signal": _jsonable(
            training.feedback.summary() | {k: v for k, v in training.counts.items() if k.startswith("skipped")}
        ),
        "held_out_items": len(held_out),
        "compared_with_version": current_version_,
        "train": _jsonable(train_metrics),
        "held_out": _jsonable(scores),
        "generic_retrieval": _jsonable(generic),
        "decision": {"promote": bool(promote_it), "reason": reason},
        "settings": _jsonable(settings.__dict__),
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    folder = adapter.save(version_dir(warehouse, version), metadata=metadata)
    _adapters_row(warehouse, version, "candidate", metadata, run_id)
    return Candidate(version, Path(folder), metadata)


def candidate_metadata(warehouse: Warehouse, version: int) -> dict:
    try:
        return EmbeddingAdapter.load(version_dir(warehouse, version))[1]
    except AdapterFileError as error:
        raise LearningError(f"adapter version {version} cannot be read: {error}") from error


def _saved_versions(warehouse: Warehouse) -> list[int]:
    return [v for v in _versions(warehouse) if (version_dir(warehouse, v) / MANIFEST).is_file()]


def latest_candidate(warehouse: Warehouse) -> int:
    """The newest saved version (0 when there is none)."""
    return max(_saved_versions(warehouse), default=0)


def candidate_of_run(warehouse: Warehouse, run_id: str) -> int:
    """The version the run `run_id` trained (its metadata records the run): what that run's gate judges and
    promotes, whatever other runs trained meanwhile."""
    for version in reversed(_saved_versions(warehouse)):
        if candidate_metadata(warehouse, version).get("run_id") == run_id:
            return version
    raise LearningError(f"run {run_id} trained no adapter version (materialize embedding_adapter in the same run)")


def current_model_ids(warehouse: Warehouse) -> list[str]:
    return VectorStore(warehouse, FRAME_VECTORS).model_ids()


def check_applies(warehouse: Warehouse, version: int, metadata: dict | None = None) -> None:
    """Raise LearningError unless adapter `version` was trained on vectors of the model the frame vectors
    are made with now (an adapter of one model's space means nothing in another's)."""
    if not version:
        return
    metadata = candidate_metadata(warehouse, version) if metadata is None else metadata
    trained_for, now = metadata.get("base_model_id"), ",".join(current_model_ids(warehouse))
    if trained_for != now:
        raise LearningError(
            f"adapter version {version} was trained for vectors of {trained_for!r}; the frame vectors "
            f"are made with {now or 'no model'!r} now (train a new adapter, or roll back to 0)"
        )


def promote(warehouse: Warehouse, version: int, *, reason: str, run_id: str = "", gate: bool = True) -> None:
    """Make `version` current (0: no adapter). With `gate` (promotion after training), only a candidate
    its gate passed, judged against the adapter current now: if another version became current since the
    candidate was judged, the judgement is stale and the candidate is refused. `gate=False` is for
    rollbacks to a version people choose. Either way the adapter must fit the model of the stored vectors.

    The `promoted` row is written first, then `current.json` (the switch): a full disk fails on the row and
    changes nothing, and running a promotion again after a crash finishes it: a version already current
    whose row is the latest is left as it is, one whose row is written gets only its switch."""
    if version and not version_dir(warehouse, version).is_dir():
        raise LearningError(f"there is no adapter version {version} under {adapters_dir(warehouse)}")
    metadata = candidate_metadata(warehouse, version) if version else {}
    now = current_version(warehouse)
    history = promoted_history(warehouse)
    recorded = bool(history) and history[-1] == version
    if gate and version:
        decision = metadata.get("decision", {})
        if not decision.get("promote"):
            raise LearningError(
                f"adapter version {version} did not pass its gate: {decision.get('reason', 'no decision recorded')}"
            )
        judged_against = metadata.get("compared_with_version")
        if judged_against != now and version != now:  # (one current already was judged before it became so)
            raise LearningError(
                f"adapter version {version} was judged against version {judged_against}, but version {now} "
                "is current now: its gate decision is stale (train again)"
            )
    check_applies(warehouse, version, metadata)
    if version == now and recorded:
        return  # this promotion ran before
    if not recorded:
        decided = metadata | {"decision": {"promote": True, "reason": reason}}
        _adapters_row(warehouse, version, "promoted", decided, run_id)
    pointer = adapters_dir(warehouse) / "current.json"
    current = {"version": version, "promoted_at": datetime.now(UTC).isoformat(), "reason": reason}
    write_json(pointer, current, "the current adapter")


def promoted_history(warehouse: Warehouse) -> list[int]:
    rows = catalog.query(
        warehouse, "SELECT version FROM adapters WHERE status = 'promoted' ORDER BY recorded_at"
    ).to_pylist()
    return [r["version"] for r in rows]


def rollback(warehouse: Warehouse, to_version: int | None = None, *, run_id: str = "") -> int:
    """Make an earlier adapter current again: `to_version` (0: none), or the newest version ever promoted
    that is older than the current one (0 when there is none), so repeated rollbacks step back one
    promoted version at a time. Returns the version now current. Adapted vectors, the index and the
    clusters follow at their next materialization (`media-assets adapter rollback` runs them)."""
    now = current_version(warehouse)
    if to_version is None:
        if now == 0:
            raise LearningError("no adapter is current: there is nothing to roll back")
        earlier = [v for v in promoted_history(warehouse) if 0 < v < now]
        to_version = max(earlier, default=0)
    promote(warehouse, int(to_version), reason=f"rollback from version {now}", run_id=run_id, gate=False)
    return int(to_version)


def _adapters_row(warehouse: Warehouse, version: int, status: str, metadata: dict, run_id: str) -> None:
    held = metadata.get("held_out", {})
    generic = metadata.get("generic_retrieval", {}).get("candidate")
    catalog.append_rows(
        warehouse,
        "adapters",
        [
            {
                "version": version,
                "status": status,
                "base_model_id": metadata.get("base_model_id"),
                "feedback_from_seq": metadata.get("feedback_from_seq"),
                "feedback_through_seq": metadata.get("feedback_through_seq"),
                "feedback_rows": metadata.get("feedback_rows"),
                "held_out_metric_name": held.get("candidate", {}).get("primary_name"),
                "held_out_metric": held.get("candidate", {}).get("primary"),
                "held_out_current": held.get("current", {}).get("primary"),
                "held_out_base": held.get("none", {}).get("primary"),
                "generic_retrieval": generic,
                "compared_with_version": metadata.get("compared_with_version"),
                "decision": metadata.get("decision", {}).get("reason"),
                "path": str(version_dir(warehouse, version).relative_to(warehouse.root)) if version else None,
                "run_id": run_id,
                "recorded_at": datetime.now(UTC),
            }
        ],
    )


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # NaN: nothing to measure (JSON has no NaN)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# -- adapted vectors ----------------------------------------------------------------------------------


def write_adapted_vectors(warehouse: Warehouse, *, run_id: str = "") -> dict:
    """Re-derive the adapted tables from the base vectors with the current adapter (or drop them when
    there is none). Returns rows written per table."""
    adapter, version = current_adapter(warehouse)
    try:
        check_applies(warehouse, version)
    except LearningError:
        for base, adapted_name in ADAPTED.items():  # nothing adapted stays served beside vectors of another model
            VectorStore(warehouse, adapted_name).drop()
            stamp_path(warehouse, base).unlink(missing_ok=True)
        raise
    written = {}
    for base, adapted_name in ADAPTED.items():
        store = VectorStore(warehouse, adapted_name)
        if adapter is None:
            store.drop()
            stamp_path(warehouse, base).unlink(missing_ok=True)
            written[adapted_name] = 0
            continue
        table = VectorStore(warehouse, base).table()
        data = None if table is None else table.to_lance().to_table()
        if data is None or data.num_rows == 0:
            store.drop()
            stamp_path(warehouse, base).unlink(missing_ok=True)
            written[adapted_name] = 0
            continue
        vectors = adapter.apply(vector_matrix(data))
        store.replace_all(data, vectors, adapter_version=version, run_id=run_id)
        stamp = {
            "adapter_version": version,
            "rows": data.num_rows,
            "base_version": int(table.version),
            "run_id": run_id,
        }
        write_json(stamp_path(warehouse, base), stamp, f"the stamp of {adapted_name}")
        written[adapted_name] = data.num_rows
    return written
