"""Do the warehouse's parts agree? The checks of `media-assets verify` and of the asset check
`warehouse_is_consistent`, and what would repair each problem.

Reads, never writes: every Parquet file under `tables/` (each read whole: a file that does not read is a
problem naming it), the ids of every LanceDB vector table at its latest version, one listing per media file of
`frames/<media_id>/` and `faces/<media_id>/`, the index manifest and file (`store.index_files`), and the adapter
registry (`store.adapters`). The checks:

- every kept (non-duplicate) frame has exactly one vector in `frame_vectors`, and every vector a kept frame;
- every frame has its thumbnail file; every face its crop;
- every shot with `has_vector` has one shot vector, every face one face vector, and no vector is left over;
- every `text_vectors` row's `item_id` is a row still there: a transcript window's first segment, a screen
  text span's first line, a summary's chapter;
- no partition file belongs to a media file without a `media` row;
- the index is current the way `search.index` decides it (built from the served table, at its latest version,
  with the adapter now current), its file loads and holds every served vector;
- `current.json` names an adapter version whose files load, and with an adapter current each adapted table
  holds exactly the base table's ids, all made by that version (no adapter: no adapted tables).

A problem is one (kind, media file): a partition whose 3,000 vectors are missing is one problem with a count
and a few example ids. Each carries its `Repair`: the asset to re-materialize for that partition (the Dagster
layer adds what comes after it in `ingest_media`), a global job (`index_frames`, `refresh_adapted`,
`cluster_library`), a purge (the media file is gone), a file to delete (a schema file the next write makes
again), or nothing a run can do (the detail says what a person can).

Speed: ids are numpy arrays and every check is a set operation over them (`np.isin`, `np.unique`); the catalog
files are read by a few threads. A partition being written while this runs can show a passing problem (its
frames already new, its vectors not yet); the asset check leaves out the partitions of runs in progress.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from media_assets.ids import FRAME_SEQ_BITS
from media_assets.media.discovery import scan_media
from media_assets.models.adapter import AdapterFileError, EmbeddingAdapter
from media_assets.models.hnsw import HNSWIndex, IndexFileError
from media_assets.store import catalog
from media_assets.store.adapters import ADAPTED, adapted_stamp, adapters_dir, version_dir
from media_assets.store.index_files import Manifest, index_path, manifest_path
from media_assets.store.text_vectors import TEXT_VECTORS, TextVectorStore
from media_assets.store.vectors import FACE_VECTORS, FRAME_VECTORS, SHOT_VECTORS, VectorStore
from media_assets.warehouse import Warehouse

# the asset of `ingest_media` that writes each per-media table: what to re-materialize when its file is bad
WRITTEN_BY = {
    "media": "frames",
    "frames": "frames",
    "ingest_errors": "frames",
    "shots": "shots",
    "keyframes": "shots",
    "shot_events": "shots",
    "faces": "faces",
    "transcript_segments": "transcripts",
    "transcript_words": "transcripts",
    "screen_text": "screen_text",
    "chapters": "chapters",
    "video_summaries": "chapters",
}
# the columns the checks use, per table (the whole file is read either way: that is the readability check)
COLUMNS = {
    "media": ["media_id", "partition_key", "path"],
    "frames": ["frame_id", "media_id", "is_duplicate", "thumbnail_path"],
    "shots": ["shot_id", "media_id", "has_vector"],
    "faces": ["face_id", "media_id", "crop_path"],
    "transcript_segments": ["segment_id", "media_id"],
    "screen_text": ["text_id", "media_id"],
    "chapters": ["chapter_id", "media_id"],
}
# text_vectors kind → (the catalog table its item_id is a row of, that row's id column, the asset that writes it)
TEXT_ITEMS = {
    "transcript": ("transcript_segments", "segment_id", "text_vectors"),
    "screen_text": ("screen_text", "text_id", "text_vectors"),
    "summary": ("chapters", "chapter_id", "chapters"),
}
EXAMPLES = 5  # example ids or paths kept per problem
READERS = 4  # threads reading catalog files (pyarrow releases the GIL while it decodes)


@dataclass(frozen=True)
class Repair:
    """What would fix a problem.

    action: `materialize` (asset `target` of partition `partition_key`, and what comes after it in
    `ingest_media`), `job` (the global job `target`), `purge` (media `media_id`'s file is gone: remove what
    was derived from it), `delete_file` (`target`, relative to the warehouse: the next write makes it again),
    or `none` (no run can: the problem's detail says what a person can do). `clear` names a vector table
    whose rows of the media file go first: a LanceDB merge keeps rows that repeat an id, a re-write alone
    would not drop the repeats."""

    action: str
    target: str = ""
    partition_key: str | None = None
    media_id: int | None = None
    clear: str = ""

    def describe(self) -> str:
        if self.action == "materialize":
            first = f"delete its rows in {self.clear}, then " if self.clear else ""
            return f"{first}re-materialize {self.target} (and what follows it) of {self.partition_key}"
        if self.action == "job":
            return f"run {self.target}"
        if self.action == "purge":
            return f"purge media {self.media_id} (its file is gone)"
        if self.action == "delete_file":
            return f"delete {self.target} (it is written again)"
        return "no run repairs this"


NO_REPAIR = Repair("none")


@dataclass(frozen=True)
class Problem:
    kind: str
    detail: str
    repair: Repair
    partition_key: str | None = None  # None: the warehouse as a whole (index, adapters, global tables)
    media_id: int | None = None
    count: int = 1
    examples: tuple = ()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["examples"] = list(self.examples)
        data["repair"]["describe"] = self.repair.describe()
        return data


@dataclass
class VerifyReport:
    problems: list[Problem]
    counts: dict[str, int]
    elapsed_s: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.problems

    def by_partition(self) -> dict[str | None, list[Problem]]:
        """Problems grouped by partition key (None: the warehouse as a whole, listed last)."""
        groups: dict[str | None, list[Problem]] = defaultdict(list)
        for problem in self.problems:
            groups[problem.partition_key if problem.partition_key is not None else _media_label(problem)].append(
                problem
            )
        ordered = sorted((k for k in groups if k is not None), key=str)
        return {k: groups[k] for k in ordered} | ({None: groups[None]} if None in groups else {})

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for problem in self.problems:
            counts[problem.kind] += 1
        return dict(sorted(counts.items()))

    def repairs(self) -> list[Repair]:
        """Each repair once, in the order the problems ask for them."""
        return list(dict.fromkeys(p.repair for p in self.problems if p.repair.action != "none"))

    def to_dict(self) -> dict:
        return {
            "clean": self.clean,
            "counts": self.counts,
            "kinds": self.kinds(),
            "problems": [p.to_dict() for p in self.problems],
            "elapsed_s": round(self.elapsed_s, 3),
        }


def _media_label(problem: Problem) -> str | None:
    return None if problem.media_id is None else f"media {problem.media_id}"


def verify_warehouse(warehouse: Warehouse) -> VerifyReport:
    """Every check of the module docstring over the whole warehouse."""
    started = time.perf_counter()
    return _Verifier(warehouse).run(started)


# -- reading ------------------------------------------------------------------------------------------------


@dataclass
class _Ids:
    """One vector table at one version: its row ids and their media ids (and, for frames, run ids)."""

    name: str
    version: int | None = None
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    media_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    extra: dict = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.version is not None


def _read_vectors(store, id_column: str, extra_columns: Iterable[str] = ()) -> _Ids:
    uri = store.warehouse.vectors_uri
    if "://" not in uri and not Path(uri).is_dir():  # no vectors yet (and connecting would make the folder)
        return _Ids(store.name)
    table = store.table()
    if table is None:
        return _Ids(store.name)
    dataset = table.to_lance()  # one version: every column below comes from it
    columns = [id_column, "media_id", *extra_columns]
    data = dataset.to_table(columns=columns)
    return _Ids(
        store.name,
        int(dataset.version),
        data[id_column].to_numpy(),
        data["media_id"].to_numpy(),
        {c: data[c] for c in extra_columns},
    )


def _read_file(path: Path, schema: pa.Schema | None) -> pa.Table | None:
    """The file's columns of `schema` (None: nothing, it is only read); raises when it does not read."""
    table = pq.read_table(path)  # all of it: decoding every page is the check
    if schema is None:
        return None
    missing = [c for c in schema.names if c not in table.column_names]
    if missing:
        raise ValueError(f"it has no column {', '.join(missing)}")
    return table.select(schema.names).cast(schema)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _per_media(ids: np.ndarray) -> dict[int, np.ndarray]:
    """ids grouped by the media id inside them (`id >> 20`)."""
    if not len(ids):
        return {}
    ids = np.sort(ids)
    media = ids >> FRAME_SEQ_BITS
    starts = np.flatnonzero(np.r_[True, media[1:] != media[:-1]])
    return {int(media[s]): ids[s:e] for s, e in zip(starts, np.r_[starts[1:], len(ids)], strict=True)}


def _examples(values: Iterable) -> tuple:
    out = []
    for value in values:
        out.append(value.item() if isinstance(value, np.generic) else value)
        if len(out) == EXAMPLES:
            break
    return tuple(out)


class _Verifier:
    def __init__(self, warehouse: Warehouse):
        self.wh = warehouse
        self.problems: list[Problem] = []
        self.counts: dict[str, int] = {}
        self.rows: dict[str, pa.Table] = {}  # table → the COLUMNS of its readable files
        self.stems: dict[str, set[int]] = defaultdict(set)  # per-media table → media ids with a readable file
        self.unreadable: dict[str, set[int]] = defaultdict(set)  # per-media table → media ids whose file is bad
        self.partition_of: dict[int, str] = {}
        self.path_of: dict[int, str] = {}
        self._scanned: dict[int, str] | None = None

    def run(self, started: float) -> VerifyReport:
        self._read_catalog()
        frames = _read_vectors(VectorStore(self.wh, FRAME_VECTORS), "frame_id", ["run_id"])
        shots = _read_vectors(VectorStore(self.wh, SHOT_VECTORS), "shot_id")
        faces = _read_vectors(VectorStore(self.wh, FACE_VECTORS), "face_id")
        texts = self._read_text_vectors()
        self._check_rows_have_media()
        self._check_frames(frames)
        self._check_shots(shots)
        self._check_faces(faces)
        self._check_texts(texts)
        base = {FRAME_VECTORS: frames, SHOT_VECTORS: shots, FACE_VECTORS: faces}
        version, served = self._check_adapters(base)
        self._check_index(served, version)
        self.counts.update(
            frame_vectors=len(frames.ids),
            shot_vectors=len(shots.ids),
            face_vectors=len(faces.ids),
            text_vectors=len(texts.ids),
            adapter_version=version,
        )
        return VerifyReport(self.problems, self.counts, time.perf_counter() - started)

    # -- where a problem's partition is, and what re-makes it

    def _scan(self) -> dict[int, str]:
        if self._scanned is None:
            try:
                self._scanned = {m.media_id: m.partition_key for m in scan_media(self.wh.media_root)}
            except OSError:
                self._scanned = {}
        return self._scanned

    def _key(self, media_id: int) -> str | None:
        return self.partition_of.get(media_id) or self._scan().get(media_id)

    def _partition_repair(self, media_id: int, asset: str, clear: str = "") -> Repair:
        """Re-materialize `asset` of the media file, or purge what was derived from it when its file is gone."""
        key = self.partition_of.get(media_id)
        if key is not None:
            path = self.path_of.get(media_id)
            if (path and Path(path).exists()) or (self.wh.media_root / key).exists():
                return Repair("materialize", asset, key, media_id, clear)
        key = self._scan().get(media_id)
        if key is not None:  # the file is there but its media row is not: everything from the start
            return Repair("materialize", "frames", key, media_id, clear)
        return Repair("purge", partition_key=None, media_id=media_id)

    def _add(self, kind: str, media_id: int | None, detail: str, repair: Repair, count: int = 1, examples=()):
        key = None if media_id is None else self._key(media_id)
        self.problems.append(Problem(kind, detail, repair, key, media_id, int(count), _examples(examples)))

    # -- the catalog

    def _read_catalog(self) -> None:
        jobs = []
        for table in catalog.TABLES:
            folder = catalog.table_dir(self.wh, table)
            if folder.is_dir():
                jobs += [(table, p) for p in sorted(folder.glob("*.parquet"))]

        wanted = {t: pa.schema([catalog.table_schema(t).field(c) for c in columns]) for t, columns in COLUMNS.items()}

        def read(job):
            table, path = job
            schema = wanted.get(table) if path.name != catalog.SCHEMA_FILE else None
            try:
                return table, path, _read_file(path, schema), None
            except FileNotFoundError:  # removed since the listing (a purge): not a problem
                return table, path, None, FileNotFoundError
            except (OSError, pa.ArrowException, ValueError) as exc:
                return table, path, None, exc

        parts: dict[str, list[pa.Table]] = defaultdict(list)
        bad: list[tuple[str, Path, BaseException]] = []
        with ThreadPoolExecutor(READERS) as pool:
            for table, path, data, error in pool.map(read, jobs):
                if error is FileNotFoundError:
                    continue
                if error is not None:
                    bad.append((table, path, error))
                    continue
                if table in catalog.PARTITIONED_TABLES and path.name != catalog.SCHEMA_FILE and path.stem.isdigit():
                    self.stems[table].add(int(path.stem))
                if data is not None:
                    parts[table].append(data)
        for table, schema in wanted.items():
            self.rows[table] = pa.concat_tables(parts[table]) if parts.get(table) else schema.empty_table()
        media = self.rows["media"]
        self.partition_of = dict(zip(media["media_id"].to_pylist(), media["partition_key"].to_pylist(), strict=True))
        self.path_of = dict(zip(media["media_id"].to_pylist(), media["path"].to_pylist(), strict=True))
        self.counts.update(catalog_files=len(jobs), media=len(media), frames=len(self.rows["frames"]))
        for table, path, error in bad:
            self._unreadable(table, path, error)

    def _unreadable(self, table: str, path: Path, error: BaseException) -> None:
        rel = path.relative_to(self.wh.root).as_posix()
        detail = f"{rel} does not read as a {table} file ({_first_line(error)})"
        if path.name == catalog.SCHEMA_FILE:
            self._add("unreadable_file", None, detail, Repair("delete_file", rel))
        elif table in catalog.PARTITIONED_TABLES and path.stem.isdigit():
            media_id = int(path.stem)
            self.unreadable[table].add(media_id)
            self._add("unreadable_file", media_id, detail, self._partition_repair(media_id, WRITTEN_BY[table]))
        elif table in catalog.GLOBAL_TABLES:
            self._add("unreadable_file", None, detail, Repair("job", "cluster_library"))
        else:
            what = "people's writes" if table in catalog.APPEND_ONLY_TABLES else "not a partition file"
            self._add(
                "unreadable_file",
                None,
                f"{detail}; {what}: no run writes it again, restore it from a backup or move it aside",
                NO_REPAIR,
            )

    def _check_rows_have_media(self) -> None:
        """Partition files of a media id without a `media` row (its ingest errors aside: a file that failed to
        read has only those)."""
        media = self.stems["media"] | self.unreadable["media"]
        orphans: dict[int, list[str]] = defaultdict(list)
        for table, stems in self.stems.items():
            if table in ("media", "ingest_errors"):
                continue
            for media_id in stems - media:
                orphans[media_id].append(table)
        for media_id, tables in sorted(orphans.items()):
            self._add(
                "rows_without_media",
                media_id,
                f"{', '.join(sorted(tables))} {'have' if len(tables) > 1 else 'has'} rows of media {media_id}, "
                "which has no media row",
                self._partition_repair(media_id, "frames"),
                len(tables),
                sorted(tables),
            )

    # -- frames, shots, faces and their vectors

    def _vectors_against_rows(
        self,
        *,
        vectors: _Ids,
        wanted: np.ndarray,
        skip: set[int],
        noun: str,
        asset: str,
        missing_kind: str,
        orphan_kind: str,
        missing_what: str,
        orphan_what: str,
    ) -> None:
        """`wanted` ids need exactly one vector each, and every vector a wanted id (media in `skip`, whose
        file is unreadable, are left to that problem)."""
        unique, counts = np.unique(vectors.ids, return_counts=True)
        skip_array = np.fromiter(skip, np.int64, len(skip))
        keep = lambda ids: ids[~np.isin(ids >> FRAME_SEQ_BITS, skip_array)]  # noqa: E731
        groups = (
            (missing_kind, keep(wanted[~np.isin(wanted, unique)]), missing_what, ""),
            (orphan_kind, keep(unique[~np.isin(unique, wanted)]), orphan_what, ""),
            (
                "duplicate_vectors",
                keep(unique[counts > 1]),
                f"{noun}s with more than one row in {vectors.name}",
                vectors.name,
            ),
        )
        for kind, ids, what, clear in groups:
            for media_id, of_media in _per_media(ids).items():
                self._add(
                    kind,
                    media_id,
                    f"{len(of_media)} {what}",
                    self._partition_repair(media_id, asset, clear),
                    len(of_media),
                    of_media,
                )

    def _check_frames(self, vectors: _Ids) -> None:
        frames = self.rows["frames"]
        kept = frames.filter(pc.invert(frames["is_duplicate"].fill_null(False)))["frame_id"].to_numpy()
        self.counts["kept_frames"] = len(kept)
        self._vectors_against_rows(
            vectors=vectors,
            wanted=kept,
            skip=self.unreadable["frames"],
            noun="frame",
            asset="frame_embeddings",
            missing_kind="frame_without_vector",
            orphan_kind="vector_without_frame",
            missing_what="kept frames without a vector in frame_vectors",
            orphan_what="vectors in frame_vectors without a kept frame",
        )
        self._check_files(frames, "frame_id", "thumbnail_path", "missing_thumbnail", "frames without their thumbnail")

    def _check_shots(self, vectors: _Ids) -> None:
        shots = self.rows["shots"]
        with_vector = shots.filter(shots["has_vector"].fill_null(False))["shot_id"].to_numpy()
        self.counts["shots"] = len(shots)
        self._vectors_against_rows(
            vectors=vectors,
            wanted=with_vector,
            skip=self.unreadable["shots"],
            noun="shot",
            asset="shots",
            missing_kind="shot_without_vector",
            orphan_kind="vector_without_shot",
            missing_what="shots with has_vector but no row in shot_vectors",
            orphan_what="vectors in shot_vectors without a shot that has one",
        )

    def _check_faces(self, vectors: _Ids) -> None:
        faces = self.rows["faces"]
        self.counts["faces"] = len(faces)
        self._vectors_against_rows(
            vectors=vectors,
            wanted=faces["face_id"].to_numpy(),
            skip=self.unreadable["faces"],
            noun="face",
            asset="faces",
            missing_kind="face_without_vector",
            orphan_kind="vector_without_face",
            missing_what="faces without a vector in face_vectors",
            orphan_what="vectors in face_vectors without a face",
        )
        self._check_files(faces, "face_id", "crop_path", "missing_face_crop", "faces without their crop")

    def _check_files(self, rows: pa.Table, id_column: str, path_column: str, kind: str, what: str) -> None:
        """Every row's file is there: one listing per folder, not one stat per file."""
        asset = "frames" if kind == "missing_thumbnail" else "faces"
        listings: dict[str, set[str]] = {}
        missing: dict[int, list[str]] = defaultdict(list)
        checked = 0
        for row_id, rel in zip(rows[id_column].to_pylist(), rows[path_column].to_pylist(), strict=True):
            if rel is None:
                continue
            folder, _, name = rel.rpartition("/")
            names = listings.get(folder)
            if names is None:
                try:
                    names = listings[folder] = set(os.listdir(self.wh.root / folder))
                except (FileNotFoundError, NotADirectoryError):
                    names = listings[folder] = set()
            checked += 1
            if name not in names:
                missing[row_id >> FRAME_SEQ_BITS].append(rel)
        self.counts[f"{path_column.removesuffix('_path')}_files"] = checked
        for media_id, paths in sorted(missing.items()):
            self._add(
                kind, media_id, f"{len(paths)} {what}", self._partition_repair(media_id, asset), len(paths), paths
            )

    # -- text vectors

    def _read_text_vectors(self) -> _Ids:
        return _read_vectors(TextVectorStore(self.wh), "text_id", ["kind", "item_id"])

    def _check_texts(self, texts: _Ids) -> None:
        if not texts.exists:
            return
        kinds = np.asarray(texts.extra["kind"].to_pylist(), dtype=object)
        items = texts.extra["item_id"].to_numpy()
        for kind, (table, column, asset) in TEXT_ITEMS.items():
            here = kinds == kind
            known = self.rows[table][column].to_numpy()
            gone = here & ~np.isin(items, known)
            skip = np.fromiter(self.unreadable[table], np.int64, len(self.unreadable[table]))
            gone &= ~np.isin(texts.media_ids, skip)
            for media_id, text_ids in _per_media(texts.ids[gone]).items():
                self._add(
                    "text_vector_without_text",
                    media_id,
                    f"{len(text_ids)} {kind} rows of {TEXT_VECTORS} whose {table} row is gone",
                    self._partition_repair(media_id, asset),
                    len(text_ids),
                    text_ids,
                )
        unique, counts = np.unique(texts.ids, return_counts=True)
        for media_id, text_ids in _per_media(unique[counts > 1]).items():
            self._add(
                "duplicate_vectors",
                media_id,
                f"{len(text_ids)} text ids with more than one row in {TEXT_VECTORS}",
                # every kind goes, so from screen_text on: text_vectors and chapters write them all again
                self._partition_repair(media_id, "screen_text", TEXT_VECTORS),
                len(text_ids),
                text_ids,
            )

    # -- the adapter registry

    def _check_adapters(self, base: dict[str, _Ids]) -> tuple[int, _Ids]:
        """The current adapter version (0: none) and the frame vectors served (adapted when whole)."""
        pointer = adapters_dir(self.wh) / "current.json"
        version = 0
        try:
            version = int(json.loads(pointer.read_text())["version"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._add(
                "adapter_registry",
                None,
                f"{pointer.relative_to(self.wh.root)} does not say which adapter is current ({_first_line(exc)}): "
                "search reads the base vectors; name one with media-assets adapter rollback VERSION",
                NO_REPAIR,
            )
        if version:
            try:
                EmbeddingAdapter.load(version_dir(self.wh, version))
            except AdapterFileError as exc:
                self._add(
                    "adapter_registry",
                    None,
                    f"current.json names adapter version {version}, which does not load ({_first_line(exc)}); "
                    "roll back to a version that is there: media-assets adapter rollback",
                    NO_REPAIR,
                )
                return version, base[FRAME_VECTORS]  # the adapted tables follow the rollback

        served = base[FRAME_VECTORS]
        for base_name, adapted_name in ADAPTED.items():
            extra = ["adapter_version", "run_id"] if base_name == FRAME_VECTORS else ["adapter_version"]
            adapted = _read_vectors(VectorStore(self.wh, adapted_name), _ID[base_name], extra)
            reasons = []
            if not version:
                if adapted.exists:
                    reasons.append("no adapter is current, yet the table is there")
            elif len(base[base_name].ids):
                stamp = adapted_stamp(self.wh, base_name) or {}
                if not adapted.exists:
                    reasons.append(f"adapter version {version} is current but the table is missing")
                else:
                    if stamp.get("adapter_version") != version or stamp.get("rows") != len(adapted.ids):
                        reasons.append(
                            f"its stamp says adapter version {stamp.get('adapter_version')} with {stamp.get('rows')} "
                            f"rows, the table has {len(adapted.ids)} and version {version} is current"
                        )
                    versions = set(pc.unique(adapted.extra["adapter_version"]).to_pylist())
                    if versions - {version}:
                        reasons.append(f"it holds rows of adapter versions {sorted(versions)}")
                    surplus = np.setdiff1d(adapted.ids, base[base_name].ids)
                    absent = np.setdiff1d(base[base_name].ids, adapted.ids)
                    if len(surplus) or len(absent):
                        reasons.append(
                            f"{len(absent)} ids of {base_name} are not in it and {len(surplus)} of its ids are not "
                            f"in {base_name}"
                        )
                    elif not reasons and base_name == FRAME_VECTORS:
                        served = adapted
            if reasons:
                self._add(
                    "adapted_vectors_stale",
                    None,
                    f"{adapted_name}: {'; '.join(reasons)}",
                    Repair("job", "refresh_adapted"),
                )
        return version, served

    # -- the index

    def _check_index(self, served: _Ids, adapter_version: int) -> None:
        if not len(served.ids):
            return
        repair = Repair("job", "index_frames")
        path = manifest_path(self.wh)
        manifest = Manifest.read(path)
        if manifest is None:
            if path.exists():
                self._add("index_unreadable", None, f"{path.relative_to(self.wh.root)} does not read", repair)
            else:
                self._add("index_missing", None, f"there is no index over the {len(served.ids)} served vectors", repair)
            return
        reasons = []
        if manifest.vectors_table != served.name:
            reasons.append(f"it was built from {manifest.vectors_table}, search serves {served.name}")
        if manifest.adapter_version != adapter_version:
            reasons.append(f"it was built with adapter version {manifest.adapter_version}, now {adapter_version}")
        latest = served.version if manifest.vectors_table == served.name else None
        if latest is not None and manifest.vectors_version != latest:
            reasons.append(f"it was built from version {manifest.vectors_version} of {served.name}, now {latest}")
        if manifest.vectors_table == served.name:
            changed = self._media_not_covered(manifest, served)
            if changed:
                names = [self._key(m) or f"media {m}" for m in changed[:EXAMPLES]]
                reasons.append(f"{len(changed)} media files' vectors changed since ({', '.join(names)})")
        try:
            index = HNSWIndex.load(index_path(self.wh), expected_dim=manifest.dim, expected_model_id=manifest.model_id)
        except (IndexFileError, FileNotFoundError, OSError) as exc:
            self._add("index_unreadable", None, f"the index file does not load ({_first_line(exc)})", repair)
            return
        self.counts["index_live"] = len(index)
        absent = served.ids[~np.isin(served.ids, index.ids)]
        if len(absent):
            reasons.append(f"{len(absent)} served vectors are not in it")
        if len(index) != len(served.ids):
            reasons.append(f"it holds {len(index)} live vectors, {served.name} {len(served.ids)}")
        if reasons:
            self._add("index_stale", None, "the index is stale: " + "; ".join(reasons), repair, examples=absent)

    def _media_not_covered(self, manifest: Manifest, served: _Ids) -> list[int]:
        """Media ids whose (run id, vector count) differ from what the manifest recorded."""
        run_ids = served.extra.get("run_id")
        if run_ids is None:
            return []
        media, first, counts = np.unique(served.media_ids, return_index=True, return_counts=True)
        current = {
            str(m): [run_ids[int(i)].as_py(), int(c)] for m, i, c in zip(media.tolist(), first, counts, strict=True)
        }
        recorded = manifest.media
        return sorted(int(m) for m in set(current) | set(recorded) if current.get(m) != recorded.get(m))


_ID = {FRAME_VECTORS: "frame_id", SHOT_VECTORS: "shot_id", FACE_VECTORS: "face_id"}
