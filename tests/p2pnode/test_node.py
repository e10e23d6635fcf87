"""The node's lifecycle and who it agrees to talk to (p2pnode/node.py, peers.py, connection.py).

Real nodes on 127.0.0.1 with mDNS off: close semantics, one session per peer pair, and the
refusals (another network key, a peer that is not the node it was announced as).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import socket

import pytest
from builders import circle_body

from p2pnode.errors import HomeError, NodeError
from p2pnode.events import PeerDown, PeerUp
from p2pnode.net import peers as peers_module
from p2pnode.node import Node
from protocol.identity import Identity

OTHER_NETWORK_KEY = hashlib.sha256(b"a private learning community").digest()


def future_circle(name: str) -> dict:
    start = (dt.date.today() + dt.timedelta(days=14)).isoformat()
    return circle_body([], name=name, start=start)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# -- lifecycle ---------------------------------------------------------------------------------


async def test_close_twice_is_safe(nodes) -> None:
    """`close()` a second time returns at once without error, and the port is released."""
    node = await nodes.start("a")
    port = node.port
    await node.close()
    await node.close()
    assert port_is_free(port)


async def test_close_without_start_is_safe(tmp_path) -> None:
    """A node that never started can be closed (twice)."""
    node = Node(tmp_path / "never", port=0, host="127.0.0.1", mdns=False, control=False)
    await node.close()
    await node.close()


async def test_async_with_closes_and_the_port_can_be_reused(tmp_path) -> None:
    """Leaving `async with` closes the node; a new node then starts on the very same port."""
    async with Node(tmp_path / "a", port=0, host="127.0.0.1", mdns=False) as node:
        port = node.port
        assert (tmp_path / "a" / "control.json").exists()
        assert (await node.status())["port"] == port
    assert not (tmp_path / "a" / "control.json").exists()
    async with Node(tmp_path / "b", port=port, host="127.0.0.1", mdns=False) as again:
        assert again.port == port


async def test_restart_on_the_same_home_and_port(tmp_path) -> None:
    """A closed node's home and port can be taken by a new node right away."""
    first = Node(tmp_path / "a", port=0, host="127.0.0.1", mdns=False, control=False)
    await first.start()
    port, node_id = first.port, first.node_id
    await first.close()
    async with Node(tmp_path / "a", port=port, host="127.0.0.1", mdns=False,
                    control=False) as second:
        assert second.port == port and second.node_id == node_id


async def test_close_with_live_sessions_ends_them_and_leaks_nothing(nodes, eventually) -> None:
    """Closing a node with an open session ends it; the peer sees PeerDown; no task is left."""
    a = await nodes.start("a")
    events = await nodes.record(a)
    b = await nodes.start("b", peers=[a])
    await eventually(lambda: a.peers.open_connections() and b.peers.open_connections())
    await b.close()
    await eventually(lambda: any(isinstance(e, PeerDown) for e in events))
    assert a.peers.open_connections() == []


async def test_start_on_a_busy_port_fails_cleanly(nodes, tmp_path) -> None:
    """A node that cannot listen raises NodeError naming the port and leaves nothing behind."""
    a = await nodes.start("a")
    busy = Node(tmp_path / "b", port=a.port, host="127.0.0.1", mdns=False)
    with pytest.raises(NodeError, match=str(a.port)):
        await busy.start()
    assert not (tmp_path / "b" / "control.json").exists()
    await busy.close()  # still safe after a failed start


async def test_second_node_on_the_same_home_is_refused(nodes, tmp_path) -> None:
    """Two nodes never share a home: the second one fails with HomeError."""
    await nodes.start("a")
    again = Node(tmp_path / "a", port=0, host="127.0.0.1", mdns=False, control=False)
    with pytest.raises(HomeError, match="already running"):
        await again.start()


async def test_status_answers_with_the_basics(nodes) -> None:
    """`status()` reports id, port, network, peers and entry counts."""
    a = await nodes.start("a")
    await a.set_profile("Ana")
    status = await a.status()
    assert status["node_id"] == a.node_id
    assert status["port"] == a.port
    assert status["name"] == "Ana"
    assert status["entries"] == 1 and status["feeds"] == 1
    assert status["peers_connected"] == 0
    assert status["mdns"] is False and status["recovery_pending"] is False


