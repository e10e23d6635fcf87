"""Which discovered peers a node keeps sessions with: a bounded, randomised, diverse choice.

On a LAN of hundreds of nodes, dialling everyone found by mDNS costs every node hundreds of
sessions. `PeerSelection` keeps a bounded set instead. It is a pure policy: no I/O, no clock,
no global randomness. The caller passes ``now`` (monotonic seconds) and owns a
`random.Random`; the peer manager asks `PeerSelection.plan` what to dial and what to drop,
reports what happened (`dial_failed`, `session_opened`, `session_closed`) and asks
`admit_inbound` when a peer has dialled us.

Rules (after Bitcoin Core's outbound selection, scaled down to a LAN):

- **Outbound**: at most ``max_outbound`` peers we picked (8). ``stable_slots`` of them (5) are
  *stable*: filled with the best-ranked candidates (score, then longest session seen) and kept
  while the session lives. The rest are *rotating*: filled at random, and every
  ``rotate_every`` seconds (± 25 %) the oldest rotating pick is dropped for another random one,
  so the session graph keeps changing shape and stays connected even if some nodes only ever
  talk among themselves.
- **Diversity**: a pick never shares an address group (one IPv4 address, or an IPv6 /64: one
  host) with another pick while a candidate from an unused group exists, and among those the
  least-used wider net group (IPv4 /24, IPv6 /48) comes first. Random picks choose a group
  first, then an id in it, so one host announcing a hundred ids is no likelier to be chosen than
  a host announcing one, and cannot fill our slots: it cannot surround us.
- Peers that dialled us are never picked as outbound (an attacker cannot make itself one of our
  own choices by connecting first).
- **Inbound**: at most ``max_inbound`` sessions dialled by peers we did not pick (24), of which
  ``reserved_inbound`` (8) only known peers (discovered, or with a history of useful data) may
  take. When they are taken, a known newcomer displaces the lowest-scored, newest stranger;
  otherwise an address group holding two more inbound sessions than the newcomer's gives up
  its lowest-scored, newest one; otherwise the newcomer is refused (`error full`).
- **Manual peers** (``--peer``) are kept by the peer manager on top of both caps; they are
  neither picked nor counted here.
- **No tight loops**: a failed dial backs off exponentially (``retry_min`` doubling to
  ``retry_max``, ± 20 % jitter); a session the peer ends within ``refused_within`` seconds is a
  refusal (a full peer says `full` right after the handshake) and backs off from
  ``refused_backoff``. A new advertisement (`learn`) cuts a backoff short, but never dials a
  peer sooner than ``retry_min`` (less its jitter) after the last dial. A rotated-out peer
  rests for one rotation.
- **Bounded memory**: at most ``max_known`` candidates, at most ``max_known_per_group`` per
  address group (one host's ids cannot crowd the others out); a peer whose dials have failed
  for ``forget_after`` seconds is forgotten (its next advertisement brings it back).
"""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "Admission",
    "InboundSession",
    "PeerSelection",
    "Plan",
    "SelectionLimits",
    "Slot",
    "address_group",
    "net_group",
]


def address_group(address: str) -> str:
    """One host: an IPv4 address, or an IPv6 /64 (one host on the open network gets a whole
    /64). Anything that is not an IP address is its own group."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if ip.is_link_local:  # every host on the link has an fe80::/64 address: the /64 says
            return str(ip)    # nothing about which host it is
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def net_group(address: str) -> str:
    """One network: an IPv4 /24, or an IPv6 /48 (a site)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if isinstance(ip, ipaddress.IPv4Address) else 48
    return str(ipaddress.ip_network((ip, prefix), strict=False))


@dataclass(frozen=True)
class SelectionLimits:
    """The knobs of `PeerSelection` (seconds for times). Defaults suit a library LAN."""

    max_outbound: int = 8
    stable_slots: int = 5
    max_inbound: int = 24
    reserved_inbound: int = 8
    rotate_every: float = 240.0
    retry_min: float = 0.5
    retry_max: float = 60.0
    refused_within: float = 10.0
    refused_backoff: float = 30.0
    healthy_after: float = 30.0
    forget_after: float = 600.0
    max_known: int = 1024
    max_known_per_group: int = 16

    def __post_init__(self) -> None:
        if self.max_outbound < 0 or self.max_inbound < 0:
            raise ValueError("session caps cannot be negative")
        if not 0 <= self.stable_slots <= self.max_outbound:
            raise ValueError(f"stable_slots must be 0-{self.max_outbound}, not "
                             f"{self.stable_slots}")
        if not 0 <= self.reserved_inbound <= self.max_inbound:
            raise ValueError(f"reserved_inbound must be 0-{self.max_inbound}, not "
                             f"{self.reserved_inbound}")
        if self.max_known < 1 or self.max_known_per_group < 1:
            raise ValueError("max_known and max_known_per_group must be at least 1")
        if not 0 < self.retry_min <= self.retry_max or self.rotate_every <= 0:
            raise ValueError("retry_min, retry_max and rotate_every must be positive, "
                             "retry_min <= retry_max")

    @classmethod
    def for_peers(cls, max_peers: int, **overrides: float) -> SelectionLimits:
        """Limits for ``--max-peers N``: N sessions in all, a third of them (at least 1) dialled
        by us, five eighths of those stable; a third of the inbound slots kept for known peers."""
        if max_peers < 1:
            raise ValueError(f"max peers must be at least 1, not {max_peers}")
        outbound = max(1, round(max_peers / 4))
        inbound = max_peers - outbound
        values: dict = {
            "max_outbound": outbound,
            "stable_slots": min(outbound, max(0, round(outbound * 5 / 8))),
            "max_inbound": inbound,
            "reserved_inbound": inbound // 3,
        }
        values.update(overrides)
        return cls(**values)


