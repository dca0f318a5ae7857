"""The metadata catalog: DuckDB over Parquet files.

Three kinds of table, each a folder `tables/<table>/` of Parquet files written to a temporary name and
renamed into place (writers never open a database file, so any number of Dagster processes write at once
while people and the search client read, and nobody waits on DuckDB's one-writer-per-file lock):
- per media file (`media`, `frames`, `ingest_errors`, `shots`, `keyframes`, `shot_events`, `faces`,
  `transcript_segments`, `transcript_words`, `screen_text`, `chapters`, `video_summaries`): one
  file per media file, `<media_id>.parquet`; re-materializing a partition replaces exactly its file and
  deleting a media file removes it;
- global (`clusters`, `cluster_members`): one file, `current.parquet`, replaced by the `clusters` asset;
- append-only (`feedback`, `cluster_names`): one new file per write by people, never rewritten; the
  latest row per member / cluster wins.

Crashes: a temporary file (`.<file>.<pid>.<token>.tmp`) matches no reader's `*.parquet` and is removed by
the next write into its folder once its process is gone. Files that must change together (a partition's
`frames` and `media`, `clusters` with `cluster_members`: `replace_partitions`, `replace_tables`) are
committed by a record in `tables/_commits/` listing their renames, written after all of them: a crash before
it leaves the old files, after it the next reader or writer finishes the renames. A full disk raises
`errors.StorageFullError` naming the file, and the file there before stays as it was.

`warehouse/catalog.duckdb` holds views over those folders (refreshed by `sync_catalog_file`), so a person can
`duckdb warehouse/catalog.duckdb` and query them. The library reads through `query`, an in-memory
DuckDB with the same views (`store.sql.open_catalog` adds the LanceDB vector tables). Three views are more than a
scan: `clusters` adds each cluster's current `name` (from `cluster_names`), `cluster_pins` is the move,
merge and split rows of `feedback`, and `current_pins` the latest pin per member.

Column reference (stable names; later issues add tables, not renames):

media: one row per media file that was probed
    media_id BIGINT, partition_key VARCHAR (path relative to the media root), path VARCHAR (absolute),
    kind VARCHAR ('video'|'image'|'audio'), size_bytes BIGINT, mtime_ns BIGINT, container VARCHAR, codec VARCHAR,
    width INT, height INT (upright, EXIF applied; 0 for audio), fps DOUBLE (nominal; NULL for images and audio),
    duration_s DOUBLE, frame_count BIGINT (as the container reports it), frames_sampled INT,
    duplicate_frames INT, undecodable_frames INT, sampling VARCHAR ('fps=1', 'every=30', 'image' or 'audio'),
    run_id VARCHAR (the Dagster run that wrote the row), ingested_at TIMESTAMP

frames: one row per sampled frame
    frame_id BIGINT (= media_id << 20 | seq), media_id BIGINT, seq INT (position among sampled frames),
    frame_index BIGINT (decoded frame number in the file), timestamp_s DOUBLE (presentation time),
    width INT, height INT (of the source frame), thumbnail_path VARCHAR (relative to the warehouse root),
    phash UBIGINT (64-bit DCT perceptual hash), sharpness REAL (variance of the Laplacian),
    change_score REAL (HSV-histogram distance to the previous sampled frame, 0..1),
    pixel_change REAL (mean absolute grey-level difference to the previous sampled frame, 0..1),
    is_duplicate BOOLEAN (near-duplicate of an earlier kept frame: not embedded),
    duplicate_of BIGINT (frame_id of that kept frame), run_id VARCHAR

ingest_errors: the current error of each media file whose last materialization failed
    media_id BIGINT, partition_key VARCHAR, path VARCHAR, stage VARCHAR (the asset that failed),
    error_type VARCHAR, message VARCHAR, run_id VARCHAR, failed_at TIMESTAMP

shots: one row per shot (a photo is one static shot)
    shot_id BIGINT (= media_id << 20 | shot_index), media_id BIGINT, shot_index INT, start_s, end_s,
    duration_s DOUBLE ([start_s, end_s)), start_seq, end_seq INT (its first and last sampled frame),
    start_frame_id, end_frame_id BIGINT, transition VARCHAR (how it is entered: 'start'|'cut'|'fade'|
    'dissolve'), boundary_confidence REAL (0..1; 0.5 = at the threshold), kind VARCHAR ('static'|'dynamic'),
    motion REAL (median in-shot pixel change, the static/dynamic measure), keyframe_count INT,
    event_count INT, has_vector BOOLEAN (a row in LanceDB shot_vectors), run_id VARCHAR

keyframes: the frames that stand for a shot
    frame_id BIGINT, shot_id BIGINT, media_id BIGINT, role VARCHAR ('median' for a static shot; 'start',
    'middle', 'end' for a dynamic one), timestamp_s DOUBLE, thumbnail_path VARCHAR

shot_events: large semantic changes inside a shot without a visual cut (a slide change)
    frame_id BIGINT (first frame showing the new content), shot_id BIGINT, media_id BIGINT, time_s DOUBLE,
    score REAL (0..1)

faces: one row per face found on a keyframe
    face_id BIGINT (= media_id << 20 | n), media_id, shot_id, frame_id BIGINT, x, y, width, height REAL
    (the box as fractions of the frame), box_px INT[4] (x, y, w, h in thumbnail pixels), score REAL (the
    detector's), detector VARCHAR, crop_path VARCHAR (the CLIP crop, relative to the warehouse root), run_id

transcript_segments: timed speech (or subtitle) segments of a media file with an audio or subtitle stream
    segment_id BIGINT (= media_id << 20 | n, in time order), media_id BIGINT, start_s, end_s DOUBLE,
    text VARCHAR, language VARCHAR (detected, or the subtitle stream's), avg_logprob, no_speech_prob DOUBLE
    (the ASR's; NULL for subtitles), source VARCHAR ('asr' or 'subtitles:<sidecar file or stream>'),
    model_id VARCHAR (the ASR model, or the subtitle source), run_id VARCHAR

transcript_words: the words of the ASR segments, with their times
    media_id BIGINT, segment_id BIGINT, start_s, end_s DOUBLE, word VARCHAR, probability DOUBLE

screen_text: text on screen (OCR of keyframes and photos); the same text held over consecutive keyframes is
    one row with its time span
    text_id BIGINT (= media_id << 20 | n), media_id BIGINT, frame_id BIGINT (the first frame it was read
    on), start_s, end_s DOUBLE, text VARCHAR (one line), box REAL[8] (the line's quadrilateral, x0 y0 .. x3
    y3 as fractions of the frame), score REAL (the recogniser's, 0..1), model_id VARCHAR, run_id VARCHAR

chapters: a video's (or an audio file's) table of contents: consecutive parts that tile the file, 0 → duration
    chapter_id BIGINT (= media_id << 20 | index), media_id BIGINT, index INT (0, 1, … in time order), start_s,
    end_s DOUBLE ([start_s, end_s)), title VARCHAR, summary VARCHAR (at most 150 tokens), sources VARCHAR[]
    (what put a boundary at start_s: 'transcript' (the meaning of what is said changed), 'slides',
    'shots', 'silence', 'length' (the maximum chapter length), 'start' for the first), method VARCHAR
    ('extractive', 'abstractive', 'extractive (LLM over budget)', 'extractive (LLM failed)', or 'visual'
    for a chapter with no words), model_id VARCHAR (the LLM for an abstractive summary, else the sentence
    encoder), llm_s DOUBLE (time the LLM took on it; NULL without one), run_id VARCHAR

video_summaries: one row per file with chapters: the chapters' summaries condensed
    media_id BIGINT, summary VARCHAR (at most 150 tokens), chapters INT, method VARCHAR, model_id VARCHAR,
    run_id VARCHAR

clusters: one row per cluster (view: adds `name VARCHAR`, the latest cluster_names row)
    cluster_id BIGINT (stable across re-clustering), level VARCHAR ('scene'|'character'), parent_id BIGINT
    (characters: their scene cluster), size INT, media_count INT, cohesion REAL (mean cosine of members to
    the centroid), representative_member_id BIGINT, representative_frame_id BIGINT,
    representative_frame_ids BIGINT[] (up to 4, nearest the centroid first), pinned_count INT (members
    there by a pin), max_id_issued BIGINT (the highest cluster id ever issued: ids are never reused),
    run_id, clustered_at

cluster_members: one row per shot and per face
    member_kind VARCHAR ('shot'|'face'), member_id BIGINT (shot_id or face_id), media_id, frame_id,
    shot_id BIGINT, level VARCHAR, cluster_id BIGINT (NULL: in the noise bucket), scene_id BIGINT (the scene
    cluster the member sits in), similarity REAL (cosine to the centroid; for noise: to the nearest one),
    nearest_cluster_id BIGINT, is_noise BOOLEAN, pinned BOOLEAN, run_id

feedback (append-only; see media_assets.feedback.table): feedback_id VARCHAR, seq BIGINT (write time, ns: the
    order), kind VARCHAR ('move'|'merge'|'split'|'same'|'different'|'relevance'), member_kind VARCHAR
    ('shot'|'face'|'frame'), member_id, other_member_id, cluster_id, other_cluster_id BIGINT, query VARCHAR,
    relevant BOOLEAN, source VARCHAR, created_at TIMESTAMP
cluster_pins (view): pin_id, seq, kind, member_kind, member_id, cluster_id (NULL: unpin), source, pinned_at
cluster_names (append-only): naming_id VARCHAR, cluster_id, name (NULL: clear), source, named_at
adapters (append-only; see media_assets.stages.adapter): version INT, status VARCHAR ('candidate'|'promoted'),
    base_model_id, feedback_from_seq, feedback_through_seq BIGINT, feedback_rows INT, held_out_metric_name
    VARCHAR ('map@10', or 'triplet_accuracy' when fewer than 5 held-out items have a labelled partner), held_out_metric
    DOUBLE (the candidate's), held_out_current, held_out_base DOUBLE, generic_retrieval DOUBLE,
    compared_with_version INT, decision VARCHAR (the gate's reason), path, run_id, recorded_at
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from media_assets.errors import is_storage_full, storage_full_as_error
from media_assets.media.discovery import file_signature
from media_assets.warehouse import Warehouse

log = logging.getLogger(__name__)
T = TypeVar("T")

MEDIA_SCHEMA = pa.schema(
    [
        ("media_id", pa.int64()),
        ("partition_key", pa.string()),
        ("path", pa.string()),
        ("kind", pa.string()),
        ("size_bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("container", pa.string()),
        ("codec", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.float64()),
        ("duration_s", pa.float64()),
        ("frame_count", pa.int64()),
        ("frames_sampled", pa.int32()),
        ("duplicate_frames", pa.int32()),
        ("undecodable_frames", pa.int32()),
        ("sampling", pa.string()),
        ("run_id", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)

FRAMES_SCHEMA = pa.schema(
    [
        ("frame_id", pa.int64()),
        ("media_id", pa.int64()),
        ("seq", pa.int32()),
        ("frame_index", pa.int64()),
        ("timestamp_s", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("thumbnail_path", pa.string()),
        ("phash", pa.uint64()),
        ("sharpness", pa.float32()),
        ("change_score", pa.float32()),
        ("pixel_change", pa.float32()),
        ("is_duplicate", pa.bool_()),
        ("duplicate_of", pa.int64()),
        ("run_id", pa.string()),
    ]
)

INGEST_ERRORS_SCHEMA = pa.schema(
    [
        ("media_id", pa.int64()),
        ("partition_key", pa.string()),
        ("path", pa.string()),
        ("stage", pa.string()),
        ("error_type", pa.string()),
        ("message", pa.string()),
        ("run_id", pa.string()),
        ("failed_at", pa.timestamp("us", tz="UTC")),
    ]
)

SHOTS_SCHEMA = pa.schema(
    [
        ("shot_id", pa.int64()),
        ("media_id", pa.int64()),
        ("shot_index", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("duration_s", pa.float64()),
        ("start_seq", pa.int32()),
        ("end_seq", pa.int32()),
        ("start_frame_id", pa.int64()),
        ("end_frame_id", pa.int64()),
        ("transition", pa.string()),
        ("boundary_confidence", pa.float32()),
        ("kind", pa.string()),
        ("motion", pa.float32()),
        ("keyframe_count", pa.int32()),
        ("event_count", pa.int32()),
        ("has_vector", pa.bool_()),
        ("run_id", pa.string()),
    ]
)

KEYFRAMES_SCHEMA = pa.schema(
    [
        ("frame_id", pa.int64()),
        ("shot_id", pa.int64()),
        ("media_id", pa.int64()),
        ("role", pa.string()),
        ("timestamp_s", pa.float64()),
        ("thumbnail_path", pa.string()),
    ]
)

SHOT_EVENTS_SCHEMA = pa.schema(
    [
        ("frame_id", pa.int64()),
        ("shot_id", pa.int64()),
        ("media_id", pa.int64()),
        ("time_s", pa.float64()),
        ("score", pa.float32()),
    ]
)

FACES_SCHEMA = pa.schema(
    [
        ("face_id", pa.int64()),
        ("media_id", pa.int64()),
        ("shot_id", pa.int64()),
        ("frame_id", pa.int64()),
        ("x", pa.float32()),
        ("y", pa.float32()),
        ("width", pa.float32()),
        ("height", pa.float32()),
        ("box_px", pa.list_(pa.int32(), 4)),
        ("score", pa.float32()),
        ("detector", pa.string()),
        ("crop_path", pa.string()),
        ("run_id", pa.string()),
    ]
)

CLUSTERS_SCHEMA = pa.schema(
    [
        ("cluster_id", pa.int64()),
        ("level", pa.string()),
        ("parent_id", pa.int64()),
        ("size", pa.int32()),
        ("media_count", pa.int32()),
        ("cohesion", pa.float32()),
        ("representative_member_id", pa.int64()),
        ("representative_frame_id", pa.int64()),
        ("representative_frame_ids", pa.list_(pa.int64())),
        ("pinned_count", pa.int32()),
        ("max_id_issued", pa.int64()),
        ("run_id", pa.string()),
        ("clustered_at", pa.timestamp("us", tz="UTC")),
    ]
)

CLUSTER_MEMBERS_SCHEMA = pa.schema(
    [
        ("member_kind", pa.string()),
        ("member_id", pa.int64()),
        ("media_id", pa.int64()),
        ("frame_id", pa.int64()),
        ("shot_id", pa.int64()),
        ("level", pa.string()),
        ("cluster_id", pa.int64()),
        ("scene_id", pa.int64()),
        ("similarity", pa.float32()),
        ("nearest_cluster_id", pa.int64()),
        ("is_noise", pa.bool_()),
        ("pinned", pa.bool_()),
        ("run_id", pa.string()),
    ]
)

FEEDBACK_SCHEMA = pa.schema(
    [
        ("feedback_id", pa.string()),
        ("seq", pa.int64()),
        ("kind", pa.string()),
        ("member_kind", pa.string()),
        ("member_id", pa.int64()),
        ("other_member_id", pa.int64()),
        ("cluster_id", pa.int64()),
        ("other_cluster_id", pa.int64()),
        ("query", pa.string()),
        ("relevant", pa.bool_()),
        ("source", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        # where the members were when the row was written (JSON; see media_assets.anchors): ids are
        # positional, anchors let a pin or a judgement follow its shot/face/frame through a re-ingest
        ("member_anchor", pa.string()),
        ("other_member_anchor", pa.string()),
    ]
)

CLUSTER_NAMES_SCHEMA = pa.schema(
    [
        ("naming_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("name", pa.string()),
        ("source", pa.string()),
        ("named_at", pa.timestamp("us", tz="UTC")),
    ]
)

ADAPTERS_SCHEMA = pa.schema(
    [
        ("version", pa.int32()),
        ("status", pa.string()),
        ("base_model_id", pa.string()),
        ("feedback_from_seq", pa.int64()),
        ("feedback_through_seq", pa.int64()),
        ("feedback_rows", pa.int32()),
        ("held_out_metric_name", pa.string()),
        ("held_out_metric", pa.float64()),
        ("held_out_current", pa.float64()),
        ("held_out_base", pa.float64()),
        ("generic_retrieval", pa.float64()),
        ("compared_with_version", pa.int32()),
        ("decision", pa.string()),
        ("path", pa.string()),
        ("run_id", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]
)

TRANSCRIPT_SEGMENTS_SCHEMA = pa.schema(
    [
        ("segment_id", pa.int64()),
        ("media_id", pa.int64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("text", pa.string()),
        ("language", pa.string()),
        ("avg_logprob", pa.float64()),
        ("no_speech_prob", pa.float64()),
        ("source", pa.string()),
        ("model_id", pa.string()),
        ("run_id", pa.string()),
    ]
)

TRANSCRIPT_WORDS_SCHEMA = pa.schema(
    [
        ("media_id", pa.int64()),
        ("segment_id", pa.int64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("word", pa.string()),
        ("probability", pa.float64()),
    ]
)

SCREEN_TEXT_SCHEMA = pa.schema(
    [
        ("text_id", pa.int64()),
        ("media_id", pa.int64()),
        ("frame_id", pa.int64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("text", pa.string()),
        ("box", pa.list_(pa.float32())),
        ("score", pa.float32()),
        ("model_id", pa.string()),
        ("run_id", pa.string()),
    ]
)

CHAPTERS_SCHEMA = pa.schema(
    [
        ("chapter_id", pa.int64()),
        ("media_id", pa.int64()),
        ("index", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("title", pa.string()),
        ("summary", pa.string()),
        ("sources", pa.list_(pa.string())),
        ("method", pa.string()),
        ("model_id", pa.string()),
        ("llm_s", pa.float64()),
        ("run_id", pa.string()),
    ]
)

VIDEO_SUMMARIES_SCHEMA = pa.schema(
    [
        ("media_id", pa.int64()),
        ("summary", pa.string()),
        ("chapters", pa.int32()),
        ("method", pa.string()),
        ("model_id", pa.string()),
        ("run_id", pa.string()),
    ]
)

# Tables with one Parquet file per media file (`<media_id>.parquet`), replaced by that file's runs.
PARTITIONED_TABLES: dict[str, pa.Schema] = {
    "media": MEDIA_SCHEMA,
    "frames": FRAMES_SCHEMA,
    "ingest_errors": INGEST_ERRORS_SCHEMA,
    "shots": SHOTS_SCHEMA,
    "keyframes": KEYFRAMES_SCHEMA,
    "shot_events": SHOT_EVENTS_SCHEMA,
    "faces": FACES_SCHEMA,
    "transcript_segments": TRANSCRIPT_SEGMENTS_SCHEMA,
    "transcript_words": TRANSCRIPT_WORDS_SCHEMA,
    "screen_text": SCREEN_TEXT_SCHEMA,
    "chapters": CHAPTERS_SCHEMA,
    "video_summaries": VIDEO_SUMMARIES_SCHEMA,
}
# Tables a global asset replaces as a whole (one file, `current.parquet`).
GLOBAL_TABLES: dict[str, pa.Schema] = {
    "clusters": CLUSTERS_SCHEMA,
    "cluster_members": CLUSTER_MEMBERS_SCHEMA,
}
# Append-only tables people write to (one file per write, never rewritten): the latest row per key wins.
APPEND_ONLY_TABLES: dict[str, pa.Schema] = {
    "feedback": FEEDBACK_SCHEMA,
    "cluster_names": CLUSTER_NAMES_SCHEMA,
    "adapters": ADAPTERS_SCHEMA,
}
TABLES: dict[str, pa.Schema] = PARTITIONED_TABLES | GLOBAL_TABLES | APPEND_ONLY_TABLES
GLOBAL_FILE = "current.parquet"

# An empty file with the table's schema, so a view over a folder with no partitions yet still works.
SCHEMA_FILE = "_schema.parquet"


def table_schema(table: str) -> pa.Schema:
    if table not in TABLES:
        raise ValueError(f"unknown catalog table {table!r}; known: {', '.join(TABLES)}")
    return TABLES[table]


def table_dir(warehouse: Warehouse, table: str) -> Path:
    table_schema(table)
    return warehouse.tables_dir / table


# Commit records of writes that replace several files together (`replace_partitions`, `replace_tables`).
COMMITS_DIR = "_commits"


def remove_dead_temps(folder: Path, name: str | None = None, keep: frozenset[str] = frozenset()) -> None:
    """Remove the temporary files of `name` in `folder` (of any name when None) whose process is not running:
    a crash or a kill left them; a live writer's stay. Writers name them `.<name>.<pid>.<token>.tmp`
    (`temp_path`) and call this before writing `name` again."""
    try:
        entries = [e.name for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(".tmp")]
    except FileNotFoundError:
        return
    for entry in entries:
        if name is None:
            parts = entry[: -len(".tmp")].rsplit(".", 2)
            pid = parts[1] if len(parts) == 3 else ""
        elif entry.startswith(f".{name}."):
            pid = entry[len(name) + 2 :].split(".", 1)[0]
        else:
            continue
        if pid.isdigit() and entry not in keep and not _running(int(pid)):
            (folder / entry).unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_path(path: Path) -> Path:
    """A temporary name beside `path`: hidden, ending in .tmp (no reader globs it), naming the writing process."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _write_temp(table: pa.Table, path: Path) -> Path:
    """`table` written to a temporary file beside `path` (the folder's left-over temporary files removed first:
    an append-only table never writes the same name twice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path.parent, keep=_committed_temps(path.parent.parent))
    tmp = temp_path(path)
    try:
        with storage_full_as_error(f"catalog table {path.parent.name}", path):
            pq.write_table(table, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _write_parquet_atomically(table: pa.Table, path: Path) -> None:
    tmp = _write_temp(table, path)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _replace_together(warehouse: Warehouse, files: dict[Path, pa.Table]) -> None:
    """Replace several catalog files so that readers see all the new ones or none: each is written to a
    temporary file, then a commit record listing the renames is written (the commit point), then the renames
    are made and the record removed. A crash after the record leaves renames the next reader or writer makes
    (`_roll_forward`); a crash before it leaves the old files and temporary ones nobody reads."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            staged.append((_write_temp(data, path), path))
        folder = warehouse.tables_dir / COMMITS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        remove_dead_temps(folder)
        record = folder / f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
        partial = temp_path(record)
        relative = warehouse.tables_dir
        renames = [[str(tmp.relative_to(relative)), str(path.relative_to(relative))] for tmp, path in staged]
        try:
            with storage_full_as_error("catalog commit record", record):
                partial.write_text(json.dumps({"renames": renames}))
            os.replace(partial, record)
        finally:
            partial.unlink(missing_ok=True)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    _apply_commit(warehouse, record)


