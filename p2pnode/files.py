"""Small durable-file helpers: a file is reported written only once it, and its name, are on disk.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Make a new or renamed entry in directory `path` durable (no-op where unsupported)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file and a rename: never half-written.

    Raises:
        OSError: the file could not be written; no temporary file is left behind.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