class Slot(Enum):
    """Why we keep an outbound pick."""

    #: kept while its session lives; chosen by rank
    STABLE = "stable"
    #: replaced every few minutes by a random candidate
    ROTATING = "rotating"


@dataclass
class _Candidate:
    node_id: bytes
    group: str
    net: str
    targets: tuple[str, ...]
    learned: float
    #: last time it was announced or a session with it ended well (for `forget_after`)
    last_good: float
    failures: int = 0
    retry_at: float = 0.0
    last_dial: float | None = None
    longest_session: float = 0.0
    vanished: bool = False


@dataclass
class _Pick:
    slot: Slot
    since: float
    dialling: bool = True


@dataclass(frozen=True)
class Plan:
    """What to do now: dial these peers (picked, not connected), drop these sessions."""

    dial: tuple[bytes, ...] = ()
    drop: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class InboundSession:
    """A session a peer dialled, as `admit_inbound` sees it."""

    node_id: bytes
    group: str
    known: bool
    score: float
    #: when it opened (monotonic): among equals the newest gives way
    since: float


@dataclass(frozen=True)
class Admission:
    """The answer to an inbound session: keep it (evicting `evict` first, if set), or not."""

    admit: bool
    evict: bytes | None = None


@dataclass
class PeerSelection:
    """The policy (see the module docstring). All times are monotonic seconds.

    Args:
        limits: the caps and timings.
        rng: the source of every random choice (seed it in tests).
        score: a peer's score (higher is better); 0 when unknown.
        excluded: True for peers never to dial (banned, or manual: kept by someone else).
    """

    limits: SelectionLimits = field(default_factory=SelectionLimits)
    rng: random.Random = field(default_factory=random.Random)
    score: Callable[[bytes], float] = lambda _node_id: 0.0
    excluded: Callable[[bytes], bool] = lambda _node_id: False
    _known: dict[bytes, _Candidate] = field(default_factory=dict, init=False)
    _picks: dict[bytes, _Pick] = field(default_factory=dict, init=False)
    _connected: dict[bytes, float] = field(default_factory=dict, init=False)
    _next_rotation: float | None = field(default=None, init=False)

    # -- what the caller tells us -----------------------------------------------------------
    def learn(self, node_id: bytes, addresses: Sequence[str], targets: Sequence[str],
              now: float) -> bool:
        """A peer was announced (again): remember it as a candidate, and cut its backoff short.

        `addresses` are its IPs (for grouping), `targets` what to dial (opaque here). Returns
        False when it was not kept (its host already fills its share of the table).
        """
        if not addresses or not targets:
            return False
        group, net = _groups(addresses)
        cand = self._known.get(node_id)
        if cand is None:
            if not self._make_room(group):
                return False
            cand = self._known[node_id] = _Candidate(node_id, group, net, tuple(targets),
                                                     learned=now, last_good=now)
        else:
            cand.group, cand.net, cand.targets = group, net, tuple(targets)
            cand.last_good = now
            cand.vanished = False
            cand.failures = 0
            # an announcement means "I am (back) here": dial soon, but never in a tight loop
            earliest = (cand.last_dial + self.limits.retry_min) if cand.last_dial is not None \
                else now
            cand.retry_at = min(cand.retry_at, max(now, earliest))
        return True

    def forget(self, node_id: bytes) -> None:
        """The peer is no longer announced: stop dialling it. A live session is left alone
        (mDNS records also expire while TCP works); it is forgotten when that session ends."""
        cand = self._known.get(node_id)
        if cand is None:
            return
        if node_id in self._connected:
            cand.vanished = True
            return
        del self._known[node_id]
        self._picks.pop(node_id, None)

    def dial_failed(self, node_id: bytes, now: float) -> None:
        """A dial we planned reached no session: free its slot, back off."""
        self._picks.pop(node_id, None)
        cand = self._known.get(node_id)
        if cand is not None:
            self._back_off(cand, now, self.limits.retry_min)

    def session_opened(self, node_id: bytes, now: float) -> None:
        """A session with the peer is up (whoever dialled). Idempotent."""
        self._connected.setdefault(node_id, now)
        pick = self._picks.get(node_id)
        if pick is not None:
            pick.dialling = False

    def session_closed(self, node_id: bytes, now: float, *, by_peer: bool) -> None:
        """The session with the peer ended (`by_peer`: the peer ended it)."""
        opened = self._connected.pop(node_id, None)
        lasted = now - opened if opened is not None else 0.0
        was_picked = self._picks.pop(node_id, None) is not None
        cand = self._known.get(node_id)
        if cand is None:
            return
        if cand.vanished:
            del self._known[node_id]
            return
        cand.longest_session = max(cand.longest_session, lasted)
        if lasted >= self.limits.healthy_after:
            cand.failures = 0
            cand.last_good = now
        if by_peer and lasted < self.limits.refused_within and was_picked:
            self._back_off(cand, now, self.limits.refused_backoff)  # it refused us (full)
        elif lasted < self.limits.healthy_after:
            self._back_off(cand, now, self.limits.retry_min)
        else:  # a good session ended: redial soon (unless it rests after a rotation)
            cand.retry_at = max(cand.retry_at, now + self.limits.retry_min * self._jitter())

    # -- questions -------------------------------------------------------------------------
    def plan(self, now: float) -> Plan:
        """Rotate if due, forget the long unreachable, and fill free slots. The peers in
        `Plan.dial` are picked from now on: report each with `dial_failed` or
        `session_opened`."""
        self._forget_unreachable(now)
        drop: list[bytes] = []
        rotating = self.limits.max_outbound - self.limits.stable_slots
        if self._next_rotation is None:
            self._next_rotation = now + self._rotation_period()
        elif now >= self._next_rotation:
            self._next_rotation = now + self._rotation_period()
            dropped = self._rotate(now) if rotating else None
            if dropped is not None:
                drop.append(dropped)
        dial: list[bytes] = []
        for slot, wanted in ((Slot.STABLE, self.limits.stable_slots), (Slot.ROTATING, rotating)):
            while sum(p.slot is slot for p in self._picks.values()) < wanted:
                chosen = self._choose(slot, now)
                if chosen is None:
                    break
                self._picks[chosen.node_id] = _Pick(slot, now)
                chosen.last_dial = now
                dial.append(chosen.node_id)
        return Plan(tuple(dial), tuple(drop))

    def next_wakeup(self, now: float) -> float | None:
        """When `plan` may have something new to do without being told (a backoff ends, a
        rotation is due); None: only after news."""
        times: list[float] = []
        if self._next_rotation is not None and self.limits.max_outbound > self.limits.stable_slots:
            times.append(self._next_rotation)
        if len(self._picks) < self.limits.max_outbound:
            waiting = [c.retry_at for c in self._eligible()]
            if waiting:
                times.append(max(now, min(waiting)))
        idle = [c.last_good for n, c in self._known.items()
                if c.failures and n not in self._connected and n not in self._picks]
        if idle:
            times.append(max(now, min(idle) + self.limits.forget_after))
        return min(times) if times else None

    def admit_inbound(self, newcomer: InboundSession,
                      sessions: Iterable[InboundSession]) -> Admission:
        """May `newcomer`, who dialled us, keep its session? `sessions`: the inbound sessions
        that count against the cap (not manual peers, not our picks), without the newcomer."""
        if newcomer.node_id in self._picks:
            return Admission(True)  # we want it anyway: it fills an outbound slot
        current = [s for s in sessions if s.node_id != newcomer.node_id]
        strangers = [s for s in current if not s.known]
        stranger_cap = self.limits.max_inbound - self.limits.reserved_inbound
        if len(current) < self.limits.max_inbound and (newcomer.known
                                                       or len(strangers) < stranger_cap):
            return Admission(True)
        if newcomer.known and strangers:
            return Admission(True, _weakest(strangers).node_id)
        # one host must not hold the slots others need: the busiest group gives one up
        pool = current if newcomer.known else strangers
        by_group: dict[str, list[InboundSession]] = {}
        for session in pool:
            by_group.setdefault(session.group, []).append(session)
        if by_group:
            busiest = max(by_group.values(), key=len)
            if len(busiest) >= len(by_group.get(newcomer.group, ())) + 2:
                return Admission(True, _weakest(busiest).node_id)
        return Admission(False)

    def is_picked(self, node_id: bytes) -> bool:
        """Did we choose this peer for an outbound slot (dialling or connected)?"""
        return node_id in self._picks

    def slot(self, node_id: bytes) -> Slot | None:
        pick = self._picks.get(node_id)
        return pick.slot if pick is not None else None

    def knows(self, node_id: bytes) -> bool:
        """Is the peer a candidate (announced, not forgotten)?"""
        return node_id in self._known

    def targets(self, node_id: bytes) -> tuple[str, ...]:
        cand = self._known.get(node_id)
        return cand.targets if cand is not None else ()

    @property
    def picks(self) -> dict[bytes, Slot]:
        return {node_id: pick.slot for node_id, pick in self._picks.items()}

    @property
    def known_count(self) -> int:
        return len(self._known)

    def known_ids(self) -> list[bytes]:
        """The candidates, in the order they were learnt."""
        return list(self._known)

    # -- inside ----------------------------------------------------------------------------
    def _eligible(self) -> list[_Candidate]:
        return [c for c in self._known.values()
                if c.node_id not in self._picks and c.node_id not in self._connected
                and not c.vanished and not self.excluded(c.node_id)]

    def _choose(self, slot: Slot, now: float) -> _Candidate | None:
        ready = [c for c in self._eligible() if c.retry_at <= now]
        if not ready:
            return None
        picked = [self._known[n] for n in self._picks if n in self._known]
        used_groups = {c.group for c in picked}
        fresh = [c for c in ready if c.group not in used_groups]
        ready = fresh or ready
        nets = Counter(c.net for c in picked)
        least = min(nets[c.net] for c in ready)
        ready = [c for c in ready if nets[c.net] == least]
        if slot is Slot.STABLE:
            best = max((self.score(c.node_id), c.longest_session) for c in ready)
            ready = [c for c in ready if (self.score(c.node_id), c.longest_session) == best]
        # a random group first, then a random id in it: many ids on one host weigh as one
        groups = sorted({c.group for c in ready})
        group = self.rng.choice(groups)
        return self.rng.choice([c for c in ready if c.group == group])

    def _rotate(self, now: float) -> bytes | None:
        """Drop the oldest connected rotating pick, if another candidate could take its slot."""
        rotating = [(p.since, n) for n, p in self._picks.items()
                    if p.slot is Slot.ROTATING and not p.dialling]
        if not rotating or not any(c.retry_at <= now for c in self._eligible()):
            return None
        _, node_id = min(rotating)
        del self._picks[node_id]
        cand = self._known.get(node_id)
        if cand is not None:  # rests for a rotation, so that it is not picked straight back
            cand.retry_at = now + self.limits.rotate_every
        return node_id

    def _forget_unreachable(self, now: float) -> None:
        for node_id, cand in list(self._known.items()):
            # only peers we tried and failed: one never dialled is as good as announced
            if (cand.failures and node_id not in self._connected and node_id not in self._picks
                    and now - cand.last_good > self.limits.forget_after):
                del self._known[node_id]

    def _make_room(self, group: str) -> bool:
        """Room for one more candidate of `group`, forgetting one if needed; False: none."""
        same = [c for c in self._known.values() if c.group == group]
        if len(same) >= self.limits.max_known_per_group:
            return self._drop_one(same)
        if len(self._known) >= self.limits.max_known:
            crowd = Counter(c.group for c in self._known.values())
            for crowded, _ in crowd.most_common():
                if self._drop_one([c for c in self._known.values() if c.group == crowded]):
                    return True
            return False
        return True

    def _drop_one(self, among: list[_Candidate]) -> bool:
        idle = [c for c in among if c.node_id not in self._picks
                and c.node_id not in self._connected]
        if not idle:
            return False
        worst = max(idle, key=lambda c: (c.failures, -c.last_good))
        del self._known[worst.node_id]
        return True

    def _back_off(self, cand: _Candidate, now: float, base: float) -> None:
        cand.failures += 1
        delay = min(base * 2 ** min(cand.failures - 1, 30), max(base, self.limits.retry_max))
        cand.retry_at = max(cand.retry_at, now + delay * self._jitter())

    def _jitter(self) -> float:
        return self.rng.uniform(0.8, 1.2)

    def _rotation_period(self) -> float:
        return self.limits.rotate_every * self.rng.uniform(0.75, 1.25)


def _groups(addresses: Sequence[str]) -> tuple[str, str]:
    """The address group and net group a peer is counted in: its first IPv4 address if it has
    one (a LAN host's IPv6 is often only link-local, shared in form by every host), else its
    first address."""
    ipv4 = [a for a in addresses if "." in a and ":" not in a]
    first = (ipv4 or list(addresses))[0]
    return address_group(first), net_group(first)


def _weakest(sessions: Sequence[InboundSession]) -> InboundSession:
    """The session that gives way: lowest score, then newest."""
    return min(sessions, key=lambda s: (s.score, -s.since))
