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
  "no adapter". `rollback` promotes the previous current version again: one command.
- `write_adapted_vectors` applies the current adapter to every frame, shot and face vector into the
  LanceDB tables `adapted_frame_vectors`, `adapted_shot_vectors`, `adapted_face_vectors`, each row with
  the `adapter_version` that made it. `serving_store` is what the index, the clusters and the search
  client read: the adapted table when it was made by the current adapter, else the base table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import catalog
from .feedback import feedback_rows
from .media import media_id_of_frame
from .vectors import FACE_VECTORS, FRAME_VECTORS, SHOT_VECTORS, VectorStore
from .warehouse import Warehouse

ADAPTED = {FRAME_VECTORS: "adapted_frame_vectors", SHOT_VECTORS: "adapted_shot_vectors", FACE_VECTORS: "adapted_face_vectors"}
MEMBER_TABLE = {"frame": FRAME_VECTORS, "shot": SHOT_VECTORS, "face": FACE_VECTORS}
GROUP_COMPANIONS = 20  # current members of a cluster taken as a moved member's companions (nearest the centroid)
HELD_OUT = 0.25


class LearningError(RuntimeError):
    pass


def adapters_dir(warehouse: Warehouse) -> Path:
    return warehouse.models_dir / "adapters"


def version_dir(warehouse: Warehouse, version: int) -> Path:
    return adapters_dir(warehouse) / f"v{version:04d}"


# -- which adapter is current -------------------------------------------------------------------------