def _apply_commit(warehouse: Warehouse, record: Path) -> None:
    try:
        renames = json.loads(record.read_text())["renames"]
    except FileNotFoundError:
        return  # made by another process
    for tmp, final in renames:
        try:
            os.replace(warehouse.tables_dir / tmp, warehouse.tables_dir / final)
        except FileNotFoundError:
            pass  # this one was made already (each temporary file is renamed at most once)
    record.unlink(missing_ok=True)


def _committed_temps(tables_dir: Path) -> frozenset[str]:
    """The temporary files named by commit records not yet applied (they are data: never removed as left-overs)."""
    try:
        records = [p for p in (tables_dir / COMMITS_DIR).iterdir() if p.suffix == ".json"]
    except FileNotFoundError:
        return frozenset()
    names = set()
    for record in records:
        try:
            names |= {Path(tmp).name for tmp, _ in json.loads(record.read_text())["renames"]}
        except (OSError, ValueError, KeyError):
            continue
    return frozenset(names)


def _roll_forward(warehouse: Warehouse) -> None:
    """Finish the commits a crash interrupted (see `_replace_together`); a reader that may not write leaves
    them to the next writer."""
    folder = warehouse.tables_dir / COMMITS_DIR
    try:
        records = sorted(name for name in os.listdir(folder) if name.endswith(".json") and not name.startswith("."))
    except OSError:  # none yet (or not readable: then nobody can finish them here)
        return
    for name in records:
        try:
            _apply_commit(warehouse, folder / name)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("could not finish the interrupted catalog commit %s: %s", folder / name, exc)
            return


