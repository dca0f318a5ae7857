"""The shots stage: a media file's shot list (shots, keyframes, in-shot events) and shot vectors.

Reads what the stages before wrote, once: the partition's `frames` rows (the visual signals the frames
stage measured while decoding), its `media` row (where the last shot ends) and its `frame_vectors`.
`shots.detect_shots_in_frames` finds the boundaries; this module turns its result into catalog rows
(`shots`, `keyframes`, `shot_events`) and LanceDB `shot_vectors` (each shot's keyframe vectors averaged
and normalised). A photo is one static shot whose keyframe is the photo.

Keyframe roles: a static shot has one keyframe, `median` (the middle frame of the shot without its
transition frames); a dynamic shot has `start`, `middle` and `end` of that core (fewer when the core is
one or two frames).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from media_assets.errors import MissingFramesError
from media_assets.ids import shot_id_for
from media_assets.models.shots import (
    Event,
    Shot,
    ShotSettings,
    detect_shots_in_frames,
    frame_embedding_matrix,
    shot_embedding,
)
from media_assets.store import catalog
from media_assets.store.vectors import SHOT_VECTORS, VectorStore, vector_matrix
from media_assets.warehouse import Warehouse


@dataclass
class ShotListResult:
    media_id: int
    shots: list[dict]
    keyframes: list[dict]
    events: list[dict]
    vectors_written: int
    used_vectors: bool  # whether frame vectors took part in the detection
    vectors_note: str  # why (or why not): see shots.ShotSettings.vector_check_confidence
    model_id: str
    elapsed_s: float
    settings: dict = field(default_factory=dict)

    @property
    def static_count(self) -> int:
        return sum(1 for s in self.shots if s["kind"] == "static")

    @property
    def dynamic_count(self) -> int:
        return sum(1 for s in self.shots if s["kind"] == "dynamic")


def keyframe_roles(shot: Shot) -> list[str]:
    """The role of each of `shot.keyframe_seqs`, in order."""
    count = len(shot.keyframe_seqs)
    if shot.kind == "static" and count == 1:
        return ["median"]
    return {1: ["middle"], 2: ["start", "end"], 3: ["start", "middle", "end"]}.get(
        count, [f"k{i}" for i in range(count)]
    )


def _frame_vectors_of(warehouse: Warehouse, media_id: int) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    dataset = VectorStore(warehouse).dataset()
    if dataset is None:
        return None, None, ""
    table = dataset.to_table(columns=["frame_id", "vector", "model_id"], filter=f"media_id = {int(media_id)}")
    if len(table) == 0:
        return None, None, ""
    models = sorted(set(table["model_id"].to_pylist()))
    return table["frame_id"].to_numpy(), vector_matrix(table), ",".join(models)


DEFAULT_SHOT_SETTINGS = ShotSettings()  # frozen: one shared instance is safe as a default


def make_shot_list(
    warehouse: Warehouse,
    media_id: int,
    settings: ShotSettings = DEFAULT_SHOT_SETTINGS,
    *,
    use_vectors: bool = True,
    run_id: str = "",
) -> ShotListResult:
    """Detect the shots of one media file and replace its `shots`, `keyframes`, `shot_events` rows and
    `shot_vectors`."""
    started = time.perf_counter()
    frames = catalog.read_partition(warehouse, "frames", media_id)
    if frames is None:
        raise MissingFramesError(f"media {media_id} has no frames in the catalog; materialize its frames first")
    frames = frames.sort_by("seq")
    media = catalog.read_partition(warehouse, "media", media_id)
    duration = media["duration_s"][0].as_py() if media is not None and len(media) else None
    frame_ids, vectors, model_id = _frame_vectors_of(warehouse, media_id) if use_vectors else (None, None, "")
    detection: dict = {}
    if len(frames) == 0:  # an audio file, or a video none of whose frames decoded: no pictures, no shots
        shots, events = [], []
        detection["vectors_note"] = "no sampled frames"
    else:
        shots, events = detect_shots_in_frames(
            frames, frame_ids, vectors, settings=settings, duration_s=duration, report=detection
        )

    seq_frame_ids = frames["frame_id"].to_pylist()
    timestamps = frames["timestamp_s"].to_pylist()
    thumbnails = frames["thumbnail_path"].to_pylist()
    per_frame = frame_embedding_matrix(frames, frame_ids, vectors) if vectors is not None else None
    shot_rows, keyframe_rows, event_rows = [], [], []
    shot_ids, shot_vectors = [], []
    for shot in shots:
        shot_id = shot_id_for(media_id, shot.index)
        shot_events = [e for e in events if shot.start_seq <= e.seq <= shot.end_seq]
        vector = _shot_vector(per_frame, shot.keyframe_seqs)
        if vector is not None:
            shot_ids.append(shot_id)
            shot_vectors.append(vector)
        shot_rows.append(
            _shot_row(shot, shot_id, media_id, seq_frame_ids, len(shot_events), vector is not None, run_id)
        )
        for seq, role in zip(shot.keyframe_seqs, keyframe_roles(shot), strict=True):
            keyframe_rows.append(
                {
                    "frame_id": seq_frame_ids[seq],
                    "shot_id": shot_id,
                    "media_id": media_id,
                    "role": role,
                    "timestamp_s": timestamps[seq],
                    "thumbnail_path": thumbnails[seq],
                }
            )
        event_rows.extend(_event_row(e, shot_id, media_id, seq_frame_ids) for e in shot_events)

    catalog.replace_partition(warehouse, "shots", media_id, shot_rows)
    catalog.replace_partition(warehouse, "keyframes", media_id, keyframe_rows)
    catalog.replace_partition(warehouse, "shot_events", media_id, event_rows)
    dim = len(shot_vectors[0]) if shot_vectors else 0
    VectorStore(warehouse, SHOT_VECTORS).replace_media(
        media_id,
        np.asarray(shot_ids, dtype=np.int64),
        np.asarray(shot_vectors, dtype=np.float32).reshape(len(shot_ids), dim),
        model_id=model_id,
        run_id=run_id,
    )
    return ShotListResult(
        media_id=media_id,
        shots=shot_rows,
        keyframes=keyframe_rows,
        events=event_rows,
        vectors_written=len(shot_ids),
        used_vectors=bool(detection.get("vectors_used")),
        vectors_note=detection.get("vectors_note", ""),
        model_id=model_id,
        elapsed_s=time.perf_counter() - started,
        settings={
            "static_max_motion": settings.static_max_motion,
            "cut_delta": settings.cut_delta,
            "min_shot_s": settings.min_shot_s,
        },
    )


def _shot_vector(per_frame: np.ndarray | None, keyframe_seqs: list[int]) -> np.ndarray | None:
    if per_frame is None:
        return None
    rows = per_frame[keyframe_seqs]
    rows = rows[np.isfinite(rows).all(axis=1)]
    if len(rows) == 0:
        return None
    try:
        return shot_embedding(rows)
    except ValueError:
        return None


def _shot_row(
    shot: Shot, shot_id: int, media_id: int, seq_frame_ids: list[int], event_count: int, has_vector: bool, run_id: str
) -> dict:
    return {
        "shot_id": shot_id,
        "media_id": media_id,
        "shot_index": shot.index,
        "start_s": shot.start_s,
        "end_s": shot.end_s,
        "duration_s": max(shot.end_s - shot.start_s, 0.0),
        "start_seq": shot.start_seq,
        "end_seq": shot.end_seq,
        "start_frame_id": seq_frame_ids[shot.start_seq],
        "end_frame_id": seq_frame_ids[shot.end_seq],
        "transition": shot.transition,
        "boundary_confidence": shot.boundary_confidence,
        "kind": shot.kind,
        "motion": shot.motion,
        "keyframe_count": len(shot.keyframe_seqs),
        "event_count": event_count,
        "has_vector": has_vector,
        "run_id": run_id,
    }


def _event_row(event: Event, shot_id: int, media_id: int, seq_frame_ids: list[int]) -> dict:
    return {
        "frame_id": seq_frame_ids[event.seq],
        "shot_id": shot_id,
        "media_id": media_id,
        "time_s": event.time_s,
        "score": event.score,
    }
