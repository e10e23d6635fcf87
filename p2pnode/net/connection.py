"""One live peer session: drives a `protocol.session.Session` over an aiohttp WebSocket.

Tasks, all owned by `PeerConnection.run` and cancelled with it:
- reader: WebSocket messages into the session; frames out of it to their handlers;
- writer: the only task that writes to the socket, so Noise messages leave in the order they
  were encrypted; callers wait (`_room`) when the queue is full: that is our flow control;
- ticker: the session's keep-alive and timeouts (`get_timer` / `handle_timer`);
- sender: catch-up and live push of entries the peer lacks, and replication v2 notes (see
  `protocol.replication`; which peer forwards which author is `host.forwarding`'s choice);
- ingester: received entry batches into the store, off the event loop; the frames that queued
  while one transaction committed go into the next one together (one commit, one fsync, for
  all of them); the reader waits when `_INGEST_QUEUE_BATCHES` frames are queued, so a fast peer
  is slowed to our ingest speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from p2pnode.errors import DiskFull
from protocol import frames as fr
from protocol import replication
from protocol.entry import MAX_WIRE_SIZE
from protocol.identity import fingerprint
from protocol.replication import BodyBudget, Replication
from protocol.session import (
    FrameReceived,
    FrameRejected,
    HandshakeComplete,
    Session,
    SessionClosed,
)

if TYPE_CHECKING:
    from p2pnode.net.host import PeerHost
    from p2pnode.net.peers import PeerManager

log = logging.getLogger(__name__)

_OUT_QUEUE_MESSAGES = 32
_CREDIT_WAIT = 0.01
_INGEST_QUEUE_BATCHES = 16
_INGEST_MAX_ENTRIES = 4096
_SEND_BATCH_ENTRIES = fr.MAX_ENTRIES
_FRAME_BUDGET = fr.MAX_FRAME_SIZE - 64

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class PeerConnection:
    """A session with one peer, from handshake to close."""

    def __init__(
        self,
        host: PeerHost,
        manager: PeerManager,
        ws: WebSocket,
        *,
        initiator: bool,
        address: str,
        how: str,
        expected_peer_id: bytes | None = None,
        handshake_timeout: float | None = None,
    ) -> None:
        self.host = host
        self.manager = manager
        self.ws = ws
        self.initiator = initiator
        self.address = address
        self.how = how
        self.started = time.monotonic()
        limits = dict(host.session_limits)
        if handshake_timeout is not None:
            limits["handshake_timeout"] = handshake_timeout
        self.session = Session(
            host.identity,
            initiator=initiator,
            network_key=host.network_key,
            expected_peer_id=expected_peer_id,
            now=self.started,
            **limits,
        )
        self.replication = Replication(manager.resend_budget(address),
                                       version=host.replication_version)
        #: entry ids whose bodies the peer asked for, not yet answered; and what it may ask
        self._body_asks: list[bytes] = []
        self._body_budget = BodyBudget(self.started)
        #: author -> first seq the peer sent that we could not store (a full disk), and when
        self._unstored: dict[bytes, int] = {}
        self._unstored_at = 0.0
        self._refetch: asyncio.Task[None] | None = None
        self.peer_id: bytes | None = None
        self.connected_since_ms: int | None = None
        self.close_reason = ""
        self.handlers: dict[type, Callable[[Any], Any]] = {}
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        #: set by the writer whenever the outgoing queue has room again
        self._room = asyncio.Event()
        self._wake_sender = asyncio.Event()
        self._ingest: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(_INGEST_QUEUE_BATCHES)
        self._opened = asyncio.Event()
        self._done = asyncio.Event()
        #: set when `run` has returned and the connection has left the peer manager
        self.finished = asyncio.Event()
        self._closing = False

    # -- public ----------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._opened.is_set() and not self._closing

    async def wait_closed(self) -> None:
        """Return once the session has ended (its tasks are done)."""
        await self._done.wait()

    def send(self, frame: fr.Frame) -> None:
        """Encrypt and queue a frame now (small control frames; bulk senders use `send_bulk`)."""
        if self._closing:
            return
        self.session.send_frame(frame, time.monotonic())
        self._flush()

    async def send_bulk(self, frame: fr.Frame) -> None:
        """Queue a frame once the outgoing queue and the peer's rate limit have room."""
        # answers to the peer's blob requests are paced by its window, not its rate limit
        paced = not isinstance(frame, fr.BlobData)
        while True:
            if self._closing:
                raise ConnectionResetError("session closed")
            if self._out.qsize() >= _OUT_QUEUE_MESSAGES:
                self._room.clear()
                await self._room.wait()
            elif paced and self.session.send_credit(time.monotonic()) <= 0:
                await asyncio.sleep(_CREDIT_WAIT)
            else:
                break
        self.send(frame)

    def wake_sender(self) -> None:
        """The replication state has something to send (notes, entries)."""
        self._wake_sender.set()

    def entries_stored(self, rows: list[tuple[bytes, int]]) -> None:
        """New entries exist here (ours or anyone's): push what the peer lacks."""
        if self.replication.local_entries(rows):
            self._wake_sender.set()

    def offer_bodies(self, entries: list) -> None:
        """Send these entries again, with their bodies, if the peer holds them (by its clock)."""
        clock = self.replication.peer_clock
        ids = [e.id for e in entries if clock.get(e.header.author, 0) >= e.header.seq]
        if ids and len(self._body_asks) < 4 * fr.MAX_BODY_IDS:
            self._body_asks.extend(ids)
            self._wake_sender.set()

    def storage_resumed(self) -> None:
        """The disk has room again: ask the peer again for what we could not store."""
        if self._unstored and not self._closing and (self._refetch is None
                                                     or self._refetch.done()):
            self._refetch = asyncio.create_task(self._refetch_unstored(), name="peer-refetch")

    async def _refetch_unstored(self) -> None:
        # not sooner than the peer would hold it against us (asking for what it just sent)
        await asyncio.sleep(max(0.0, self._unstored_at + replication.RESEND_MEMORY + 0.5
                                - time.monotonic()))
        clock = self.host.clock_view()
        pairs = [(author, clock.get(author, 0) + 1) for author in self._unstored]
        self._unstored.clear()
        if self.is_open:
            for group in fr.split_pairs(pairs, fr.MAX_WANT_PAIRS):
                self.send(fr.Want(group))

    def close(self, reason: str, detail: str = "") -> None:
        """End the session (telling the peer why) and let `run` wind down."""
        if self._closing:
            return
        self.close_reason = self.close_reason or reason
        with contextlib.suppress(Exception):
            self.session.close(reason, detail)
            self._flush()
        self._closing = True
        self._room.set()  # release senders waiting for room
        self._out.put_nowait(None)
        self._done.set()

    async def run(self) -> None:
        """Handshake, then serve the session until either side ends it."""
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            if self.initiator:
                self.session.initiate()
                self._flush()
            for name, job in (
                ("writer", self._writer),
                ("reader", self._reader),
                ("ticker", self._ticker),
                ("sender", self._sender),
                ("ingester", self._ingester),
            ):
                tasks[name] = asyncio.create_task(self._guard(name, job), name=f"peer-{name}")
            await self._done.wait()
        finally:
            self._closing = True
            self._room.set()  # release senders waiting for room
            self.close_reason = self.close_reason or "closed"
            self._out.put_nowait(None)
            writer = tasks.pop("writer", None)
            for task in tasks.values():
                task.cancel()
            if self._refetch is not None:
                self._refetch.cancel()
            if writer is not None:
                # give the writer a moment to deliver a final error frame
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(writer, 1.0)
            for task in tasks.values():
                with contextlib.suppress(BaseException):
                    await task
            with contextlib.suppress(Exception):
                await self.ws.close()
            if self.peer_id is not None:
                self.host.forwarding.session_closed(self)
                self.manager.unregister(self)
            self.finished.set()

    async def _guard(self, name: str, job: Callable[[], Any]) -> None:
        """Run one of the connection's tasks; whatever ends it ends the connection."""
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except (ConnectionError, aiohttp.ClientError) as exc:
            self.close_reason = self.close_reason or f"transport: {exc}"
        except Exception:
            log.exception("peer %s: %s task failed", self.label, name)
            self.close_reason = self.close_reason or f"internal error in {name}"
        finally:
            self._done.set()

    # -- tasks -----------------------------------------------------------------------------
    async def _reader(self) -> None:
        while not self._closing:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.session.receive_message(msg.data, time.monotonic())
                self._flush()
                await self._process_events()
            elif msg.type in (aiohttp.WSMsgType.TEXT,):
                self.manager.penalise(self, "text message", 10)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                if isinstance(msg.data, aiohttp.WebSocketError):
                    # the peer broke the WebSocket rules, e.g. a message over max_ws_message()
                    self.manager.penalise(self, f"websocket: {msg.data}", 20)
                self.close_reason = self.close_reason or "transport_error"
                return
            else:  # CLOSE, CLOSING, CLOSED
                self.close_reason = self.close_reason or "peer_closed"
                return

    async def _process_events(self) -> None:
        while (event := self.session.next_event()) is not None:
            if isinstance(event, FrameReceived):
                await self._on_frame(event.frame)
            elif isinstance(event, HandshakeComplete):
                self._on_open(event.peer_id)
            elif isinstance(event, FrameRejected):
                # a frame over the rate is dropped at no cost: the flood counter ends a
                # sustained flood (PROTOCOL.md 4, "Rate")
                if not event.flooding:
                    self.manager.penalise(self, f"rejected frame: {event.reason}", 10)
            elif isinstance(event, SessionClosed):
                self.close_reason = self.close_reason or event.reason
                if event.remote_error:
                    log.info("session with %s ended: %s %s", self.label, event.reason,
                             event.detail)
                    if self.peer_id is not None:
                        # a sustained flood is never an accident: banned at once
                        penalty = 100 if event.reason == "flood" else 20
                        self.manager.penalise(self, event.reason, penalty)
                self._closing = True
                self._room.set()  # release senders waiting for room
                self._out.put_nowait(None)
                self._done.set()

    def _on_open(self, peer_id: bytes) -> None:
        self.peer_id = peer_id
        if not self.manager.register(self):
            return
        self.connected_since_ms = int(time.time() * 1000)
        self._opened.set()
        if self.replication.version >= 2:
            # before the clock: a v1 peer ignores it (an unknown frame type) and pushes all
            self.send(fr.ReplicationHello(fr.REPLICATION_VERSION))
        for frame in fr.clock_frames(self.host.clock_snapshot().items()):
            self.send(frame)
        self.host.on_session_open(self)

    async def _on_frame(self, frame: fr.Frame) -> None:
        if isinstance(frame, fr.Entries):
            seqs = [(e.header.author, e.header.seq) for e in frame.entries]
            self.replication.receive_entries(seqs)
            await self._ingest.put(frame.entries)
        elif isinstance(frame, fr.Clock):
            if not self.replication.receive_clock(frame.pairs, frame.final,
                                                  self.host.clock_view()):
                self.manager.penalise(self, "clock frame after the final one", 10)
                return
            if frame.final:
                if self.replication.v2:
                    self.host.forwarding.session_ready(self)
                self.host.on_peer_clock(self)
                self.manager.bodies.wake()
            self._wake_sender.set()
        elif isinstance(frame, fr.Notes):
            if self.replication.v2:
                ahead = self.replication.receive_notes(frame.notes, self.host.clock_view())
                self.host.forwarding.notes(self, ahead)
                if self.replication.has_work:
                    self._wake_sender.set()
        elif isinstance(frame, fr.ReplicationHello):
            if not self.replication.receive_hello(frame.version):
                self.manager.penalise(self, "replication frame after its clock", 10)
        elif isinstance(frame, fr.Want):
            ignored = self.replication.receive_want(frame.pairs, self.host.clock_view(),
                                                    time.monotonic())
            if ignored > 64:
                self.manager.penalise(self, f"{ignored} pointless want pairs", 5)
            if self.replication.reasked:
                self.manager.penalise(self, "asked again for entries it was just sent", 5)
            self._wake_sender.set()
        elif isinstance(frame, fr.WantBodies):
            granted = self._body_budget.take(len(frame.entry_ids), time.monotonic())
            # beyond the budget the ids go unanswered: the asker tries again later, or elsewhere
            if len(self._body_asks) < 4 * fr.MAX_BODY_IDS:
                self._body_asks.extend(frame.entry_ids[:granted])
                self._wake_sender.set()
        else:
            handler = self.handlers.get(type(frame))
            if handler is not None:
                result = handler(frame)
                if asyncio.iscoroutine(result):
                    await result

    async def _writer(self) -> None:
        while True:
            data = await self._out.get()
            if data is None:
                if self._out.empty():
                    return
                continue
            await self.ws.send_bytes(data)
            if self._out.qsize() < _OUT_QUEUE_MESSAGES:
                self._room.set()

    async def _ticker(self) -> None:
        while not self._closing:
            deadline = self.session.get_timer()
            if deadline is None:
                return
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            self.session.handle_timer(time.monotonic())
            self._flush()
            await self._process_events()

    async def _sender(self) -> None:
        await self._opened.wait()
        while not self._closing:
            await self._wake_sender.wait()
            self._wake_sender.clear()
            notes = self.replication.take_notes(self.host.clock_view())
            for frame in fr.note_frames(notes):  # small, and what trees are made of: first
                self.send(frame)
            for author in self.replication.take_dirty():
                await self._send_feed(author)
            if self._body_asks:
                await self._send_bodies()

    async def _send_bodies(self) -> None:
        """Answer the peer's `want_bodies` with the entries we hold with their body."""
        asked, self._body_asks = self._body_asks, []
        entries = await self.host.entries_with_bodies(asked)
        batch: list = []
        size = 0
        for entry in entries:
            entry_size = len(entry.header_bytes) + 64 + len(entry.body_bytes or b"") + 12
            if batch and (size + entry_size > _FRAME_BUDGET or len(batch) == fr.MAX_ENTRIES):
                await self.send_bulk(fr.Entries(tuple(batch)))
                batch, size = [], 0
            batch.append(entry)
            size += entry_size
        if batch:
            await self.send_bulk(fr.Entries(tuple(batch)))

    async def _send_feed(self, author: bytes) -> None:
        while not self._closing:
            from_seq = self.replication.next_seq(author)
            entries = await self.host.read_feed(author, from_seq, _SEND_BATCH_ENTRIES)
            if not entries:
                return
            batch: list = []
            size = 0
            for entry in entries:
                entry_size = len(entry.header_bytes) + 64 + len(entry.body_bytes or b"") + 12
                if batch and size + entry_size > _FRAME_BUDGET:
                    await self._send_entries(batch)
                    batch, size = [], 0
                batch.append(entry)
                size += entry_size
            if batch:
                await self._send_entries(batch)
            if len(entries) < _SEND_BATCH_ENTRIES:
                return

    async def _send_entries(self, batch: list) -> None:
        await self.send_bulk(fr.Entries(tuple(batch)))
        self.replication.sent([(e.header.author, e.header.seq) for e in batch], time.monotonic())

    async def _ingester(self) -> None:
        while True:
            entries = tuple(await self._ingest.get())
            while not self._ingest.empty() and len(entries) < _INGEST_MAX_ENTRIES:
                entries += self._ingest.get_nowait()
            entries, over = self.manager.quota.admit(self.peer_id or b"", entries,
                                                     self.host.clock_view())
            if over:  # new authors over their hourly quota: not asked for again for a while
                self.replication.note_refused(over, time.monotonic())
            if not entries:
                continue
            try:
                report = await self.host.ingest_from_peer(tuple(entries))
            except DiskFull:
                # not the peer's fault: no score change; asked for again when there is room
                for entry in entries:
                    author, seq = entry.header.author, entry.header.seq
                    self._unstored[author] = min(seq, self._unstored.get(author, seq))
                self._unstored_at = time.monotonic()
                # the stall is ours: no forwarder is blamed before we ask again
                self.host.forwarding.suspend(replication.RESEND_MEMORY + 5.0)
                continue
            if report.filled:
                # peers we gave these entries to may hold them bodiless too: pass the bodies on
                self.manager.share_bodies(report.filled, self)
            if report.accepted:
                self.manager.reward(self, useful=len(report.accepted))
                if any(e.body_bytes is None for e in report.accepted):
                    self.manager.bodies.wake()  # a relay may have stripped them
            now = time.monotonic()
            self.replication.note_refused(report.blocked, now)
            if report.blocked and self.replication.v2:
                # a fork is the author's doing, not the forwarder's: stop chasing that feed
                forked = {e.header.author for e, why in report.rejected if why.startswith("fork")}
                self.host.forwarding.hold(forked)
                self.host.forwarding.refused(self, set(report.blocked) - forked)
            # gaps behind entries we could not store are asked for once there is room
            gaps = {a: seq for a, seq in report.gaps.items() if a not in self._unstored}
            wants = self.replication.wants(gaps, now)
            if wants and self.is_open:
                for pairs in fr.split_pairs(wants, fr.MAX_WANT_PAIRS):
                    self.send(fr.Want(pairs))
            if report.bad_signatures:
                self.manager.penalise(
                    self, f"{report.bad_signatures} entries with bad signatures", 20)
            if report.invalid:
                self.manager.penalise(self, f"{report.invalid} invalid records", 10)

    # -- plumbing --------------------------------------------------------------------------
    def _flush(self) -> None:
        for data in self.session.data_to_send():
            self._out.put_nowait(data)

    @property
    def label(self) -> str:
        who = fingerprint(self.peer_id) if self.peer_id else "?"
        return f"{who}@{self.address}"


def max_ws_message() -> int:
    """The largest WebSocket message we accept (a Noise message can be at most 65535 bytes)."""
    return max(65535, MAX_WIRE_SIZE) + 1024
