"""Tests for p2pnode.blobs.store and .partial: adding, serving, downloading, resuming and
exporting blobs."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import threading
import tracemalloc
from pathlib import Path

import pytest

from p2pnode.blobs import partial as partial_module
from p2pnode.blobs import store as blobstore
from p2pnode.blobs.errors import (
    BlobNotFound,
    BlobStoreError,
    BlobTooLarge,
    CorruptBlob,
    DestinationExists,
    InsufficientSpace,
)
from p2pnode.blobs.partial import PartialBlob
from p2pnode.blobs.store import BlobStore
from p2pnode.blobs.verified import VerifiedChunks
from protocol.blobs import CHUNK_SIZE, Bitmap, Manifest, decode_manifest, manifest_for

MIB = 1024 * 1024


def blob(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]


@pytest.fixture
def blob_store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", space_margin=0)


def write_source(tmp_path: Path, data: bytes, name: str = "source.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- add_file and serving ----------------------------------------------------------------------


def test_add_file_copies_and_verifies(tmp_path: Path, blob_store: BlobStore) -> None:
    """add_file stores an exact copy whose chunks and manifest can be served back."""
    data = blob(3 * CHUNK_SIZE + 99)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    assert manifest == manifest_for(data)
    assert blob_store.has(manifest.blob_id)
    assert blob_store.path(manifest.blob_id).read_bytes() == data
    assert blob_store.blob_ids() == [manifest.blob_id]
    assert [blob_store.read_chunk(manifest.blob_id, i) for i in range(4)] == chunks_of(data)
    encoded = blob_store.manifest_bytes(manifest.blob_id)
    assert decode_manifest(encoded, manifest.blob_id) == manifest
    pieces = [blob_store.read_manifest_piece(manifest.blob_id, o, 50) for o in range(0, 200, 50)]
    assert b"".join(pieces) == encoded
    assert blob_store.read_manifest_piece(manifest.blob_id, len(encoded), 50) == b""
    assert not list(blob_store.root.glob(".tmp-*"))


def test_add_file_is_idempotent(tmp_path: Path, blob_store: BlobStore) -> None:
    """Adding the same content twice yields the same manifest and a single blob."""
    source = write_source(tmp_path, blob(CHUNK_SIZE + 1))
    first = blob_store.add_file(source)
    second = blob_store.add_file(source)
    assert first == second
    assert sorted(p.name for p in blob_store.root.iterdir()) == [
        first.blob_id.hex(),
        first.blob_id.hex() + ".manifest",
        first.blob_id.hex() + ".verified",
    ]


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1])
def test_add_file_boundary_sizes(tmp_path: Path, blob_store: BlobStore, size: int) -> None:
    """Empty, 1-byte, exactly-one-chunk and one-byte-over files round-trip."""
    data = blob(size, seed=size)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    assert manifest.size == size
    assert manifest.chunk_count == -(-size // CHUNK_SIZE)
    assert blob_store.path(manifest.blob_id).read_bytes() == data
    assert b"".join(
        blob_store.read_chunk(manifest.blob_id, i) for i in range(manifest.chunk_count)
    ) == (data)


def test_add_file_reports_progress(tmp_path: Path, blob_store: BlobStore) -> None:
    """progress(done, total) is called per 1 MiB piece and ends at the file size."""
    data = blob(3 * MIB + 5)
    calls: list[tuple[int, int]] = []
    blob_store.add_file(write_source(tmp_path, data), progress=lambda d, t: calls.append((d, t)))
    assert calls == [
        (MIB, len(data)),
        (2 * MIB, len(data)),
        (3 * MIB, len(data)),
        (len(data), len(data)),
    ]


def test_add_file_memory_stays_flat(tmp_path: Path, blob_store: BlobStore) -> None:
    """Hashing and copying a 64 MiB file never holds more than a few MiB in memory."""
    source = tmp_path / "sparse.bin"
    with open(source, "wb") as f:
        f.truncate(64 * MIB)
    tracemalloc.start()
    try:
        manifest = blob_store.add_file(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert manifest.size == 64 * MIB
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_add_file_refuses_too_large(tmp_path: Path) -> None:
    """A file over max_blob_size is refused with BlobTooLarge and nothing is stored."""
    blob_store = BlobStore(tmp_path / "blobs", max_blob_size=CHUNK_SIZE, space_margin=0)
    with pytest.raises(BlobTooLarge, match="limit") as exc:
        blob_store.add_file(write_source(tmp_path, blob(CHUNK_SIZE + 1)))
    assert exc.value.size == CHUNK_SIZE + 1
    assert exc.value.limit == CHUNK_SIZE
    assert list(blob_store.root.iterdir()) == []


def test_add_file_refuses_a_directory(tmp_path: Path, blob_store: BlobStore) -> None:
    """Only regular files can be added."""
    with pytest.raises(BlobStoreError, match="not a regular file"):
        blob_store.add_file(tmp_path)


@pytest.mark.parametrize("change", ["overwrite", "truncate", "append"])
def test_file_changing_while_added_yields_consistent_blob(
    tmp_path: Path, blob_store: BlobStore, change: str
) -> None:
    """A source modified mid-copy still gives a blob that matches its own manifest."""
    original = blob(4 * MIB, seed=1)
    source = write_source(tmp_path, original)
    changed = False

    def modify(done: int, total: int) -> None:
        nonlocal changed
        if changed:
            return
        changed = True
        with open(source, "r+b") as f:
            if change == "overwrite":
                f.seek(0)
                f.write(b"\xaa" * (3 * MIB))  # bytes before `done` are already copied
            elif change == "truncate":
                f.truncate(2 * MIB + 77)
            else:
                f.seek(0, os.SEEK_END)
                f.write(b"\xbb" * 1000)

    manifest = blob_store.add_file(source, progress=modify)
    stored = blob_store.path(manifest.blob_id).read_bytes()
    assert manifest == manifest_for(stored)
    for index in range(manifest.chunk_count):
        blob_store.read_chunk(manifest.blob_id, index)  # every chunk verifies
    expected = {
        "overwrite": original[:MIB] + b"\xaa" * (2 * MIB) + original[3 * MIB :],
        "truncate": original[: 2 * MIB + 77],
        "append": original + b"\xbb" * 1000,
    }[change]
    assert stored == expected


def test_damaged_blob_is_detected_by_read_chunk(tmp_path: Path, blob_store: BlobStore) -> None:
    """A byte flipped on disk makes read_chunk raise CorruptBlob for that chunk only."""
    data = blob(2 * CHUNK_SIZE + 10)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    path = blob_store.path(manifest.blob_id)
    with open(path, "r+b") as f:
        f.seek(CHUNK_SIZE + 5)
        f.write(bytes([data[CHUNK_SIZE + 5] ^ 1]))
    assert blob_store.read_chunk(manifest.blob_id, 0) == data[:CHUNK_SIZE]
    with pytest.raises(CorruptBlob, match="chunk 1"):
        blob_store.read_chunk(manifest.blob_id, 1)
    with open(path, "r+b") as f:
        f.truncate(2 * CHUNK_SIZE)  # the short last chunk is gone
    with pytest.raises(CorruptBlob, match="chunk 2"):
        blob_store.read_chunk(manifest.blob_id, 2)
    dest = tmp_path / "out.bin"
    with pytest.raises(CorruptBlob):
        blob_store.export_to(manifest.blob_id, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_read_chunk_pieces(tmp_path: Path, blob_store: BlobStore) -> None:
    """A chunk read as pieces is the chunk cut at `piece_size`, the last piece shorter."""
    data = blob(2 * CHUNK_SIZE + 10)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    pieces = blob_store.read_chunk_pieces(manifest.blob_id, 0, 61440)
    assert [len(p) for p in pieces] == [61440] * 4 + [CHUNK_SIZE - 4 * 61440]
    assert b"".join(pieces) == data[:CHUNK_SIZE]
    assert blob_store.read_chunk_pieces(manifest.blob_id, 2, 61440) == [data[2 * CHUNK_SIZE :]]
    assert blob_store.read_chunk_pieces(manifest.blob_id, 1, CHUNK_SIZE) == [
        data[CHUNK_SIZE : 2 * CHUNK_SIZE]
    ]
    with pytest.raises(ValueError):
        blob_store.read_chunk_pieces(manifest.blob_id, 0, 0)
    with pytest.raises(BlobNotFound):
        blob_store.read_chunk_pieces(manifest.blob_id, 3, 61440)


def _count_verifies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    verify = blobstore.verify_chunk_pieces

    def counting(manifest: Manifest, index: int, pieces: object) -> bool:
        calls.append(index)
        return verify(manifest, index, pieces)  # type: ignore[arg-type]

    monkeypatch.setattr(blobstore, "verify_chunk_pieces", counting)
    return calls


def _untrusted(store: BlobStore, blob_id: bytes) -> BlobStore:
    """A fresh store on `store`'s root with `blob_id`'s ``.verified`` sidecar removed."""
    (store.root / f"{blob_id.hex()}.verified").unlink()
    return BlobStore(store.root, space_margin=0)


def _corrupt_in_place(path: Path, offset: int) -> None:
    """Flip one bit at `offset`, then put the file's mtime back (only the ctime tells)."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_added_blob_is_trusted_across_restarts(
    tmp_path: Path, blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """add_file leaves a sidecar; a new store on the same root serves without hashing."""
    data = blob(3 * CHUNK_SIZE + 5)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    sidecar = blob_store.root / f"{manifest.blob_id.hex()}.verified"
    assert sidecar.is_file()
    calls = _count_verifies(monkeypatch)
    restarted = BlobStore(blob_store.root, space_margin=0)
    assert [restarted.read_chunk(manifest.blob_id, i) for i in range(4)] == chunks_of(data)
    assert calls == []
    assert sidecar.is_file()


