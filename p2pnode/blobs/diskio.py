"""Low-level file I/O for blobs: exact reads and writes at offsets, temporary files created with
O_EXCL, atomic replacement, and a rename that never replaces. Rules: a temporary file is fsynced
before it is renamed into place, and a rename is followed by a directory fsync."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from p2pnode.blobs.errors import BlobStoreError, DestinationExists
from p2pnode.files import fsync_directory

TEMP_PREFIX = ".tmp-"
Buffer = bytes | bytearray | memoryview


def os_reason(exc: OSError) -> str:
    """An OS error in a few words (\"No space left on device\"), without the path."""
    return os.strerror(exc.errno) if exc.errno else str(exc)



O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def create_temp(directory: Path, prefix: str, mode: int) -> tuple[int, Path]:
    """Create a new empty file with a random name (O_EXCL); `mode` is filtered by the umask."""
    for _ in range(100):
        path = directory / f"{prefix}{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_CLOEXEC, mode)
        except FileExistsError:
            continue
        return fd, path
    raise BlobStoreError(f"could not create a temporary file in {directory}")


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def pwritev_all(fd: int, pieces: Sequence[Buffer], offset: int) -> None:
    """Write consecutive pieces at `offset` with one system call (a short write is finished
    piece by piece)."""
    if len(pieces) == 1 or not hasattr(os, "pwritev"):
        for piece in pieces:
            pwrite_all(fd, piece, offset)
            offset += len(piece)
        return
    written = os.pwritev(fd, pieces, offset)
    for piece in pieces:
        size = len(piece)
        if written < size:
            pwrite_all(fd, memoryview(piece)[written:], offset + written)
            written = size
        written -= size
        offset += size


def pread_exact(fd: int, length: int, offset: int) -> bytes:
    """Read `length` bytes at `offset`; fewer only at end of file (the caller's check fails)."""
    data = os.pread(fd, length, offset)
    if len(data) == length or not data:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, never a mix."""
    fd, tmp = create_temp(path.parent, TEMP_PREFIX, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        fsync_directory(path.parent)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)



def rename_no_replace(src: Path, dest: Path) -> None:
    """Rename `src` to `dest`, failing with `DestinationExists` rather than replacing it.

    A hard link fails atomically when `dest` exists; file systems without links (FAT on a USB
    stick) fall back to check-then-rename, which a racing writer could still beat.
    """
    try:
        os.link(src, dest)
    except FileExistsError:
        raise DestinationExists(f"{dest} exists; not overwriting it") from None
    except OSError:
        if dest.exists() or dest.is_symlink():
            raise DestinationExists(f"{dest} exists; not overwriting it") from None
        os.replace(src, dest)
        return
    src.unlink()
