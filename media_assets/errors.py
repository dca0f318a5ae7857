"""Errors that cross layers: raised in one, reported in another (a failed partition, a CLI line, an HTTP
status). The others live beside the code that raises them (`SearchError` in search, `FeedbackError` in
feedback, `IndexFileError` in models.hnsw, ...)."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
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


# errno values that mean "no room for this write": the disk is full, a quota is reached, or the file would
# pass the process's file-size limit (RLIMIT_FSIZE)
STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# how Arrow and Lance (Rust) report them: an OSError without errno, or a RuntimeError with the OS's words
_STORAGE_FULL_WORDS = re.compile(
    "|".join(
        [rf"(?:os error|errno) {code}\b" for code in sorted(STORAGE_FULL_ERRNOS)]
        + [re.escape(os.strerror(code)) for code in sorted(STORAGE_FULL_ERRNOS)]
    ),
    re.IGNORECASE,
)


class StorageFullError(OSError):
    """A write into the warehouse found no room: the disk is full (ENOSPC), a quota is reached (EDQUOT) or
    the file would pass the file-size limit (EFBIG). The message names what was written and the file. The
    writers write a temporary file and rename it (or commit one LanceDB version), so the files that were
    there before are unchanged; free space and run it again."""

    def __init__(self, what: str, path: Path | str, detail: str = "", code: int = errno.ENOSPC):
        self.what, self.path, self.detail = what, str(path), detail
        self.message = (
            f"{what}: disk full (no room to write {path}{': ' + detail if detail else ''}); "
            "the previous files are unchanged: free space and run it again"
        )
        super().__init__(code, self.message, self.path)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # pickles (Dagster sends errors between processes) with its own arguments
        return type(self), (self.what, self.path, self.detail, self.errno)


def is_storage_full(exc: BaseException | None) -> bool:
    """True when `exc`, or an exception it came from, says there is no room to write (see STORAGE_FULL_ERRNOS)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in STORAGE_FULL_ERRNOS:
            return True
        if isinstance(exc, (OSError, RuntimeError)) and _STORAGE_FULL_WORDS.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def storage_full_as_error(what: str, path: Path | str) -> Iterator[None]:
    """Turn an error that says the disk is full (whichever library raised it) into a StorageFullError
    naming `what` was being written and `path`; other errors pass unchanged."""
    try:
        yield
    except StorageFullError:
        raise
    except (OSError, RuntimeError) as exc:
        if not is_storage_full(exc):
            raise
        code = exc.errno if isinstance(exc, OSError) and exc.errno in STORAGE_FULL_ERRNOS else errno.ENOSPC
        raise StorageFullError(what, path, str(exc).splitlines()[0] if str(exc) else "", code) from exc