def ensure_tables(warehouse: Warehouse) -> None:
    """Create each table's folder and schema file (idempotent, safe to race), and finish any commit a crash
    interrupted."""
    _roll_forward(warehouse)
    for name, schema in TABLES.items():
        schema_path = table_dir(warehouse, name) / SCHEMA_FILE
        if not schema_path.exists() or pq.read_schema(schema_path) != schema:
            _write_parquet_atomically(schema.empty_table(), schema_path)


def _partition_rows(table: str, media_id: int, rows: pa.Table | list[dict]) -> pa.Table:
    schema = table_schema(table)
    data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    data = data.select(schema.names).cast(schema)
    if len(data) and not pc.all(pc.equal(data["media_id"], media_id)).as_py():
        raise ValueError(f"rows for partition {media_id} of {table} carry another media_id")
    return data


def _global_rows(table: str, rows: pa.Table | list[dict]) -> pa.Table:
    if table not in GLOBAL_TABLES:
        raise ValueError(f"{table} is not a global table; global tables: {', '.join(GLOBAL_TABLES)}")
    schema = GLOBAL_TABLES[table]
    data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    return data.select(schema.names).cast(schema)


def replace_partition(warehouse: Warehouse, table: str, media_id: int, rows: pa.Table | list[dict]) -> int:
    """Replace all rows of `media_id` in `table` with `rows` (atomically); returns the row count."""
    data = _partition_rows(table, media_id, rows)
    ensure_tables(warehouse)
    _write_parquet_atomically(data, table_dir(warehouse, table) / f"{media_id}.parquet")
    return len(data)


