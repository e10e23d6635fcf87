"""A download in progress: a sparse `.part` file, the bitmap of chunks on disk, and its flushing.

Rules it keeps: only chunks that verified against the manifest are written; a bit in a persisted
bitmap implies its chunk is on disk (the .part is fsynced before the bitmap that covers it is
written, by temp file and rename); bitmap writes are batched (`_FLUSH_EVERY_CHUNKS` chunks or
`_FLUSH_INTERVAL_S`) and done by a short-lived thread of its own from a snapshot, one at a time,
joined on close; a failed flush is sticky (Linux reports an fsync error once), so nothing more is
claimed after one.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from p2pnode.blobs.diskio import Buffer, atomic_write, os_reason, pwritev_all
from p2pnode.blobs.errors import BlobStoreError, InsufficientSpace, blob_hex
from p2pnode.files import fsync_directory
from protocol.blobs import Bitmap, Manifest, verify_chunk_pieces

if TYPE_CHECKING:
    from p2pnode.blobs.store import BlobStore

#: 16 MiB: each flush is three fsyncs (the .part, the new bitmap, the directory); flushing
#: every 4 MiB cost ~8% of a download's CPU on the bench.
_FLUSH_EVERY_CHUNKS = 64
_FLUSH_INTERVAL_S = 0.5


class PartialBlob:
    """One download in progress: a sparse .part file, its held bitmap, its manifest.

    Get it from `BlobStore.start_download`. Thread-safe; each chunk is verified before it is
    written, so only good bytes ever reach the .part.
    """

    def __init__(self, store: BlobStore, manifest: Manifest, fd: int, held: Bitmap) -> None:
        self.store = store
        self.manifest = manifest
        self.blob_id = manifest.blob_id
        self._fd = fd
        self._held = held
        self._lock = threading.Lock()
        self._pending = 0
        self._last_flush = time.monotonic()
        self._closed = False
        #: the background flush in progress, if any (started and joined under `_lock`)
        self._flusher: threading.Thread | None = None
        self._flush_error: OSError | None = None

    @property
    def held(self) -> Bitmap:
        """A copy of the chunks written so far (some may not be persisted yet)."""
        with self._lock:
            return self._held.copy()

    @property
    def held_count(self) -> int:
        return self._held.count_set

    @property
    def is_complete(self) -> bool:
        """Every chunk is written (then call `complete`)."""
        return self._held.all_set

    @property
    def path(self) -> Path:
        return self.store.path_for(self.blob_id, ".part")

    def write_chunk(self, index: int, data: Buffer | Sequence[Buffer]) -> bool:
        """Verify chunk `index` and write it at its offset.

        Args:
            data: the chunk, or a list (or tuple) of consecutive pieces of it (as they arrived;
                hashed and written without joining them).

        Returns:
            False, writing nothing, when `data` is not that chunk (wrong index, length or
            hash); True when it is written (or was already held).

        Raises:
            InsufficientSpace: the disk filled up (the chunk is not marked held).
            BlobStoreError: the download was closed, the chunk could not be written, or saving
                the download's progress failed earlier (then nothing more is written or
                claimed: see `_flush_error`).
        """
        pieces = data if isinstance(data, list | tuple) else (data,)
        if not verify_chunk_pieces(self.manifest, index, pieces):
            return False
        with self._lock:
            self._check_open()
            self._raise_flush_error()
            if self._held[index]:
                return True
            try:
                pwritev_all(self._fd, pieces, self.manifest.chunk_offset(index))
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    free = shutil.disk_usage(self.store.root).free
                    length = self.manifest.chunk_length(index)
                    raise InsufficientSpace(length, free, f"chunk {index}") from None
                raise BlobStoreError(f"cannot write chunk {index}: {os_reason(exc)}") from None
            self._held.set(index)
            self._pending += 1
            if (
                self._pending >= _FLUSH_EVERY_CHUNKS
                or time.monotonic() - self._last_flush >= _FLUSH_INTERVAL_S
            ) and (self._flusher is None or not self._flusher.is_alive()):
                self._start_flush_locked()
        return True

    def flush(self) -> None:
        """Make every written chunk durable and persist the bitmap now.

        Raises:
            BlobStoreError: this flush or an earlier one failed.
        """
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def _start_flush_locked(self) -> None:
        # The snapshot claims only chunks whose pwritev has returned: the fsync that starts
        # after it covers them all (and maybe more, which a later flush will claim).
        if self._flush_error is not None:
            return
        snapshot = self._held.to_bytes()
        self._pending = 0
        self._last_flush = time.monotonic()
        flusher = threading.Thread(
            target=self._flush_in_background, args=(snapshot,),
            name="p2pnode-flush", daemon=True,
        )
        try:
            flusher.start()
        except RuntimeError:  # no thread to be had (a process or pids limit): flush here
            self._flush_in_background(snapshot)
            return
        self._flusher = flusher

    def _flush_in_background(self, snapshot: bytes) -> None:
        try:
            self._persist(snapshot)
        except OSError as exc:
            self._flush_error = exc

    def _persist(self, bitmap: bytes) -> None:
        # Order matters: data on disk first, then the bits that claim it.
        os.fsync(self._fd)
        atomic_write(self.store.path_for(self.blob_id, ".bitmap"), bitmap)

    def _join_flusher_locked(self) -> None:
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None

    def _raise_flush_error(self) -> None:
        # Sticky: after a failed fsync Linux may report success for the same pages next
        # time, so nothing written since the last good flush can be trusted to be on disk.
        # No bit is persisted again and the download ends; a later one resumes from the
        # last good bitmap and fetches the rest again.
        exc = self._flush_error
        if exc is not None:
            raise BlobStoreError(f"cannot save the download's progress: {os_reason(exc)}")

    def _flush_locked(self) -> None:
        self._join_flusher_locked()
        self._raise_flush_error()
        try:
            self._persist(self._held.to_bytes())
        except OSError as exc:
            self._flush_error = exc
            self._raise_flush_error()
        self._pending = 0
        self._last_flush = time.monotonic()

    def complete(self) -> Path:
        """Turn the finished .part into the complete blob and return its path.

        Chunks were verified as they were written, so this only fsyncs and renames.

        Raises:
            BlobStoreError: chunks are still missing, or the download was closed (nothing
                changes); saving the progress failed earlier, or the disk refused the final
                fsync or rename (the download is closed; the .part and its last good bitmap
                stay for a later fetch to resume).
        """
        with self._lock:
            self._check_open()
            missing = len(self._held) - self._held.count_set
            if missing:
                raise BlobStoreError(
                    f"blob {blob_hex(self.blob_id)} has {missing} of {len(self._held)} "
                    "chunks missing"
                )
            try:
                try:
                    self._join_flusher_locked()
                    self._raise_flush_error()
                    os.fsync(self._fd)
                    written = os.fstat(self._fd)
                finally:
                    self._close_locked()
                final = self.store.path_for(self.blob_id)
                part = self.store.path_for(self.blob_id, ".part")
                if final.is_file():
                    part.unlink(missing_ok=True)  # the same content arrived by add_file
                    installed = False
                else:
                    os.replace(part, final)
                    installed = True
                self.store.path_for(self.blob_id, ".bitmap").unlink(missing_ok=True)
                fsync_directory(self.store.root)
            except OSError as exc:
                raise BlobStoreError(
                    f"cannot finish blob {blob_hex(self.blob_id)}: {os_reason(exc)}"
                ) from None
            finally:
                self.store.forget_partial(self.blob_id)
            if installed:  # every chunk verified before it was written
                self.store.mark_whole(self.blob_id, written, self.manifest.chunk_count)
        return final

    def cancel(self) -> None:
        """Stop for now, keeping the .part and bitmap to resume later. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_locked()
            finally:
                self._close_locked()
                self.store.forget_partial(self.blob_id)

    def discard(self) -> None:
        """Stop and delete the partial download. Safe to call twice."""
        with self._lock:
            if not self._closed:
                self._close_locked()
            for suffix in (".part", ".bitmap"):
                self.store.path_for(self.blob_id, suffix).unlink(missing_ok=True)
            self.store.drop_manifest_unless_complete(self.blob_id)
        self.store.forget_partial(self.blob_id)

    def _close_locked(self) -> None:
        if self._closed:
            return
        try:
            self._join_flusher_locked()
        finally:
            os.close(self._fd)
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BlobStoreError(f"download of blob {blob_hex(self.blob_id)} is closed")
