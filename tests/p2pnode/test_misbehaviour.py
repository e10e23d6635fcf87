"""What a peer sends can cost it its score and its session, never the node (issue 3).

A target node sits between two honest nodes (h1 — target — h2, so everything between the honest
ones passes through the target) while `hostile.HostilePeer` attacks it over the real protocol:
garbage, oversized messages, malformed frames, forged entries, floods, impersonation, another
network key. After each attack the target still answers `status()` and the honest nodes still
sync through it.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import dataclass

import pytest
from builders import forged_chain, with_signature
from hostile import HandshakeRefused, HostilePeer

from p2pnode.events import PeerUp
from p2pnode.net import peers
from p2pnode.node import Node
from protocol.codec import pack
from protocol.entry import create_entry
from protocol.frames import Clock, Entries, Ping, UnknownFrame, encode_frame
from protocol.identity import Identity

#: Shared by all three nodes; a low frame rate lets a test flood quickly.
LIMITS = {"ping_interval": 1.0, "idle_timeout": 4.0, "handshake_timeout": 2.0,
          "frame_rate": 100.0, "frame_burst": 200.0}
OTHER_NETWORK_KEY = hashlib.sha256(b"not this network").digest()
DAY_MS = 24 * 3600 * 1000
BAN_SECONDS = 2.0  # shortened from ten minutes so a test can outlast a ban


@dataclass
class Trio:
    target: Node
    h1: Node
    h2: Node


@pytest.fixture
async def trio(nodes, eventually) -> Trio:
    """h1 — target — h2, connected, each honest node's profile already everywhere."""
    target = await nodes.start("target", session_limits=LIMITS)
    h1 = await nodes.start("h1", peers=[target], session_limits=LIMITS)
    h2 = await nodes.start("h2", peers=[target], session_limits=LIMITS)
    await h1.set_profile("Honest One")
    await h2.set_profile("Honest Two")
    await eventually(lambda: len(target.peers.open_connections()) == 2
                     and h2.clock_snapshot().get(h1.node_id) == 1
                     and h1.clock_snapshot().get(h2.node_id) == 1)
    return Trio(target, h1, h2)


async def honest_nodes_still_sync(trio: Trio, eventually, label: str) -> None:
    """The target answers status() and a new entry still goes h1 -> target -> h2 and back."""
    status = await trio.target.status()
    assert status["node_id"] == trio.target.node_id
    one = await trio.h1.set_profile(f"Honest One ({label})")
    two = await trio.h2.set_profile(f"Honest Two ({label})")
    await eventually(lambda: trio.h2.clock_snapshot().get(trio.h1.node_id) == one.seq
                     and trio.h1.clock_snapshot().get(trio.h2.node_id) == two.seq)


def score(node: Node, peer_id: bytes) -> float:
    rec = node.peers.records.get(peer_id)
    return rec.score if rec is not None else 0.0


async def connect(target: Node, identity: Identity | None = None) -> HostilePeer:
    """A hostile peer with an open session to `target` that has sent its (empty) clock."""
    peer = HostilePeer(identity)
    await peer.connect(target.port)
    assert await peer.handshake() == target.node_id
    await peer.send_frame(Clock((), True))
    return peer


def now_ms() -> int:
    return int(time.time() * 1000)


# -- the harness itself --------------------------------------------------------------------------


async def test_hostile_peer_speaks_the_protocol(trio, nodes, eventually) -> None:
    """Behaving, the test peer is accepted like any node and served the entries it lacks."""
    events = await nodes.record(trio.target)
    async with await connect(trio.target) as peer:
        await eventually(lambda: any(isinstance(e, PeerUp) and e.node_id == peer.node_id
                                     for e in events))
        await eventually(lambda: sum(len(f.entries) for f in peer.frames
                                     if isinstance(f, Entries)) == 2)
        assert not peer.rejected and not peer.closed
        assert score(trio.target, peer.node_id) == 0


async def test_unknown_frame_types_cost_nothing(trio, eventually) -> None:
    """Frames of an unknown type are ignored without penalty (forward compatibility)."""
    async with await connect(trio.target) as peer:
        for _ in range(5):
            await peer.send_frame(UnknownFrame("from_the_future"))
        await peer.send_frame(Ping(7))
        await asyncio.sleep(0.2)
        assert not peer.closed
        assert score(trio.target, peer.node_id) == 0
        assert trio.target.peers.connections[peer.node_id].is_open


# -- fatal for the session -----------------------------------------------------------------------

FATAL = {
    # name: (what to send raw, the error code the target ends the session with)
    "garbage": (random.Random(1).randbytes(300), "decrypt"),
    "oversized_noise_message": (b"\x00" * 65_600, "too_large"),
    "oversized_websocket_message": (b"\x00" * 1_048_576, None),  # aiohttp's limit: close 1009
}