def replace_partitions(warehouse: Warehouse, media_id: int, rows: dict[str, pa.Table | list[dict]]) -> dict[str, int]:
    """Replace `media_id`'s rows in several partitioned tables at once: readers see all of them new or all
    old, even after a crash (see `_replace_together`). Returns the row count per table."""
    data = {table: _partition_rows(table, media_id, table_rows) for table, table_rows in rows.items()}
    ensure_tables(warehouse)
    _replace_together(warehouse, {table_dir(warehouse, t) / f"{media_id}.parquet": d for t, d in data.items()})
    return {table: len(d) for table, d in data.items()}


def replace_table(warehouse: Warehouse, table: str, rows: pa.Table | list[dict]) -> int:
    """Replace all rows of a global table (atomically); returns the row count."""
    data = _global_rows(table, rows)
    ensure_tables(warehouse)
    _write_parquet_atomically(data, table_dir(warehouse, table) / GLOBAL_FILE)
    return len(data)


def replace_tables(warehouse: Warehouse, rows: dict[str, pa.Table | list[dict]]) -> dict[str, int]:
    """Replace several global tables at once: readers see all of them new or all old, even after a crash
    (see `_replace_together`). Returns the row count per table."""
    data = {table: _global_rows(table, table_rows) for table, table_rows in rows.items()}
    ensure_tables(warehouse)
    _replace_together(warehouse, {table_dir(warehouse, t) / GLOBAL_FILE: d for t, d in data.items()})
    return {table: len(d) for table, d in data.items()}


