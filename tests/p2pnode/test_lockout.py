"""No lock-out by session exhaustion (issue 12, item 1).

The attacker connects from 127.0.0.2 (another host as far as the node can tell), the honest
nodes from 127.0.0.1. Half-open handshakes and sessions under throwaway identities from one
address are capped per address, so an honest peer still connects and syncs; known peers keep
slots that strangers from many addresses cannot take.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest
from hostile import HandshakeRefused, HostilePeer

from p2pnode.net import peers
from p2pnode.node import Node
from protocol.frames import Clock

#: The real 10 s handshake deadline: a half-open handshake holds its slot that long.
LIMITS = {"ping_interval": 1.0, "idle_timeout": 4.0, "handshake_timeout": 10.0}
ATTACKER = "127.0.0.2"


async def try_connect(port: int, source: str, *, finish: bool) -> HostilePeer | None:
    """Open a WebSocket from `source`; half-open (message 1 only) or a full, polite session.
    None when the node refused it (HTTP 503, or closed before the handshake ended)."""
    peer = HostilePeer(source=source)
    try:
        await peer.connect(port, timeout=3.0)
        if finish:
            await peer.handshake(timeout=3.0)
            await peer.send_frame(Clock((), True))
        else:
            await peer.half_open()
        return peer
    except (aiohttp.WSServerHandshakeError, HandshakeRefused, TimeoutError):
        await peer.close()
        return None


async def honest_joins(nodes, target: Node, name: str, eventually) -> float:
    """Start an honest node dialling `target`; seconds until its profile is stored there."""
    started = time.monotonic()
    honest = await nodes.start(name, peers=[target], session_limits=LIMITS)
    entry = await honest.set_profile(f"Honest {name}")
    await eventually(lambda: target.clock_snapshot().get(honest.node_id) == entry.seq,
                     timeout=8.0)
    return time.monotonic() - started


async def close_all(attackers: list[HostilePeer | None]) -> None:
    for peer in attackers:
        if peer is not None:
            with contextlib.suppress(Exception):
                await peer.close()


async def test_half_open_handshakes_from_one_address_lock_nobody_out(nodes, eventually) -> None:
    """64 half-open handshakes from one address: it gets 4, an honest peer connects at once."""
    target = await nodes.start("target", session_limits=LIMITS)
    attackers = await asyncio.gather(*[try_connect(target.port, ATTACKER, finish=False)
                                       for _ in range(64)])
    try:
        assert await honest_joins(nodes, target, "h1", eventually) < 3.0
        held = [p for p in attackers if p is not None and not p.closed]
        assert len(held) <= peers._MAX_HANDSHAKES_PER_ADDRESS
    finally:
        await close_all(attackers)


async def test_half_open_handshakes_under_pressure_are_cut_after_2_s(nodes) -> None:
    """Once 8 handshakes are in progress, a half-open one is abandoned after 2 s, not 10 s."""
    target = await nodes.start("target", session_limits=LIMITS)
    attackers = await asyncio.gather(*[try_connect(target.port, f"127.0.1.{i}", finish=False)
                                       for i in range(1, 17) for _ in range(2)])
    try:
        assert all(p is not None for p in attackers)
        await asyncio.sleep(peers._PRESSURED_HANDSHAKE_SECONDS + 1.5)
        # those admitted before the pressure began keep their 10 s; all later ones are gone
        assert sum(not p.closed for p in attackers) < peers._PRESSURE_HANDSHAKES
    finally:
        await close_all(attackers)


async def test_half_open_handshakes_from_many_addresses_lock_nobody_out(nodes, eventually,
                                                                       monkeypatch) -> None:
    """Half-open handshakes from 16 addresses fill every slot and are renewed at once: an
    address with none in progress still gets one (the busiest address gives up its oldest),
    even without the short deadline (here 10 s, to leave eviction alone to do it)."""
    monkeypatch.setattr(peers, "_PRESSURED_HANDSHAKE_SECONDS", 10.0)
    target = await nodes.start("target", session_limits=LIMITS)
    sources = [f"127.0.1.{i}" for i in range(1, 17)]
    attackers: list[HostilePeer | None] = []
    stop = asyncio.Event()

    async def renew() -> None:
        while not stop.is_set():
            attackers.extend(await asyncio.gather(*[try_connect(target.port, s, finish=False)
                                                    for s in sources for _ in range(4)]))
            await asyncio.sleep(0.3)

    renewing = asyncio.create_task(renew())
    try:
        await asyncio.sleep(1.0)
        assert sum(p is not None for p in attackers) >= 8
        assert await honest_joins(nodes, target, "h1", eventually) < 3.0
    finally:
        stop.set()
        await renewing
        await close_all(attackers)


async def test_fresh_identities_from_one_address_get_a_few_sessions(nodes, eventually) -> None:
    """64 polite sessions under fresh identities from one address: 8 are kept, honest peers sync."""
    target = await nodes.start("target", session_limits=LIMITS)
    attackers = []
    try:
        for _ in range(8):  # in waves, as a patient attacker would
            attackers += await asyncio.gather(*[try_connect(target.port, ATTACKER, finish=True)
                                                for _ in range(8)])
        await asyncio.sleep(0.2)
        assert await honest_joins(nodes, target, "h1", eventually) < 3.0
        assert await honest_joins(nodes, target, "h2", eventually) < 3.0
        kept = [p for p in attackers if p is not None and not p.closed]
        assert len(kept) <= peers._MAX_SESSIONS_PER_ADDRESS
    finally:
        await close_all(attackers)


async def test_known_peers_keep_their_slots_against_strangers(nodes, eventually,
                                                              monkeypatch) -> None:
    """Strangers from many addresses fill what they may; known peers get back in, evicting one."""
    monkeypatch.setattr(peers, "_MAX_INBOUND", 4)
    monkeypatch.setattr(peers, "_RESERVED_FOR_KNOWN", 1)
    target = await nodes.start("target", session_limits=LIMITS)
    h1 = await nodes.start("h1", peers=[target], session_limits=LIMITS)
    h2 = await nodes.start("h2", peers=[target], session_limits=LIMITS)
    for node in (h1, h2):  # a history of useful data at the target
        entry = await node.set_profile("known")
        await eventually(lambda n=node, e=entry: target.clock_snapshot().get(n.node_id) == e.seq)
    ids = (h1.node_id, h2.node_id)
    await h1.close()
    await h2.close()
    await eventually(lambda: not target.peers.connections)

    strangers = [await try_connect(target.port, f"127.0.2.{i}", finish=True) for i in range(1, 5)]
    try:
        await asyncio.sleep(0.2)
        kept = [p for p in strangers if p is not None and not p.closed]
        assert len(kept) == 3  # the fourth slot is kept for a known peer
        assert strangers[3] is None or strangers[3].node_error == "full"

        again = [await nodes.start(name, peers=[target], session_limits=LIMITS)
                 for name in ("h1", "h2")]
        await eventually(lambda: all(i in target.peers.connections for i in ids))
        evicted = [p for p in kept if p.closed]
        await eventually(lambda: sum(p.closed for p in kept) == 1)
        evicted = [p for p in kept if p.closed]
        assert evicted[0].node_error == "full"
        one = await again[0].set_profile("back")
        await eventually(lambda: again[1].clock_snapshot().get(h1.node_id) == one.seq)
    finally:
        await close_all(strangers)


@pytest.mark.parametrize("address,group", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
])
def test_addresses_are_grouped_per_host(address, group) -> None:
    """Per-address limits count an IPv4 address, or a whole IPv6 /64, as one host."""
    assert peers.address_group(address) == group
