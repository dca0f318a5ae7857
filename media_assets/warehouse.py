"""Where the warehouse lives: one folder, with a fixed layout below it.

```
<warehouse>/                     MEDIA_ASSETS_WAREHOUSE, default ./warehouse
  catalog.duckdb                 views over tables/ (open it with the DuckDB CLI)
  settings.json                  the media root chosen with `media-assets ingest --media DIR`
  tokens.json                    the API tokens' names, roles and SHA-256 (`media-assets tokens`), 0600
  tables/<table>/<media_id>.parquet   per-partition facts (media, frames, ingest_errors)
  vectors/                       LanceDB database (MEDIA_ASSETS_VECTORS_URI may point elsewhere, e.g. s3://)
  frames/<media_id>/<seq>-<digest>.jpg   JPEG thumbnails of sampled frames (named by content)
  media/                         the default media root (MEDIA_ASSETS_MEDIA_ROOT moves it)
  index/  models/                later stages (HNSW index files, trained adapters)
  dagster/                       the Dagster instance's storage (runs, event logs, schedules)
```

Nothing here imports Dagster: the library and the search client use this without it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

WAREHOUSE_ENV = "MEDIA_ASSETS_WAREHOUSE"
MEDIA_ROOT_ENV = "MEDIA_ASSETS_MEDIA_ROOT"
VECTORS_URI_ENV = "MEDIA_ASSETS_VECTORS_URI"
DEFAULT_WAREHOUSE = "warehouse"


@dataclass(frozen=True)
class Warehouse:
    """The paths of one warehouse. Build it with `Warehouse.at(...)` or `Warehouse.from_env()`."""

    root: Path
    media_root: Path
    vectors_uri: str

    @classmethod
    def at(
        cls,
        root: str | os.PathLike | None = None,
        *,
        media_root: str | os.PathLike | None = None,
        vectors_uri: str | None = None,
    ) -> Warehouse:
        """A warehouse at `root` (default: $MEDIA_ASSETS_WAREHOUSE, else ./warehouse).

        The media root defaults to $MEDIA_ASSETS_MEDIA_ROOT, else the one recorded in
        `<root>/settings.json` (by `remember_media_root`), else `<root>/media`; the vectors URI to
        $MEDIA_ASSETS_VECTORS_URI, else `<root>/vectors`.
        """
        root_path = Path(root or os.environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE).expanduser().resolve()
        media = (
            media_root
            or os.environ.get(MEDIA_ROOT_ENV)
            or _settings(root_path).get("media_root")
            or root_path / "media"
        )
        vectors = vectors_uri or os.environ.get(VECTORS_URI_ENV) or str(root_path / "vectors")
        return cls(root=root_path, media_root=Path(media).expanduser().resolve(), vectors_uri=str(vectors))

    from_env = at

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    @property
    def thumbnails_dir(self) -> Path:
        return self.root / "frames"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def face_crops_dir(self) -> Path:
        return self.root / "faces"

    def thumbnail_dir(self, media_id: int) -> Path:
        return self.thumbnails_dir / str(media_id)

    def face_crop_dir(self, media_id: int) -> Path:
        return self.face_crops_dir / str(media_id)

    def ensure(self) -> Warehouse:
        """Create the folders (idempotent) and return self."""
        for path in (self.root, self.media_root, self.tables_dir, self.thumbnails_dir):
            path.mkdir(parents=True, exist_ok=True)
        if "://" not in self.vectors_uri:
            Path(self.vectors_uri).mkdir(parents=True, exist_ok=True)
        return self

    @property
    def settings_path(self) -> Path:
        return self.root / "settings.json"

    def remember_media_root(self) -> None:
        """Record this media root in settings.json, so every process opening the warehouse (the Dagster
        code location, the search client) finds the same files under the same partition keys."""
        self.root.mkdir(parents=True, exist_ok=True)
        settings = _settings(self.root)
        settings["media_root"] = str(self.media_root)
        tmp = self.settings_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(settings, indent=2) + "\n")
        os.replace(tmp, self.settings_path)

    def contains(self, path: str | os.PathLike) -> bool:
        """True when `path` (after resolving links and `..`) lies inside the warehouse or the media root."""
        resolved = Path(path).resolve()
        return resolved.is_relative_to(self.root) or resolved.is_relative_to(self.media_root)


def _settings(root: Path) -> dict:
    try:
        return json.loads((root / "settings.json").read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{root / 'settings.json'} is not readable JSON ({exc}); fix or delete it") from exc
