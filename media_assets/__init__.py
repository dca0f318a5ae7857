"""media_assets: a Dagster-built media warehouse of frames, CLIP vectors and metadata.

The search client needs no Dagster: `from media_assets import SearchClient`.
"""

import os as _os

# OpenCV and its FFmpeg backend print warnings for every unreadable file; the library reports those
# itself (ingest_errors, MediaReadError), so keep their own chatter off stderr unless asked for.
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__version__ = "0.1.0"

_EXPORTS = {
    "SearchClient": "search",
    "SearchError": "search",
    "SearchHit": "search",
    "SearchResults": "search",
    "Warehouse": "warehouse",
}


def __getattr__(name: str):
    """Import on first use, so `import media_assets.demo` does not load LanceDB and torch."""
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["SearchClient", "SearchError", "SearchHit", "SearchResults", "Warehouse", "__version__"]
