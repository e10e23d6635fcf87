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
import os
import re
import shutil
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from p2pnode.blobs.diskio import (
    O_CLOEXEC,
    TEMP_PREFIX,
    atomic_write,
    create_temp,
    pread_exact,
    rename_no_replace,
    write_all,
)
from p2pnode.blobs.errors import (
    BlobNotFound,
    BlobStoreError,
    BlobTooLarge,
    CorruptBlob,
    DestinationExists,
    InsufficientSpace,
    blob_hex,
)
from p2pnode.blobs.partial import PartialBlob
from p2pnode.blobs.verified import (
    VERIFIED_SUFFIX,
    VerifiedChunks,
    file_key,
    format_sidecar,
    parse_sidecar,
)
from p2pnode.files import fsync_directory
from protocol.blobs import (
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
_MANIFEST_CACHE = 64
#: Blobs whose verified chunks are remembered (at most one byte per chunk: 16 KiB for 4 GiB).
_VERIFIED_CACHE = 64
_STALE_TEMP_S = 3600
_BLOB_NAME = re.compile(r"[0-9a-f]{64}")

ProgressCallback = Callable[[int, int], None]


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
        self._verified = VerifiedChunks(_VERIFIED_CACHE)
        self._remove_stale_temp()

    # -- paths -------------------------------------------------------------------------------

    def path_for(self, blob_id: bytes, suffix: str = "") -> Path:
        """The path of one of a blob's files (`suffix`: "", ".part", ".bitmap", ".manifest")."""
        return self.root / (blob_hex(blob_id) + suffix)

    def path(self, blob_id: bytes) -> Path:
        """Where a complete blob lives.

        Raises:
            BlobNotFound: it is not complete in this store.
        """
        path = self.path_for(blob_id)
        if not path.is_file():
            raise BlobNotFound(f"blob {blob_hex(blob_id)} is not in the store")
        return path

    # -- queries -----------------------------------------------------------------------------

    def has(self, blob_id: bytes) -> bool:
        """True when the blob is complete in the store."""
        return self.path_for(blob_id).is_file()

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
        if not (self.path_for(blob_id).is_file() or self.path_for(blob_id, ".part").is_file()):
            return None
        try:
            with open(self.path_for(blob_id, ".manifest"), "rb") as f:
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

        A chunk that verified before, with the file unchanged since (`VerifiedChunks`), is not
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
            fd = os.open(self.path_for(blob_id), os.O_RDONLY | O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {blob_hex(blob_id)} is not complete here") from None
        length = manifest.chunk_length(index)
        offset = manifest.chunk_offset(index)
        try:
            before = file_key(os.fstat(fd))
            known = self._verified.has(blob_id, before, index) or self._trust_sidecar(
                blob_id, before, manifest.chunk_count
            )
            pieces = [
                pread_exact(fd, min(piece_size, length - start), offset + start)
                for start in range(0, length, piece_size)
            ]
            key = file_key(os.fstat(fd))
        finally:
            os.close(fd)
        stable = key == before
        if known and stable and sum(len(piece) for piece in pieces) == length:
            return pieces
        if not verify_chunk_pieces(manifest, index, pieces):
            self._verified.forget(blob_id)
            with contextlib.suppress(OSError):
                self.path_for(blob_id, VERIFIED_SUFFIX).unlink(missing_ok=True)
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
        path = self.path_for(blob_id, VERIFIED_SUFFIX)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError:
            return False
        if parse_sidecar(data) != key:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return False
        self._verified.add_all(blob_id, key, count)
        return True

    def _write_sidecar(self, blob_id: bytes, key: tuple[int, ...]) -> None:
        # Only an optimisation, so no fsync (this may run on the event loop): a sidecar lost or
        # torn by a crash does not parse or does not match, and the blob is verified again.
        path = self.path_for(blob_id, VERIFIED_SUFFIX)
        with contextlib.suppress(OSError):
            fd, tmp = create_temp(path.parent, TEMP_PREFIX, 0o600)
            try:
                write_all(fd, format_sidecar(key))
            finally:
                os.close(fd)
            try:
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    def mark_whole(self, blob_id: bytes, written: os.stat_result, count: int) -> None:
        """The file just moved into place at `blob_id`'s path holds bytes verified as a whole
        (`written` is its stat before the move): record it, unless it changed meanwhile."""
        try:
            key = file_key(os.stat(self.path_for(blob_id)))
        except OSError:
            return
        if key[:4] != file_key(written)[:4]:  # the rename moved the ctime, nothing else may
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
        tmp_fd, tmp_path = create_temp(self.root, TEMP_PREFIX + "add-", 0o600)
        try:
            with open(path, "rb", buffering=0) as src:
                done = 0
                while n := src.readinto(buffer):
                    if done + n > self.max_blob_size:
                        raise BlobTooLarge(done + n, self.max_blob_size, str(path))
                    builder.update(view[:n])
                    write_all(tmp_fd, view[:n])
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
            final = self.path_for(blob_id)
            if not final.is_file():
                os.replace(tmp_path, final)
                if blob_id not in self._partials:
                    # A download of the same content is now redundant.
                    self.path_for(blob_id, ".part").unlink(missing_ok=True)
                    self.path_for(blob_id, ".bitmap").unlink(missing_ok=True)
                fsync_directory(self.root)
                self.mark_whole(blob_id, written, manifest.chunk_count)
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
            if self.path_for(blob_id).is_file():
                raise BlobStoreError(f"blob {name} is already complete")
            part = self.path_for(blob_id, ".part")
            try:
                allocated = part.stat().st_blocks * 512
            except FileNotFoundError:
                allocated = 0
            self._check_space(max(0, manifest.size - allocated), f"blob {name}")
            self._write_manifest(manifest)
            fd = os.open(part, os.O_RDWR | os.O_CREAT | O_CLOEXEC, 0o600)
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
        bitmap_path = self.path_for(blob_id, ".bitmap")
        if os.fstat(fd).st_size != manifest.size:
            # New, or not the size this manifest says: nothing in it can be trusted.
            os.ftruncate(fd, manifest.size)  # sparse: no blocks are allocated yet
            held = Bitmap(manifest.chunk_count)
            atomic_write(bitmap_path, held.to_bytes())
            return held
        try:
            data = bitmap_path.read_bytes()
            return Bitmap.from_bytes(manifest.chunk_count, data)
        except (FileNotFoundError, MalformedError):
            return Bitmap(manifest.chunk_count)

    def forget_partial(self, blob_id: bytes) -> None:
        """A `PartialBlob` closed: the next `start_download` opens the blob afresh."""
        with self._lock:
            self._partials.pop(blob_id, None)

    def drop_manifest_unless_complete(self, blob_id: bytes) -> None:
        """A discarded download leaves no manifest behind, unless the blob is held whole."""
        if not self.path_for(blob_id).is_file():
            self.path_for(blob_id, ".manifest").unlink(missing_ok=True)
            with self._lock:
                self._uncache(blob_id)

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
        tmp_fd, tmp_path = create_temp(dest.parent, f".{dest.name}.", 0o666)
        try:
            src_fd = os.open(source, os.O_RDONLY | O_CLOEXEC)
            try:
                for index in range(manifest.chunk_count):
                    data = pread_exact(
                        src_fd, manifest.chunk_length(index), manifest.chunk_offset(index)
                    )
                    if not verify_chunk(manifest, index, data):
                        raise CorruptBlob(
                            f"blob {blob_hex(blob_id)} chunk {index} on disk does not match "
                            "its manifest; not exported"
                        )
                    write_all(tmp_fd, data)
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
                rename_no_replace(tmp_path, dest)
            fsync_directory(dest.parent)
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
            for suffix in (VERIFIED_SUFFIX, "", ".part", ".bitmap", ".manifest"):
                with contextlib.suppress(FileNotFoundError):
                    self.path_for(blob_id, suffix).unlink()
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
        path = self.path_for(manifest.blob_id, ".manifest")
        data = manifest.encode()
        try:
            if path.read_bytes() == data:
                return
        except FileNotFoundError:
            pass
        atomic_write(path, data)

    def _check_space(self, size: int, what: str) -> None:
        needed = size + self.space_margin
        available = shutil.disk_usage(self.root).free
        if needed > available:
            raise InsufficientSpace(needed, available, what)

    def _remove_stale_temp(self) -> None:
        cutoff = time.time() - _STALE_TEMP_S
        for p in self.root.glob(TEMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink()
