"""Resource limits, named and enforced (issue 12, item 7): what new authors may make us store per
hour, how many new authors one peer may bring, and how many downloads run at once. (Sessions
per address: test_lockout.py; blob disk margin: test_blobstore.py.)"""

from __future__ import annotations

import asyncio
import time

from hostile import HostilePeer

from p2pnode.blobs import service
from p2pnode.net import quota
from protocol.entry import create_entry
from protocol.frames import Clock, Entries, Want
from protocol.identity import Identity


def feed(author: Identity, count: int, start: int = 1) -> list:
    now = int(time.time() * 1000)
    chain, prev = [], None
    for seq in range(1, start + count):
        entry = create_entry(author, seq=seq, prev=prev, timestamp_ms=now, kind="note.test",
                             body={"n": seq})
        chain.append(entry)
        prev = entry.id
    return chain[start - 1:]


def test_a_new_author_stores_at_most_its_hourly_quota(monkeypatch) -> None:
    """A new author's entries beyond the hourly quota are dropped; an hour later they fit."""
    monkeypatch.setattr(quota, "NEW_AUTHOR_ENTRIES_PER_HOUR", 5)
    writer = Identity.generate()
    entries = feed(writer, 8)
    limits = quota.AuthorQuota()
    kept, dropped = limits.admit(b"p" * 32, entries, {}, now=0.0)
    assert [e.header.seq for e in kept] == [1, 2, 3, 4, 5]
    assert dropped == {writer.node_id: 6}
    kept, _ = limits.admit(b"p" * 32, entries[5:], {writer.node_id: 5}, now=quota.HOUR + 1)
    assert len(kept) == 3


def test_authors_held_before_are_not_limited(monkeypatch) -> None:
    """An author we already hold is not new: no quota."""
    monkeypatch.setattr(quota, "NEW_AUTHOR_ENTRIES_PER_HOUR", 5)
    writer = Identity.generate()
    kept, dropped = quota.AuthorQuota().admit(b"p" * 32, feed(writer, 8), {writer.node_id: 1})
    assert len(kept) == 8 and not dropped


def test_a_peer_brings_at_most_so_many_new_authors_an_hour(monkeypatch) -> None:
    """Beyond the per-peer cap of new authors an hour, their entries are dropped."""
    monkeypatch.setattr(quota, "NEW_AUTHORS_PER_PEER_PER_HOUR", 3)
    batch = [feed(Identity.generate(), 1)[0] for _ in range(5)]
    limits = quota.AuthorQuota()
    kept, dropped = limits.admit(b"p" * 32, batch, {})
    assert len(kept) == 3 and len(dropped) == 2
    kept, _ = limits.admit(b"q" * 32, batch[3:], {})  # another peer has its own allowance
    assert len(kept) == 2


async def test_a_flood_of_one_new_author_is_capped_without_blame(nodes, eventually,
                                                                 monkeypatch) -> None:
    """Over a new author's quota: stored up to it, the peer's score untouched, nothing wanted."""
    monkeypatch.setattr(quota, "NEW_AUTHOR_ENTRIES_PER_HOUR", 10)
    target = await nodes.start("target")
    writer = Identity.generate()
    entries = await asyncio.to_thread(feed, writer, 40)
    async with HostilePeer() as peer:
        await peer.connect(target.port)
        await peer.handshake()
        await peer.send_frame(Clock(((writer.node_id, 40),), True))
        for start in range(0, 40, 8):
            await peer.send_frame(Entries(tuple(entries[start:start + 8])))
        await eventually(lambda: target.clock_snapshot().get(writer.node_id) == 10)
        await asyncio.sleep(0.5)
        assert target.clock_snapshot()[writer.node_id] == 10
        assert target.peers.records[peer.node_id].score >= 0
        assert not [f for f in peer.frames if isinstance(f, Want)]


async def test_downloads_running_at_once_are_capped(nodes, monkeypatch) -> None:
    """Beyond MAX_DOWNLOADS at once, a fetch ends at once with a clear error."""
    monkeypatch.setattr(service, "MAX_DOWNLOADS", 2)
    node = await nodes.start("node")
    fetches = [node.fetch_progress(bytes([i]) * 32, None) for i in range(3)]
    try:
        first = [await anext(f) for f in fetches[:2]]
        assert all("error" not in update for update in first)
        third = await anext(fetches[2])
        assert third["error"] == ("already 2 downloads running here; try again when one has"
                                  " finished")
    finally:
        for f in fetches:
            await f.aclose()


def test_a_peer_brings_at_most_so_many_bytes_of_new_authors_an_hour(monkeypatch) -> None:
    """All new authors together: one peer's bytes of their entries are capped per hour."""
    monkeypatch.setattr(quota, "NEW_AUTHOR_BYTES_PER_PEER_PER_HOUR", 1000)
    batch = [feed(Identity.generate(), 1)[0] for _ in range(10)]
    kept, dropped = quota.AuthorQuota().admit(b"p" * 32, batch, {})
    assert 0 < len(kept) < 10 and len(dropped) == 10 - len(kept)
