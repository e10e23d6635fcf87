"""The peer manager: who we are connected to, who we dial, and who behaves.

Rules:
- One session per peer pair. When two exist (both sides dialled at once), both sides keep the one
  dialled by the smaller node id, so they agree without talking.
- Manual peers and discovered peers are dialled by a loop each, with exponential backoff and
  jitter between failures (capped at a few seconds for manual peers); a new mDNS announcement
  or the same address added again wakes the loop at once. A discovered peer that vanishes is
  forgotten (its loop stops).
- One row per peer: a manual address that reached a node once is that node's; later dial
  errors are recorded against it rather than as a row of their own.
- Misbehaviour lowers a peer's score; at `_BAN_SCORE` it is disconnected and neither dialled nor
  accepted for `_BAN_SECONDS`. Good batches slowly restore the score.
- No lock-out (PROTOCOL.md 4, "Admission"): one address (an IPv6 /64) may hold at most
  `_MAX_HANDSHAKES_PER_ADDRESS` handshakes and `_MAX_SESSIONS_PER_ADDRESS` incoming sessions;
  all addresses together at most `_MAX_HANDSHAKES` handshakes (when all are taken, an address
  holding two more than the newcomer's gives up its oldest), and once `_PRESSURE_HANDSHAKES`
  are in progress a half-open one gets `_PRESSURED_HANDSHAKE_SECONDS` instead of 10 s. Of the
  `_MAX_CONNECTIONS` session slots, `_RESERVED_FOR_KNOWN` are kept for known peers (manual,
  discovered, or with a history of useful data); a known peer arriving when all slots are
  taken evicts the lowest-scored, newest incoming session of a peer without that history.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
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
from protocol.identity import fingerprint
from protocol.replication import ResendBudget
from protocol.session import WEBSOCKET_PATH

if TYPE_CHECKING:
    from p2pnode.net.host import PeerHost

log = logging.getLogger(__name__)

_RETRY_MIN = 0.5
#: Backoff cap for peers found by mDNS: a restarted one announces itself, which wakes its loop.
_RETRY_MAX = 60.0
#: Backoff cap for manual peers (`--peer`): nothing announces their return, and a refused or
#: unanswered dial every few seconds costs next to nothing, so a peer that comes back is
#: reconnected within a few seconds.
_RETRY_MAX_MANUAL = 3.0
_STABLE_AFTER = 30.0
_FORGET_AFTER = 600.0
_DIAL_TIMEOUT = 5.0
_BAN_SCORE = -50.0
_BAN_SECONDS = 600.0
_MAX_SCORE = 20.0
_MAX_CONNECTIONS = 64
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


class PeerManager:
    def __init__(self, host: PeerHost) -> None:
        self.host = host
        self.connections: dict[bytes, PeerConnection] = {}
        self.records: dict[bytes, PeerRecord] = {}
        self._address_errors: dict[str, str] = {}
        self._pending: set[PeerConnection] = set()
        self._dialers: dict[object, asyncio.Task[None]] = {}
        #: set to cut a dial loop's backoff short (the peer announced itself again)
        self._wakers: dict[object, asyncio.Event] = {}
        self._targets: dict[bytes, list[str]] = {}
        self._vanished: set[bytes] = set()
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
        elif existing is None and not conn.initiator and not self._make_room(peer):
            conn.close("full", "no session slot free for a peer without history here")
            return False
        self.connections[peer] = conn
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
        return rec is not None and (rec.known or rec.useful > 0)

    def _make_room(self, peer: bytes) -> bool:
        """Is there a session slot for this incoming peer (evicting a stranger if it is known)?"""
        live = sum(1 for c in self.connections.values() if not c._closing)
        if not self.is_known(peer):
            return live < _MAX_CONNECTIONS - _RESERVED_FOR_KNOWN
        if live < _MAX_CONNECTIONS:
            return True
        strangers = [c for c in self.connections.values()
                     if not c.initiator and c.peer_id and not self.is_known(c.peer_id)
                     and not c._closing]
        if not strangers:
            return False
        victim = min(strangers, key=lambda c: (self.record(c.peer_id or b"").score,
                                               -(c.connected_since_ms or 0)))
        log.info("evicting %s to make room for known peer %s", victim.label, fingerprint(peer))
        victim.close("full", "this slot went to a peer with a history here")
        return True

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
        """mDNS found a peer of our network: dial it unless connected or already dialling."""
        if node_id == self.host.identity.node_id or self._closed:
            return
        rec = self.record(node_id)
        rec.addresses = tuple(addresses)
        rec.how = "mdns" if rec.how == "incoming" else rec.how
        key = ("id", node_id)
        targets = [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses]
        self._targets[node_id] = targets  # a running loop picks up moved addresses/ports
        self._vanished.discard(node_id)
        task = self._dialers.get(key)
        if task is None or task.done():
            self._dialers[key] = asyncio.create_task(
                self._dial_loop(key, targets, node_id, "mdns"),
                name=f"dial-{fingerprint(node_id)}",
            )
        else:
            self._wake(key)  # announced again (restarted, or back on the network): dial now

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
        really gone, and the dial loop then stops."""
        if node_id in self.connections:
            self._vanished.add(node_id)
            return
        task = self._dialers.pop(("id", node_id), None)
        if task is not None:
            task.cancel()

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
        cap = _RETRY_MAX if how == "mdns" else _RETRY_MAX_MANUAL
        last_success = time.monotonic()
        #: the node last reached at a manual address: its dial errors are recorded as its own
        reached: bytes | None = node_id
        while not self._closed:
            if how == "mdns" and node_id in self._vanished:
                self._vanished.discard(node_id)
                self._dialers.pop(("id", node_id), None)
                return
            if how == "mdns" and time.monotonic() - last_success > _FORGET_AFTER:
                # A node that crashed without a goodbye stays in mDNS caches for 75 minutes:
                # stop dialling it; its next advertisement starts a new loop.
                log.info("forgetting %s: unreachable for %.0f s", fingerprint(node_id or b""),
                         _FORGET_AFTER)
                self._dialers.pop(("id", node_id), None)
                return
            existing = self.connections.get(node_id) if node_id is not None else None
            if existing is not None:
                await existing.finished.wait()  # set once it has left `connections`
                await asyncio.sleep(_RETRY_MIN * random.uniform(0.8, 1.2))
                continue
            if node_id is not None and self.banned(node_id):
                await asyncio.sleep(self.records[node_id].banned_until - time.monotonic())
                continue
            started = time.monotonic()
            if node_id is not None:
                targets = self._targets.get(node_id, targets)
            for target in targets:
                conn = await self._dial_once(target, node_id, how, reached)
                if conn is None:
                    continue
                await conn.run()
                if conn.connected_since_ms is not None:
                    last_success = time.monotonic()
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


def address_group(address: str) -> str:
    """The unit the per-address limits count: an IPv4 address, or an IPv6 /64 (one host on the
    open network gets a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)