@pytest.mark.parametrize("attack", sorted(FATAL))
async def test_fatal_garbage_disconnects_and_lowers_the_score(trio, eventually, attack) -> None:
    """Garbage or oversized messages end the session at once and cost the peer 20 points."""
    data, code = FATAL[attack]
    async with await connect(trio.target) as peer:
        await peer.send_raw(data)
        assert await peer.wait_closed() == code
        await eventually(lambda: peer.node_id not in trio.target.peers.connections)
        assert score(trio.target, peer.node_id) == -20
        info = {p["node_id"]: p for p in await trio.target.peers_info()}
        assert info[peer.node_id]["connected"] is False
    await honest_nodes_still_sync(trio, eventually, attack)


async def test_garbage_instead_of_a_handshake_is_dropped_silently(trio, eventually) -> None:
    """Bytes that are no Noise message 1 make the target close the socket without a word."""
    async with HostilePeer() as peer:
        await peer.connect(trio.target.port)
        await peer.send_raw(b"GET / HTTP/1.1\r\n\r\n" * 10)
        await peer.wait_closed()
        assert peer.received == []
    assert len(trio.target.peers.connections) == 2
    await honest_nodes_still_sync(trio, eventually, "pre-handshake garbage")


async def test_text_messages_are_penalised(trio, eventually) -> None:
    """A text WebSocket message (peers speak binary only) costs 10 points."""
    async with await connect(trio.target) as peer:
        await peer.send_text("hello?")
        await eventually(lambda: score(trio.target, peer.node_id) == -10)
    await honest_nodes_still_sync(trio, eventually, "text")


# -- malformed frames: rejected one by one, banned when they add up -----------------------------

AUTHOR = b"\xa1" * 32


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


