"""Errors that cross layers: raised in one, reported in another (a failed partition, a CLI line, an HTTP
status). The others live beside the code that raises them (`SearchError` in search, `FeedbackError` in
feedback, `IndexFileError` in models.hnsw, ...)."""

from __future__ import annotations

from pathlib import Path


class MediaReadError(Exception):
    """A media file cannot be read. The message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ModelLoadError(RuntimeError):
    """A model (CLIP, by id or folder) cannot be loaded; the message says which and why."""


class MissingFramesError(RuntimeError):
    """A stage needs rows an earlier stage writes (frames, keyframes) and they are not there: materialize it first."""
