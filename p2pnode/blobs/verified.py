"""What the blob store remembers about chunks that verified: in memory per chunk
(`VerifiedChunks`), and across restarts per blob as a `.verified` sidecar keyed by the file's
identity and times (see `p2pnode.blobs.store`'s docstring for the trade-off)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

VERIFIED_SUFFIX = ".verified"
_SIDECAR_TAG = b"p2pnode-verified-1"


def format_sidecar(key: tuple[int, ...]) -> bytes:
    return _SIDECAR_TAG + b" " + " ".join(str(n) for n in key).encode() + b"\n"


def parse_sidecar(data: bytes) -> tuple[int, ...] | None:
    fields = data.split()
    if len(fields) != 6 or fields[0] != _SIDECAR_TAG:
        return None
    try:
        return tuple(int(f) for f in fields[1:])
    except ValueError:
        return None


def file_key(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is replaced or written to (see `VerifiedChunks`)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class VerifiedChunks:
    """Chunks of complete blobs that verified against their manifest, per blob, for as long as
    the blob's file keeps the same `file_key` (a replaced or rewritten file starts afresh).

    Bounded: the least recently used blob is forgotten beyond `max_blobs`. Thread-safe.
    """

    def __init__(self, max_blobs: int) -> None:
        self._max = max_blobs
        self._lock = threading.Lock()
        # per blob: (file key, one byte per chunk, [how many are set])
        self._blobs: OrderedDict[bytes, tuple[tuple[int, ...], bytearray, list[int]]] = (
            OrderedDict()
        )

    def has(self, blob_id: bytes, key: tuple[int, ...], index: int) -> bool:
        with self._lock:
            entry = self._blobs.get(blob_id)
            if entry is None or entry[0] != key:
                return False
            self._blobs.move_to_end(blob_id)
            return 0 <= index < len(entry[1]) and entry[1][index] == 1

    def add(self, blob_id: bytes, key: tuple[int, ...], index: int, count: int) -> bool:
        """Remember chunk `index`; True when that made every chunk of the blob verified."""
        with self._lock:
            entry = self._blobs.get(blob_id)
            if entry is None or entry[0] != key or len(entry[1]) != count:
                entry = (key, bytearray(count), [0])
                self._blobs[blob_id] = entry
            self._blobs.move_to_end(blob_id)
            bits, done = entry[1], entry[2]
            newly = not bits[index]
            if newly:
                bits[index] = 1
                done[0] += 1
            while len(self._blobs) > self._max:
                self._blobs.popitem(last=False)
            return newly and done[0] == count

    def add_all(self, blob_id: bytes, key: tuple[int, ...], count: int) -> None:
        """Remember every chunk of the blob as verified (it was known good as a whole)."""
        with self._lock:
            self._blobs[blob_id] = (key, bytearray(b"\x01") * count, [count])
            self._blobs.move_to_end(blob_id)
            while len(self._blobs) > self._max:
                self._blobs.popitem(last=False)

    def forget(self, blob_id: bytes) -> None:
        with self._lock:
            self._blobs.pop(blob_id, None)