def read_table(warehouse: Warehouse, table: str) -> pa.Table:
    """All rows of a global or append-only table (an empty table with its schema when there are none)."""
    schema = table_schema(table)
    _roll_forward(warehouse)
    if table in GLOBAL_TABLES:
        try:
            return pq.read_table(table_dir(warehouse, table) / GLOBAL_FILE).cast(schema)
        except FileNotFoundError:
            return schema.empty_table()
    files = sorted(p for p in table_dir(warehouse, table).glob("*.parquet") if p.name != SCHEMA_FILE)
    parts = [_conform(pq.read_table(p), schema) for p in files]
    return pa.concat_tables(parts) if parts else schema.empty_table()


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """A file's rows in the table's schema; columns added to an append-only table since the file was
    written are NULL in it (the views read such files the same way: union_by_name)."""
    for field in schema:
        if field.name not in data.column_names:
            data = data.append_column(field, pa.nulls(data.num_rows, field.type))
    return data.select(schema.names).cast(schema)


def append_rows(warehouse: Warehouse, table: str, rows: list[dict]) -> int:
    """Add rows to an append-only table as one new file; concurrent writers never touch each other's files."""
    if table not in APPEND_ONLY_TABLES:
        raise ValueError(f"{table} is not an append-only table; append-only tables: {', '.join(APPEND_ONLY_TABLES)}")
    if not rows:
        return 0
    data = pa.Table.from_pylist(rows, schema=APPEND_ONLY_TABLES[table])
    ensure_tables(warehouse)
    _write_parquet_atomically(data, table_dir(warehouse, table) / f"{time.time_ns():020d}-{uuid.uuid4().hex}.parquet")
    return len(data)


