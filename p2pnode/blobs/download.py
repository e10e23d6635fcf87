"""The swarm download: one blob fetched from every connected peer that announced it.

DESIGN.md "Resources (blobs)", PROTOCOL.md section 6. `transfer.BlobService.fetch` starts one
`Download` per blob and follows it; `protocol.blobs.DownloadPlan` decides which chunk to ask of
whom, `requests` sends the requests and files the answers, `PartialBlob` keeps the bytes.
Rules it keeps:

- We only ask peers that announced the blob (`BlobService.holders`), and give up on one that
  refuses, sends bad data until the plan counts it bad, or sends nothing for `_REQUEST_TIMEOUT`.
- Memory is bounded by windows, not by file size. A download has at most `_WINDOW` chunk
  requests in flight per peer, plus at most `_MAX_WRITES` received chunks waiting to be verified
  and written (a chunk stays outstanding in the plan until it is on disk, so a slow disk slows
  the network down).
- Chunk requests count against the peer's frame rate: they are paced by `Session.send_credit`,
  never sent beyond it (the peer would drop them and score us down).
- A received chunk is hashed and written as the pieces it came in (`PartialBlob.write_chunk`),
  never joined. That happens on the event loop while writes are quick (a hand-off to a thread
  costs more CPU than hashing and writing 256 KiB, and the cores are what bounds a transfer);
  after a write slower than `_INLINE_WRITE_LIMIT`, or while they average over
  `_INLINE_WRITE_AVERAGE`, the download hands its chunks to the service's blob I/O threads for a
  while (`inline.InlineGate`), so a slow or throttled disk never stalls the loop. A
  chunk is verified before it is written; a bad one gives the peer a strike in the plan and
  lowers its score, and the chunk is asked of another holder.
- When the download stops (the last follower went away or the node stops), nothing new is
  asked, outstanding requests are cancelled (``blob_cancel``) and the .part and bitmap stay on
  disk: the next fetch resumes. Whatever way it ends, it publishes `TransferFinished`, leaves
  `BlobService._downloads` and resolves `done`.
- The timing constants here are read at call time: tests and ``bench/transfer.py --set`` change
  them on this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2pnode.blobs.errors import BlobStoreError
from p2pnode.blobs.inline import InlineGate
from p2pnode.blobs.partial import PartialBlob
from p2pnode.blobs.peer import BlobPeer, retrieve
from p2pnode.blobs.requests import (
    ChunkRequest,
    ManifestRequest,
    PeerFailed,
    send_cancel,
    send_request,
)
from p2pnode.events import TransferFinished, TransferProgress
from protocol import frames as fr
from protocol.blobs import DownloadPlan, Manifest, decode_manifest
from protocol.errors import MalformedError
from protocol.identity import fingerprint

if TYPE_CHECKING:
    from p2pnode.blobs.service import BlobService

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
#: A chunk write (hash + pwritev) on the event loop that takes longer than this, or writes
#: averaging more than the second, send the download's writes to the blob I/O threads for a
#: while. Inline, a 256 KiB chunk takes ~0.3 ms; handing it to a thread costs ~60 µs more CPU
#: (2-core bench: ~10% less downloader CPU and ~5-10% more throughput inline).
_INLINE_WRITE_LIMIT = 0.005
_INLINE_WRITE_AVERAGE = 0.002
#: Open requests left free at each peer beyond our windows (manifests, other downloads).
_RESERVED_REQUESTS = 2
_TICK = 0.5
#: How soon to ask again when the peer's frame rate left no room for a request.
_PACE_DELAY = 0.005
#: Least time between two `TransferProgress` events (and between a follower's checks).
_PROGRESS_INTERVAL = 0.1
_BAD_CHUNK_PENALTY = 20.0
_BAD_MANIFEST_PENALTY = 20.0

NO_HOLDER = "no connected peer holds this resource"


class _Failed(Exception):
    """The download cannot go on; the message is for the user."""


class Download:
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
        self.requests: dict[tuple[BlobPeer, int], ChunkRequest] = {}
        self.writes: set[asyncio.Future[bool]] = set()
        #: whether chunks are written on the loop (see `chunk_arrived`)
        self.write_gate = InlineGate(slow=_INLINE_WRITE_LIMIT, average=_INLINE_WRITE_AVERAGE)
        self.writing: dict[BlobPeer, int] = {}
        self.progress_at: dict[BlobPeer, float] = {}
        self.in_plan: set[BlobPeer] = set()
        self.given_up: set[BlobPeer] = set()
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
            if count and isinstance(peer, BlobPeer):
                counts[peer.peer_id] = counts.get(peer.peer_id, 0) + count
        return [{"peer": peer_id, "chunks": count} for peer_id, count in counts.items()]

    def _changed(self, force: bool = False) -> None:
        self.version += 1
        now = time.monotonic()
        if self.manifest is not None and (force or now - self._published >= _PROGRESS_INTERVAL):
            self._published = now
            plan = self.plan
            self.service.host.bus.publish(TransferProgress(
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
            send_cancel(peer, req.req_id)
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
        self.service.host.bus.publish(
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
        tried: set[BlobPeer] = set()
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
                except PeerFailed as exc:
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

    async def _manifest_from(self, peer: BlobPeer) -> Manifest:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        future.add_done_callback(retrieve)
        req = ManifestRequest(peer, peer.new_req_id(), future)
        if not send_request(peer, req, fr.BlobGet(req.req_id, self.blob_id, "manifest", 0)):
            raise PeerFailed("no room for a request")
        while not future.done():
            await asyncio.wait({future}, timeout=_TICK)
            if not future.done() and time.monotonic() - req.touched > _REQUEST_TIMEOUT:
                send_cancel(peer, req.req_id)
                raise PeerFailed(f"sent nothing for {_REQUEST_TIMEOUT:g} s")
        data = future.result()
        try:
            return decode_manifest(data, self.blob_id)
        except MalformedError as exc:
            peer.penalise("bad manifest", _BAD_MANIFEST_PENALTY)
            raise PeerFailed(f"sent a bad manifest ({exc})") from None

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

    def _request_chunk(self, peer: BlobPeer, index: int) -> None:
        assert self.manifest is not None and self.plan is not None
        req = ChunkRequest(self, peer, peer.new_req_id(), index,
                           self.manifest.chunk_length(index))
        frame = fr.BlobGet(req.req_id, self.blob_id, "chunk", index)
        if not send_request(peer, req, frame):
            self.plan.request_failed(peer, index)
            return
        self.requests[(peer, index)] = req
        peer.chunks_requested += 1
        self.service.chunks_requested += 1

    def chunk_arrived(self, req: ChunkRequest) -> None:
        """All pieces of a chunk are in: verify and write it (the pieces as they came, hashed
        one after the other and written with one pwritev: never joined), on the loop or in a
        blob I/O thread (see `_INLINE_WRITE_LIMIT`)."""
        self.requests.pop((req.peer, req.index), None)
        parts, req.parts = req.parts, []
        partial = self.partial
        if partial is None:
            return
        future = self.write_gate.run(self.service._pool, partial.write_chunk, req.index, parts)
        self.writes.add(future)
        self.writing[req.peer] = self.writing.get(req.peer, 0) + 1
        future.add_done_callback(functools.partial(self._written, req.peer, req.index))

    def _written(self, peer: BlobPeer, index: int, future: asyncio.Future[bool]) -> None:
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
            peer.bytes_received += plan.manifest.chunk_length(index)
            for other in plan.chunk_received(peer, index, True):
                dup = self.requests.pop((other, index), None)
                if dup is not None:
                    send_cancel(other, dup.req_id)
        else:
            plan.chunk_received(peer, index, False)
            log.warning("%s sent a bad chunk %d of %s", peer.conn.label, index,
                        fingerprint(self.blob_id))
            peer.penalise("bad chunk", _BAD_CHUNK_PENALTY)
            if peer in plan.bad_peers:
                self._drop_peer(peer, cancel=True)
        self.pump()
        self._changed()
        if plan.complete:
            self._wake.set()

    def garbled(self, req: ChunkRequest) -> None:
        """The peer broke the piece rules (offset or total): count it as a bad chunk."""
        send_cancel(req.peer, req.req_id)
        self.requests.pop((req.peer, req.index), None)
        plan = self.plan
        if plan is None:
            return
        plan.chunk_received(req.peer, req.index, False)
        req.peer.penalise("bad chunk", _BAD_CHUNK_PENALTY)
        if req.peer in plan.bad_peers:
            self._drop_peer(req.peer, cancel=True)
        self._wake.set()

    def request_refused(self, req: ChunkRequest, code: str, message: str) -> None:
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

    def _drop_peer(self, peer: BlobPeer, *, cancel: bool) -> None:
        for key in [key for key in self.requests if key[0] is peer]:
            req = self.requests.pop(key)
            if cancel:
                send_cancel(peer, req.req_id)
        if self.plan is not None:
            self.plan.remove_peer(peer)
        if peer in self.in_plan:
            self.in_plan.discard(peer)
            self._changed()
        self.progress_at.pop(peer, None)

    def peer_lost(self, peer: BlobPeer) -> None:
        """The session with `peer` ended: its chunks go back to the pool."""
        self._drop_peer(peer, cancel=False)
        self._wake.set()

