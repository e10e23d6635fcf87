"""No censorship by stripped bodies (issue 12, item 2).

A prankster relay forwards a new circle without its body. The target must not keep it bodiless
for good: it asks holders for the body with `want_bodies` (PROTOCOL.md 5), the prankster first,
and an honest holder when the prankster stays silent; the circle then shows in the listings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from builders import circle_body
from hostile import HostilePeer

from p2pnode.node import Node
from protocol import replication
from protocol.entry import create_entry
from protocol.frames import Clock, Entries, WantBodies
from protocol.identity import Identity
from protocol.replication import BODY_RATE


def future_circle(name: str) -> dict:
    start = (dt.date.today() + dt.timedelta(days=14)).isoformat()
    return circle_body([], name=name, start=start)


async def prankster(target: Node, author: Node) -> HostilePeer:
    """A peer that claims to hold `author`'s feed and sends it to `target` with bodies stripped."""
    entries = await author.read_feed(author.node_id, 1, 100)
    peer = HostilePeer()
    await peer.connect(target.port)
    await peer.handshake()
    await peer.send_frame(Clock(((author.node_id, entries[-1].header.seq),), True))
    await peer.send_entries([e.without_body() for e in entries])
    return peer


async def test_stripped_circle_is_fetched_from_another_holder(nodes, eventually) -> None:
    """A circle first heard of without its body is fetched from an honest holder and listed."""
    author = await nodes.start("author")
    await author.set_profile("Author")
    circle = await author.announce_circle(future_circle("Hidden by a prankster"))
    target = await nodes.start("target")
    async with await prankster(target, author) as peer:
        await eventually(lambda: target.clock_snapshot().get(author.node_id) == circle.header.seq)
        assert await target.circle(circle.id) is None  # held, but bodiless
        # the prankster, a holder by its clock, is asked first, and says nothing
        await eventually(lambda: any(isinstance(f, WantBodies) and circle.id in f.entry_ids
                                     for f in peer.frames))
        started = time.monotonic()
        target.add_peer(f"127.0.0.1:{author.port}")  # an honest holder comes along
        await eventually(lambda: len(target.peers.open_connections()) == 2)
        for _ in range(100):
            if await target.circle(circle.id) is not None:
                break
            await asyncio.sleep(0.1)
        assert await target.circle(circle.id) is not None
        assert time.monotonic() - started < 8.0
        assert [c.id for c in await target.circles()] == [circle.id]


async def test_a_filled_body_is_passed_on_to_nodes_behind(nodes, eventually) -> None:
    """Once the target has the body, it passes it on to the node it gave the bodiless entry to,
    which need not wait to ask again."""
    author = await nodes.start("author")
    await author.set_profile("Author")
    circle = await author.announce_circle(future_circle("Passed along"))
    target = await nodes.start("target")
    async with await prankster(target, author):
        await eventually(lambda: target.clock_snapshot().get(author.node_id) == circle.header.seq)
        behind = await nodes.start("behind", peers=[target])
        await eventually(lambda: behind.clock_snapshot().get(author.node_id) == circle.header.seq)
        await asyncio.sleep(0.5)  # behind asks the target, which has no body yet
        assert await behind.circle(circle.id) is None
        started = time.monotonic()
        target.add_peer(f"127.0.0.1:{author.port}")
        for _ in range(100):
            if await behind.circle(circle.id) is not None:
                break
            await asyncio.sleep(0.1)
        assert await behind.circle(circle.id) is not None
        # the target asks the prankster first, the author 3 s later; behind gets it at once
        assert time.monotonic() - started < replication.BODY_RETRY + 2.5


async def test_want_bodies_is_rate_limited(nodes, eventually) -> None:
    """`want_bodies` makes a node send at most its body budget; unknown ids get no answer."""
    holder = await nodes.start("holder")
    writer = Identity.generate()
    chain, prev = [], None
    now = int(time.time() * 1000)
    for seq in range(1, 601):
        entry = create_entry(writer, seq=seq, prev=prev, timestamp_ms=now, kind="note.test",
                             body={"n": seq})
        chain.append(entry)
        prev = entry.id
    await holder.perform(lambda home: home.store.ingest(chain, now_ms=now))
    ids = [e.id for e in chain]
    async with HostilePeer() as peer:
        await peer.connect(holder.port)
        await peer.handshake()
        # a full clock: nothing is owed by replication, only what want_bodies asks
        await peer.send_frame(Clock(((writer.node_id, 600),), True))
        started = time.monotonic()
        for start in (0, 256, 344, 0, 256, 344):
            await peer.send_frame(WantBodies(tuple(ids[start:start + 256])))
        await peer.send_frame(WantBodies((b"\x07" * 32,)))
        await asyncio.sleep(0.5)
        got = [e for f in peer.frames if isinstance(f, Entries) for e in f.entries]
        elapsed = time.monotonic() - started
        assert len(got) <= 2 * BODY_RATE + elapsed * BODY_RATE + 1
        assert len(got) >= 256
        assert all(e.body_bytes is not None for e in got)
        assert {e.id for e in got} <= set(ids)