def delete_partition(warehouse: Warehouse, media_id: int, tables: list[str] | None = None) -> None:
    """Remove `media_id`'s rows from the given partitioned tables (default: all)."""
    for table in tables or list(PARTITIONED_TABLES):
        (table_dir(warehouse, table) / f"{media_id}.parquet").unlink(missing_ok=True)


def read_partition(warehouse: Warehouse, table: str, media_id: int) -> pa.Table | None:
    path = table_dir(warehouse, table) / f"{media_id}.parquet"
    _roll_forward(warehouse)
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        return None


def _scan_sql(warehouse: Warehouse, table: str) -> str:
    pattern = (table_dir(warehouse, table) / "*.parquet").as_posix().replace("'", "''")
    return f"read_parquet('{pattern}', union_by_name = true)"


# Views that are more than a scan of their folder: a cluster's name is the latest `cluster_names` row for
# it (so a name given after clustering shows at once and survives re-clustering: ids are stable), and
# `current_pins` is the latest pin per member (a pin with a NULL cluster_id removes the pin).
_DERIVED_VIEWS = {
    "clusters": lambda scan: (
        f"""
        SELECT c.*, n.name
        FROM {scan("clusters")} c
        LEFT JOIN (SELECT cluster_id, arg_max_null(name, named_at) AS name FROM cluster_names GROUP BY cluster_id) n
        USING (cluster_id)"""
    ),
    "cluster_pins": lambda scan: (
        """
        SELECT feedback_id AS pin_id, seq, kind, member_kind, member_id, cluster_id, source, created_at AS pinned_at
        FROM feedback WHERE kind IN ('move', 'merge', 'split')"""
    ),
    "current_pins": lambda scan: (
        """
        SELECT member_kind, member_id, arg_max_null(cluster_id, seq) AS cluster_id, max(pinned_at) AS pinned_at
        FROM cluster_pins GROUP BY member_kind, member_id
        HAVING arg_max_null(cluster_id, seq) IS NOT NULL"""
    ),
}