# -- one session per peer pair -------------------------------------------------------------------


async def test_both_dialling_at_once_leaves_one_session(nodes, eventually) -> None:
    """Two nodes dialling each other at once keep exactly one session each, and entries flow."""
    a = await nodes.start("a")
    b = await nodes.start("b")
    a.peers.add_address("127.0.0.1", b.port)
    b.peers.add_address("127.0.0.1", a.port)
    await eventually(lambda: len(a.peers.open_connections()) == 1
                     and len(b.peers.open_connections()) == 1)
    await a.set_profile("Ana")
    await b.set_profile("Bo")
    await eventually(lambda: a.clock_snapshot() == b.clock_snapshot()
                     and len(a.clock_snapshot()) == 2)
    # still exactly one, after any duplicate has been wound down and redials had their chance
    await asyncio.sleep(1.0)
    (conn_a,) = a.peers.open_connections()
    (conn_b,) = b.peers.open_connections()
    assert conn_a.peer_id == b.node_id and conn_b.peer_id == a.node_id
    assert conn_a.initiator != conn_b.initiator  # the two ends of one WebSocket
    assert (await a.status())["peers_connected"] == 1
    assert (await b.status())["peers_connected"] == 1
    circle = await a.announce_circle(future_circle("After the race"))
    await eventually(lambda: b.clock_snapshot().get(a.node_id) == circle.seq)


async def test_a_manual_peer_listed_on_both_sides_keeps_one_session(nodes, eventually) -> None:
    """Manual peers on both sides settle on one session again after a restart."""
    a = await nodes.start("a")
    b = await nodes.start("b", peers=[a])
    a.peers.add_address("127.0.0.1", b.port)
    await eventually(lambda: len(a.peers.open_connections()) == 1
                     and len(b.peers.open_connections()) == 1)
    port = b.port
    await b.close()
    b2 = await nodes.start("b", port=port, peers=[a])
    await eventually(lambda: len(a.peers.open_connections()) == 1
                     and len(b2.peers.open_connections()) == 1)
    await asyncio.sleep(0.5)
    assert len(a.peers.open_connections()) == 1 and len(b2.peers.open_connections()) == 1
    await b2.set_profile("Back")
    await eventually(lambda: a.clock_snapshot().get(b2.node_id) == 1)


# -- refusals ------------------------------------------------------------------------------------


async def test_wrong_network_key_completes_no_session_and_sees_nothing(
    nodes, eventually, caplog
) -> None:
    """Another network key: no session, no PeerUp, no entry; the failure is logged and shown."""
    caplog.set_level(logging.INFO, logger="p2pnode")
    right = await nodes.start("right")
    wrong = await nodes.start("wrong", network_key=OTHER_NETWORK_KEY)
    await right.set_profile("Right")
    await wrong.set_profile("Wrong")
    right_events = await nodes.record(right)
    wrong_events = await nodes.record(wrong)
    right.peers.add_address("127.0.0.1", wrong.port)
    wrong.peers.add_address("127.0.0.1", right.port)

    def refused_logged() -> bool:
        return sum("wrong network key" in r.getMessage() for r in caplog.records) >= 4

    await eventually(refused_logged)

    async def shown_in_peers_info() -> bool:
        info = await right.peers_info()
        return any(p["address"] == f"127.0.0.1:{wrong.port}" and not p["connected"]
                   and "handshake" in (p["last_error"] or "") for p in info)

    await eventually(shown_in_peers_info)
    await asyncio.sleep(0.5)  # a few more redials
    assert not [e for e in right_events + wrong_events if isinstance(e, PeerUp)]
    assert right.clock_snapshot() == {right.node_id: 1}
    assert wrong.clock_snapshot() == {wrong.node_id: 1}
    assert right.peers.connections == {} and wrong.peers.connections == {}
    assert wrong.node_id not in right.peers.records and right.node_id not in wrong.peers.records
    assert (await right.status())["peers_connected"] == 0


async def test_same_private_network_key_connects(nodes, eventually) -> None:
    """Two nodes sharing a private key connect and sync (the refusal above is the key's doing)."""
    a = await nodes.start("a", network_key=OTHER_NETWORK_KEY)
    b = await nodes.start("b", network_key=OTHER_NETWORK_KEY, peers=[a])
    await a.set_profile("Ana")
    await eventually(lambda: b.clock_snapshot().get(a.node_id) == 1)
    assert (await a.status())["network"] == (await b.status())["network"]