@pytest.mark.parametrize("change", ["rewrite", "touch", "link", "garbage"])
def test_a_stale_sidecar_is_dropped(
    tmp_path: Path, blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Any change to the file (even with its mtime restored) voids the sidecar: a new store
    verifies again, catches the damage, and removes the sidecar."""
    data = blob(2 * CHUNK_SIZE + 10)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    path = blob_store.path(manifest.blob_id)
    sidecar = blob_store.root / f"{manifest.blob_id.hex()}.verified"
    if change == "rewrite":
        _corrupt_in_place(path, CHUNK_SIZE + 3)
    elif change == "touch":
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    elif change == "link":
        os.link(path, tmp_path / "another-name")
    else:
        sidecar.write_bytes(b"p2pnode-verified-1 1 2 3\n")
    calls = _count_verifies(monkeypatch)
    restarted = BlobStore(blob_store.root, space_margin=0)
    assert restarted.read_chunk(manifest.blob_id, 0) == data[:CHUNK_SIZE]
    assert calls == [0]
    assert not sidecar.exists()
    if change == "rewrite":
        with pytest.raises(CorruptBlob, match="chunk 1"):
            restarted.read_chunk(manifest.blob_id, 1)
        # the blob never counts as verified as a whole again
        restarted.read_chunk(manifest.blob_id, 2)
        assert not sidecar.exists()
    else:
        restarted.read_chunk(manifest.blob_id, 1)
        assert not sidecar.exists()  # not every chunk verified yet
        restarted.read_chunk(manifest.blob_id, 2)
        assert sidecar.is_file()  # now it is: a full serve writes it again
        calls.clear()
        again = BlobStore(blob_store.root, space_margin=0)
        assert b"".join(again.read_chunk(manifest.blob_id, i) for i in range(3)) == data
        assert calls == []


def test_a_damaged_blob_with_a_stale_sidecar_is_detected_in_process(
    tmp_path: Path, blob_store: BlobStore
) -> None:
    """The same store, which trusted the blob since add_file, notices the change too."""
    data = blob(2 * CHUNK_SIZE)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    assert blob_store.read_chunk(manifest.blob_id, 1) == data[CHUNK_SIZE:]
    _corrupt_in_place(blob_store.path(manifest.blob_id), CHUNK_SIZE + 1)
    with pytest.raises(CorruptBlob, match="chunk 1"):
        blob_store.read_chunk(manifest.blob_id, 1)
    assert not (blob_store.root / f"{manifest.blob_id.hex()}.verified").exists()


def test_remove_drops_the_sidecar(tmp_path: Path, blob_store: BlobStore) -> None:
    manifest = blob_store.add_file(write_source(tmp_path, blob(100)))
    assert blob_store.remove(manifest.blob_id)
    assert list(blob_store.root.iterdir()) == []


def test_served_chunks_are_verified_once(
    tmp_path: Path, blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk that verified is not hashed again while its file is unchanged."""
    data = blob(2 * CHUNK_SIZE + 10)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    blob_store = _untrusted(blob_store, manifest.blob_id)
    calls = _count_verifies(monkeypatch)
    for _ in range(3):
        assert blob_store.read_chunk(manifest.blob_id, 0) == data[:CHUNK_SIZE]
        assert b"".join(blob_store.read_chunk_pieces(manifest.blob_id, 1, 61440)) == (
            data[CHUNK_SIZE : 2 * CHUNK_SIZE]
        )
    assert calls == [0, 1]
    # another store (another process) verifies for itself
    other = BlobStore(blob_store.root)
    assert other.read_chunk(manifest.blob_id, 0) == data[:CHUNK_SIZE]
    assert calls == [0, 1, 0]


@pytest.mark.parametrize("change", ["rewrite", "replace", "touch"])
def test_a_changed_file_is_verified_again(
    tmp_path: Path, blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Damage after a chunk verified is caught once the file changed: written in place (even
    with its mtime put back), replaced by another file, or just touched."""
    data = blob(2 * CHUNK_SIZE + 10)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    path = blob_store.path(manifest.blob_id)
    assert blob_store.read_chunk(manifest.blob_id, 1) == data[CHUNK_SIZE : 2 * CHUNK_SIZE]
    calls = _count_verifies(monkeypatch)
    st = path.stat()
    damaged = bytearray(data)
    damaged[CHUNK_SIZE + 7] ^= 1
    if change == "rewrite":
        with open(path, "r+b") as f:
            f.seek(CHUNK_SIZE + 7)
            f.write(bytes([damaged[CHUNK_SIZE + 7]]))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the ctime tells
    elif change == "replace":
        fresh = tmp_path / "fresh"
        fresh.write_bytes(bytes(damaged))
        os.utime(fresh, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(fresh, path)
    else:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    if change == "touch":
        assert blob_store.read_chunk(manifest.blob_id, 1) == data[CHUNK_SIZE : 2 * CHUNK_SIZE]
    else:
        with pytest.raises(CorruptBlob, match="chunk 1"):
            blob_store.read_chunk(manifest.blob_id, 1)
        with pytest.raises(CorruptBlob, match="chunk 1"):  # and not remembered as good
            blob_store.read_chunk(manifest.blob_id, 1)
    assert calls[0] == 1


def test_a_damaged_chunk_is_never_served_first(tmp_path: Path, blob_store: BlobStore) -> None:
    """The first serve of a chunk verifies it, even when other chunks verified before."""
    data = blob(2 * CHUNK_SIZE)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    path = blob_store.path(manifest.blob_id)
    with open(path, "r+b") as f:
        f.seek(CHUNK_SIZE + 1)
        f.write(bytes([data[CHUNK_SIZE + 1] ^ 0x40]))
    assert blob_store.read_chunk(manifest.blob_id, 0) == data[:CHUNK_SIZE]
    for _ in range(2):
        with pytest.raises(CorruptBlob, match="chunk 1"):
            blob_store.read_chunk_pieces(manifest.blob_id, 1, 61440)
    assert blob_store.read_chunk(manifest.blob_id, 0) == data[:CHUNK_SIZE]


def test_verified_cache_is_bounded(
    tmp_path: Path, blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond `_VERIFIED_CACHE` blobs the least recently served is forgotten (and verified
    again when served)."""
    ids = [blob_store.add_file(write_source(tmp_path, blob(CHUNK_SIZE + 1, seed=i), f"s{i}"))
           .blob_id for i in range(3)]
    for blob_id in ids:
        blob_store = _untrusted(blob_store, blob_id)
    cache = VerifiedChunks(2)
    monkeypatch.setattr(blob_store, "_verified", cache)
    calls = _count_verifies(monkeypatch)
    for blob_id in ids:
        blob_store.read_chunk(blob_id, 0)
    blob_store.read_chunk(ids[2], 0)
    blob_store.read_chunk(ids[1], 0)
    blob_store.read_chunk(ids[0], 0)  # forgotten: the first of three
    assert len(calls) == 4
    blob_store.remove(ids[1])
    assert len(cache._blobs) == 1


def test_write_chunk_accepts_pieces(
    tmp_path: Path, blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk given as pieces is verified and written whole, including after a short write."""
    data = blob(3 * CHUNK_SIZE)
    manifest = manifest_for(data)
    partial = blob_store.start_download(manifest)
    chunk = data[CHUNK_SIZE : 2 * CHUNK_SIZE]
    pieces = [chunk[i : i + 61440] for i in range(0, CHUNK_SIZE, 61440)]
    bad = [*pieces[:-1], pieces[-1][:-1] + b"!"]
    assert partial.write_chunk(1, bad) is False
    assert partial.write_chunk(1, pieces) is True
    pwritev = os.pwritev

    def short_pwritev(fd: int, buffers: list[bytes], offset: int) -> int:
        return pwritev(fd, [bytes(buffers[0])[:1000]], offset)  # a short write

    monkeypatch.setattr(blobstore.os, "pwritev", short_pwritev)
    first = data[:CHUNK_SIZE]
    assert partial.write_chunk(0, tuple(first[i : i + 61440] for i in range(0, CHUNK_SIZE, 61440)))
    assert partial.write_chunk(2, data[2 * CHUNK_SIZE :])
    partial.complete()
    assert blob_store.path(manifest.blob_id).read_bytes() == data


def test_missing_blob_and_chunk_raise_not_found(blob_store: BlobStore) -> None:
    """Unknown blobs and chunk indices past the end raise BlobNotFound; manifest() is None."""
    unknown = bytes(32)
    assert not blob_store.has(unknown)
    assert blob_store.manifest(unknown) is None
    with pytest.raises(BlobNotFound):
        blob_store.read_chunk(unknown, 0)
    with pytest.raises(BlobNotFound):
        blob_store.manifest_bytes(unknown)
    manifest = manifest_for(b"x")
    blob_store.start_download(manifest).write_chunk(0, b"x")
    with pytest.raises(BlobNotFound, match="not complete"):
        blob_store.read_chunk(manifest.blob_id, 0)  # partials are not served
    with pytest.raises(BlobNotFound, match="no chunk 1"):
        blob_store.read_chunk(manifest.blob_id, 1)


@pytest.mark.parametrize("bad_id", [b"", b"../../etc/passwd", bytes(31), bytes(33), "00" * 32])
def test_blob_ids_are_validated(blob_store: BlobStore, bad_id: object) -> None:
    """Only a 32-byte id names a file, so nothing from a peer can pick a path."""
    with pytest.raises(ValueError):
        blob_store.has(bad_id)  # type: ignore[arg-type]


# -- downloads ---------------------------------------------------------------------------------


def test_partial_download_resumes_after_restart(tmp_path: Path) -> None:
    """Chunks written in random order survive a restart (new BlobStore) and complete."""
    data = blob(10 * CHUNK_SIZE + 1234)
    manifest = manifest_for(data)
    pieces = chunks_of(data)
    order = list(range(manifest.chunk_count))
    random.Random(3).shuffle(order)
    first, rest = order[:6], order[6:]

    blob_store = BlobStore(tmp_path / "blobs", space_margin=0)
    partial = blob_store.start_download(manifest)
    for index in first:
        assert partial.write_chunk(index, pieces[index])
    partial.cancel()
    partial.cancel()  # twice is fine
    assert blob_store.partial_ids() == [manifest.blob_id]
    assert not blob_store.has(manifest.blob_id)

    restarted = BlobStore(tmp_path / "blobs", space_margin=0)
    assert restarted.partial_ids() == [manifest.blob_id]
    assert restarted.manifest(manifest.blob_id) == manifest
    resumed = restarted.start_download(manifest)
    assert sorted(i for i, bit in enumerate(resumed.held) if bit) == sorted(first)
    assert resumed.held.missing() == sorted(rest)
    for index in rest:
        assert resumed.write_chunk(index, pieces[index])
    final = resumed.complete()
    assert hashlib.sha256(final.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert restarted.has(manifest.blob_id)
    assert restarted.partial_ids() == []
    assert sorted(p.name for p in restarted.root.iterdir()) == [
        manifest.blob_id.hex(),
        manifest.blob_id.hex() + ".manifest",
        manifest.blob_id.hex() + ".verified",  # every chunk verified before it was written
    ]
    assert restarted.read_chunk(manifest.blob_id, 10) == pieces[10]


def _download_flushing_every(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int, chunks: int
) -> tuple[BlobStore, Manifest, list[bytes], PartialBlob]:
    """A fresh download of a `chunks`-chunk blob whose progress is flushed every `every`
    chunks (never by time)."""
    monkeypatch.setattr(partial_module, "_FLUSH_EVERY_CHUNKS", every)
    monkeypatch.setattr(partial_module, "_FLUSH_INTERVAL_S", 3600.0)
    data = blob(chunks * CHUNK_SIZE)
    manifest = manifest_for(data)
    blob_store = BlobStore(tmp_path / "blobs", space_margin=0)
    return blob_store, manifest, chunks_of(data), blob_store.start_download(manifest)


def test_crash_keeps_only_durable_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a crash (no cancel), every chunk whose bit was persisted is on disk intact."""
    _, manifest, pieces, partial = _download_flushing_every(tmp_path, monkeypatch, 3, 8)
    for index in (7, 2, 5, 0, 1):
        partial.write_chunk(index, pieces[index])
    _join_flushes()  # the flush after 3 chunks runs in a thread of its own: let it land
    # "crash": the process dies without cancel(); only the flush after 3 chunks happened
    restarted = BlobStore(tmp_path / "blobs", space_margin=0)
    resumed = restarted.start_download(manifest)
    held = [i for i, bit in enumerate(resumed.held) if bit]
    assert held == [2, 5, 7]
    part = (tmp_path / "blobs" / (manifest.blob_id.hex() + ".part")).read_bytes()
    for index in held:
        assert part[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE] == pieces[index]
    resumed.cancel()
    partial.discard()


def _join_flushes() -> None:
    for thread in threading.enumerate():
        if thread.name == "p2pnode-flush":
            thread.join()


def _fsync_failing_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync fails once with EIO, then succeeds, as Linux does: the error is reported once,
    and the pages it concerned may be gone while the next fsync says all is well."""
    real_fsync = os.fsync
    failed: list[int] = []

    def fsync(fd: int) -> None:
        if not failed:
            failed.append(fd)
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(blobstore.os, "fsync", fsync)


def test_failed_background_flush_claims_nothing_and_stops_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush that fails in its thread persists no bit; from then on nothing is written or
    claimed (a later fsync's success proves nothing), the next write and the close say why,
    and the file is closed either way."""
    blob_store, manifest, pieces, partial = _download_flushing_every(
        tmp_path, monkeypatch, 2, 4)
    bitmap_path = blob_store.root / (manifest.blob_id.hex() + ".bitmap")
    bitmap_before = bitmap_path.read_bytes()

    _fsync_failing_once(monkeypatch)
    partial.write_chunk(0, pieces[0])
    partial.write_chunk(1, pieces[1])  # starts the flush, which fails
    _join_flushes()
    assert bitmap_path.read_bytes() == bitmap_before
    with pytest.raises(BlobStoreError, match="cannot save the download's progress"):
        partial.write_chunk(2, pieces[2])
    assert partial.held_count == 2  # chunk 2 was not written
    with pytest.raises(BlobStoreError, match="cannot save the download's progress"):
        partial.cancel()  # its fsync would succeed now: it must not claim chunks 0 and 1
    with pytest.raises(BlobStoreError, match="closed"):
        partial.write_chunk(3, pieces[3])
    assert bitmap_path.read_bytes() == bitmap_before
    resumed = BlobStore(tmp_path / "blobs", space_margin=0).start_download(manifest)
    assert resumed.held_count == 0
    resumed.cancel()


def test_complete_after_a_failed_flush_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All chunks written, but the flush behind them failed: complete() refuses, closes the
    file and installs no blob (and no .verified sidecar); a later fetch resumes from the last
    good bitmap."""
    blob_store, manifest, pieces, partial = _download_flushing_every(
        tmp_path, monkeypatch, 4, 4)
    _fsync_failing_once(monkeypatch)
    for index in range(4):
        partial.write_chunk(index, pieces[index])  # the 4th starts the flush, which fails
    with pytest.raises(BlobStoreError, match="cannot save the download's progress"):
        partial.complete()
    assert not blob_store.has(manifest.blob_id)
    assert not list(blob_store.root.glob("*.verified"))
    with pytest.raises(BlobStoreError, match="closed"):
        partial.complete()
    resumed = BlobStore(tmp_path / "blobs", space_margin=0).start_download(manifest)
    assert resumed.held_count == 0
    for index in range(4):
        assert resumed.write_chunk(index, pieces[index])
    path = resumed.complete()
    assert path.read_bytes() == b"".join(pieces)


def test_write_chunk_refuses_bad_chunk_without_trace(tmp_path: Path, blob_store: BlobStore) -> None:
    """A chunk that does not verify is not written, not marked, not persisted."""
    data = blob(3 * CHUNK_SIZE)
    manifest = manifest_for(data)
    partial = blob_store.start_download(manifest)
    bitmap_path = blob_store.root / (manifest.blob_id.hex() + ".bitmap")
    bitmap_before = bitmap_path.read_bytes()
    bad = bytearray(data[CHUNK_SIZE : 2 * CHUNK_SIZE])
    bad[100] ^= 0xFF
    assert partial.write_chunk(1, bytes(bad)) is False
    assert partial.write_chunk(1, data[:CHUNK_SIZE]) is False  # another chunk's bytes
    assert partial.write_chunk(1, data[CHUNK_SIZE : 2 * CHUNK_SIZE - 1]) is False  # short
    assert partial.write_chunk(3, data[:CHUNK_SIZE]) is False  # no such chunk
    partial.flush()
    assert partial.held_count == 0
    assert bitmap_path.read_bytes() == bitmap_before
    assert partial.path.read_bytes() == bytes(3 * CHUNK_SIZE)
    with pytest.raises(BlobStoreError, match="3 of 3 chunks missing"):
        partial.complete()
    partial.discard()


def test_complete_yields_matching_file(tmp_path: Path, blob_store: BlobStore) -> None:
    """complete() renames the .part into a blob whose SHA-256 is the original's."""
    data = blob(5 * CHUNK_SIZE - 3)
    manifest = manifest_for(data)
    partial = blob_store.start_download(manifest)
    assert blob_store.start_download(manifest) is partial  # one open download per blob
    for index, piece in enumerate(chunks_of(data)):
        assert partial.write_chunk(index, piece)
    assert partial.write_chunk(0, data[:CHUNK_SIZE])  # a duplicate is harmless
    assert partial.is_complete
    final = partial.complete()
    assert final == blob_store.path(manifest.blob_id)
    assert hashlib.sha256(final.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    with pytest.raises(BlobStoreError, match="closed"):
        partial.write_chunk(0, data[:CHUNK_SIZE])
    with pytest.raises(BlobStoreError, match="already complete"):
        blob_store.start_download(manifest)


def test_empty_blob_download(blob_store: BlobStore) -> None:
    """A zero-byte blob is complete as soon as it is started."""
    manifest = manifest_for(b"")
    partial = blob_store.start_download(manifest)
    assert partial.is_complete
    assert partial.complete().read_bytes() == b""
    assert blob_store.has(manifest.blob_id)


def test_discard_removes_the_partial(blob_store: BlobStore) -> None:
    """discard() deletes .part, .bitmap and the manifest of a blob never completed."""
    data = blob(2 * CHUNK_SIZE)
    manifest = manifest_for(data)
    partial = blob_store.start_download(manifest)
    partial.write_chunk(0, data[:CHUNK_SIZE])
    partial.discard()
    partial.discard()
    assert list(blob_store.root.iterdir()) == []
    assert blob_store.manifest(manifest.blob_id) is None


def test_insufficient_space_for_a_huge_manifest(tmp_path: Path, blob_store: BlobStore) -> None:
    """A blob bigger than the disk is refused up front with the numbers, creating nothing."""
    disk = shutil.disk_usage(tmp_path)
    fake = Manifest(disk.total + CHUNK_SIZE, CHUNK_SIZE, (bytes(32),))
    big_store = BlobStore(tmp_path / "big", max_blob_size=2**62)
    with pytest.raises(InsufficientSpace, match="not enough disk space") as exc:
        big_store.start_download(fake)
    assert exc.value.needed >= disk.total + CHUNK_SIZE
    assert exc.value.needed > exc.value.available
    assert list(big_store.root.iterdir()) == []
    with pytest.raises(BlobTooLarge):
        blob_store.start_download(fake)  # the default 4 GiB cap comes first


def test_add_file_after_partial_supersedes_it(tmp_path: Path, blob_store: BlobStore) -> None:
    """Sharing a file whose download was left half done replaces the partial."""
    data = blob(2 * CHUNK_SIZE)
    manifest = manifest_for(data)
    partial = blob_store.start_download(manifest)
    partial.write_chunk(1, data[CHUNK_SIZE:])
    partial.cancel()
    blob_store.add_file(write_source(tmp_path, data))
    assert blob_store.partial_ids() == []
    assert blob_store.has(manifest.blob_id)


# -- export ------------------------------------------------------------------------------------


def test_export_to_refuses_to_overwrite(tmp_path: Path, blob_store: BlobStore) -> None:
    """export_to copies the blob, refuses an existing path, and overwrites only when told."""
    data = blob(CHUNK_SIZE + 7)
    manifest = blob_store.add_file(write_source(tmp_path, data))
    dest = tmp_path / "out" / "copy.bin"
    dest.parent.mkdir()
    assert blob_store.export_to(manifest.blob_id, dest) == dest
    assert dest.read_bytes() == data
    dest.write_bytes(b"mine")
    with pytest.raises(DestinationExists, match="not overwriting"):
        blob_store.export_to(manifest.blob_id, dest)
    assert dest.read_bytes() == b"mine"
    blob_store.export_to(manifest.blob_id, dest, overwrite=True)
    assert dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.bin"]
    with pytest.raises(BlobNotFound):
        blob_store.export_to(bytes(32), tmp_path / "nothing.bin")


def test_remove_deletes_a_blob(tmp_path: Path, blob_store: BlobStore) -> None:
    """remove() deletes the blob and its manifest; has() is then False."""
    manifest = blob_store.add_file(write_source(tmp_path, b"bye"))
    assert blob_store.remove(manifest.blob_id)
    assert not blob_store.has(manifest.blob_id)
    assert blob_store.manifest(manifest.blob_id) is None
    assert not blob_store.remove(manifest.blob_id)


def test_bitmap_file_is_one_bit_per_chunk(blob_store: BlobStore) -> None:
    """The persisted bitmap is exactly protocol.blobs.Bitmap's bytes."""
    data = blob(9 * CHUNK_SIZE)
    manifest = manifest_for(data)
    partial = blob_store.start_download(manifest)
    partial.write_chunk(8, data[8 * CHUNK_SIZE :])
    partial.cancel()
    raw = (blob_store.root / (manifest.blob_id.hex() + ".bitmap")).read_bytes()
    expected = Bitmap(9)
    expected.set(8)
    assert raw == expected.to_bytes() == b"\x00\x80"