_VIEW_NAMES = tuple(TABLES) + tuple(v for v in _DERIVED_VIEWS if v not in TABLES)


def _names_in(sql: str) -> set[str]:
    return {view for view in _VIEW_NAMES if re.search(rf"\b{view}\b", sql)}


# what each derived view reads beside its own folder, from its own SQL (its scans written as bare names)
_VIEW_READS = {view: _names_in(sql(lambda table: table)) - {view} for view, sql in _DERIVED_VIEWS.items()}


def views_named_in(sql: str) -> set[str]:
    """The catalog views a statement refers to (by name, as whole words), with the views those read, so a
    connection made for one statement creates just the views it needs."""
    named, todo = set(), _names_in(sql)
    while todo:
        view = todo.pop()
        named.add(view)
        todo |= _VIEW_READS.get(view, set()) - named
    return named


def create_views(con: duckdb.DuckDBPyConnection, warehouse: Warehouse, only: set[str] | None = None) -> None:
    """Create the catalog's views on `con`: all of them, or `only` these (binding a view reads the schema of
    every file in its folder, so one statement's connection makes just the views it needs)."""
    ensure_tables(warehouse)
    scan = lambda table: _scan_sql(warehouse, table)  # noqa: E731
    for table in TABLES:
        if table not in _DERIVED_VIEWS and (only is None or table in only):
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {scan(table)}")
    for view, sql in _DERIVED_VIEWS.items():  # in dependency order
        if only is None or view in only:
            con.execute(f"CREATE OR REPLACE VIEW {view} AS {sql(scan)}")


