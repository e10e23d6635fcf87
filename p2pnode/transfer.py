"""Resource transfer between peers: announce, serve and download blobs over peer sessions.

DESIGN.md "Resources (blobs)", PROTOCOL.md section 6. `BlobService` is the node's half of the
blob exchange; `protocol.blobs` decides what to ask of whom (`DownloadPlan`) and
`p2pnode.blobstore` keeps the bytes. Rules it keeps:

- Holders: every session starts with our complete blob ids (``have_blobs``), and each blob we
  complete or add is announced to every session; we only ask peers that announced a blob.
- Blob I/O (chunk reads, verify-and-write, copies, exports) runs in this service's own small
  thread pool, never on the event loop and never on the node's store thread, so SQLite work is
  never queued behind disk reads.
- Frame handlers never await: they file what arrived and return, so a transfer never stalls the
  session's reader (pings, entries and other transfers keep flowing).
- Memory is bounded by windows, not by file size. A download has at most `_WINDOW` chunk
  requests in flight per peer, plus at most `_MAX_WRITES` received chunks waiting to be verified
  and written (a chunk stays outstanding in the plan until it is on disk, so a slow disk slows
  the network down). Serving holds the chunk being sent, `_READ_AHEAD` chunks read ahead, and
  the connection's bounded outgoing queue.
- Chunk requests count against the peer's frame rate: they are paced by `Session.send_credit`,
  never sent beyond it (the peer would drop them and score us down).
- Serving answers each connection's requests in order, chunk pieces via `send_bulk` (flow
  control), and stops a request as soon as the peer cancels it. A chunk is read (and verified,
  unless it verified before and the file is unchanged: `BlobStore.read_chunk_pieces`) already
  cut into ``blob_data`` pieces; a received chunk is hashed and written as the pieces it came
  in (`PartialBlob.write_chunk`). Neither side joins or slices a chunk on the event loop.
- A chunk is verified before it is written (`PartialBlob.write_chunk`); a bad one gives the peer
  a strike in the plan and lowers its score, and the chunk is asked of another holder.
- Downloads are shared: fetching a blob already being fetched follows the same download. When
  the last follower goes away (the CLI disconnected) or the node stops, outstanding requests are
  cancelled (``blob_cancel``) and the .part and bitmap stay on disk: the next fetch resumes.
- Every task has an owner (`BlobService._tasks`), cancelled and awaited by `close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from protocol import frames as fr
from protocol.blobs import MAX_MANIFEST_SIZE, DownloadPlan, Manifest, decode_manifest
from protocol.errors import MalformedError, ProtocolError
from protocol.identity import fingerprint

from . import resources
from .blobstore import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    CorruptBlob,
    PartialBlob,
    ProgressCallback,
)
from .events import EntryArrived, Lagged, TransferFinished, TransferProgress

if TYPE_CHECKING:
    from .connection import PeerConnection
    from .models import Resource
    from .node import Node

log = logging.getLogger(__name__)

#: How long a fetch waits for a connected peer to announce the blob before giving up.
_HOLDER_WAIT = 2.0
#: How long a download that lost every holder waits for one to come back.
_STALL_WAIT = 30.0
#: A peer with requests open that sends nothing for this long is dropped from the download.
_REQUEST_TIMEOUT = 20.0
#: Chunk requests in flight per peer (8 MiB). More in flight means fewer, fuller socket reads
#: and wake-ups per byte on both sides: on the 2-core bench (256 MiB, one peer, blob_get not
#: rate-limited) 8 gave ~450 MB/s, 16 ~520, 24 ~540, 32 ~560 with less CPU per byte. The
#: session allows 64 open requests; a second download from the same peer gets what is left
#: (`pump` keeps to the cap).
_WINDOW = 32
#: ... but a peer's window is no larger than its share of the chunks still missing (at least
#: this many), so that a small file is still spread over every holder.
_MIN_WINDOW = 8
#: Received chunks waiting to be verified and written, per download. Counting them in the
#: window instead halved loopback throughput: I/O threads wait for the GIL behind the loop.
_MAX_WRITES = 16
#: Open requests left free at each peer beyond our windows (manifests, other downloads).
_RESERVED_REQUESTS = 2
_TICK = 0.5
#: How soon to ask again when the peer's frame rate left no room for a request.
_PACE_DELAY = 0.005
_PROGRESS_INTERVAL = 0.1
_HEARTBEAT = 1.0
_BAD_CHUNK_PENALTY = 20.0
_BAD_MANIFEST_PENALTY = 20.0
_PROTOCOL_PENALTY = 10.0
#: Blob ids remembered per peer (``have_blobs`` from a peer beyond this are ignored).
_MAX_PEER_BLOBS = 100_000
#: Blob I/O threads. One beats two (and two beat four) on the 2-core bench, ~8% less CPU per
#: byte: fewer threads fight the loop for the GIL and the cores. SHA-256 runs at ~1.7 GB/s on
#: one thread, so one keeps up with the network.
_IO_THREADS = 1
#: Chunks read ahead per connection while one is being sent.
_READ_AHEAD = 2

T = TypeVar("T")

NO_HOLDER = "no connected peer holds this resource"


class _Failed(Exception):
    """The download cannot go on; the message is for the user."""


class _PeerFailed(Exception):
    """One peer could not give us what we asked (try another)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Done-callback for futures nobody may await: mark their exception as seen."""
    if not future.cancelled():
        future.exception()


# -- per-connection state -----------------------------------------------------------------------


class _Peer:
    """Our side of the blob exchange with one connected peer."""

    __slots__ = (
        "_next_id",
        "chunks_requested",
        "chunks_served",
        "conn",
        "current",
        "current_cancelled",
        "has",
        "queued",
        "requests",
        "wake",
    )

    def __init__(self, conn: PeerConnection) -> None:
        self.conn = conn
        #: blob ids the peer announced
        self.has: set[bytes] = set()
        #: our open requests at the peer, by req id
        self.requests: dict[int, _Request] = {}
        #: the peer's requests waiting to be served, in arrival order
        self.queued: dict[int, fr.BlobGet] = {}
        self.current: int | None = None
        self.current_cancelled = False
        self.wake = asyncio.Event()
        self.chunks_requested = 0
        self.chunks_served = 0
        self._next_id = 0

    @property
    def peer_id(self) -> bytes | None:
        return self.conn.peer_id

    def new_req_id(self) -> int:
        while True:
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF
            if self._next_id not in self.requests:
                return self._next_id

    def __repr__(self) -> str:
        return f"<peer {self.conn.label}>"


class _Request:
    """One of our open requests at a peer."""

    __slots__ = ("peer", "req_id")

    def __init__(self, peer: _Peer, req_id: int) -> None:
        self.peer = peer
        self.req_id = req_id

    def on_data(self, frame: fr.BlobData) -> None:
        raise NotImplementedError

    def on_error(self, code: str, message: str) -> None:
        raise NotImplementedError

    def on_lost(self) -> None:
        """The session ended with the request open."""
        raise NotImplementedError


class _ManifestRequest(_Request):
    __slots__ = ("data", "future", "total", "touched")

    def __init__(self, peer: _Peer, req_id: int, future: asyncio.Future[bytes]) -> None:
        super().__init__(peer, req_id)
        self.future = future
        self.data = bytearray()
        self.total: int | None = None
        self.touched = time.monotonic()

    def _fail(self, reason: str) -> None:
        self.peer.requests.pop(self.req_id, None)
        if not self.future.done():
            self.future.set_exception(_PeerFailed(reason))

    def on_data(self, frame: fr.BlobData) -> None:
        self.touched = time.monotonic()
        if self.total is None:
            self.total = frame.total
        if frame.offset != len(self.data) or frame.total != self.total:
            self.peer.conn.node.peers.penalise(
                self.peer.conn, "manifest pieces out of order", _PROTOCOL_PENALTY
            )
            self._cancel_and_fail("sent manifest pieces out of order")
            return
        if frame.total > MAX_MANIFEST_SIZE:
            self._cancel_and_fail(f"announced a {frame.total}-byte manifest (limit "
                                  f"{MAX_MANIFEST_SIZE})")
            return
        self.data += frame.data
        if frame.final:
            self.peer.requests.pop(self.req_id, None)
            if not self.future.done():
                self.future.set_result(bytes(self.data))

    def _cancel_and_fail(self, reason: str) -> None:
        _send_cancel(self.peer, self.req_id)
        self._fail(reason)

    def on_error(self, code: str, message: str) -> None:
        self._fail(f"answered {code}" + (f": {message}" if message else ""))

    def on_lost(self) -> None:
        self._fail("disconnected")


class _ChunkRequest(_Request):
    __slots__ = ("download", "index", "length", "parts", "received")

    def __init__(self, download: _Download, peer: _Peer, req_id: int, index: int,
                 length: int) -> None:
        super().__init__(peer, req_id)
        self.download = download
        self.index = index
        self.length = length
        self.parts: list[bytes] = []
        self.received = 0

    def on_data(self, frame: fr.BlobData) -> None:
        download = self.download
        download.progress_at[self.peer] = time.monotonic()
        if frame.offset != self.received or frame.total != self.length:
            download.garbled(self)
            return
        self.parts.append(frame.data)
        self.received += len(frame.data)
        if self.received == self.length:
            del self.peer.requests[self.req_id]
            download.chunk_arrived(self)

    def on_error(self, code: str, message: str) -> None:
        self.download.request_refused(self, code, message)

    def on_lost(self) -> None:
        self.download.requests.pop((self.peer, self.index), None)


def _send_cancel(peer: _Peer, req_id: int) -> None:
    peer.requests.pop(req_id, None)
    if peer.conn.is_open:
        with contextlib.suppress(ProtocolError):
            peer.conn.send(fr.BlobCancel(req_id))


# -- one download ------------------------------------------------------------------------------


class _Download:
    """One blob being fetched from every peer that holds it (see the module docstring)."""

    def __init__(self, service: BlobService, blob_id: bytes) -> None:
        self.service = service
        self.blob_id = blob_id
        self.manifest: Manifest | None = None
        self.partial: PartialBlob | None = None
        self.plan: DownloadPlan | None = None
        self.task: asyncio.Task[None] | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: str | None = None
        self.path: Path | None = None
        self.followers = 0
        self.state = "finding peers"
        #: bumped on every visible change; followers report when it moved
        self.version = 0
        self.requests: dict[tuple[_Peer, int], _ChunkRequest] = {}
        self.writes: set[asyncio.Future[bool]] = set()
        self.writing: dict[_Peer, int] = {}
        self.progress_at: dict[_Peer, float] = {}
        self.in_plan: set[_Peer] = set()
        self.given_up: set[_Peer] = set()
        self.ever_had_peer = False
        self.stopping = False
        self._failure: str | None = None
        self._wake = asyncio.Event()
        self._published = 0.0
        self._pace_timer: asyncio.TimerHandle | None = None

    # -- reporting ---------------------------------------------------------------------------
    def progress(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "blob": self.blob_id,
            "state": self.state,
            "done_bytes": plan.held_bytes if plan else 0,
            "total_bytes": self.manifest.size if self.manifest else None,
            "peers": len(self.in_plan),
        }

    def sources(self) -> list[dict[str, Any]]:
        """Chunks each peer delivered first (a peer that reconnected is counted once)."""
        counts: dict[bytes | None, int] = {}
        for peer, count in (self.plan.served_by.items() if self.plan else ()):
            if count and isinstance(peer, _Peer):
                counts[peer.peer_id] = counts.get(peer.peer_id, 0) + count
        return [{"peer": peer_id, "chunks": count} for peer_id, count in counts.items()]

    def _changed(self, force: bool = False) -> None:
        self.version += 1
        now = time.monotonic()
        if self.manifest is not None and (force or now - self._published >= _PROGRESS_INTERVAL):
            self._published = now
            plan = self.plan
            self.service.node.bus.publish(TransferProgress(
                self.blob_id, plan.held_bytes if plan else 0, self.manifest.size,
                len(self.in_plan),
            ))

    def wake(self) -> None:
        self._wake.set()

    async def _sleep(self, timeout: float) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # arrives just as the event is set, and the download would outlive `close`.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    # -- the task ----------------------------------------------------------------------------
    async def run(self) -> None:
        service = self.service
        ok = False
        try:
            manifest = await service._io(service.store.manifest, self.blob_id)
            if manifest is None:
                manifest = await self._get_manifest()
            self.manifest = manifest
            self.state = "starting"
            self.partial = await service._io(service.store.start_download, manifest)
            self.plan = DownloadPlan(manifest, self.partial.held)
            self.state = "downloading"
            self._changed(force=True)
            await self._transfer()
            await self._drain_writes()
            partial, self.partial = self.partial, None
            self.path = await service._io(partial.complete)
            service._blob_added(self.blob_id)
            ok = True
        except _Failed as exc:
            self.error = str(exc)
        except BlobStoreError as exc:
            if service.store.has(self.blob_id):  # the same file was shared here meanwhile
                service._blob_added(self.blob_id)
                ok = True
            else:
                self.error = str(exc)
        except asyncio.CancelledError:
            self.error = (
                "stopped: the node is shutting down" if service._closed else "cancelled"
            ) + self._kept()
            raise
        except Exception as exc:
            log.exception("download of %s failed", fingerprint(self.blob_id))
            self.error = f"internal error: {exc}"
        finally:
            await self._wind_down(ok)

    def _kept(self) -> str:
        plan = self.plan
        if plan is None or not plan.held_count:
            return ""
        return (f" ({plan.held_count} of {plan.manifest.chunk_count} chunks kept; "
                "fetch again to resume)")

    async def _wind_down(self, ok: bool) -> None:
        self.stopping = True  # from now on nothing new is asked of anyone
        if self._pace_timer is not None:
            self._pace_timer.cancel()
            self._pace_timer = None
        for (peer, _), req in list(self.requests.items()):
            _send_cancel(peer, req.req_id)
        self.requests.clear()
        await self._drain_writes()
        if self.partial is not None:
            partial, self.partial = self.partial, None
            try:
                await self.service._io(partial.cancel)  # keeps the .part and its bitmap
            except Exception:
                log.exception("could not save the partial download of %s",
                              fingerprint(self.blob_id))
        self.state = "done" if ok else "failed"
        self._changed(force=True)
        self.service.node.bus.publish(
            TransferFinished(self.blob_id, ok, "complete" if ok else self.error or "failed")
        )
        if self.service._downloads.get(self.blob_id) is self:
            del self.service._downloads[self.blob_id]
        if not self.done.done():
            self.done.set_result(None)

    async def _drain_writes(self) -> None:
        while self.writes:
            await asyncio.wait(set(self.writes))

    # -- manifest ----------------------------------------------------------------------------
    async def _get_manifest(self) -> Manifest:
        deadline = time.monotonic() + _HOLDER_WAIT
        tried: set[_Peer] = set()
        failures: list[str] = []
        while True:
            self._wake.clear()
            fresh = [p for p in self.service.holders(self.blob_id) if p not in tried]
            if fresh:
                peer = fresh[0]
                tried.add(peer)
                self.state = "fetching the manifest"
                self._changed()
                try:
                    return await self._manifest_from(peer)
                except _PeerFailed as exc:
                    log.info("manifest of %s from %s: %s", fingerprint(self.blob_id),
                             peer.conn.label, exc)
                    failures.append(f"{fingerprint(peer.peer_id or b'')}: {exc}")
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if failures:
                    raise _Failed("could not get the resource's manifest from any peer ("
                                  + "; ".join(failures) + ")")
                raise _Failed(NO_HOLDER)
            await self._sleep(remaining)

    async def _manifest_from(self, peer: _Peer) -> Manifest:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        future.add_done_callback(_retrieve)
        req = _ManifestRequest(peer, peer.new_req_id(), future)
        if not self.service._send_request(peer, req, fr.BlobGet(req.req_id, self.blob_id,
                                                                "manifest", 0)):
            raise _PeerFailed("no room for a request")
        while not future.done():
            await asyncio.wait({future}, timeout=_TICK)
            if not future.done() and time.monotonic() - req.touched > _REQUEST_TIMEOUT:
                _send_cancel(peer, req.req_id)
                raise _PeerFailed(f"sent nothing for {_REQUEST_TIMEOUT:g} s")
        data = future.result()
        try:
            return decode_manifest(data, self.blob_id)
        except MalformedError as exc:
            self.service.node.peers.penalise(peer.conn, "bad manifest", _BAD_MANIFEST_PENALTY)
            raise _PeerFailed(f"sent a bad manifest ({exc})") from None

    # -- chunks ------------------------------------------------------------------------------
    async def _transfer(self) -> None:
        plan = self.plan
        assert plan is not None
        stalled_since: float | None = None
        while not plan.complete:
            self._wake.clear()
            if self._failure:
                raise _Failed(self._failure)
            now = time.monotonic()
            self._check_timeouts(now)
            self._add_holders(now)
            self.pump()
            if plan.stalled and not self.writes:
                stalled_since = stalled_since or now
                limit = _STALL_WAIT if self.ever_had_peer else _HOLDER_WAIT
                if now - stalled_since >= limit:
                    raise _Failed(self._stall_message())
                if self.state != "waiting for peers":
                    self.state = "waiting for peers"
                    self._changed()
            elif stalled_since is not None:
                stalled_since = None
                self.state = "downloading"
                self._changed()
            if plan.complete:
                break
            await self._sleep(_TICK)

    def _stall_message(self) -> str:
        plan = self.plan
        assert plan is not None
        if not self.ever_had_peer:
            return NO_HOLDER + self._kept()
        if plan.bad_peers and not any(p.conn.is_open for p in self.in_plan):
            return "every peer holding this resource sent bad data" + self._kept()
        return "lost every peer holding this resource" + self._kept()

    def _add_holders(self, now: float) -> None:
        plan = self.plan
        assert plan is not None
        for peer in self.service.holders(self.blob_id):
            if peer in self.in_plan or peer in self.given_up or peer in plan.bad_peers:
                continue
            if plan.add_peer(peer):
                self.in_plan.add(peer)
                self.ever_had_peer = True
                self.progress_at[peer] = now
                self._changed()

    def _check_timeouts(self, now: float) -> None:
        waiting = {peer for peer, _ in self.requests}
        for peer in waiting:
            if now - self.progress_at.get(peer, now) > _REQUEST_TIMEOUT:
                log.info("%s sent nothing of %s for %g s; asking others",
                         peer.conn.label, fingerprint(self.blob_id), _REQUEST_TIMEOUT)
                self.given_up.add(peer)
                self._drop_peer(peer, cancel=True)

    def pump(self) -> None:
        """Ask every peer in the plan for chunks, up to its window and its frame rate."""
        plan = self.plan
        if plan is None or self.stopping:
            return
        now = time.monotonic()
        missing = plan.manifest.chunk_count - plan.held_count
        share = max(_MIN_WINDOW, min(_WINDOW, -(-missing // max(1, len(self.in_plan)))))
        for peer in list(self.in_plan):
            conn = peer.conn
            if not conn.is_open:
                continue
            session = conn.session
            room = session.max_open_requests - session.requests_in_flight - _RESERVED_REQUESTS
            # blob_get frames count against the peer's frame rate: never exceed it (it would
            # drop them and score us down), try again as soon as the rate allows
            credit = session.send_credit(now)
            if credit <= 0:
                self._pump_later()
            room = min(room, credit)
            if room <= 0:
                continue
            # The plan counts a chunk as outstanding until it is on disk; the network window
            # leaves out the chunks being written, up to `_MAX_WRITES` for the download.
            outstanding = len(plan.outstanding(peer))
            writing = self.writing.get(peer, 0)
            window = outstanding if len(self.writes) >= _MAX_WRITES else share + writing
            chosen = plan.next_requests(peer, min(window, outstanding + room))
            if chosen and not outstanding:
                self.progress_at[peer] = time.monotonic()
            for index in chosen:
                self._request_chunk(peer, index)

    def _pump_later(self) -> None:
        if self._pace_timer is None:
            self._pace_timer = asyncio.get_running_loop().call_later(_PACE_DELAY, self._paced)

    def _paced(self) -> None:
        self._pace_timer = None
        self.pump()

    def _request_chunk(self, peer: _Peer, index: int) -> None:
        assert self.manifest is not None and self.plan is not None
        req = _ChunkRequest(self, peer, peer.new_req_id(), index,
                            self.manifest.chunk_length(index))
        frame = fr.BlobGet(req.req_id, self.blob_id, "chunk", index)
        if not self.service._send_request(peer, req, frame):
            self.plan.request_failed(peer, index)
            return
        self.requests[(peer, index)] = req
        peer.chunks_requested += 1
        self.service.chunks_requested += 1

    def chunk_arrived(self, req: _ChunkRequest) -> None:
        """All pieces of a chunk are in: verify and write it off the loop (the pieces as they
        came, hashed one after the other and written with one pwritev: never joined)."""
        self.requests.pop((req.peer, req.index), None)
        parts, req.parts = req.parts, []
        partial = self.partial
        if partial is None:
            return
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.service._pool, partial.write_chunk, req.index, parts)
        self.writes.add(future)
        self.writing[req.peer] = self.writing.get(req.peer, 0) + 1
        future.add_done_callback(functools.partial(self._written, req.peer, req.index))

    def _written(self, peer: _Peer, index: int, future: asyncio.Future[bool]) -> None:
        self.writes.discard(future)
        self.writing[peer] -= 1
        plan = self.plan
        if future.cancelled() or plan is None or self.stopping:
            return
        exc = future.exception()
        if exc is not None:
            self._failure = (str(exc) if isinstance(exc, BlobStoreError)
                             else f"cannot write the download: {exc}")
            self._wake.set()
            return
        if future.result():
            for other in plan.chunk_received(peer, index, True):
                dup = self.requests.pop((other, index), None)
                if dup is not None:
                    _send_cancel(other, dup.req_id)
        else:
            plan.chunk_received(peer, index, False)
            log.warning("%s sent a bad chunk %d of %s", peer.conn.label, index,
                        fingerprint(self.blob_id))
            self.service.node.peers.penalise(peer.conn, "bad chunk", _BAD_CHUNK_PENALTY)
            if peer in plan.bad_peers:
                self._drop_peer(peer, cancel=True)
        self.pump()
        self._changed()
        if plan.complete:
            self._wake.set()

    def garbled(self, req: _ChunkRequest) -> None:
        """The peer broke the piece rules (offset or total): count it as a bad chunk."""
        _send_cancel(req.peer, req.req_id)
        self.requests.pop((req.peer, req.index), None)
        plan = self.plan
        if plan is None:
            return
        plan.chunk_received(req.peer, req.index, False)
        self.service.node.peers.penalise(req.peer.conn, "bad chunk", _BAD_CHUNK_PENALTY)
        if req.peer in plan.bad_peers:
            self._drop_peer(req.peer, cancel=True)
        self._wake.set()

    def request_refused(self, req: _ChunkRequest, code: str, message: str) -> None:
        """A ``blob_error`` answered a chunk request: stop asking that peer for this blob."""
        self.requests.pop((req.peer, req.index), None)
        if self.plan is not None:
            self.plan.request_failed(req.peer, req.index)
        log.info("%s refused chunk %d of %s: %s %s", req.peer.conn.label, req.index,
                 fingerprint(self.blob_id), code, message)
        if code == "not_found":
            req.peer.has.discard(self.blob_id)
        self.given_up.add(req.peer)
        self._drop_peer(req.peer, cancel=True)
        self._wake.set()

    def _drop_peer(self, peer: _Peer, *, cancel: bool) -> None:
        for key in [key for key in self.requests if key[0] is peer]:
            req = self.requests.pop(key)
            if cancel:
                _send_cancel(peer, req.req_id)
        if self.plan is not None:
            self.plan.remove_peer(peer)
        if peer in self.in_plan:
            self.in_plan.discard(peer)
            self._changed()
        self.progress_at.pop(peer, None)

    def peer_lost(self, peer: _Peer) -> None:
        """The session with `peer` ended: its chunks go back to the pool."""
        self._drop_peer(peer, cancel=False)
        self._wake.set()


# -- the service --------------------------------------------------------------------------------


class BlobService:
    """The node's blob exchange: announce, serve, download (see the module docstring).

    Args:
        node: the started node (its home is open).
    """

    def __init__(self, node: Node) -> None:
        assert node.home is not None
        self.node = node
        self.store = BlobStore(node.home.blobs_path)
        self._pool = ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="p2pnode-blobs")
        self._peers: dict[PeerConnection, _Peer] = {}
        self._downloads: dict[bytes, _Download] = {}
        self._local: set[bytes] = set(self.store.blob_ids())
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        #: chunk requests we sent and chunks we served (all peers, since start)
        self.chunks_requested = 0
        self.chunks_served = 0
        self._spawn(self._watch_entries(), "blobs-watch-entries")

    # -- node hooks --------------------------------------------------------------------------
    def session_opened(self, conn: PeerConnection) -> None:
        """A session opened: tell the peer what we hold and start serving it."""
        if self._closed:
            return
        peer = _Peer(conn)
        self._peers[conn] = peer
        conn.handlers[fr.HaveBlobs] = functools.partial(self._on_have, peer)
        conn.handlers[fr.BlobGet] = functools.partial(self._on_get, peer)
        conn.handlers[fr.BlobData] = functools.partial(self._on_data, peer)
        conn.handlers[fr.BlobError] = functools.partial(self._on_error, peer)
        conn.handlers[fr.BlobCancel] = functools.partial(self._on_cancel, peer)
        ids = sorted(self._local)
        for start in range(0, len(ids), fr.MAX_BLOB_IDS):
            conn.send(fr.HaveBlobs(tuple(ids[start : start + fr.MAX_BLOB_IDS])))
        serve = self._spawn(self._serve(peer), f"blobs-serve-{conn.label}")
        self._spawn(self._watch(peer, serve), f"blobs-watch-{conn.label}")

    def annotate(self, resource: Resource) -> Resource:
        """Fill in whether `resource`'s blob is held here and which connected peers hold it."""
        blob = resource.blob
        held = blob in self._local or self.store.has(blob)
        holders = tuple(
            p.peer_id for p in self.holders(blob) if p.peer_id is not None
        )
        return dataclasses.replace(resource, held=held, holders=holders)

    def holders(self, blob_id: bytes) -> list[_Peer]:
        """Connected peers that announced `blob_id`."""
        return [p for p in self._peers.values() if blob_id in p.has and p.conn.is_open]

    def peer_stats(self) -> dict[bytes, dict[str, int]]:
        """Chunks requested of and served to each connected peer (for tests and status)."""
        return {
            p.peer_id: {"requested": p.chunks_requested, "served": p.chunks_served}
            for p in self._peers.values()
            if p.peer_id is not None
        }

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
        body = await self.node.perform(
            resources.check_share, path, title=title, circle=circle, licence=licence,
            caption=caption,
        )
        manifest = await self._io(self.store.add_file, path, progress)
        body = {**body, "blob": manifest.blob_id, "size": manifest.size}
        entry = await self.node.perform(resources.publish_resource, body, at_ms=_now_ms())
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
        async for event in self.node.bus.subscribe():
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
        if download is None:
            download = _Download(self, blob_id)
            self._downloads[blob_id] = download
            download.task = self._spawn(download.run(), f"blobs-fetch-{fingerprint(blob_id)}")
        download.followers += 1
        try:
            seen = -1
            last = 0.0
            while not download.done.done():
                await asyncio.wait({download.done}, timeout=_PROGRESS_INTERVAL)
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
                       download: _Download | None) -> dict[str, Any]:
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
                                   if isinstance(p, _Peer)]
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
    def _on_have(self, peer: _Peer, frame: fr.HaveBlobs) -> None:
        room = _MAX_PEER_BLOBS - len(peer.has)
        ids = frame.blob_ids if len(frame.blob_ids) <= room else frame.blob_ids[:max(0, room)]
        peer.has.update(ids)
        for blob_id in ids:
            download = self._downloads.get(blob_id)
            if download is not None:
                download.wake()

    def _on_get(self, peer: _Peer, frame: fr.BlobGet) -> None:
        peer.queued[frame.req_id] = frame
        peer.wake.set()

    def _on_data(self, peer: _Peer, frame: fr.BlobData) -> None:
        req = peer.requests.get(frame.req_id)
        if req is not None:  # else: late pieces of a request we cancelled
            req.on_data(frame)

    def _on_error(self, peer: _Peer, frame: fr.BlobError) -> None:
        req = peer.requests.pop(frame.req_id, None)
        if req is not None:
            req.on_error(frame.code, frame.message)

    def _on_cancel(self, peer: _Peer, frame: fr.BlobCancel) -> None:
        if peer.queued.pop(frame.req_id, None) is None and peer.current == frame.req_id:
            peer.current_cancelled = True

    def _send_request(self, peer: _Peer, req: _Request, frame: fr.BlobGet) -> bool:
        conn = peer.conn
        if not conn.is_open:
            return False
        try:
            conn.send(frame)
        except ProtocolError as exc:  # over the open-request limit: our bug, not the peer's
            log.warning("not asking %s: %s", conn.label, exc)
            return False
        peer.requests[req.req_id] = req
        return True

    # -- serving -----------------------------------------------------------------------------
    def _load_chunk(self, blob_id: bytes, index: int) -> list[bytes]:
        """Read one chunk to serve, cut into `blob_data` pieces (in a blob I/O thread; verified
        by the store unless it verified before and the file has not changed since)."""
        return self.store.read_chunk_pieces(blob_id, index, fr.MAX_BLOB_DATA)

    def _load_manifest(self, blob_id: bytes) -> bytes:
        if not self.store.has(blob_id):
            raise BlobNotFound("not held here")
        return self.store.manifest_bytes(blob_id)

    def _read_ahead(self, get: fr.BlobGet) -> asyncio.Future[list[bytes]]:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._load_chunk, get.blob_id, get.index)
        future.add_done_callback(_retrieve)
        return future

    async def _serve(self, peer: _Peer) -> None:
        """Answer the peer's requests in order, one at a time, with the chunks of the next
        `_READ_AHEAD` queued requests being read (and re-verified) meanwhile in I/O threads."""
        ahead: dict[int, asyncio.Future[list[bytes]]] = {}
        while True:
            if not peer.queued:
                ahead.clear()
                peer.wake.clear()
                await peer.wake.wait()
                continue
            req_id = next(iter(peer.queued))
            get = peer.queued.pop(req_id)
            peer.current, peer.current_cancelled = req_id, False
            try:
                if get.part == "manifest":
                    data = await self._io(self._load_manifest, get.blob_id)
                    start = get.index
                    if start > len(data):
                        raise ValueError(f"offset {start} is past the manifest's end "
                                         f"({len(data)} bytes)")
                    step = fr.MAX_BLOB_DATA
                    pieces = [data[i : i + step] for i in range(start, len(data), step)] or [b""]
                    total = len(data)
                else:
                    future = ahead.pop(req_id, None)
                    if future is None:
                        future = self._read_ahead(get)
                    self._plan_reads(peer, ahead)
                    pieces = await future
                    start = 0
                    total = sum(len(piece) for piece in pieces)
                if not await self._send_pieces(peer, req_id, start, total, pieces):
                    return
                if get.part == "chunk" and not peer.current_cancelled:
                    peer.chunks_served += 1
                    self.chunks_served += 1
            except BlobNotFound as exc:
                self._refuse(peer, req_id, "not_found", str(exc))
            except CorruptBlob as exc:
                log.error("not serving %s: %s", fingerprint(get.blob_id), exc)
                self._local.discard(get.blob_id)
                self._refuse(peer, req_id, "not_found", "damaged here")
            except ValueError as exc:
                self._refuse(peer, req_id, "bad_request", str(exc))
            except ConnectionError:
                return
            except OSError as exc:
                log.warning("cannot read %s to serve it: %s", fingerprint(get.blob_id), exc)
                self._refuse(peer, req_id, "not_found", "cannot be read here")
            finally:
                peer.current = None

    def _plan_reads(self, peer: _Peer, ahead: dict[int, asyncio.Future[list[bytes]]]) -> None:
        """Start reading the chunks of the next queued requests; forget cancelled ones."""
        for stale in [r for r in ahead if r not in peer.queued]:
            del ahead[stale]
        for get in itertools.islice(peer.queued.values(), _READ_AHEAD):
            if get.part == "chunk" and get.req_id not in ahead:
                ahead[get.req_id] = self._read_ahead(get)

    def _refuse(self, peer: _Peer, req_id: int, code: str, message: str) -> None:
        if peer.conn.is_open:
            with contextlib.suppress(ProtocolError):
                peer.conn.send(fr.BlobError(req_id, code, message[: fr.MAX_MESSAGE_LENGTH]))

    async def _send_pieces(self, peer: _Peer, req_id: int, start: int, total: int,
                           pieces: list[bytes]) -> bool:
        """Send `pieces` (consecutive, each at most `MAX_BLOB_DATA`, from offset `start` up to
        `total`) as ``blob_data`` frames; False when the session is gone."""
        conn = peer.conn
        offset = start
        for piece in pieces:
            if peer.current_cancelled:
                return True
            try:
                await conn.send_bulk(fr.BlobData(req_id, offset, piece, total))
            except ConnectionError:
                return False
            offset += len(piece)
        return True

    # -- peers coming and going --------------------------------------------------------------
    async def _watch(self, peer: _Peer, serve: asyncio.Task[None]) -> None:
        try:
            await peer.conn._done.wait()
        finally:
            serve.cancel()
            with contextlib.suppress(BaseException):
                await serve
            self._peer_gone(peer)

    def _peer_gone(self, peer: _Peer) -> None:
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
