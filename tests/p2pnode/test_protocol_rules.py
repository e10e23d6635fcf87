"""PROTOCOL.md and the node agree (issue 12, item 5): one test per rule that used to differ.

A second implementation follows the text alone, so every rule below is checked against a real
node over a real session (or against the text itself where the rule is about the text).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
from pathlib import Path

import pytest
from builders import circle_body, profile_body, update_body
from hostile import HostilePeer

from p2pnode.net import connection
from p2pnode.store.database import Store
from p2pnode.store.queries import get_circle
from protocol.codec import pack
from protocol.entry import create_entry
from protocol.frames import Clock, Entries, Ping
from protocol.identity import Identity
from protocol.records import KNOWN_KINDS, describe_kind, validate_authored

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "PROTOCOL.md").read_text()
LIMITS = {"ping_interval": 1.0, "idle_timeout": 4.0, "handshake_timeout": 2.0,
          "frame_rate": 100.0, "frame_burst": 200.0}


async def connect(target, identity: Identity | None = None) -> HostilePeer:
    peer = HostilePeer(identity)
    await peer.connect(target.port)
    await peer.handshake()
    await peer.send_frame(Clock((), True))
    return peer


def score(node, peer_id: bytes) -> float:
    rec = node.peers.records.get(peer_id)
    return rec.score if rec is not None else 0.0


# -- 3: unknown frame types -------------------------------------------------------------------


async def test_unknown_frame_types_are_ignored_whatever_their_items(nodes) -> None:
    """An unknown type with any items that obey the general rules costs nothing."""
    target = await nodes.start("target", session_limits=LIMITS)
    async with await connect(target) as peer:
        for items in ([], [1, -5, 2.5, None, True], [{"a": [[[[1]]]]}, b"\x00" * 100, "x"]):
            await peer.send_plaintext(pack(["from_the_future", *items]))
        await peer.send_frame(Ping(1))
        await asyncio.sleep(0.3)
        assert not peer.closed and score(target, peer.node_id) == 0


@pytest.mark.parametrize("plaintext", [
    pack(["from_the_future", {1: 2}]),
    pack(["from_the_future", [[[[[[[[[1]]]]]]]]]]),
    b"\x92\xafFROM_THE_FUTURE\xd4\x01\x00",  # an extension type
], ids=["int_map_key", "nesting_9", "ext_type"])
async def test_unknown_frame_types_breaking_the_general_rules_are_malformed(nodes, eventually,
                                                                            plaintext) -> None:
    """An unknown-type frame that breaks the general msgpack rules is malformed (-10)."""
    target = await nodes.start("target", session_limits=LIMITS)
    async with await connect(target) as peer:
        await peer.send_plaintext(plaintext)
        await eventually(lambda: score(target, peer.node_id) == -10)


# -- 3.11: error codes ------------------------------------------------------------------------


def test_every_error_code_the_node_sends_is_documented() -> None:
    """Each code passed to close()/_fail()/_end() in the sources is listed in PROTOCOL.md 3.11."""
    section = SPEC.split("### 3.11", 1)[1].split("## 4.", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", section))
    sent: set[str] = set()
    for path in [*(ROOT / "p2pnode" / "net").rglob("*.py"), ROOT / "protocol" / "session.py"]:
        source = path.read_text()
        sent.update(re.findall(r"\bclose\(\s*\"([a-z_]+)\"", source))
        sent.update(re.findall(r"_fail\(\s*\"([a-z_]+)\"", source))
        sent.update(re.findall(r"_end\(\s*\"fail\",\s*\"([a-z_]+)\"[^)]*notify=True", source))
    assert {"banned", "replaced", "duplicate", "full", "flood"} <= sent
    assert sent <= documented, sent - documented


# -- 4: rate and flood ------------------------------------------------------------------------


async def test_frames_over_the_rate_are_dropped_at_no_cost(nodes) -> None:
    """A burst beyond the bucket loses frames but costs nothing while under the flood limit."""
    target = await nodes.start("target", session_limits=LIMITS)
    async with await connect(target) as peer:
        await peer.flood(Ping(5), 600)  # bucket 200: some 400 dropped, under the 500 limit
        await asyncio.sleep(0.5)
        assert not peer.closed
        assert score(target, peer.node_id) == 0
        assert target.peers.connections[peer.node_id].is_open


async def test_a_flood_ends_the_session_and_bans(nodes) -> None:
    """Over 500 dropped frames: `error flood`, and the peer is banned."""
    target = await nodes.start("target", session_limits=LIMITS)
    async with await connect(target) as peer:
        await peer.flood(Ping(5), 1500)
        assert await peer.wait_closed() == "flood"
    assert target.peers.banned(peer.node_id)


# -- 1: oversized messages --------------------------------------------------------------------


async def test_a_message_over_65535_bytes_gets_too_large(nodes) -> None:
    """A message the WebSocket layer takes in, but over the Noise limit: `error too_large`."""
    target = await nodes.start("target", session_limits=LIMITS)
    async with await connect(target) as peer:
        await peer.send_raw(b"\x00" * 65_600)
        assert await peer.wait_closed() == "too_large"


async def test_a_message_too_big_for_the_websocket_layer_gets_1009(nodes) -> None:
    """A 1 MiB message: WebSocket close code 1009 and no error frame."""
    target = await nodes.start("target", session_limits=LIMITS)
    async with await connect(target) as peer:
        await peer.send_raw(b"\x00" * 1_048_576)
        assert await peer.wait_closed() is None
        assert peer.close_code == 1009


# -- 5: bounded read-ahead --------------------------------------------------------------------


async def test_a_receiver_reads_ahead_a_bounded_number_of_frames(nodes, eventually) -> None:
    """While storing is stuck, the node reads the batch being stored (at most the queue's worth
    of frames plus one), 16 queued frames and the one it waits to queue, then nothing more until
    it stores; afterwards everything is stored."""
    target = await nodes.start("target", session_limits=LIMITS)
    writers = [Identity.generate() for _ in range(60)]
    frames = [Entries((create_entry(w, seq=1, prev=None, timestamp_ms=1_700_000_000_000,
                                    kind="note.test", body={"n": 1}),)) for w in writers]
    held, release = threading.Event(), threading.Event()

    def hold_store() -> None:
        with target.home.store._lock:  # the write lock: ingest waits for it
            held.set()
            release.wait(10)

    blocker = threading.Thread(target=hold_store)
    blocker.start()
    try:
        held.wait(5)
        async with await connect(target) as peer:
            for frame in frames:
                peer.queue_frame(frame)
            await peer.flush()
            conn = target.peers.connections[peer.node_id]
            await asyncio.sleep(0.5)
            bound = (connection._INGEST_QUEUE_BATCHES + 1) + connection._INGEST_QUEUE_BATCHES + 1
            assert conn.replication.entries_received >= connection._INGEST_QUEUE_BATCHES + 1
            assert conn.replication.entries_received <= bound < len(writers)
            release.set()
            await eventually(lambda: all(target.clock_snapshot().get(w.node_id) == 1
                                         for w in writers))
    finally:
        release.set()
        await asyncio.to_thread(blocker.join)


# -- 1: which session survives ----------------------------------------------------------------


async def test_a_newer_session_from_the_same_dialler_replaces_the_older(nodes, eventually) -> None:
    """The same node dialling again: the old session ends with `replaced`, the new one stays."""
    target = await nodes.start("target", session_limits=LIMITS)
    identity = Identity.generate()
    async with await connect(target, identity) as old, await connect(target, identity) as new:
        assert await old.wait_closed() == "replaced"
        await asyncio.sleep(0.2)
        assert not new.closed
        await eventually(lambda: target.peers.connections[identity.node_id].is_open)


# -- Appendix A ---------------------------------------------------------------------------------


def test_appendix_tables_match_the_validators() -> None:
    """Every record table in Appendix A says exactly what the validator checks (enc_key too)."""
    for kind in sorted(KNOWN_KINDS - {"circle.update"}):
        match = re.search(r"### `" + re.escape(kind) + r"`\n\n\| field \| rule \|\n\|---\|---\|\n"
                          r"((?:\|.*\|\n)+)", SPEC)
        assert match, kind
        rows = [tuple(cell.strip() for cell in line.strip().strip("|").split("|"))
                for line in match.group(1).strip().splitlines()]
        assert rows == [(f"`{name}`" + ("" if required else "?"), rule)
                        for name, required, rule in describe_kind(kind)], kind
    assert "| `enc_key` | 32-byte X25519 public key" in SPEC


def test_a_circle_update_may_name_any_facilitators_and_the_author_keeps_authority(
        tmp_path) -> None:
    """circle.update has no facilitators[0] rule; an author who left the list may still update."""
    author, other = Identity.generate(), Identity.generate()
    start = (dt.date.today() + dt.timedelta(days=14)).isoformat()
    update = update_body(b"\x00" * 32, facilitators=[other.node_id])
    validate_authored("circle.update", update, author.node_id)  # no error
    with Store(tmp_path / "store.sqlite3") as store:
        now = 1_800_000_000_000
        store.append(author, "profile", profile_body("Author"), now_ms=now)
        circle = store.append(author, "circle", circle_body([author.node_id], start=start),
                              now_ms=now + 1)
        store.append(author, "circle.update",
                     update_body(circle.id, facilitators=[other.node_id]), now_ms=now + 2)
        store.append(author, "circle.update", update_body(circle.id, name="Renamed"),
                     now_ms=now + 3)
        detail = get_circle(store.conn, circle.id, now_ms=now + 4)
    assert detail is not None
    assert [p.node_id for p in detail.summary.facilitators] == [other.node_id]
    assert detail.summary.name == "Renamed"
