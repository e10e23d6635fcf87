"""Resource transfer between peers: the node's blob service (announce, serve, download).

DESIGN.md "Resources (blobs)", PROTOCOL.md section 6. `BlobService` is what `Node` uses of the
blob exchange: `session_opened`, `annotate`, `share`, `fetch`, `holders`, `peer_stats`,
`close`. It keeps the tables (connected peers, what each announced, downloads in progress), the
blob I/O thread pool and the tasks, and hands the work to the modules beside it:

- `peer`: the exchange's state for one connected peer;
- `serving`: answering the peer's ``blob_get`` and ``blob_cancel``;
- `download`: fetching one blob from every holder (`Download`), with `requests` for our
  requests at a peer;
- `protocol.blobs` decides what to ask of whom (`DownloadPlan`); `store` and `partial` keep
  the bytes.

Rules it keeps:

- Holders: every session starts with our complete blob ids (``have_blobs``), and each blob we
  complete or add is announced to every session; we only ask peers that announced a blob (at
  most `_MAX_PEER_BLOBS` remembered per peer).
- Blob I/O runs in this service's own small thread pool, never on the node's store thread, so
  SQLite work is never queued behind disk reads. The one exception is the transfer's hot path:
  a chunk read to serve and a received chunk's hash-and-write run on the event loop while the
  disk answers quickly (`inline.InlineGate`), because a hand-off to a thread costs more CPU
  than they do; copies, exports, flushes and anything slow stay in the pool.
- Frame handlers never await: they file what arrived and return, so a transfer never stalls the
  session's reader (pings, entries and other transfers keep flowing).
- Downloads are shared: fetching a blob already being fetched follows the same download. When
  the last follower goes away (the CLI disconnected) or the node stops, the download is
  cancelled and keeps what is on disk (see `download`).
- Every task has an owner (`BlobService._tasks`), cancelled and awaited by `close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from p2pnode.blobs import download as download_module
from p2pnode.blobs import resources, serving
from p2pnode.blobs.download import (
    _BAD_CHUNK_PENALTY as _BAD_CHUNK_PENALTY,  # read here by the tests
)
from p2pnode.blobs.download import Download
from p2pnode.blobs.errors import BlobStoreError
from p2pnode.blobs.peer import BlobPeer
from p2pnode.blobs.ratelimit import TokenBucket
from p2pnode.blobs.requests import on_data, on_error
from p2pnode.blobs.store import BlobStore, ProgressCallback
from p2pnode.events import EntryArrived, Lagged
from protocol import frames as fr
from protocol.blobs import Bitmap
from protocol.errors import MalformedError, ProtocolError
from protocol.identity import fingerprint

if TYPE_CHECKING:
    from p2pnode.blobs.host import BlobHost, PeerLink
    from p2pnode.store.models import Resource

#: A follower reports at least this often, even when nothing moved.
_HEARTBEAT = 1.0
#: Blob ids remembered per peer (``have_blobs`` from a peer beyond this are ignored).
_MAX_PEER_BLOBS = 100_000
#: Blob I/O threads. One beats two (and two beat four) on the 2-core bench, ~8% less CPU per
#: byte: fewer threads fight the loop for the GIL and the cores. SHA-256 runs at ~1.7 GB/s on
#: one thread, so one keeps up with the network.
_IO_THREADS = 1

T = TypeVar("T")


def _now_ms() -> int:
    return int(time.time() * 1000)




#: downloads running at once (each keeps up to 32 chunk requests open per peer, and a file open)
MAX_DOWNLOADS = 8


class BlobService:
    """The node's blob exchange: announce, serve, download (see the module docstring).

    Args:
        host: the started node, as `BlobHost` describes it.
        root: the directory of the blob store (the home's `blobs/`).
        upload_rate: serve at most this many bytes a second to all peers together (None: as
            fast as they ask).
    """

    def __init__(self, host: BlobHost, root: Path, *, upload_rate: float | None = None) -> None:
        self.host = host
        self.store = BlobStore(root)
        self._pool = ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="p2pnode-blobs")
        self._peers: dict[PeerLink, BlobPeer] = {}
        self._downloads: dict[bytes, Download] = {}
        self._local: set[bytes] = set(self.store.blob_ids())
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        #: chunk requests we sent and chunks we served (all peers, since start)
        self.chunks_requested = 0
        self.chunks_served = 0
        #: serving reads chunks on the event loop while this gate says reads are quick
        #: (`serving`); `inline_reads` False sends every read to the blob I/O threads
        self.read_gate = serving.read_gate()
        self.inline_reads = True
        #: paces chunks served when the node has an upload limit
        self.upload_limit = TokenBucket(upload_rate) if upload_rate else None
        self._spawn(self._watch_entries(), "blobs-watch-entries")

    # -- node hooks --------------------------------------------------------------------------
    def session_opened(self, conn: PeerLink) -> None:
        """A session opened: tell the peer what we hold and start serving it."""
        if self._closed:
            return
        peer = BlobPeer(conn, self.host)
        self._peers[conn] = peer
        conn.handlers[fr.HaveBlobs] = functools.partial(self._on_have, peer)
        conn.handlers[fr.BlobGet] = functools.partial(serving.on_get, peer)
        conn.handlers[fr.BlobData] = functools.partial(on_data, peer)
        conn.handlers[fr.BlobError] = functools.partial(on_error, peer)
        conn.handlers[fr.BlobCancel] = functools.partial(serving.on_cancel, peer)
        ids = sorted(self._local)
        for start in range(0, len(ids), fr.MAX_BLOB_IDS):
            conn.send(fr.HaveBlobs(tuple(ids[start : start + fr.MAX_BLOB_IDS])))
        serve = self._spawn(serving.serve(self, peer), f"blobs-serve-{conn.label}")
        self._spawn(self._watch(peer, serve), f"blobs-watch-{conn.label}")

    def annotate(self, resource: Resource) -> Resource:
        """Fill in whether `resource`'s blob is held here and which connected peers hold it."""
        blob = resource.blob
        held = blob in self._local or self.store.has(blob)
        holders = tuple(
            p.peer_id for p in self.holders(blob) if p.peer_id is not None
        )
        return dataclasses.replace(resource, held=held, holders=holders)

    def holders(self, blob_id: bytes) -> list[BlobPeer]:
        """Connected peers that announced `blob_id`."""
        return [p for p in self._peers.values() if blob_id in p.has and p.conn.is_open]

    def peer_stats(self) -> dict[bytes, dict[str, int]]:
        """Chunks requested of and served to each connected peer, and the resource bytes
        received from it (verified) and sent to it (for status, the peers screen, tests)."""
        return {
            p.peer_id: {"requested": p.chunks_requested, "served": p.chunks_served,
                        "bytes_received": p.bytes_received, "bytes_sent": p.bytes_served}
            for p in self._peers.values()
            if p.peer_id is not None
        }

    def transfers(self) -> list[dict[str, Any]]:
        """The downloads running now, as `fetch`'s progress dicts (oldest first)."""
        return [download.progress() for download in self._downloads.values()]

    def paused(self) -> list[dict[str, Any]]:
        """Downloads stopped part-way and kept on disk (a restart, a cancel): blob, bytes held
        and size, for a learner to resume. Reads small files: call it off the event loop."""
        found = []
        for blob_id in self.store.partial_ids():
            if blob_id in self._downloads:
                continue
            manifest = self.store.manifest(blob_id)
            if manifest is None:
                continue
            try:
                bits = Bitmap.from_bytes(manifest.chunk_count, self.store.path_for(
                    blob_id, ".bitmap").read_bytes())
            except (OSError, MalformedError):
                bits = Bitmap(manifest.chunk_count)
            held = sum(manifest.chunk_length(i) for i, have in enumerate(bits) if have)
            found.append({"blob": blob_id, "state": "paused", "done_bytes": held,
                          "total_bytes": manifest.size, "peers": 0})
        return found

    def cancel(self, blob_id: bytes) -> bool:
        """Stop the download of `blob_id` for every follower, keeping what is on disk (a later
        fetch resumes). Returns whether one was running."""
        download = self._downloads.get(blob_id)
        if download is None or download.task is None or download.task.done():
            return False
        download.task.cancel()
        return True

    # -- sharing -----------------------------------------------------------------------------
    async def share(
        self,
        path: Path | str,
        *,
        title: str | None = None,
        circle: bytes | None = None,
        licence: str | None = None,
        caption: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> resources.Shared:
        """Copy a file into the blob store, publish its `resource` record, announce it.

        Args:
            progress: called as ``progress(done, total)`` from a blob I/O thread while copying.

        Raises:
            InvalidInput, NotFound, RecoveryPending: see `resources.check_share`.
            BlobStoreError, OSError: the copy failed.
        """
        path = Path(path)
        body = await self.host.perform(
            resources.check_share, path, title=title, circle=circle, licence=licence,
            caption=caption,
        )
        manifest = await self._io(self.store.add_file, path, progress)
        body = {**body, "blob": manifest.blob_id, "size": manifest.size}
        entry = await self.host.perform(resources.publish_resource, body, at_ms=_now_ms())
        self._blob_added(manifest.blob_id)
        return resources.Shared(manifest.blob_id, entry, body)

    def _blob_added(self, blob_id: bytes) -> None:
        """A blob became complete here: announce it to every session."""
        self._local.add(blob_id)
        for peer in list(self._peers.values()):
            if peer.conn.is_open:
                with contextlib.suppress(ProtocolError):
                    peer.conn.send(fr.HaveBlobs((blob_id,)))

    async def _watch_entries(self) -> None:
        """Blobs added by a CLI process on this home show up as our own `resource` entries."""
        async for event in self.host.bus.subscribe():
            if isinstance(event, Lagged) or (
                isinstance(event, EntryArrived) and event.kind == "resource" and event.own
            ):
                ids = await self._io(self.store.blob_ids)
                for blob_id in ids:
                    if blob_id not in self._local:
                        self._blob_added(blob_id)

    # -- fetching ----------------------------------------------------------------------------
    async def fetch(
        self, blob_id: bytes, output: str | Path | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Download a blob from the peers that hold it; yield progress as it goes.

        Progress dicts (about 10 a second at most, and at least one a second) carry ``blob``,
        ``state``, ``done_bytes``, ``total_bytes`` and ``peers``. The last dict has either
        ``done: True`` with ``path`` (`output` when given, else the blob in the store),
        ``size`` and ``sources`` (chunks per peer), or ``error`` (one line for a person).
        Closing the iterator early cancels the download, keeping what is on disk.

        Args:
            output: also copy the finished file there (never overwriting a file).
        """
        if self._closed:
            yield {"blob": blob_id, "error": "the node is stopping"}
            return
        if blob_id in self._local or self.store.has(blob_id):
            yield await self._deliver(blob_id, output, None)
            return
        download = self._downloads.get(blob_id)
        if download is None and len(self._downloads) >= MAX_DOWNLOADS:
            yield {"blob": blob_id, "error": f"already {MAX_DOWNLOADS} downloads running here;"
                   " try again when one has finished"}
            return
        if download is None:
            download = Download(self, blob_id)
            self._downloads[blob_id] = download
            download.task = self._spawn(download.run(), f"blobs-fetch-{fingerprint(blob_id)}")
        download.followers += 1
        try:
            seen = -1
            last = 0.0
            while not download.done.done():
                await asyncio.wait({download.done}, timeout=download_module._PROGRESS_INTERVAL)
                if download.done.done():
                    break
                now = time.monotonic()
                if download.version != seen or now - last >= _HEARTBEAT:
                    seen, last = download.version, now
                    yield download.progress()
            if download.error is not None:
                yield {**download.progress(), "error": download.error}
                return
            yield await self._deliver(blob_id, output, download)
        finally:
            download.followers -= 1
            task = download.task
            if download.followers <= 0 and task is not None and not task.done():
                task.cancel()

    async def _deliver(self, blob_id: bytes, output: str | Path | None,
                       download: Download | None) -> dict[str, Any]:
        try:
            manifest = await self._io(self.store.manifest, blob_id)
            path = await self._io(self.store.path, blob_id)
        except BlobStoreError as exc:
            return {"blob": blob_id, "error": str(exc)}
        result: dict[str, Any] = {
            "blob": blob_id,
            "done": True,
            "path": str(path),
            "size": manifest.size if manifest else None,
            "sources": download.sources() if download else [],
        }
        if download is not None and download.plan is not None:
            result["bad_peers"] = [p.peer_id for p in download.plan.bad_peers
                                   if isinstance(p, BlobPeer)]
        if output:
            try:
                dest = await self._io(self.store.export_to, blob_id, Path(output))
            except (BlobStoreError, OSError) as exc:
                message = exc.strerror if isinstance(exc, OSError) else str(exc)
                return {**result, "done": False,
                        "error": f"downloaded, but not saved to {output}: {message}"}
            result["path"] = str(dest)
        return result

    # -- frame handlers (never await) --------------------------------------------------------
    def _on_have(self, peer: BlobPeer, frame: fr.HaveBlobs) -> None:
        room = _MAX_PEER_BLOBS - len(peer.has)
        ids = frame.blob_ids if len(frame.blob_ids) <= room else frame.blob_ids[:max(0, room)]
        peer.has.update(ids)
        for blob_id in ids:
            download = self._downloads.get(blob_id)
            if download is not None:
                download.wake()

    # -- serving -----------------------------------------------------------------------------
    def _load_chunk(self, blob_id: bytes, index: int) -> list[bytes]:
        """Read one chunk to serve (`serving.load_chunk`), on the loop or in a blob I/O thread
        (see `serving`). `serving` reads every chunk through this method, looked up on the
        service: tests replace it to play a slow or lying peer."""
        return serving.load_chunk(self.store, blob_id, index)

    # -- peers coming and going --------------------------------------------------------------
    async def _watch(self, peer: BlobPeer, serve: asyncio.Task[None]) -> None:
        try:
            await peer.conn.wait_closed()
        finally:
            serve.cancel()
            with contextlib.suppress(BaseException):
                await serve
            self._peer_gone(peer)

    def _peer_gone(self, peer: BlobPeer) -> None:
        if self._peers.get(peer.conn) is peer:
            del self._peers[peer.conn]
        requests = list(peer.requests.values())
        peer.requests.clear()
        peer.queued.clear()
        for req in requests:
            req.on_lost()
        for download in list(self._downloads.values()):
            download.peer_lost(peer)

    # -- plumbing ----------------------------------------------------------------------------
    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def close(self) -> None:
        """Stop every download (keeping partials), stop serving; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        downloads = [d.task for d in self._downloads.values() if d.task is not None]
        for task in downloads:
            if not task.done() and not task.cancelling():
                task.cancel()
        for task in downloads:
            with contextlib.suppress(BaseException):
                await task
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        self._pool.shutdown(wait=True)
