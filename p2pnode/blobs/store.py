"""Blobs on disk, named by content id; partial downloads that survive a restart.

Layout under the store's root (every name comes from a 32-byte blob id, never from a peer or a
resource title, so nothing a peer sends can choose or escape a path):

    <hex>            a complete blob
    <hex>.manifest   its manifest (complete and partial blobs alike)
    <hex>.part       a download in progress, preallocated (sparse) to the blob's size
    <hex>.bitmap     which chunks of the .part are on disk (`protocol.blobs.Bitmap` bytes)
    <hex>.verified   the complete blob's file identity and times when it was last known to match
                     its manifest as a whole (see "Serving" below)
    .tmp-*           files being written; renamed into place only once complete and fsynced

Rules it keeps:
- A complete blob matches its manifest: `add_file` hashes exactly the bytes it copies, and a
  download writes only chunks that verified. `read_chunk` and `export_to` still re-verify what
  they read, so a file damaged on disk is never served or exported (`CorruptBlob`).
- Serving verifies each chunk once per file state: a chunk that verified is remembered (in
  memory, `_VerifiedChunks`) against the file's identity and times (device, inode, size, mtime,
  ctime), so serving it again skips SHA-256 until the file changes. A read during which the
  file changed is verified and not remembered.
- That memory survives a restart for blobs known good as a whole: when `add_file` installs a
  blob (it hashed exactly the bytes it wrote), when a download completes (every chunk verified
  before it was written), or once every chunk of a blob verified while serving, the store
  writes ``<hex>.verified`` (by rename, not fsynced) with the file's (st_dev, st_ino, st_size,
  st_mtime_ns, st_ctime_ns). A later process serves that blob without hashing while the file's
  stat still matches; any mismatch (written to, even with its mtime put back: the ctime moves;
  replaced; touched; hard-linked) drops the sidecar and goes back to verifying chunk by chunk.
  Trade-off: damage that changes no metadata at all (silent bit rot under an unchanged inode,
  or an in-place write within the same coarse timestamp tick as our check: file systems move
  ctime in steps of a few ms) is no longer caught by us before sending. The receiver verifies
  every chunk against the manifest and asks another peer, so nobody keeps bad bytes; we just
  lose score with that peer.
  `export_to` still verifies everything it copies.
- A bit in a persisted bitmap implies its chunk is on disk: the .part is fsynced before the
  bitmap that covers it is written (temp file, fsync, `os.replace`). Bitmap writes are batched
  (`_FLUSH_EVERY_CHUNKS` chunks or `_FLUSH_INTERVAL_S`); a crash loses at most that much.
  A batch is flushed by a short-lived thread of its own, from a snapshot of the bitmap taken
  after the chunks it claims were written, so hashing and writing the next chunks never wait
  for the disk; one flush at a time, and closing waits for it.
- Memory stays flat: files move in 1 MiB pieces, chunks are read one at a time.

Synchronous and thread-safe. Calls are short (one chunk, one manifest), except `add_file` and
`export_to`, which stream a whole file and report progress (the node runs those, and anything
that fsyncs, in a worker thread). Reading a chunk to serve and writing one received chunk
(`read_chunk_pieces`, `PartialBlob.write_chunk`) take well under a millisecond from the page
cache, and the node may call them on its event loop; they never wait for an fsync or for
`_lock` held across one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from p2pnode.errors import NodeError
from protocol.blobs import (
    BLOB_ID_SIZE,
    MAX_BLOB_SIZE,
    Bitmap,
    Manifest,
    ManifestBuilder,
    decode_manifest,
    max_manifest_size,
    verify_chunk,
    verify_chunk_pieces,
)
from protocol.errors import MalformedError

#: Free space kept in reserve beyond a blob's size before a download or add is accepted.
SPACE_MARGIN = 64 * 1024 * 1024

_COPY_PIECE = 1024 * 1024
#: 16 MiB: each flush is three fsyncs (the .part, the new bitmap, the directory); flushing
#: every 4 MiB cost ~8% of a download's CPU on the bench.
_FLUSH_EVERY_CHUNKS = 64
_FLUSH_INTERVAL_S = 0.5
_MANIFEST_CACHE = 64
#: Blobs whose verified chunks are remembered (at most one byte per chunk: 16 KiB for 4 GiB).
_VERIFIED_CACHE = 64
_STALE_TEMP_S = 3600
_TEMP_PREFIX = ".tmp-"
_BLOB_NAME = re.compile(r"[0-9a-f]{64}")

ProgressCallback = Callable[[int, int], None]
Buffer = bytes | bytearray | memoryview


# Will become a subclass of the package-wide NodeError; kept on Exception until that exists.
class BlobStoreError(NodeError):
    """Base of every error the blob store raises; the message is one line for a person."""


class BlobNotFound(BlobStoreError):
    """No complete blob (or no such chunk) with this id in the store."""


class InsufficientSpace(BlobStoreError):
    """Not enough free disk space for a blob.

    Attributes:
        needed: bytes the operation needs free (the blob plus `SPACE_MARGIN`).
        available: bytes free on the store's file system.
    """

    def __init__(self, needed: int, available: int, what: str) -> None:
        super().__init__(
            f"not enough disk space for {what}: need {_human(needed)}, "
            f"only {_human(available)} free"
        )
        self.needed = needed
        self.available = available


class CorruptBlob(BlobStoreError):
    """A stored blob or manifest no longer matches its content id (damaged on disk)."""


class BlobTooLarge(BlobStoreError):
    """A file larger than the store accepts.

    Attributes:
        size: the file's size in bytes (as far as it was read).
        limit: the store's `max_blob_size`.
    """

    def __init__(self, size: int, limit: int, what: str) -> None:
        super().__init__(f"{what} is {_human(size)}, larger than the {_human(limit)} limit")
        self.size = size
        self.limit = limit


class DestinationExists(BlobStoreError):
    """`export_to` would overwrite an existing file and `overwrite` was not given."""


def _human(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def blob_hex(blob_id: bytes) -> str:
    """The file name of a blob: its id in lowercase hex.

    Raises:
        ValueError: `blob_id` is not exactly 32 bytes.
    """
    if not isinstance(blob_id, bytes) or len(blob_id) != BLOB_ID_SIZE:
        raise ValueError(f"a blob id is {BLOB_ID_SIZE} bytes, got {blob_id!r:.80}")
    return blob_id.hex()


class BlobStore:
    """Complete and partial blobs under one directory (see the module docstring for layout).

    Safe to call from several threads: one `PartialBlob` per blob at a time, shared.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_blob_size: int = MAX_BLOB_SIZE,
        space_margin: int = SPACE_MARGIN,
    ) -> None:
        self.root = Path(root)
        self.max_blob_size = max_blob_size
        self.space_margin = space_margin
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # guards installs, removals and the open partials
        #: guards only the manifest cache: serving reads it on the event loop, and must not
        #: wait for an install's fsyncs under `_lock`
        self._cache_lock = threading.Lock()
        self._manifests: OrderedDict[bytes, Manifest] = OrderedDict()
        self._partials: dict[bytes, PartialBlob] = {}
        self._verified = _VerifiedChunks(_VERIFIED_CACHE)
        self._remove_stale_temp()

    # -- paths -------------------------------------------------------------------------------

    def _path(self, blob_id: bytes, suffix: str = "") -> Path:
        return self.root / (blob_hex(blob_id) + suffix)

    def path(self, blob_id: bytes) -> Path:
        """Where a complete blob lives.

        Raises:
            BlobNotFound: it is not complete in this store.
        """
        path = self._path(blob_id)
        if not path.is_file():
            raise BlobNotFound(f"blob {blob_hex(blob_id)} is not in the store")
        return path

    # -- queries -----------------------------------------------------------------------------

    def has(self, blob_id: bytes) -> bool:
        """True when the blob is complete in the store."""
        return self._path(blob_id).is_file()

    def blob_ids(self) -> list[bytes]:
        """Ids of the complete blobs (for ``have_blobs``), sorted."""
        return sorted(
            bytes.fromhex(p.name) for p in self.root.iterdir() if _BLOB_NAME.fullmatch(p.name)
        )

    def partial_ids(self) -> list[bytes]:
        """Ids of the downloads in progress (to resume after a restart), sorted."""
        return sorted(
            bytes.fromhex(p.stem)
            for p in self.root.iterdir()
            if p.suffix == ".part" and _BLOB_NAME.fullmatch(p.stem)
        )

    def manifest(self, blob_id: bytes) -> Manifest | None:
        """The manifest of a complete or partial blob, or None when the store has neither.

        Raises:
            CorruptBlob: the manifest file no longer hashes to the blob id.
        """
        with self._cache_lock:
            cached = self._manifests.get(blob_id)
            if cached is not None:
                self._manifests.move_to_end(blob_id)
                return cached
        if not (self._path(blob_id).is_file() or self._path(blob_id, ".part").is_file()):
            return None
        try:
            with open(self._path(blob_id, ".manifest"), "rb") as f:
                data = f.read(max_manifest_size(self.max_blob_size) + 1)
        except FileNotFoundError:
            return None
        try:
            manifest = decode_manifest(data, blob_id, max_blob_size=self.max_blob_size)
        except MalformedError as exc:
            raise CorruptBlob(f"manifest of blob {blob_hex(blob_id)} is damaged: {exc}") from None
        self._cache(manifest)
        return manifest

    def manifest_bytes(self, blob_id: bytes) -> bytes:
        """The encoded manifest, for a peer that asked for it.

        Raises:
            BlobNotFound: the store has neither the blob nor a partial of it.
        """
        return self._require_manifest(blob_id).encode()

    def read_manifest_piece(self, blob_id: bytes, offset: int, length: int) -> bytes:
        """`length` bytes of the encoded manifest from `offset` (short or empty at its end).

        Raises:
            BlobNotFound: no manifest for this blob.
            ValueError: a negative offset or length.
        """
        if offset < 0 or length < 0:
            raise ValueError(f"offset {offset} and length {length} must be >= 0")
        return self._require_manifest(blob_id).encode()[offset : offset + length]

    def read_chunk(self, blob_id: bytes, index: int) -> bytes:
        """Read chunk `index` of a complete blob, verified against its manifest.

        Raises:
            BlobNotFound: the blob is not complete here, or has no chunk `index`.
            CorruptBlob: the bytes on disk no longer match the manifest.
        """
        return self.read_chunk_pieces(blob_id, index, self._require_manifest(blob_id).chunk_size)[0]

    def read_chunk_pieces(self, blob_id: bytes, index: int, piece_size: int) -> list[bytes]:
        """Read chunk `index` of a complete blob as consecutive pieces of `piece_size` bytes
        (the last may be shorter), verified against its manifest.

        A chunk that verified before, with the file unchanged since (`_VerifiedChunks`), is not
        hashed again.

        Raises:
            BlobNotFound: the blob is not complete here, or has no chunk `index`.
            CorruptBlob: the bytes on disk no longer match the manifest.
            ValueError: `piece_size` is not positive.
        """
        if piece_size <= 0:
            raise ValueError(f"piece size {piece_size} must be > 0")
        manifest = self._require_manifest(blob_id)
        if not 0 <= index < manifest.chunk_count:
            raise BlobNotFound(
                f"blob {blob_hex(blob_id)} has no chunk {index} ({manifest.chunk_count} chunks)"
            )
        try:
            fd = os.open(self._path(blob_id), os.O_RDONLY | _O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {blob_hex(blob_id)} is not complete here") from None
        length = manifest.chunk_length(index)
        offset = manifest.chunk_offset(index)
        try:
            before = _file_key(os.fstat(fd))
            known = self._verified.has(blob_id, before, index) or self._trust_sidecar(
                blob_id, before, manifest.chunk_count
            )
            pieces = [
                _pread_exact(fd, min(piece_size, length - start), offset + start)
                for start in range(0, length, piece_size)
            ]
            key = _file_key(os.fstat(fd))
        finally:
            os.close(fd)
        stable = key == before
        if known and stable and sum(len(piece) for piece in pieces) == length:
            return pieces
        if not verify_chunk_pieces(manifest, index, pieces):
            self._verified.forget(blob_id)
            with contextlib.suppress(OSError):
                self._path(blob_id, _VERIFIED).unlink(missing_ok=True)
            raise CorruptBlob(
                f"blob {blob_hex(blob_id)} chunk {index} on disk does not match its manifest"
            )
        if stable and self._verified.add(blob_id, key, index, manifest.chunk_count):
            # every chunk verified against this very file state: remember it across restarts
            self._write_sidecar(blob_id, key)
        return pieces

    # -- verified-as-a-whole sidecars ----------------------------------------------------------

    def _trust_sidecar(self, blob_id: bytes, key: tuple[int, ...], count: int) -> bool:
        """True (and every chunk remembered as verified) when the blob's sidecar records
        exactly `key`; a sidecar that does not match is removed."""
        path = self._path(blob_id, _VERIFIED)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError:
            return False
        if _parse_sidecar(data) != key:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return False
        self._verified.add_all(blob_id, key, count)
        return True

    def _write_sidecar(self, blob_id: bytes, key: tuple[int, ...]) -> None:
        # Only an optimisation, so no fsync (this may run on the event loop): a sidecar lost or
        # torn by a crash does not parse or does not match, and the blob is verified again.
        path = self._path(blob_id, _VERIFIED)
        with contextlib.suppress(OSError):
            fd, tmp = _create_temp(path.parent, _TEMP_PREFIX, 0o600)
            try:
                _write_all(fd, _format_sidecar(key))
            finally:
                os.close(fd)
            try:
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    def _mark_whole(self, blob_id: bytes, written: os.stat_result, count: int) -> None:
        """The file just moved into place at `blob_id`'s path holds bytes verified as a whole
        (`written` is its stat before the move): record it, unless it changed meanwhile."""
        try:
            key = _file_key(os.stat(self._path(blob_id)))
        except OSError:
            return
        if key[:4] != _file_key(written)[:4]:  # the rename moved the ctime, nothing else may
            return
        self._verified.add_all(blob_id, key, count)
        self._write_sidecar(blob_id, key)

    # -- adding local files ------------------------------------------------------------------

    def add_file(self, path: Path, progress: ProgressCallback | None = None) -> Manifest:
        """Copy a local file into the store as a complete blob, hashing exactly what it copies.

        The file is read once, 1 MiB at a time, into a temp file in the store; the manifest
        describes those copied bytes, so a source that changes meanwhile still yields a blob
        that matches its manifest. Adding content the store already has changes nothing.

        Args:
            path: a regular file.
            progress: called as ``progress(bytes_done, total)`` after each piece; `total` is
                the size when the copy started.

        Raises:
            BlobTooLarge: over `max_blob_size` (checked before and during the copy).
            InsufficientSpace: the copy would not fit.
            BlobStoreError: not a regular file.
            OSError: reading the source failed.
        """
        path = Path(path)
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise BlobStoreError(f"{path} is not a regular file")
        if st.st_size > self.max_blob_size:
            raise BlobTooLarge(st.st_size, self.max_blob_size, str(path))
        self._check_space(st.st_size, str(path))
        builder = ManifestBuilder(max_size=self.max_blob_size)
        buffer = bytearray(_COPY_PIECE)
        view = memoryview(buffer)
        tmp_fd, tmp_path = _create_temp(self.root, _TEMP_PREFIX + "add-", 0o600)
        try:
            with open(path, "rb", buffering=0) as src:
                done = 0
                while n := src.readinto(buffer):
                    if done + n > self.max_blob_size:
                        raise BlobTooLarge(done + n, self.max_blob_size, str(path))
                    builder.update(view[:n])
                    _write_all(tmp_fd, view[:n])
                    done += n
                    if progress is not None:
                        progress(done, st.st_size)
            os.fsync(tmp_fd)
            written = os.fstat(tmp_fd)
            os.close(tmp_fd)
            tmp_fd = -1
            manifest = builder.finish()
            self._install(manifest, tmp_path, written)
        finally:
            view.release()
            if tmp_fd >= 0:
                os.close(tmp_fd)
            tmp_path.unlink(missing_ok=True)
        return manifest

    def _install(self, manifest: Manifest, tmp_path: Path, written: os.stat_result) -> None:
        """Move a verified temp file (`written`: its stat) into place as a complete blob
        (manifest first), recording it as verified as a whole."""
        blob_id = manifest.blob_id
        with self._lock:
            self._write_manifest(manifest)
            final = self._path(blob_id)
            if not final.is_file():
                os.replace(tmp_path, final)
                if blob_id not in self._partials:
                    # A download of the same content is now redundant.
                    self._path(blob_id, ".part").unlink(missing_ok=True)
                    self._path(blob_id, ".bitmap").unlink(missing_ok=True)
                _fsync_dir(self.root)
                self._mark_whole(blob_id, written, manifest.chunk_count)
            self._cache(manifest)

    # -- downloads ---------------------------------------------------------------------------

    def start_download(self, manifest: Manifest) -> PartialBlob:
        """Create, or resume, the partial download of `manifest`'s blob.

        Returns the open `PartialBlob` for it if one exists already.

        Raises:
            BlobTooLarge: the manifest's size is over `max_blob_size`.
            InsufficientSpace: the blob (minus what a resumed .part already holds) plus
                `space_margin` does not fit on the disk.
            BlobStoreError: the blob is already complete.
        """
        blob_id = manifest.blob_id
        name = blob_hex(blob_id)
        if manifest.size > self.max_blob_size:
            raise BlobTooLarge(manifest.size, self.max_blob_size, f"blob {name}")
        with self._lock:
            existing = self._partials.get(blob_id)
            if existing is not None:
                return existing
            if self._path(blob_id).is_file():
                raise BlobStoreError(f"blob {name} is already complete")
            part = self._path(blob_id, ".part")
            try:
                allocated = part.stat().st_blocks * 512
            except FileNotFoundError:
                allocated = 0
            self._check_space(max(0, manifest.size - allocated), f"blob {name}")
            self._write_manifest(manifest)
            fd = os.open(part, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o600)
            try:
                held = self._load_bitmap(blob_id, manifest, fd)
                partial = PartialBlob(self, manifest, fd, held)
            except BaseException:
                os.close(fd)
                raise
            self._partials[blob_id] = partial
            self._cache(manifest)
            return partial

    def _load_bitmap(self, blob_id: bytes, manifest: Manifest, fd: int) -> Bitmap:
        bitmap_path = self._path(blob_id, ".bitmap")
        if os.fstat(fd).st_size != manifest.size:
            # New, or not the size this manifest says: nothing in it can be trusted.
            os.ftruncate(fd, manifest.size)  # sparse: no blocks are allocated yet
            held = Bitmap(manifest.chunk_count)
            _atomic_write(bitmap_path, held.to_bytes())
            return held
        try:
            data = bitmap_path.read_bytes()
            return Bitmap.from_bytes(manifest.chunk_count, data)
        except (FileNotFoundError, MalformedError):
            return Bitmap(manifest.chunk_count)

    def _forget_partial(self, blob_id: bytes) -> None:
        with self._lock:
            self._partials.pop(blob_id, None)

    # -- export, removal ---------------------------------------------------------------------

    def export_to(
        self,
        blob_id: bytes,
        dest: Path,
        *,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Path:
        """Copy a complete blob to a path of the user's, verifying every chunk on the way.

        Writes a temp file beside `dest` and renames it, so `dest` is never half-written.

        Raises:
            BlobNotFound: the blob is not complete here.
            DestinationExists: `dest` exists and `overwrite` is False.
            CorruptBlob: the stored blob is damaged (nothing is left at `dest`).
        """
        dest = Path(dest)
        manifest = self._require_manifest(blob_id)
        source = self.path(blob_id)
        if dest.is_dir():
            raise BlobStoreError(f"{dest} is a directory; give a file name")
        if not overwrite and (dest.exists() or dest.is_symlink()):
            raise DestinationExists(f"{dest} exists; not overwriting it")
        tmp_fd, tmp_path = _create_temp(dest.parent, f".{dest.name}.", 0o666)
        try:
            src_fd = os.open(source, os.O_RDONLY | _O_CLOEXEC)
            try:
                for index in range(manifest.chunk_count):
                    data = _pread_exact(
                        src_fd, manifest.chunk_length(index), manifest.chunk_offset(index)
                    )
                    if not verify_chunk(manifest, index, data):
                        raise CorruptBlob(
                            f"blob {blob_hex(blob_id)} chunk {index} on disk does not match "
                            "its manifest; not exported"
                        )
                    _write_all(tmp_fd, data)
                    if progress is not None:
                        progress(manifest.chunk_offset(index) + len(data), manifest.size)
            finally:
                os.close(src_fd)
            os.fsync(tmp_fd)
            os.close(tmp_fd)
            tmp_fd = -1
            if overwrite:
                os.replace(tmp_path, dest)
            else:
                _rename_no_replace(tmp_path, dest)
            _fsync_dir(dest.parent)
        finally:
            if tmp_fd >= 0:
                os.close(tmp_fd)
            tmp_path.unlink(missing_ok=True)
        return dest

    def remove(self, blob_id: bytes) -> bool:
        """Delete a blob and any partial of it. True when something was removed.

        Raises:
            BlobStoreError: a download of it is open (discard it first).
        """
        with self._lock:
            if blob_id in self._partials:
                raise BlobStoreError(f"blob {blob_hex(blob_id)} is being downloaded")
            removed = False
            for suffix in (_VERIFIED, "", ".part", ".bitmap", ".manifest"):
                with contextlib.suppress(FileNotFoundError):
                    self._path(blob_id, suffix).unlink()
                    removed = True
            self._uncache(blob_id)
            self._verified.forget(blob_id)
            return removed

    # -- internals ---------------------------------------------------------------------------

    def _require_manifest(self, blob_id: bytes) -> Manifest:
        manifest = self.manifest(blob_id)
        if manifest is None:
            raise BlobNotFound(f"blob {blob_hex(blob_id)} is not in the store")
        return manifest

    def _cache(self, manifest: Manifest) -> None:
        with self._cache_lock:
            self._manifests[manifest.blob_id] = manifest
            self._manifests.move_to_end(manifest.blob_id)
            while len(self._manifests) > _MANIFEST_CACHE:
                self._manifests.popitem(last=False)

    def _uncache(self, blob_id: bytes) -> None:
        with self._cache_lock:
            self._manifests.pop(blob_id, None)

    def _write_manifest(self, manifest: Manifest) -> None:
        path = self._path(manifest.blob_id, ".manifest")
        data = manifest.encode()
        try:
            if path.read_bytes() == data:
                return
        except FileNotFoundError:
            pass
        _atomic_write(path, data)

    def _check_space(self, size: int, what: str) -> None:
        needed = size + self.space_margin
        available = shutil.disk_usage(self.root).free
        if needed > available:
            raise InsufficientSpace(needed, available, what)

    def _remove_stale_temp(self) -> None:
        cutoff = time.time() - _STALE_TEMP_S
        for p in self.root.glob(_TEMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink()


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
        return self.store._path(self.blob_id, ".part")

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
                _pwritev_all(self._fd, pieces, self.manifest.chunk_offset(index))
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    free = shutil.disk_usage(self.store.root).free
                    length = self.manifest.chunk_length(index)
                    raise InsufficientSpace(length, free, f"chunk {index}") from None
                raise BlobStoreError(f"cannot write chunk {index}: {_reason(exc)}") from None
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
        _atomic_write(self.store._path(self.blob_id, ".bitmap"), bitmap)

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
            raise BlobStoreError(f"cannot save the download's progress: {_reason(exc)}")

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
                final = self.store._path(self.blob_id)
                part = self.store._path(self.blob_id, ".part")
                if final.is_file():
                    part.unlink(missing_ok=True)  # the same content arrived by add_file
                    installed = False
                else:
                    os.replace(part, final)
                    installed = True
                self.store._path(self.blob_id, ".bitmap").unlink(missing_ok=True)
                _fsync_dir(self.store.root)
            except OSError as exc:
                raise BlobStoreError(
                    f"cannot finish blob {blob_hex(self.blob_id)}: {_reason(exc)}"
                ) from None
            finally:
                self.store._forget_partial(self.blob_id)
            if installed:  # every chunk verified before it was written
                self.store._mark_whole(self.blob_id, written, self.manifest.chunk_count)
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
                self.store._forget_partial(self.blob_id)

    def discard(self) -> None:
        """Stop and delete the partial download. Safe to call twice."""
        with self._lock:
            if not self._closed:
                self._close_locked()
            for suffix in (".part", ".bitmap"):
                self.store._path(self.blob_id, suffix).unlink(missing_ok=True)
            if not self.store._path(self.blob_id).is_file():
                self.store._path(self.blob_id, ".manifest").unlink(missing_ok=True)
                with self.store._lock:
                    self.store._uncache(self.blob_id)
        self.store._forget_partial(self.blob_id)

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


# -- file helpers -----------------------------------------------------------------------------
def _reason(exc: OSError) -> str:
    """An OS error in a few words (\"No space left on device\"), without the path."""
    return os.strerror(exc.errno) if exc.errno else str(exc)



_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _create_temp(directory: Path, prefix: str, mode: int) -> tuple[int, Path]:
    """Create a new empty file with a random name (O_EXCL); `mode` is filtered by the umask."""
    for _ in range(100):
        path = directory / f"{prefix}{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, mode)
        except FileExistsError:
            continue
        return fd, path
    raise BlobStoreError(f"could not create a temporary file in {directory}")


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _pwritev_all(fd: int, pieces: Sequence[Buffer], offset: int) -> None:
    """Write consecutive pieces at `offset` with one system call (a short write is finished
    piece by piece)."""
    if len(pieces) == 1 or not hasattr(os, "pwritev"):
        for piece in pieces:
            _pwrite_all(fd, piece, offset)
            offset += len(piece)
        return
    written = os.pwritev(fd, pieces, offset)
    for piece in pieces:
        size = len(piece)
        if written < size:
            _pwrite_all(fd, memoryview(piece)[written:], offset + written)
            written = size
        written -= size
        offset += size


_VERIFIED = ".verified"
_SIDECAR_TAG = b"p2pnode-verified-1"


def _format_sidecar(key: tuple[int, ...]) -> bytes:
    return _SIDECAR_TAG + b" " + " ".join(str(n) for n in key).encode() + b"\n"


def _parse_sidecar(data: bytes) -> tuple[int, ...] | None:
    fields = data.split()
    if len(fields) != 6 or fields[0] != _SIDECAR_TAG:
        return None
    try:
        return tuple(int(f) for f in fields[1:])
    except ValueError:
        return None


def _file_key(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is replaced or written to (see `_VerifiedChunks`)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _VerifiedChunks:
    """Chunks of complete blobs that verified against their manifest, per blob, for as long as
    the blob's file keeps the same `_file_key` (a replaced or rewritten file starts afresh).

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


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
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


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, never a mix."""
    fd, tmp = _create_temp(path.parent, _TEMP_PREFIX, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make renames in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _rename_no_replace(src: Path, dest: Path) -> None:
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
