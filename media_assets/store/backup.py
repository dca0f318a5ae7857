"""Backups of a warehouse: a consistent copy taken while people read and runs write, kept in rotation, and
restored whole.

`backup_warehouse(warehouse, folder, keep=5)` writes `<folder>/<UTC timestamp>/`, laid out like a warehouse
(so the library, `stages.verify` included, can open it as one):

```
<folder>/20260102T030405Z/
  tables/<table>/*.parquet       every catalog file, copied whole
  vectors/<table>.lance/         every LanceDB table at one version (Lance's deep clone: the data, deletion
                                 and index files of that version; the version number is kept, so the index
                                 manifest still names it)
  frames/<media_id>/*.jpg        thumbnails; faces/<media_id>/*.jpg face crops
  index/                         the HNSW index and its manifest, as a pair
  models/                        the adapter registry: versions, current.json, the adapted tables' stamps
  settings.json …                the files at the warehouse's top (settings, tokens)
  SHA256SUMS                     sha256 of every file above (`sha256sum -c SHA256SUMS` reads it)
  backup.json                    written last, atomically: what was copied, at which versions, counts, the
                                 sha256 of SHA256SUMS, created_at; a folder without it is not a backup
```

Left out: `dagster/` (the Dagster instance: runs, event logs, schedules; its SQLite files are not copied while
a daemon writes them; a forced restore keeps the instance of the warehouse it replaces, and `media-assets
restore` registers the restored partitions in it), `media/` (the media files themselves: the backup is of what
was made from them; a restore elsewhere points `settings.json` at the media root the backup was taken from when
it has no media of its own), `playback/` and `catalog.duckdb` (made again on demand). A LanceDB URI on object
storage (`s3://…`) is not copied: back the bucket up with its own tools.

Consistency. Writers replace whole files (temp file + rename: a catalog file, the index, a thumbnail, a face
crops folder) and commit LanceDB versions, so each unit (a catalog file, a media file's thumbnails or crops
folder, a table's version, the index with its manifest, the adapter registry, a top-level file) is copied
whole, and its signature (inode, size, mtime; a table's version) is taken when it is. Then passes compare
every unit's signature with the copied one and copy again what changed (or remove what is gone), until a pass
finds nothing changed: every unit was then unchanged from its copy to that pass, so the copy is the warehouse
as it was at one moment. If writes never pause for `SETTLE_S` seconds, the backup is kept with
`settled: false` and the units that kept changing.

`restore_warehouse(backup, target)` checks `backup.json`, `SHA256SUMS` and every file's checksum while copying
into a temporary folder beside the target, then renames it into place (a non-empty target only with
`force`: its `dagster/` and `media/` move into the restored warehouse, the rest is removed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import lancedb
import pyarrow.parquet as pq

from media_assets.store import catalog
from media_assets.store.index_files import INDEX_FILE, MANIFEST_FILE, Manifest
from media_assets.warehouse import Warehouse

FORMAT = "media_assets.backup"
FORMAT_VERSION = 1
MANIFEST = "backup.json"
SUMS = "SHA256SUMS"
SETTLE_S = 60.0  # how long passes go on copying what changed before the backup is kept unsettled
EXCLUDED = ("dagster/", "media/", "playback/", "catalog.duckdb")
KEPT_ON_RESTORE = ("dagster", "media")  # what a forced restore moves over from the warehouse it replaces
_CHUNK = 1 << 20
_STAMP = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


class BackupError(Exception):
    """A backup that cannot be taken, read or restored; the message names the file and the reason."""


@dataclass
class BackupResult:
    path: Path
    manifest: dict
    removed: list[Path] = field(default_factory=list)  # older backups rotated out


@dataclass
class RestoreResult:
    root: Path
    manifest: dict
    files: int
    bytes: int
    kept: list[str]  # what was moved over from the warehouse replaced
    media_root: Path
    media_files_present: bool


# -- the units of a copy ----------------------------------------------------------------------------------


def _file_signature(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _tree_signature(root: Path):
    if not root.exists():
        return None
    return tuple((p.relative_to(root).as_posix(), _file_signature(p)) for p in sorted(root.rglob("*")) if p.is_file())


class _Copier:
    """Copies units of a warehouse into a backup folder, keeping each copied file's sha256 and size."""

    def __init__(self, warehouse: Warehouse, dest: Path):
        self.wh = warehouse
        self.dest = dest
        self.files: dict[str, tuple[str, int]] = {}  # rel path → (sha256, size)
        self.db = lancedb.connect(warehouse.vectors_uri)

    # units: key → (kind, source); discovered afresh at every pass
    def units(self) -> dict[str, tuple[str, Path | str]]:
        wh, found = self.wh, {}
        for table in catalog.TABLES:
            folder = catalog.table_dir(wh, table)
            if folder.is_dir():
                for path in folder.glob("*.parquet"):
                    found[f"tables/{table}/{path.name}"] = ("file", path)
        for base in (wh.thumbnails_dir, wh.face_crops_dir):
            if base.is_dir():
                for folder in base.iterdir():
                    if folder.is_dir() and not folder.name.startswith("."):
                        found[f"{base.name}/{folder.name}"] = ("folder", folder)
        for name in self.db.table_names():
            found[f"vectors/{name}.lance"] = ("table", name)
        if wh.index_dir.is_dir():
            found["index"] = ("index", wh.index_dir)
        if wh.models_dir.is_dir():
            found["models"] = ("tree", wh.models_dir)
        for path in wh.root.iterdir():  # settings.json and the like (catalog.duckdb is only views)
            if path.is_file() and not path.name.startswith(("catalog.duckdb", ".")):
                found[path.name] = ("file", path)
        return found

    def signature(self, kind: str, source):
        if kind == "file":
            return _file_signature(source)
        if kind == "folder":
            return _file_signature(source)  # a new folder is renamed into place: a new inode
        if kind == "table":
            try:
                return int(self.db.open_table(source).version)
            except (FileNotFoundError, ValueError):
                return None
        if kind == "index":
            return (_file_signature(source / INDEX_FILE), _file_signature(source / MANIFEST_FILE))
        return _tree_signature(source)

    def copy(self, key: str, kind: str, source):
        """Copy one unit; returns the signature it had (None: it is gone)."""
        self.forget(key)
        if kind == "file":
            return self._copy_file(source, key)
        if kind == "folder":
            before = _file_signature(source)
            try:
                for path in sorted(source.iterdir()):
                    if path.is_file() and not path.name.startswith("."):  # (a writer's temporary file)
                        self._copy_file(path, f"{key}/{path.name}")
            except FileNotFoundError:  # swapped while we read it: the next pass copies the new one
                return ("moved",)
            return before
        if kind == "table":
            return self._clone_table(key, source)
        if kind == "index":
            signature = self.signature(kind, source)
            for name in (INDEX_FILE, MANIFEST_FILE):  # the order they are written in
                if (source / name).exists():
                    self._copy_file(source / name, f"{key}/{name}")
            return signature
        signature = _tree_signature(source)
        for path in sorted(source.rglob("*")):
            if path.is_file():
                self._copy_file(path, f"{key}/{path.relative_to(source).as_posix()}")
        return signature

    def forget(self, key: str) -> None:
        """Remove a unit's files from the copy (it changed, or it is gone)."""
        target = self.dest / key
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        prefix = key + "/"
        for rel in [r for r in self.files if r == key or r.startswith(prefix)]:
            del self.files[rel]

    def _copy_file(self, source: Path, rel: str):
        target = self.dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        try:
            with open(source, "rb") as src:
                st = os.fstat(src.fileno())
                with open(target, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        except FileNotFoundError:
            target.unlink(missing_ok=True)
            return None
        self.files[rel] = (digest.hexdigest(), st.st_size)
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _clone_table(self, key: str, name: str):
        try:
            dataset = self.db.open_table(name).to_lance()
        except (FileNotFoundError, ValueError):
            return None
        target = self.dest / key
        target.parent.mkdir(parents=True, exist_ok=True)
        dataset.deep_clone(str(target), dataset.version)  # that version's files, under its version number
        for path in sorted(target.rglob("*")):
            if path.is_file():
                self.files[path.relative_to(self.dest).as_posix()] = (_sha256(path), path.stat().st_size)
        return int(dataset.version)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


# -- taking a backup --------------------------------------------------------------------------------------


def backup_warehouse(warehouse: Warehouse, folder: str | os.PathLike, *, keep: int = 5) -> BackupResult:
    """Copy the warehouse into `<folder>/<UTC timestamp>/` (see the module docstring) and keep the newest
    `keep` backups in `folder`, removing older ones."""
    if keep < 1:
        raise BackupError(f"keep must be at least 1, got {keep}")
    if "://" in warehouse.vectors_uri:
        raise BackupError(
            f"the vectors are at {warehouse.vectors_uri}, not in a local folder: back the bucket up with its own tools"
        )
    if not warehouse.root.is_dir():
        raise BackupError(f"there is no warehouse at {warehouse.root}")
    folder = Path(folder).expanduser().resolve()
    if folder == warehouse.root or folder.is_relative_to(warehouse.root):
        raise BackupError(f"{folder} is inside the warehouse {warehouse.root}: back it up somewhere else")
    started = time.perf_counter()
    created = datetime.now(UTC)
    folder.mkdir(parents=True, exist_ok=True)
    catalog.ensure_tables(warehouse)  # finishes a catalog commit a crash interrupted, as every reader does
    name = _free_name(folder, created.strftime("%Y%m%dT%H%M%SZ"))
    work = folder / f".{name}.partial"
    work.mkdir()
    try:
        copier = _Copier(warehouse, work)
        copied = {key: copier.copy(key, *unit) for key, unit in copier.units().items()}
        settled, changing, passes = False, [], 0
        deadline = time.monotonic() + SETTLE_S
        while passes == 0 or time.monotonic() < deadline:
            passes += 1
            units = copier.units()
            changing = sorted(
                {k for k, unit in units.items() if copier.signature(*unit) != copied.get(k)} | (copied.keys() - units)
            )
            if not changing:
                settled = True
                break
            for key in changing:
                if key in units:
                    copied[key] = copier.copy(key, *units[key])
                else:
                    copier.forget(key)
                    del copied[key]
        manifest = _describe(warehouse, work, copier, created, settled, changing, passes, time.perf_counter() - started)
        sums = "".join(f"{sha}  {rel}\n" for rel, (sha, _) in sorted(copier.files.items()))
        _write_atomically(work / SUMS, sums)
        manifest["sha256sums"] = _sha256(work / SUMS)
        _write_atomically(work / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        final = folder / name
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    manifest["path"] = str(final)
    return BackupResult(final, manifest, rotate(folder, keep))


def _free_name(folder: Path, stamp: str) -> str:
    name, n = stamp, 0
    while (folder / name).exists() or (folder / f".{name}.partial").exists():
        n += 1
        name = f"{stamp}-{n}"
    return name


def _describe(warehouse, work: Path, copier: _Copier, created, settled, changing, passes, elapsed) -> dict:
    tables = {}
    for table in catalog.TABLES:
        files = sorted((work / "tables" / table).glob("*.parquet")) if (work / "tables" / table).is_dir() else []
        data = [p for p in files if p.name != catalog.SCHEMA_FILE]
        tables[table] = {"files": len(data), "rows": sum(pq.ParquetFile(p).metadata.num_rows for p in data)}
    vectors = {}
    if (work / "vectors").is_dir():
        db = lancedb.connect(str(work / "vectors"))
        for name in db.table_names():
            table = db.open_table(name)
            vectors[name] = {"version": int(table.version), "rows": table.count_rows()}
    index = Manifest.read(work / "index" / MANIFEST_FILE)
    current = work / "models" / "adapters" / "current.json"
    try:
        adapter_version = int(json.loads(current.read_text())["version"])
    except (FileNotFoundError, ValueError, KeyError):
        adapter_version = 0
    count = lambda base: sum(1 for rel in copier.files if rel.startswith(f"{base}/"))  # noqa: E731
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_at": created.isoformat(),
        "source": str(warehouse.root),
        "media_root": str(warehouse.media_root),
        "tables": tables,
        "vectors": vectors,
        "index": None
        if index is None
        else {
            "vectors_table": index.vectors_table,
            "vectors_version": index.vectors_version,
            "live_count": index.live_count,
            "adapter_version": index.adapter_version,
        },
        "adapter_version": adapter_version,
        "thumbnails": count("frames"),
        "face_crops": count("faces"),
        "files": len(copier.files),
        "bytes": sum(size for _, size in copier.files.values()),
        "settled": settled,
        "still_changing": changing if not settled else [],
        "passes": passes,
        "excluded": list(EXCLUDED),
        "elapsed_s": round(elapsed, 3),
    }


def list_backups(folder: str | os.PathLike) -> list[tuple[Path, dict]]:
    """The complete backups in `folder` (a readable `backup.json`), oldest first."""
    folder = Path(folder)
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            if not path.is_dir() or not _STAMP.match(path.name):
                continue
            try:
                found.append((path, read_manifest(path)))
            except BackupError:
                continue
    return sorted(found, key=lambda item: (item[1]["created_at"], item[0].name))


def rotate(folder: str | os.PathLike, keep: int) -> list[Path]:
    """Remove all but the newest `keep` complete backups in `folder`; returns the removed folders."""
    backups = list_backups(folder)
    removed = [path for path, _ in backups[: max(0, len(backups) - keep)]]
    for path in removed:
        shutil.rmtree(path)
    return removed


# -- reading and restoring --------------------------------------------------------------------------------


def read_manifest(backup: str | os.PathLike) -> dict:
    path = Path(backup) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{path} is missing: {backup} is not a complete backup") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a media_assets backup manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise BackupError(f"{path} has format version {manifest.get('version')}; this code reads {FORMAT_VERSION}")
    return manifest


def _listed_files(backup: Path, manifest: dict) -> list[tuple[str, str]]:
    sums = backup / SUMS
    try:
        text = sums.read_bytes()
    except FileNotFoundError:
        raise BackupError(f"{sums} is missing") from None
    if hashlib.sha256(text).hexdigest() != manifest.get("sha256sums"):
        raise BackupError(f"{sums} does not match the sha256 in {backup / MANIFEST}: the backup is corrupt")
    listed = []
    for line in text.decode("utf-8").splitlines():
        sha, _, rel = line.partition("  ")
        if len(sha) != 64 or not rel or rel.startswith("/") or ".." in Path(rel).parts:
            raise BackupError(f"{sums}: a line that is not '<sha256>  <relative path>': {line[:120]!r}")
        listed.append((sha, rel))
    return listed


def check_backup(backup: str | os.PathLike) -> dict:
    """Check `backup.json`, `SHA256SUMS` and every file's checksum; returns the manifest or raises BackupError
    naming the first file that is missing or differs."""
    backup = Path(backup)
    manifest = read_manifest(backup)
    for sha, rel in _listed_files(backup, manifest):
        try:
            actual = _sha256(backup / rel)
        except FileNotFoundError:
            raise BackupError(f"{backup / rel} is missing from the backup") from None
        if actual != sha:
            raise BackupError(f"{backup / rel} does not match its sha256 in {SUMS}: the backup is corrupt")
    return manifest


def restore_warehouse(backup: str | os.PathLike, target: Warehouse, *, force: bool = False) -> RestoreResult:
    """Bring `backup` back as the warehouse `target` (see the module docstring). Refuses a non-empty target
    unless `force`; nothing at the target changes until every file was copied and checked."""
    backup = Path(backup).expanduser().resolve()
    root = target.root
    if target.vectors_uri != str(root / "vectors"):
        raise BackupError(
            f"the warehouse's vectors are at {target.vectors_uri} (MEDIA_ASSETS_VECTORS_URI): a restore writes them "
            f"into {root / 'vectors'}; unset it to restore"
        )
    manifest = read_manifest(backup)
    listed = _listed_files(backup, manifest)
    occupied = root.exists() and (not root.is_dir() or any(root.iterdir()))
    if occupied and not force:
        raise BackupError(f"{root} is not empty: restore into an empty folder, or replace it with --force")
    if backup == root or backup.is_relative_to(root):
        raise BackupError(f"the backup {backup} is inside the warehouse {root}")
    root.parent.mkdir(parents=True, exist_ok=True)
    work = root.parent / f".{root.name}.restoring-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    total = 0
    try:
        for sha, rel in listed:
            total += _copy_checked(backup / rel, work / rel, sha)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    kept = _swap_in(work, root) if occupied else _move_in(work, root)
    warehouse = Warehouse.at(root, vectors_uri=str(root / "vectors"))
    original = Path(manifest.get("media_root") or warehouse.media_root)
    if not warehouse.settings_path.exists() and not _has_files(warehouse.media_root) and _has_files(original):
        warehouse = Warehouse.at(root, media_root=original, vectors_uri=str(root / "vectors"))
        warehouse.remember_media_root()  # the files stay where they were: their keys are relative to it
    catalog.ensure_tables(warehouse)  # (not Warehouse.ensure: it would make a media root that is not there)
    catalog.sync_catalog_file(warehouse)
    media_root = warehouse.media_root
    return RestoreResult(root, manifest, len(listed), total, kept, media_root, _has_files(media_root))


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _copy_checked(source: Path, dest: Path, sha: str) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        with open(source, "rb") as src, open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise BackupError(f"{source} is missing from the backup") from None
    if digest.hexdigest() != sha:
        raise BackupError(f"{source} does not match its sha256 in {SUMS}: the backup is corrupt")
    return size


def _move_in(work: Path, root: Path) -> list[str]:
    try:
        if root.exists():
            root.rmdir()  # empty
        os.rename(work, root)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return []


def _swap_in(work: Path, root: Path) -> list[str]:
    """Replace the warehouse at `root` with `work`, moving its instance and media folder over first (and back,
    if the swap fails)."""
    kept = []
    aside = root.parent / f".{root.name}.replaced-{uuid.uuid4().hex[:8]}"
    try:
        for name in KEPT_ON_RESTORE:
            if (root / name).exists():
                os.rename(root / name, work / name)
                kept.append(name)
        os.rename(root, aside)
        os.rename(work, root)
    except BaseException:
        if aside.exists() and not root.exists():
            os.rename(aside, root)
        for name in kept:
            if (work / name).exists():
                os.rename(work / name, root / name)
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return kept
