"""Telling a full disk from other storage failures (issue 12, item 4).

SQLite reports a full disk as SQLITE_FULL ("database or disk is full") when a write needs a page
it cannot get, and as an I/O error when it cannot grow its WAL index (e.g. opening a home on a
full disk). Both become `DiskFull`, whose message names the home and the space left.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from p2pnode.errors import DiskFull

#: free bytes below which an SQLite I/O error is taken for a full disk
FULL_BELOW = 1_000_000


def free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def disk_full_error(exc: sqlite3.Error, home: Path) -> DiskFull | None:
    """`DiskFull` when `exc` means the disk (or the database's page limit) is full, else None."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    free = free_bytes(home)
    # an I/O error, a read-only fallback or a file it could not create, with no room left
    no_room = code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)
    if code == sqlite3.SQLITE_FULL or "disk is full" in str(exc) or (
            no_room and free < FULL_BELOW):
        return DiskFull(f"the disk holding {home} is full ({free // 1_000_000} MB free)")
    return None