MALFORMED = {
    "not_msgpack": b"\xc1",
    "empty": b"",
    "not_an_array": pack({"type": "clock"}),
    "empty_array": pack([]),
    "type_not_a_string": pack([7, 1]),
    "clock_short": pack(["clock", []]),
    "clock_author_size": pack(["clock", [[b"\x01" * 5, 1]], True]),
    "clock_negative_seq": pack(["clock", [[AUTHOR, -1]], True]),
    "want_seq_zero": pack(["want", [[AUTHOR, 0]]]),
    "entries_bad_shape": pack(["entries", [[b"header", b"sig"]]]),
    "entries_not_entries": pack(["entries", [[b"\x00" * 300, b"\x00" * 64, None]]]),
    "blob_get_bad_part": pack(["blob_get", 1, b"\x00" * 32, "everything", 0]),
    "deep_nesting": pack(["clock", nested(40), True]),
    "trailing_bytes": encode_frame(Ping(1)) + b"\x00",
    "huge_integer": pack(["ping", 2**64 - 1]),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_malformed_frame_is_rejected_and_penalised(trio, eventually, kind) -> None:
    """A correctly encrypted but malformed frame costs 10 points; the session stays open."""
    async with await connect(trio.target) as peer:
        await peer.send_plaintext(MALFORMED[kind])
        await eventually(lambda: score(trio.target, peer.node_id) == -10)
        await peer.send_frame(Ping(1))  # still decrypts in order: the session is intact
        await asyncio.sleep(0.1)
        assert not peer.closed
        assert trio.target.peers.connections[peer.node_id].is_open
        await honest_nodes_still_sync(trio, eventually, kind)


async def test_repeated_malformed_frames_get_the_peer_banned(trio, eventually) -> None:
    """Five malformed frames reach the ban threshold: disconnected with ``banned``."""
    async with await connect(trio.target) as peer:
        for kind in sorted(MALFORMED)[:5]:
            await peer.send_plaintext(MALFORMED[kind])
        assert await peer.wait_closed() == "banned"
        assert score(trio.target, peer.node_id) <= peers._BAN_SCORE
        assert trio.target.peers.banned(peer.node_id)
    await honest_nodes_still_sync(trio, eventually, "malformed")


# -- forged entries -------------------------------------------------------------------------------


async def test_entries_with_invalid_signatures_are_refused_and_penalised(trio, eventually) -> None:
    """Entries with invalid signatures are not stored, fork nothing, cost 20 a frame, then ban."""
    target, h1 = trio.target, trio.h1
    before = target.clock_snapshot()
    forged = forged_chain(h1.node_id, 3, start_ms=now_ms() - DAY_MS)  # claims h1's seqs 1-3
    stranger = Identity.generate()
    real = create_entry(stranger, seq=1, prev=None, timestamp_ms=now_ms(), kind="note.test",
                        body={"n": 1})
    resigned = with_signature(real, b"\x07" * 64)
    async with await connect(target) as peer:
        await peer.send_entries(forged)
        await eventually(lambda: score(target, peer.node_id) == -20)
        await peer.send_entries([resigned])
        await eventually(lambda: score(target, peer.node_id) == -40)
        assert not peer.closed
        await peer.send_entries(forged[2:])
        assert await peer.wait_closed() == "banned"
    assert target.clock_snapshot() == before
    assert stranger.node_id not in target.clock_snapshot()
    assert await target.perform(lambda home: home.store.forked_authors()) == set()
    await honest_nodes_still_sync(trio, eventually, "forged")
    assert await trio.h2.perform(lambda home: home.store.forked_authors()) == set()


async def test_valid_entries_from_a_peer_are_taken(trio, eventually) -> None:
    """Correctly signed entries from the same peer are stored and passed on to the honest nodes."""
    author = Identity.generate()
    entry = create_entry(author, seq=1, prev=None, timestamp_ms=now_ms(), kind="note.test",
                         body={"n": 1})
    async with await connect(trio.target) as peer:
        await peer.send_entries([entry])
        await eventually(lambda: trio.h2.clock_snapshot().get(author.node_id) == 1)
        assert score(trio.target, peer.node_id) >= 0


# -- floods ----------------------------------------------------------------------------------------


async def test_flood_of_frames_bans_while_honest_nodes_keep_syncing(trio, eventually) -> None:
    """A flood of frames gets the peer banned while honest nodes keep syncing through the target."""
    async with await connect(trio.target) as peer:
        flood = asyncio.create_task(peer.flood(Ping(3), 2000))
        try:
            await honest_nodes_still_sync(trio, eventually, "during the flood")
            assert await peer.wait_closed() in ("banned", "flood")
        finally:
            await flood
        assert trio.target.peers.banned(peer.node_id)
    await honest_nodes_still_sync(trio, eventually, "after the flood")


# -- bans ------------------------------------------------------------------------------------------


async def test_banned_peer_is_refused_until_the_ban_ends(trio, eventually, monkeypatch) -> None:
    """A banned peer's reconnects are refused for the ban period, and accepted after it."""
    monkeypatch.setattr(peers, "_BAN_SECONDS", BAN_SECONDS)
    identity = Identity.generate()
    async with await connect(trio.target, identity) as peer:
        for _ in range(3):
            await peer.send_plaintext(b"\xc1")
            await peer.send_plaintext(b"")
        assert await peer.wait_closed() == "banned"
    banned_at = time.monotonic()

    async with HostilePeer(identity) as again:
        await again.connect(trio.target.port)
        await again.handshake()
        assert await again.wait_closed() == "banned"
        assert not [f for f in again.frames if isinstance(f, Clock | Entries)]
    assert identity.node_id not in trio.target.peers.connections
    assert time.monotonic() - banned_at < BAN_SECONDS  # the refusal came within the ban

    await eventually(lambda: not trio.target.peers.banned(identity.node_id),
                     timeout=BAN_SECONDS + 1)
    async with await connect(trio.target, identity) as back:
        await eventually(lambda: any(isinstance(f, Entries) for f in back.frames))
        assert not back.closed
    await honest_nodes_still_sync(trio, eventually, "after the ban")


# -- who you are -----------------------------------------------------------------------------------


async def test_impersonator_is_refused(trio, nodes, eventually) -> None:
    """A peer claiming h1's id with its own signature is refused; h1's session is untouched."""
    events = await nodes.record(trio.target)
    h1_conn = trio.target.peers.connections[trio.h1.node_id]
    async with HostilePeer() as peer:
        await peer.connect(trio.target.port)
        assert await peer.impersonate(trio.h1.node_id) == trio.target.node_id
        await peer.wait_closed()
        assert len(peer.received) == 1  # message 2, then nothing
    assert not [e for e in events if isinstance(e, PeerUp)]
    assert trio.target.peers.connections[trio.h1.node_id] is h1_conn and h1_conn.is_open
    assert peer.node_id not in trio.target.peers.records
    await honest_nodes_still_sync(trio, eventually, "impersonation")


async def test_wrong_network_key_learns_nothing(trio, nodes, eventually) -> None:
    """A peer with another network key gets not a single byte back, and leaves no trace."""
    events = await nodes.record(trio.target)
    async with HostilePeer(network_key=OTHER_NETWORK_KEY) as peer:
        await peer.connect(trio.target.port)
        with pytest.raises(HandshakeRefused):
            await peer.handshake()
        assert peer.received == []
    assert not [e for e in events if isinstance(e, PeerUp)]
    assert peer.node_id not in trio.target.peers.records
    assert len(trio.target.peers.connections) == 2
    await honest_nodes_still_sync(trio, eventually, "wrong key")


async def test_random_frames_never_crash_the_node(trio, eventually) -> None:
    """Hundreds of random encrypted frames never crash the target; peers are at worst banned."""
    rng = random.Random(3)
    plaintexts = [rng.randbytes(rng.randrange(0, 200)) for _ in range(150)]
    plaintexts += [pack([rng.choice(["clock", "entries", "want", "have_blobs", "blob_get",
                                     "blob_data", "blob_error", "blob_cancel", "ping", "pong",
                                     "error"]),
                         *[rng.choice([None, True, -1, 2**40, "x", b"\x00" * 32, [], {}])
                           for _ in range(rng.randrange(0, 5))]])
                   for _ in range(150)]
    for start in range(0, len(plaintexts), 30):
        async with await connect(trio.target) as peer:
            for plaintext in plaintexts[start:start + 30]:
                if peer.closed:
                    break
                await peer.send_plaintext(plaintext)
            await asyncio.sleep(0.05)
        assert (await trio.target.status())["node_id"] == trio.target.node_id
    await honest_nodes_still_sync(trio, eventually, "fuzz")
