"""Small file helpers: a file is reported written only once it, and its name, are on disk; and a
file's size as people read it (one wording for the CLI, the app and error messages).
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


def human_size(n: int | None) -> str:
    """``512 bytes``, ``1.5 KiB``, ``12.3 MiB``, ``1.1 GiB``, ``2.0 TiB``; ``?`` when unknown."""
    if n is None:
        return "?"
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if round(value, 1) < 1024:  # 1 048 575 bytes is "1.0 MiB", not "1024.0 KiB"
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
