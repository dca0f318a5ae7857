"""media_assets: a Dagster-built media warehouse of frames, CLIP vectors, shots, faces, clusters and metadata.

The public Python API needs no Dagster::

    from media_assets import SearchClient, SearchFilter

    client = SearchClient("warehouse")
    client.search_text("a cat on a sofa", k=10, filters=SearchFilter(kind="video"))

Names are imported on first use, so `import media_assets` stays light (no LanceDB, no torch).
"""

import os as _os
from importlib import import_module as _import_module

# OpenCV and its FFmpeg backend print warnings for every unreadable file; the library reports those
# itself (ingest_errors, MediaReadError), so keep their own chatter off stderr unless asked for.
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Warehouse": "media_assets.warehouse",
    "SearchClient": "media_assets.search.client",
    "SearchFilter": "media_assets.search.client",
    "SearchError": "media_assets.search.client",
    "UnknownIdError": "media_assets.search.client",
    "SearchHit": "media_assets.search.client",
    "SearchResults": "media_assets.search.client",
    "Moment": "media_assets.search.client",
    "MomentResults": "media_assets.search.client",
    "Timeline": "media_assets.search.client",
    "VideoHit": "media_assets.search.client",
    "VideoResults": "media_assets.search.client",
    "ChapterHit": "media_assets.search.summaries",
    "ChapterResults": "media_assets.search.client",
    "Chapters": "media_assets.store.chapters",
    "cosine_to_similarity": "media_assets.search.client",
    "FeedbackWriter": "media_assets.feedback.table",
    "FeedbackError": "media_assets.feedback.table",
    "pin_member": "media_assets.feedback.pins",
    "name_cluster": "media_assets.feedback.pins",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