async def test_peer_that_is_not_the_announced_node_is_refused(nodes, eventually, caplog) -> None:
    """A dialled peer that is not the announced (mDNS) id is refused, and the reason recorded."""
    caplog.set_level(logging.INFO, logger="p2pnode")
    a = await nodes.start("a")
    b = await nodes.start("b")
    await b.set_profile("Bo")
    a_events = await nodes.record(a)
    b_events = await nodes.record(b)
    announced = Identity.generate().node_id
    a.peers.discovered(announced, ["127.0.0.1"], b.port)

    await eventually(lambda: sum("wrong_peer" in r.getMessage() for r in caplog.records) >= 2)
    await eventually(lambda: "handshake" in (a.peers.records[announced].last_error or ""))
    assert not [e for e in a_events + b_events if isinstance(e, PeerUp)]
    assert a.peers.connections == {} and b.peers.connections == {}
    assert b.node_id not in a.clock_snapshot()

    a.peers.vanished(announced)
    a.peers.discovered(b.node_id, ["127.0.0.1"], b.port)
    await eventually(lambda: b.node_id in a.peers.connections)
    await eventually(lambda: a.clock_snapshot().get(b.node_id) == 1)


async def test_a_discovered_peer_that_moved_is_dialled_at_its_new_port(nodes, eventually):
    """A second advertisement with a new port redirects the running dial loop there."""
    a = await nodes.start("a")
    b = await nodes.start("b")
    with socket.socket() as spare:  # a port nobody listens on
        spare.bind(("127.0.0.1", 0))
        dead_port = spare.getsockname()[1]
    a.peers.discovered(b.node_id, ["127.0.0.1"], dead_port)
    await asyncio.sleep(0.3)
    assert b.node_id not in a.peers.connections
    a.peers.discovered(b.node_id, ["127.0.0.1"], b.port)
    await eventually(lambda: b.node_id in a.peers.connections, timeout=10)


async def test_an_unreachable_discovered_peer_is_forgotten(nodes, eventually, monkeypatch):
    """A node that vanished without a goodbye is not dialled forever."""
    monkeypatch.setattr(peers_module, "_FORGET_AFTER", 0.5)
    a = await nodes.start("a")
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        dead_port = spare.getsockname()[1]
    ghost = b"\x07" * 32
    a.peers.discovered(ghost, ["127.0.0.1"], dead_port)
    assert a.peers.selection.knows(ghost)
    await eventually(lambda: "cannot connect" in (a.peers.records[ghost].last_error or ""))
    await eventually(lambda: not a.peers.selection.knows(ghost), timeout=10)
    await asyncio.sleep(0.3)
    assert ("id", ghost) not in a.peers._dialers


async def test_an_mdns_goodbye_does_not_cut_a_working_session(nodes, eventually):
    """mDNS records can expire while TCP works: the live session stays, only redialling stops."""
    a = await nodes.start("a")
    b = await nodes.start("b")
    a.peers.discovered(b.node_id, ["127.0.0.1"], b.port)
    await eventually(lambda: b.node_id in a.peers.connections)
    a.peers.vanished(b.node_id)
    await asyncio.sleep(0.5)
    assert a.peers.connections[b.node_id].is_open
    await b.close()
    await eventually(lambda: not a.peers.selection.knows(b.node_id), timeout=10)


async def test_peers_seen_are_remembered_for_the_doctor(nodes, eventually):
    """Connections and their ends are kept in the store, so `doctor` can list them later."""
    a = await nodes.start("a")
    b = await nodes.start("b", peers=[a])
    await eventually(lambda: a.node_id in b.peers.connections)

    async def remembered() -> bool:
        rows = await b.perform(lambda h: h.store.known_peers())
        return any(r["node_id"] == a.node_id and r["last_seen_ms"] for r in rows)

    await eventually(remembered)
    await a.close()

    async def error_kept() -> bool:
        rows = await b.perform(lambda h: h.store.known_peers())
        return any(r["node_id"] == a.node_id and r["last_error"] for r in rows)

    await eventually(error_kept)
