"""Embedding adapters on disk, and which vectors to serve.

`<warehouse>/models/adapters/`: one folder per version (`v0001/`, ... written by `stages.adapter`, in the
format of `models.adapter.EmbeddingAdapter`), `current.json` naming the current version (0, or no file:
no adapter), and one stamp per adapted LanceDB table (`adapted_frame_vectors.json`, ...) saying which
adapter version wrote it and how many rows it had then.

`serving_store` is what the index, the clusters and the search client read: the adapted table when the
current adapter made all of it, else the base table. `forget_adapted_media` takes a deleted file's rows out
of the adapted tables and keeps their stamps true.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from media_assets.errors import storage_full_as_error
from media_assets.store.catalog import remove_dead_temps, temp_path
from media_assets.store.vectors import FACE_VECTORS, FRAME_VECTORS, SHOT_VECTORS, VectorStore
from media_assets.warehouse import Warehouse

ADAPTED = {
    FRAME_VECTORS: "adapted_frame_vectors",
    SHOT_VECTORS: "adapted_shot_vectors",
    FACE_VECTORS: "adapted_face_vectors",
}


def adapters_dir(warehouse: Warehouse) -> Path:
    return warehouse.models_dir / "adapters"


def version_dir(warehouse: Warehouse, version: int) -> Path:
    return adapters_dir(warehouse) / f"v{version:04d}"


def current_version(warehouse: Warehouse) -> int:
    try:
        return int(json.loads((adapters_dir(warehouse) / "current.json").read_text())["version"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def serving_store(warehouse: Warehouse, base_table: str = FRAME_VECTORS) -> VectorStore:
    """The vectors to serve: the adapted table if the current adapter made it (all of it), else the base."""
    version = current_version(warehouse)
    if version:
        adapted = VectorStore(warehouse, ADAPTED[base_table])
        dataset = adapted.dataset()
        if dataset is not None:
            stamp = adapted_stamp(warehouse, base_table)
            if (
                stamp is not None
                and stamp.get("adapter_version") == version
                and stamp.get("rows") == dataset.count_rows()
            ):
                return adapted
    return VectorStore(warehouse, base_table)


def write_json(path: Path, data: dict, what: str) -> None:
    """Write `data` to `path` as one JSON line, atomically (a temporary file renamed over it): a reader sees the
    old file or the new one, never half of one, even after a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path.parent, path.name)
    tmp = temp_path(path)
    try:
        with storage_full_as_error(what, path):
            tmp.write_text(json.dumps(data) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def stamp_path(warehouse: Warehouse, base_table: str) -> Path:
    return adapters_dir(warehouse) / f"{ADAPTED[base_table]}.json"


def adapted_stamp(warehouse: Warehouse, base_table: str) -> dict | None:
    try:
        return json.loads(stamp_path(warehouse, base_table).read_text())
    except (FileNotFoundError, ValueError):
        return None


def forget_adapted_media(warehouse: Warehouse, media_id: int) -> None:
    """Delete one media file's rows from the adapted tables (its file is gone), keeping each table's stamp
    true: a table the current adapter made whole stays served (see `serving_store`)."""
    for base, adapted_name in ADAPTED.items():
        store = VectorStore(warehouse, adapted_name)
        dataset = store.dataset()
        if dataset is None:
            continue
        stamp = adapted_stamp(warehouse, base)
        was_whole = stamp is not None and stamp.get("rows") == dataset.count_rows()
        store.delete_media(media_id)
        if was_whole:
            stamp["rows"] = store.count()
            write_json(stamp_path(warehouse, base), stamp, f"the stamp of {adapted_name}")
