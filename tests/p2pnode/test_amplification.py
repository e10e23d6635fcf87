"""No re-send amplification (issue 12, item 3).

A peer that keeps asking (`want`) for what it was just sent, alternating the from-seq so that
no two wants are the same, could make the node re-send its whole feed 20 times a second. What a
peer's wants make us send again is budgeted (PROTOCOL.md 5, "`want`"), and asking again for what
was just sent scores the peer down.
"""

from __future__ import annotations

import asyncio
import time

from hostile import HostilePeer

from protocol.entry import create_entry
from protocol.frames import Clock, Entries, Want
from protocol.identity import Identity
from protocol.replication import RESEND_BURST, RESEND_RATE

FEED = 4500


async def long_feed(node, count: int = FEED) -> bytes:
    """Store a `count`-entry feed of a fresh author at `node`; returns the author."""
    writer = Identity.generate()
    now = int(time.time() * 1000)

    def write(home) -> None:  # in the node's thread: signing 4 500 entries takes a while
        chain, prev = [], None
        for seq in range(1, count + 1):
            entry = create_entry(writer, seq=seq, prev=prev, timestamp_ms=now, kind="note.test",
                                 body={"n": seq})
            chain.append(entry)
            prev = entry.id
        home.store.ingest(chain, now_ms=now)

    await node.perform(write)
    return writer.node_id


async def test_alternating_wants_are_budgeted_and_scored_down(nodes, eventually) -> None:
    """20 alternating wants a second re-send at most the budget; the peer is banned; an honest
    peer's announcement still arrives at once."""
    target = await nodes.start("target")
    honest = await nodes.start("honest", peers=[target])
    author = await long_feed(target)
    await eventually(lambda: honest.clock_snapshot().get(author) == FEED, timeout=15.0)
    async with HostilePeer(source="127.0.0.2") as peer:
        await peer.connect(target.port)
        await peer.handshake()
        await peer.send_frame(Clock(((author, FEED),), True))  # it holds everything
        started = time.monotonic()
        announced = None
        for i in range(60):  # 3 s at 20 a second
            if peer.closed:
                break
            await peer.send_frame(Want(((author, 1 + i % 2),)))
            if i == 10:
                entry = await honest.set_profile("Honest during the attack")
                announced = time.monotonic()
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        await eventually(lambda: target.clock_snapshot().get(honest.node_id) == entry.seq)
        assert time.monotonic() - announced < 2.0
        resent = sum(len(f.entries) for f in peer.frames if isinstance(f, Entries))
        assert resent <= FEED + RESEND_BURST + elapsed * RESEND_RATE
        assert peer.node_error == "banned" or target.peers.records[peer.node_id].score < -20


async def test_an_honest_want_is_served(nodes, eventually) -> None:
    """A single want for entries the peer claimed but lacks is answered in full."""
    target = await nodes.start("target")
    author = await long_feed(target, 600)
    async with HostilePeer() as peer:
        await peer.connect(target.port)
        await peer.handshake()
        await peer.send_frame(Clock(((author, 600),), True))
        await peer.send_frame(Want(((author, 101),)))
        await eventually(lambda: sum(len(f.entries) for f in peer.frames
                                     if isinstance(f, Entries)) == 500)
        await asyncio.sleep(0.2)
        assert not peer.closed
        assert target.peers.records[peer.node_id].score == 0


async def test_fresh_identities_share_their_address_budget(nodes, eventually) -> None:
    """New identities from one address do not refill the re-send budget; another address has
    its own."""
    target = await nodes.start("target")
    author = await long_feed(target)
    started = time.monotonic()
    resent = 0
    for _ in range(3):
        async with HostilePeer(source="127.0.0.2") as peer:
            await peer.connect(target.port)
            await peer.handshake()
            await peer.send_frame(Clock(((author, FEED),), True))
            for i in range(4):
                await peer.send_frame(Want(((author, 1 + i),)))
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            resent += sum(len(f.entries) for f in peer.frames if isinstance(f, Entries))
    elapsed = time.monotonic() - started
    assert resent <= FEED + elapsed * RESEND_RATE + 256
    async with HostilePeer(source="127.0.0.3") as other:
        await other.connect(target.port)
        await other.handshake()
        await other.send_frame(Clock(((author, FEED),), True))
        await other.send_frame(Want(((author, 1),)))
        await eventually(lambda: sum(len(f.entries) for f in other.frames
                                     if isinstance(f, Entries)) == FEED)
