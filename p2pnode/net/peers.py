"""The peer manager: who we are connected to, who we dial, and who behaves.

Rules:
- One session per peer pair. When two exist (both sides dialled at once), both sides keep the one
  dialled by the smaller node id, so they agree without talking.
- Manual peers (`--peer`) are dialled by a loop each, with exponential backoff and jitter
  between failures capped at a few seconds; the same address added again wakes the loop at
  once. They are kept on top of every cap.
- Discovered (mDNS) peers are not all dialled: `PeerSelection` (net/selection.py) picks at most
  `max_outbound` of them (stable and rotating slots, diverse hosts), backs off those that fail
  or refuse us, and caps the sessions other peers dial to us; one selector task dials its picks
  and drops a rotated one every few minutes. A discovered peer that vanishes is forgotten
  (a live session with it is left alone).
- One row per peer: a manual address that reached a node once is that node's; later dial
  errors are recorded against it rather than as a row of their own.
- Misbehaviour lowers a peer's score; at `_BAN_SCORE` it is disconnected and neither dialled nor
  accepted for `_BAN_SECONDS`. Good batches slowly restore the score.
- No lock-out (PROTOCOL.md 4, "Admission"): one address (an IPv6 /64) may hold at most
  `_MAX_HANDSHAKES_PER_ADDRESS` handshakes and `_MAX_SESSIONS_PER_ADDRESS` incoming sessions;
  all addresses together at most `_MAX_HANDSHAKES` handshakes (when all are taken, an address
  holding two more than the newcomer's gives up its oldest), and once `_PRESSURE_HANDSHAKES`
  are in progress a half-open one gets `_PRESSURED_HANDSHAKE_SECONDS` instead of 10 s. Of the
  `_MAX_INBOUND` slots for sessions other peers dial, `_RESERVED_FOR_KNOWN` are kept for known
  peers (discovered, or with a history of useful data); when they are full, a known newcomer
  evicts the lowest-scored, newest session of a peer without that history, or else a host
  holding two more inbound sessions than the newcomer's gives one up, or else the newcomer is
  refused (`full`) (`PeerSelection.admit_inbound`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from p2pnode.events import PeerDown, PeerUp
from p2pnode.net.bodies import BodyFetcher
from p2pnode.net.connection import PeerConnection, max_ws_message
from p2pnode.net.quota import AuthorQuota
from p2pnode.net.selection import (
    InboundSession,
    PeerSelection,
    SelectionLimits,
    address_group,
)
from protocol.identity import fingerprint
from protocol.replication import ResendBudget
from protocol.session import WEBSOCKET_PATH

if TYPE_CHECKING:
    from p2pnode.net.host import PeerHost

log = logging.getLogger(__name__)

_RETRY_MIN = 0.5
#: Backoff cap for peers found by mDNS: a restarted one announces itself, which ends its backoff.
_RETRY_MAX = 60.0
#: Backoff cap for manual peers (`--peer`): nothing announces their return, and a refused or
#: unanswered dial every few seconds costs next to nothing, so a peer that comes back is
#: reconnected within a few seconds.
_RETRY_MAX_MANUAL = 3.0
_STABLE_AFTER = 30.0
#: A discovered peer unreachable this long is forgotten until it is announced again.
_FORGET_AFTER = 600.0
#: Session caps for discovered peers (`Node(max_peers=...)` sets them from one number).
_MAX_OUTBOUND = 8
_STABLE_SLOTS = 5
_MAX_INBOUND = 24
#: One rotating outbound slot changes peer this often (± 25 %).
_ROTATE_EVERY = 240.0
#: First backoff after a peer ended our session right after the handshake (it is full).
_REFUSED_BACKOFF = 30.0
#: Longest sleep of the selector between looks at its plan.
_SELECT_IDLE = 30.0
_DIAL_TIMEOUT = 5.0
_BAN_SCORE = -50.0
_BAN_SECONDS = 600.0
_MAX_SCORE = 20.0
_MAX_RECORDS = 2000
#: Admission limits against lock-out (module docstring; PROTOCOL.md 4).
_MAX_HANDSHAKES = 32
_MAX_HANDSHAKES_PER_ADDRESS = 4
_MAX_SESSIONS_PER_ADDRESS = 8
_PRESSURE_HANDSHAKES = 8
_PRESSURED_HANDSHAKE_SECONDS = 2.0
_RESERVED_FOR_KNOWN = 8


@dataclass
class PeerRecord:
    """What we know of a peer, connected or not (shown by `p2pnode peers`)."""

    node_id: bytes | None
    address: str
    how: str
    score: float = 0.0
    last_error: str | None = None
    banned_until: float = 0.0
    addresses: tuple[str, ...] = field(default_factory=tuple)
    #: entries it sent us that we stored (its history of useful data)
    useful: int = 0
    #: we dialled it (manual) or discovered it: its slot is kept even when strangers crowd in
    known: bool = False


def selection_limits(max_peers: int | None = None) -> SelectionLimits:
    """The selection limits from this module's constants (tests shorten them), or from one
    cap on all sessions with discovered peers (`--max-peers`)."""
    timings = {
        "retry_min": _RETRY_MIN,
        "retry_max": _RETRY_MAX,
        "refused_backoff": min(_REFUSED_BACKOFF, _RETRY_MAX),
        "rotate_every": _ROTATE_EVERY,
        "forget_after": _FORGET_AFTER,
        "healthy_after": _STABLE_AFTER,
    }
    if max_peers is not None:
        return SelectionLimits.for_peers(max_peers, **timings)
    return SelectionLimits(max_outbound=_MAX_OUTBOUND, stable_slots=min(_STABLE_SLOTS,
                           _MAX_OUTBOUND), max_inbound=_MAX_INBOUND,
                           reserved_inbound=min(_RESERVED_FOR_KNOWN, _MAX_INBOUND), **timings)


class PeerManager:
    def __init__(self, host: PeerHost, limits: SelectionLimits | None = None) -> None:
        self.host = host
        #: ids of the peers we reached at a manual address: kept on top of the caps
        self._manual_ids: set[bytes] = set()
        self.selection = PeerSelection(
            limits or selection_limits(), random.Random(),
            score=lambda node_id: self.records[node_id].score if node_id in self.records else 0.0,
            excluded=lambda node_id: node_id in self._manual_ids or self.banned(node_id),
        )
        self._selector: asyncio.Task[None] | None = None
        self._select_wake = asyncio.Event()
        self.connections: dict[bytes, PeerConnection] = {}
        self.records: dict[bytes, PeerRecord] = {}
        self._address_errors: dict[str, str] = {}
        self._pending: set[PeerConnection] = set()
        self._dialers: dict[object, asyncio.Task[None]] = {}
        #: set to cut a manual dial loop's backoff short (the same address was added again)
        self._wakers: dict[object, asyncio.Event] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self._client: aiohttp.ClientSession | None = None
        self._closed = False
        self.bodies = BodyFetcher(host, self)
        self.quota = AuthorQuota()
        #: one re-send budget per address (group), whatever identities it uses
        self._resend_budgets: dict[str, ResendBudget] = {}

    # -- registry --------------------------------------------------------------------------
    def record(self, node_id: bytes) -> PeerRecord:
        rec = self.records.get(node_id)
        if rec is None:
            if len(self.records) >= _MAX_RECORDS:
                self._forget_idle_records()
            rec = self.records[node_id] = PeerRecord(node_id, "", "incoming")
        return rec

    def _forget_idle_records(self) -> None:
        """Drop records of peers neither connected, dialled nor banned (oldest first): throwaway
        identities must not grow our memory."""
        now = time.monotonic()
        for node_id in list(self.records):
            if len(self.records) < _MAX_RECORDS // 2:
                return
            rec = self.records[node_id]
            if (node_id not in self.connections and ("id", node_id) not in self._dialers
                    and rec.banned_until <= now):
                del self.records[node_id]

    def banned(self, node_id: bytes) -> bool:
        rec = self.records.get(node_id)
        return rec is not None and rec.banned_until > time.monotonic()

    def register(self, conn: PeerConnection) -> bool:
        """A session finished its handshake: keep it, or close it as a duplicate or banned."""
        peer = conn.peer_id
        assert peer is not None
        if self.banned(peer):
            conn.close("banned", "this node is not accepting you for now")
            return False
        existing = self.connections.get(peer)
        if existing is not None and existing is not conn and not existing._closing:
            if self._dialler(conn) == self._dialler(existing):
                # the same side dialled again: it restarted or lost the old session (whose end
                # we may not have seen yet), so the new session replaces the old one
                existing.close("replaced", "a newer session between us replaces this one")
            elif self._dialler(conn) < self._dialler(existing):
                existing.close("duplicate", "a session between us already exists")
            else:
                conn.close("duplicate", "a session between us already exists")
                return False
        elif existing is None and not conn.initiator and not self._admit_inbound(conn):
            conn.close("full", "no session slot free here; try another peer later")
            return False
        self.connections[peer] = conn
        if conn.initiator and conn.how == "manual":
            self._manual_ids.add(peer)
        self.selection.session_opened(peer, time.monotonic())
        rec = self.record(peer)
        rec.address = conn.address
        rec.how = conn.how
        rec.known = rec.known or conn.how in ("manual", "mdns")
        rec.last_error = None
        self.host.bus.publish(PeerUp(peer, conn.address, conn.how))
        self.host.remember_peer(peer, conn.address, conn.how)
        log.info("connected to %s (%s)", conn.label, conn.how)
        return True

    def _dialler(self, conn: PeerConnection) -> bytes:
        return self.host.identity.node_id if conn.initiator else conn.peer_id or b""

    def unregister(self, conn: PeerConnection) -> None:
        peer = conn.peer_id
        if peer is not None and self.connections.get(peer) is conn:
            del self.connections[peer]
            self.selection.session_closed(peer, time.monotonic(),
                                          by_peer=conn.close_reason == "peer_closed")
            self._wake_selector()
            self.record(peer).last_error = conn.close_reason
            self.host.bus.publish(PeerDown(peer, conn.close_reason))
            self.host.remember_peer(peer, None, conn.how, f"disconnected: {conn.close_reason}")
            log.info("disconnected from %s: %s", conn.label, conn.close_reason)

    def penalise(self, conn: PeerConnection, reason: str, amount: float) -> None:
        """Lower a peer's score; ban and disconnect it once it falls below the threshold."""
        if conn.peer_id is None:
            return
        rec = self.record(conn.peer_id)
        rec.score -= amount
        rec.last_error = reason
        log.info("peer %s: %s (score %.0f)", conn.label, reason, rec.score)
        if rec.score <= _BAN_SCORE:
            rec.banned_until = time.monotonic() + _BAN_SECONDS
            conn.close("banned", f"misbehaving: {reason}")

    def reward(self, conn: PeerConnection, amount: float = 1.0, useful: int = 0) -> None:
        """Raise a peer's score; `useful`: entries it sent that we stored."""
        if conn.peer_id is not None:
            rec = self.record(conn.peer_id)
            rec.score = min(_MAX_SCORE, rec.score + amount)
            rec.useful += useful

    def open_connections(self) -> list[PeerConnection]:
        return [c for c in self.connections.values() if c.is_open]

    # -- incoming --------------------------------------------------------------------------
    def admit(self, address: str) -> float | None:
        """May a connection from `address` start a handshake? None: no (answer 503); else the
        seconds it gets to finish the handshake (shorter while many are in progress)."""
        group = address_group(address)
        now = time.monotonic()
        handshaking = [c for c in self._pending if c.peer_id is None and not c._closing]
        if len(handshaking) >= _PRESSURE_HANDSHAKES:
            # under pressure a half-open handshake gets a short deadline, counted from its start
            for conn in handshaking:
                if now - conn.started > _PRESSURED_HANDSHAKE_SECONDS:
                    conn.close("timeout", "the handshake did not finish in time")
            handshaking = [c for c in handshaking if not c._closing]
        if len(handshaking) >= _MAX_HANDSHAKES and not self._evict_handshake(handshaking, group):
            return None
        same = [c for c in self._pending if not c._closing and address_group(c.address) == group]
        if len(same) >= _MAX_SESSIONS_PER_ADDRESS:
            return None
        if sum(1 for c in same if c.peer_id is None) >= _MAX_HANDSHAKES_PER_ADDRESS:
            return None
        if len(handshaking) + 1 >= _PRESSURE_HANDSHAKES:
            return _PRESSURED_HANDSHAKE_SECONDS
        return float(self.host.session_limits.get("handshake_timeout", 10.0))

    @staticmethod
    def _evict_handshake(handshaking: list[PeerConnection], group: str) -> bool:
        """All handshake slots taken: give one to `group` if another address holds at least two
        more, ending that address's oldest handshake. So an address with none in progress always
        gets one, however many addresses an attacker spreads its handshakes over."""
        counts: dict[str, list[PeerConnection]] = {}
        for conn in handshaking:
            counts.setdefault(address_group(conn.address), []).append(conn)
        busiest = max(counts.values(), key=len)
        if len(busiest) < len(counts.get(group, ())) + 2:
            return False
        min(busiest, key=lambda c: c.started).close("timeout", "making room for another address")
        return True

    def share_bodies(self, entries: list, source: PeerConnection) -> None:
        """Bodies we just filled in: offer them to every other session that holds the entries."""
        for conn in self.open_connections():
            if conn is not source:
                conn.offer_bodies(entries)

    def resend_budget(self, address: str) -> ResendBudget:
        """The re-send budget shared by every session with this address (an IPv6 /64)."""
        host = address.rsplit(":", 1)[0].strip("[]") if address.count(":") == 1 or \
            address.startswith("[") else address
        group = address_group(host)
        budget = self._resend_budgets.pop(group, None) or ResendBudget()
        self._resend_budgets[group] = budget  # most recent last
        if len(self._resend_budgets) > _MAX_RECORDS:
            del self._resend_budgets[next(iter(self._resend_budgets))]
        return budget

    def is_known(self, node_id: bytes) -> bool:
        """A peer we dialled, discovered, or that sent us entries we stored."""
        rec = self.records.get(node_id)
        return (rec is not None and (rec.known or rec.useful > 0)) or self.selection.knows(node_id)

    def inbound_sessions(self) -> list[PeerConnection]:
        """Live sessions that count against the inbound cap: dialled by the peer, which is
        neither a manual peer nor one we picked ourselves."""
        return [c for c in self.connections.values()
                if not c.initiator and not c._closing and c.peer_id is not None
                and c.peer_id not in self._manual_ids
                and not self.selection.is_picked(c.peer_id)]

    def _inbound_view(self, conn: PeerConnection) -> InboundSession:
        peer = conn.peer_id or b""
        rec = self.records.get(peer)
        return InboundSession(peer, address_group(_host_of(conn.address)), self.is_known(peer),
                              rec.score if rec is not None else 0.0, conn.started)

    def _admit_inbound(self, conn: PeerConnection) -> bool:
        """Is there an inbound slot for this peer (evicting another, per the policy)?"""
        peer = conn.peer_id or b""
        if peer in self._manual_ids:
            return True
        sessions = {c.peer_id: c for c in self.inbound_sessions()}
        answer = self.selection.admit_inbound(self._inbound_view(conn),
                                              [self._inbound_view(c) for c in sessions.values()])
        if answer.evict is not None:
            victim = sessions[answer.evict]
            log.info("evicting %s to make room for %s", victim.label, fingerprint(peer))
            victim.close("full", "this slot went to another peer")
        return answer.admit

    async def serve(self, conn: PeerConnection) -> None:
        """Run an accepted session to its end (called from the WebSocket handler)."""
        if self.admit(conn.address) is None:
            # others from that address got in while this one's upgrade was under way
            with contextlib.suppress(Exception):
                await conn.ws.close()
            return
        self._pending.add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
        try:
            await conn.run()
        finally:
            self._pending.discard(conn)
            if task is not None:
                self._serving.discard(task)

    # -- outgoing --------------------------------------------------------------------------
    def add_address(self, host: str, port: int, node_id: bytes | None = None,
                    how: str = "manual") -> None:
        """Keep a session with the peer at host:port, redialling with backoff."""
        key = ("addr", host, port)
        if key in self._dialers:
            self._wake(key)
        elif not self._closed:
            self._dialers[key] = asyncio.create_task(
                self._dial_loop(key, [f"{host}:{port}"], node_id, how),
                name=f"dial-{host}:{port}",
            )

    def discovered(self, node_id: bytes, addresses: list[str], port: int) -> None:
        """mDNS found (or found again) a peer of our network: a candidate for the selector,
        whose backoff ends now (it has just announced itself)."""
        if node_id == self.host.identity.node_id or self._closed:
            return
        rec = self.record(node_id)
        rec.addresses = tuple(addresses)
        rec.how = "mdns" if rec.how == "incoming" else rec.how
        targets = [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses]
        if self.selection.learn(node_id, addresses, targets, time.monotonic()):
            self._wake_selector()

    def _wake_selector(self) -> None:
        if self._closed:
            return
        if self._selector is None or self._selector.done():
            self._selector = asyncio.create_task(self._select_loop(), name="peer-selector")
        self._select_wake.set()

    async def _select_loop(self) -> None:
        """Dial what the selection picks and drop what it rotates out, then sleep until its
        next deadline or news (a discovery, a session ending)."""
        while not self._closed:
            self._select_wake.clear()
            now = time.monotonic()
            plan = self.selection.plan(now)
            for node_id in plan.drop:
                conn = self.connections.get(node_id)
                if conn is not None:
                    log.info("rotating away from %s", conn.label)
                    conn.close("closed", "rotating to another peer")
            for node_id in plan.dial:
                key = ("id", node_id)
                self._dialers[key] = asyncio.create_task(self._dial_pick(node_id),
                                                         name=f"dial-{fingerprint(node_id)}")
            wake = self.selection.next_wakeup(now)
            timeout = _SELECT_IDLE if wake is None else min(_SELECT_IDLE, max(0.01, wake - now))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._select_wake.wait()

    async def _dial_pick(self, node_id: bytes) -> None:
        """Dial a peer the selection picked, at each of its addresses until one answers, and
        run the session to its end; tell the selection how it went."""
        opened = False
        try:
            for target in self.selection.targets(node_id):
                conn = await self._dial_once(target, node_id, "mdns", node_id)
                if conn is None:
                    continue
                await conn.run()
                opened = conn.connected_since_ms is not None
                if conn.peer_id is None:  # the handshake failed: let `p2pnode peers` say why
                    message = (f"handshake with {target} failed ({conn.close_reason}): another"
                               " network key, another node than announced, or not a p2pnode peer")
                    self._address_errors[target] = message
                    self.record(node_id).last_error = message
                break
        finally:
            key = ("id", node_id)
            if self._dialers.get(key) is asyncio.current_task():
                del self._dialers[key]
            # opened: its end was reported by `unregister`; another session (the peer dialled us
            # at the same moment) may also serve the pick
            if not opened and node_id not in self.connections:
                self.selection.dial_failed(node_id, time.monotonic())
            self._wake_selector()

    def _wake(self, key: object) -> None:
        waker = self._wakers.get(key)
        if waker is not None:
            waker.set()

    @staticmethod
    async def _backoff(waker: asyncio.Event, seconds: float) -> bool:
        """Sleep between dials; True when woken early (the backoff starts again)."""
        waker.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await waker.wait()
                return True
        return False

    def vanished(self, node_id: bytes) -> None:
        """mDNS says the peer left: stop dialling it. A live session is left alone (mDNS records
        also expire on a lossy network while TCP works fine); it ends by itself if the peer is
        really gone."""
        self.selection.forget(node_id)

    async def _dial_loop(self, key: object, targets: list[str], node_id: bytes | None,
                         how: str) -> None:
        waker = self._wakers[key] = asyncio.Event()
        try:
            await self._dial_until_done(waker, targets, node_id, how)
        finally:
            if self._wakers.get(key) is waker:
                del self._wakers[key]

    async def _dial_until_done(self, waker: asyncio.Event, targets: list[str],
                               node_id: bytes | None, how: str) -> None:
        delay = _RETRY_MIN
        cap = _RETRY_MAX_MANUAL
        #: the node last reached at a manual address: its dial errors are recorded as its own
        reached: bytes | None = node_id
        while not self._closed:
            existing = self.connections.get(node_id) if node_id is not None else None
            if existing is not None:
                await existing.finished.wait()  # set once it has left `connections`
                await asyncio.sleep(_RETRY_MIN * random.uniform(0.8, 1.2))
                continue
            if node_id is not None and self.banned(node_id):
                await asyncio.sleep(self.records[node_id].banned_until - time.monotonic())
                continue
            started = time.monotonic()
            for target in targets:
                conn = await self._dial_once(target, node_id, how, reached)
                if conn is None:
                    continue
                await conn.run()
                reached = conn.peer_id or reached
                if conn.peer_id is None:  # the handshake failed: let `p2pnode peers` say why
                    message = (f"handshake with {target} failed ({conn.close_reason}): another"
                               " network key, another node than announced, or not a p2pnode peer")
                    self._address_errors[target] = message
                    if node_id is not None:
                        self.record(node_id).last_error = message
                other = self.connections.get(conn.peer_id) if conn.peer_id else None
                if other is not None and other is not conn:
                    await other.finished.wait()  # lost a duplicate race: the other one serves
                break
            if time.monotonic() - started > _STABLE_AFTER:
                delay = _RETRY_MIN
            if await self._backoff(waker, delay * random.uniform(0.8, 1.2)):
                delay = _RETRY_MIN
            else:
                delay = min(delay * 2, cap)

    async def _dial_once(self, target: str, node_id: bytes | None, how: str,
                         reached: bytes | None = None) -> PeerConnection | None:
        """One dial. `node_id`: the id discovery announced (the handshake must show it);
        `reached`: the node this address led to before, whose record takes the error."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        url = f"http://{target}{WEBSOCKET_PATH}"
        try:
            ws = await asyncio.wait_for(
                self._client.ws_connect(
                    url,
                    max_msg_size=max_ws_message(),
                    compress=0,
                    autoping=True,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                ),
                _DIAL_TIMEOUT,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            message = f"cannot connect to {target}: {exc.__class__.__name__} {exc}".strip()
            if reached is None:
                self._address_errors[target] = message
            else:
                self.record(reached).last_error = message
                self.host.remember_peer(reached, target, how, message)
            log.debug(message)
            return None
        self._address_errors.pop(target, None)
        return PeerConnection(self.host, self, ws, initiator=True, address=target, how=how,
                              expected_peer_id=node_id)

    def address_errors(self) -> dict[str, str]:
        return dict(self._address_errors)

    # -- shutdown --------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop dialling, end every session, wait for their tasks; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._selector is not None:
            self._selector.cancel()
            with contextlib.suppress(BaseException):
                await self._selector
        for task in self._dialers.values():
            task.cancel()
        for conn in [*self.connections.values(), *self._pending]:
            conn.close("shutdown", "the node is stopping")
        for task in [*self._dialers.values()]:
            with contextlib.suppress(BaseException):
                await task
        await self.bodies.close()
        if self._serving:
            await asyncio.wait([*self._serving], timeout=3.0)
        if self._client is not None:
            await self._client.close()


def _host_of(address: str) -> str:
    """The host of "host:port" or "[v6]:port" (an incoming session's address may be either, or
    a bare host)."""
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    if address.count(":") == 1:
        return address.rsplit(":", 1)[0]
    return address

