"""The HNSW index's files in `<warehouse>/index/`: where they are, and the manifest that says what the
index holds.

- `frames.hnsw`: the index (the versioned binary format documented in `media_assets.models.hnsw`);
- `frames.manifest.json`: the model id, the HNSW parameters, the LanceDB table and version the index was
  built from (`vectors_table`: `frame_vectors`, or `adapted_frame_vectors` when an adapter is current, with
  its `adapter_version`), and per media file the run that wrote its vectors and how many there are.

Both are written atomically (temporary file + rename): the index first, then the manifest
(`stages.hnsw_index` writes them; `search.index` reads them).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from media_assets.errors import storage_full_as_error
from media_assets.warehouse import Warehouse

INDEX_FILE = "frames.hnsw"
MANIFEST_FILE = "frames.manifest.json"
MANIFEST_VERSION = 1


@dataclass
class Manifest:
    model_id: str
    dim: int
    params: dict
    vectors_version: int
    media: dict[str, list]  # str(media_id) → [run_id, vector count]
    node_count: int
    live_count: int
    updated_at: str
    version: int = MANIFEST_VERSION
    vectors_table: str = "frame_vectors"  # or adapted_frame_vectors, when an adapter is current
    adapter_version: int = 0

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        try:
            data = json.loads(path.read_text())
            if data.get("version") != MANIFEST_VERSION:
                return None
            return cls(**data)
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def write(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with storage_full_as_error("the frame index manifest", path):
                tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def index_path(warehouse: Warehouse) -> Path:
    return warehouse.index_dir / INDEX_FILE


def manifest_path(warehouse: Warehouse) -> Path:
    return warehouse.index_dir / MANIFEST_FILE