_local = threading.local()


def _query_connection(warehouse: Warehouse, views: set[str]) -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB connection for `warehouse` (opening one costs ~20 ms, more than most
    statements), with at least `views` created. Views are re-bound by DuckDB at every statement, so files
    written since, and columns added since, are seen; a forked process opens its own."""
    pid = os.getpid()
    cache = getattr(_local, "connections", None)
    if cache is None or _local.pid != pid:
        cache, _local.pid = {}, pid
        _local.connections = cache
    entry = cache.get(str(warehouse.root))
    if entry is None:
        entry = cache[str(warehouse.root)] = (duckdb.connect(":memory:"), set())
    con, created = entry
    missing = views - created
    if missing:
        create_views(con, warehouse, missing)
        created |= missing
    return con


def query(warehouse: Warehouse, sql: str, params: list | None = None) -> pa.Table:
    """Run one SQL statement against the catalog; retried if a partition file is replaced mid-read."""
    views = views_named_in(sql)
    _roll_forward(warehouse)
    return retry(
        lambda: _query_connection(warehouse, views).sql(sql, params=params or None).to_arrow_table(),
        (duckdb.IOException,),
        what="catalog query",
    )


def recorded_signatures(warehouse: Warehouse) -> dict[str, str]:
    """partition key → the file signature (size:mtime) each media row was made from."""
    rows = query(warehouse, "SELECT partition_key, size_bytes, mtime_ns FROM media").to_pylist()
    return {r["partition_key"]: file_signature(r["size_bytes"], r["mtime_ns"]) for r in rows}


def retry(fn: Callable[[], T], errors: tuple[type[BaseException], ...], *, what: str, timeout_s: float = 30.0) -> T:
    """Call `fn`, retrying with backoff while it raises one of `errors` (lock conflicts, files replaced
    under a reader), for at most `timeout_s`. The one helper every writer and reader uses."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            return fn()
        except errors as exc:
            if time.monotonic() + delay > deadline or is_storage_full(exc):  # a full disk stays full
                raise
            log.debug("%s: %s; retrying in %.2fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def connect_file(path: Path, *, read_only: bool = False, timeout_s: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB database file, waiting (with backoff) while another process holds its lock."""
    return retry(
        lambda: duckdb.connect(str(path), read_only=read_only),
        (duckdb.IOException,),
        what=f"open {path}",
        timeout_s=timeout_s,
    )


def sync_catalog_file(warehouse: Warehouse, *, timeout_s: float = 5.0) -> bool:
    """(Re)create the views in `catalog.duckdb`. Returns False (with a warning) when another process,
    say a person's open DuckDB shell, holds the file's lock for longer than `timeout_s`; the views stay as
    they were, which is harmless since they read the folders at query time."""
    warehouse.root.mkdir(parents=True, exist_ok=True)
    try:
        con = connect_file(warehouse.catalog_path, timeout_s=timeout_s)
    except duckdb.IOException as exc:
        log.warning("could not refresh the views in %s (%s); they are used as they are", warehouse.catalog_path, exc)
        return False
    try:
        create_views(con, warehouse)
    finally:
        con.close()
    return True