def current_version(warehouse: Warehouse) -> int:
    try:
        return int(json.loads((adapters_dir(warehouse) / "current.json").read_text())["version"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


_loaded: dict[tuple[str, int], object] = {}


def load_adapter(warehouse: Warehouse, version: int):
    """The adapter of a version (None for version 0), loaded once per process."""
    if version == 0:
        return None
    from .adapter import EmbeddingAdapter

    key = (str(warehouse.root), version)
    if key not in _loaded:
        _loaded[key] = EmbeddingAdapter.load(version_dir(warehouse, version))[0]
    return _loaded[key]


def current_adapter(warehouse: Warehouse):
    version = current_version(warehouse)
    return load_adapter(warehouse, version), version


def serving_store(warehouse: Warehouse, base_table: str = FRAME_VECTORS) -> VectorStore:
    """The vectors to serve: the adapted table if the current adapter made it (all of it), else the base."""
    version = current_version(warehouse)
    if version:
        adapted = VectorStore(warehouse, ADAPTED[base_table])
        dataset = adapted.dataset()
        if dataset is not None:
            stamp = _adapted_stamp(warehouse, base_table)
            if stamp is not None and stamp.get("adapter_version") == version and stamp.get("rows") == dataset.count_rows():
                return adapted
    return VectorStore(warehouse, base_table)


def _stamp_path(warehouse: Warehouse, base_table: str) -> Path:
    return adapters_dir(warehouse) / f"{ADAPTED[base_table]}.json"


def _adapted_stamp(warehouse: Warehouse, base_table: str) -> dict | None:
    try:
        return json.loads(_stamp_path(warehouse, base_table).read_text())
    except (FileNotFoundError, ValueError):
        return None


# -- feedback → training signal -----------------------------------------------------------------------


@dataclass
class TrainingSet:
    feedback: object  # adapter.Feedback
    items: list[tuple[str, int]]  # (member kind, id) per row of feedback.vectors
    counts: dict  # what was used and skipped (adapter.feedback_from_rows)
    rows_used: int
    from_seq: int | None
    through_seq: int | None


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
    from .encoders import ClipEncoder

    models = VectorStore(warehouse, FRAME_VECTORS).model_ids()
    if len(models) != 1:
        raise LearningError(f"relevance judgements need the one model the frame vectors were made with; found {models or 'none'}")
    return ClipEncoder.load(models[0], device=device)


def build_training_set(warehouse: Warehouse, encoder=None, *, through_seq: int | None, device: str = "auto",
                       vectors: dict[tuple[str, int], np.ndarray] | None = None) -> TrainingSet:
    """`adapter.Feedback` from the feedback rows up to `through_seq`.

    A move (merge, split) says "this member belongs with that cluster's members", so the cluster's current
    members nearest its centroid (up to GROUP_COMPANIONS) join the group as companions: they come before
    every real row, so a later row about one of them wins. Relevance queries are encoded with the text
    encoder (`query_encoder` when None, loaded only if there are any); items are keyed by (member kind, id) so the held-out split stays put as feedback grows."""
    from .adapter import feedback_from_rows

    rows = feedback_rows(warehouse, through_seq=through_seq).to_pylist()
    if not rows:
        raise LearningError(f"there is no feedback up to seq {through_seq}: nothing to learn from")
    vectors = _vectors_by_key(warehouse) if vectors is None else vectors
    moved_to = {r["cluster_id"] for r in rows if r["kind"] in ("move", "merge", "split") and r["cluster_id"] is not None}
    companion_rows = [
        {"seq": -1, "feedback_id": "", "kind": "move", "member_kind": kind, "member_id": member_id, "cluster_id": cluster_id}
        for cluster_id, members in _cluster_companions(warehouse, moved_to).items()
        for kind, member_id in members
    ]
    texts = sorted({r["query"] for r in rows if r["kind"] == "relevance" and r["query"]})
    query_vectors = {}
    if texts:
        encoder = encoder or query_encoder(warehouse, device)
        query_vectors = dict(zip(texts, encoder.encode_text(texts)))
    try:
        feedback, keys, counts = feedback_from_rows(companion_rows + rows, vectors, query_vectors)
    except ValueError as error:
        raise LearningError(f"the feedback up to seq {through_seq} gives nothing to train on: {error}") from error
    return TrainingSet(feedback, keys, counts, len(rows), rows[0]["seq"], rows[-1]["seq"])


def _cluster_companions(warehouse: Warehouse, cluster_ids: set[int]) -> dict[int, list[tuple[str, int]]]:
    if not cluster_ids:
        return {}
    rows = catalog.query(
        warehouse,
        "SELECT cluster_id, member_kind, member_id FROM cluster_members WHERE cluster_id IN (SELECT unnest(?::BIGINT[])) "
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


def _next_version(warehouse: Warehouse) -> int:
    versions = [int(p.name[1:]) for p in adapters_dir(warehouse).glob("v[0-9][0-9][0-9][0-9]") if p.is_dir()]
    return max(versions, default=0) + 1


MIN_GENERIC_VECTORS = 200


def _untouched_samples(vectors: dict[tuple[str, int], np.ndarray], touched: set[tuple[str, int]],
                       size: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
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

    return matrix(order[:half]), matrix(order[half: 2 * half]), basis


def train_candidate(warehouse: Warehouse, encoder=None, *, through_seq: int | None, settings=None, run_id: str = "",
                    device: str = "auto") -> Candidate:
    """Train, evaluate and save a candidate adapter on the feedback up to `through_seq`."""
    from .adapter import AdapterSettings, evaluate, generic_retrieval_score, promotion_decision, split_feedback, train_adapter

    settings = settings or AdapterSettings()
    started = time.perf_counter()
    vectors = _vectors_by_key(warehouse)
    training = build_training_set(warehouse, encoder, through_seq=through_seq, device=device, vectors=vectors)
    background, generic_vectors, generic_basis = _untouched_samples(vectors, set(training.items), seed=settings.seed)
    if len(background):
        training.feedback = dataclasses.replace(training.feedback, background=background)
    try:
        train, held_out = split_feedback(training.feedback, held_out=HELD_OUT, seed=settings.seed)
        adapter, train_metrics = train_adapter(train, settings)
    except ValueError as error:
        raise LearningError(f"cannot train on the feedback up to seq {through_seq} "
                            f"({len(training.items)} items): {error}") from error
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
    promote_it, reason = promotion_decision(scores["candidate"], scores["current"], scores["none"],
                                            generic["candidate"], generic["current"])
    if not enough:
        reason += f" (generic retrieval not measured: only {len(generic_vectors)} untouched frames)"
    for result in scores.values():
        result.pop("primary_per_query", None)  # one number per held-out query: not for the metadata
    version = _next_version(warehouse)
    metadata = {
        "version": version,
        "base_model_id": ",".join(VectorStore(warehouse, FRAME_VECTORS).model_ids()),
        "feedback_from_seq": training.from_seq,
        "feedback_through_seq": training.through_seq,
        "feedback_rows": training.rows_used,
        "items": len(training.items),
        "training_signal": _jsonable(training.feedback.summary() | {k: v for k, v in training.counts.items() if k.startswith("skipped")}),
        "held_out_items": len(held_out),
        "compared_with_version": current_version_,
        "train": _jsonable(train_metrics),
        "held_out": _jsonable(scores),
        "generic_retrieval": _jsonable(generic),
        "decision": {"promote": bool(promote_it), "reason": reason},
        "settings": _jsonable(settings.__dict__),
        "run_id": run_id,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    folder = adapter.save(version_dir(warehouse, version), metadata=metadata)
    _adapters_row(warehouse, version, "candidate", metadata, run_id)
    return Candidate(version, Path(folder), metadata)


def candidate_metadata(warehouse: Warehouse, version: int) -> dict:
    from .adapter import EmbeddingAdapter

    return EmbeddingAdapter.load(version_dir(warehouse, version))[1]


def latest_candidate(warehouse: Warehouse) -> int:
    return _next_version(warehouse) - 1


def promote(warehouse: Warehouse, version: int, *, reason: str, run_id: str = "") -> None:
    """Make `version` current (0: no adapter)."""
    if version and not version_dir(warehouse, version).is_dir():
        raise LearningError(f"there is no adapter version {version} under {adapters_dir(warehouse)}")
    metadata = candidate_metadata(warehouse, version) if version else {}
    adapters_dir(warehouse).mkdir(parents=True, exist_ok=True)
    pointer = adapters_dir(warehouse) / "current.json"
    partial = pointer.with_name(f".current.{os.getpid()}.json")
    partial.write_text(json.dumps({"version": version, "promoted_at": datetime.now(timezone.utc).isoformat(), "reason": reason}) + "\n")
    os.replace(partial, pointer)
    _adapters_row(warehouse, version, "promoted", metadata | {"decision": {"promote": True, "reason": reason}}, run_id)


def promoted_history(warehouse: Warehouse) -> list[int]:
    rows = catalog.query(warehouse, "SELECT version FROM adapters WHERE status = 'promoted' ORDER BY recorded_at").to_pylist()
    return [r["version"] for r in rows]


def rollback(warehouse: Warehouse, to_version: int | None = None, *, run_id: str = "") -> int:
    """Make an earlier adapter current again: `to_version`, or the one current before this one (0 when
    there was none). Returns the version now current. Adapted vectors, the index and the clusters follow
    at their next materialization (`media-assets adapter rollback` runs them)."""
    now = current_version(warehouse)
    if to_version is None:
        history = promoted_history(warehouse)
        earlier = [v for v in history[: len(history) - 1 - history[::-1].index(now)]] if now in history else history
        to_version = earlier[-1] if earlier else 0
    promote(warehouse, int(to_version), reason=f"rollback from version {now}", run_id=run_id)
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
                "recorded_at": datetime.now(timezone.utc),
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
    written = {}
    for base, adapted_name in ADAPTED.items():
        store = VectorStore(warehouse, adapted_name)
        if adapter is None:
            store.drop()
            _stamp_path(warehouse, base).unlink(missing_ok=True)
            written[adapted_name] = 0
            continue
        table = VectorStore(warehouse, base).table()
        data = None if table is None else table.to_lance().to_table()
        if data is None or data.num_rows == 0:
            store.drop()
            _stamp_path(warehouse, base).unlink(missing_ok=True)
            written[adapted_name] = 0
            continue
        from .vectors import vector_matrix

        vectors = adapter.apply(vector_matrix(data))
        store.replace_all(data, vectors, adapter_version=version, run_id=run_id)
        stamp = {"adapter_version": version, "rows": data.num_rows, "base_version": int(table.version), "run_id": run_id}
        _stamp_path(warehouse, base).parent.mkdir(parents=True, exist_ok=True)
        _stamp_path(warehouse, base).write_text(json.dumps(stamp) + "\n")
        written[adapted_name] = data.num_rows
    return written
