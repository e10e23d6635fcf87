"""Peer selection in real nodes on 127.0.0.1 (mDNS off; discovery is played by calling
`peers.discovered`): discovered peers are dialled up to the cap, manual peers on top of it,
inbound sessions are capped, and a full peer is not redialled in a loop."""

from __future__ import annotations

import asyncio

from p2pnode.events import PeerUp
from p2pnode.net import peers as peers_module


def outbound(node) -> list[bytes]:
    return [c.peer_id for c in node.peers.open_connections() if c.initiator]


async def test_a_node_dials_only_as_many_discovered_peers_as_its_cap(nodes, eventually):
    """Of six discovered peers, a node capped at 4 sessions (1 dialled by it) dials one."""
    a = await nodes.start("a", max_peers=4)
    others = [await nodes.start(f"o{i}") for i in range(6)]
    for other in others:
        a.peers.discovered(other.node_id, ["127.0.0.1"], other.port)
    await eventually(lambda: len(a.peers.open_connections()) == 1)
    await asyncio.sleep(1.0)  # time for more dials, were any planned
    assert len(outbound(a)) == 1 and len(a.peers.open_connections()) == 1
    assert all(a.peers.selection.knows(o.node_id) for o in others)
    # the one it picked gets entries as usual
    entry = await a.set_profile("Ana")
    picked = next(o for o in others if o.node_id in a.peers.connections)
    await eventually(lambda: picked.clock_snapshot().get(a.node_id) == entry.seq)


async def test_manual_peers_are_kept_on_top_of_the_cap(nodes, eventually):
    """A node capped at one session still keeps a session with each of its three `--peer`s."""
    targets = [await nodes.start(f"t{i}") for i in range(3)]
    a = await nodes.start("a", peers=targets, max_peers=1)
    await eventually(lambda: all(t.node_id in a.peers.connections for t in targets))
    # and a discovered peer still gets the one discovered slot
    extra = await nodes.start("extra")
    a.peers.discovered(extra.node_id, ["127.0.0.1"], extra.port)
    await eventually(lambda: extra.node_id in a.peers.connections)
    assert len(a.peers.open_connections()) == 4


async def test_inbound_sessions_beyond_the_cap_are_refused_and_not_redialled_in_a_loop(
    nodes, eventually, monkeypatch
):
    """A node capped at 3 inbound sessions, 1 of them kept for known peers, lets in two of five
    strangers and refuses the others (`full`); those back off (production timings) instead of
    redialling it over and over."""
    monkeypatch.setattr(peers_module, "_RETRY_MAX", 60.0)  # refused backoff: 30 s
    target = await nodes.start("target", max_peers=4)  # 1 outbound, 3 inbound
    diallers = [await nodes.start(f"d{i}") for i in range(5)]
    ups = {d.node_id: await nodes.record(d) for d in diallers}
    for dialler in diallers:
        dialler.peers.discovered(target.node_id, ["127.0.0.1"], target.port)
    await eventually(lambda: len(target.peers.connections) == 2)
    await asyncio.sleep(3.0)
    assert len(target.peers.connections) == 2
    refused = [d for d in diallers if target.node_id not in d.peers.connections]
    assert len(refused) == 3
    for dialler in refused:
        sessions = [e for e in ups[dialler.node_id] if isinstance(e, PeerUp)]
        assert len(sessions) == 1, "a refused peer was redialled within its backoff"
        assert dialler.peers.records[target.node_id].last_error == "peer_closed"


async def test_run_takes_max_peers_and_refuses_nonsense(cli, tmp_path):
    """`p2pnode run --max-peers 0` (or a word) is a one-line usage error, exit 2; a number
    runs, and the node dials discovered peers up to that cap."""
    for bad in ("0", "many"):
        result = await cli.run(tmp_path / "h", "run", "--no-mdns", "--max-peers", bad)
        assert result.returncode == 2, result
        assert "--max-peers" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    running = await cli.start(tmp_path / "ok", "--max-peers", "12")
    status = await cli.run(tmp_path / "ok", "status", "--json")
    assert status.returncode == 0 and running.peer_port


async def test_a_rotating_slot_moves_to_other_peers_and_the_stable_one_stays(
    nodes, eventually, monkeypatch
):
    """With rotation every ~second, a node capped at 2 dialled sessions (1 stable, 1 rotating)
    keeps its stable peer and moves the other slot around its discovered peers."""
    monkeypatch.setattr(peers_module, "_ROTATE_EVERY", 1.0)
    a = await nodes.start("a", max_peers=8)  # 2 dialled by a: 1 stable, 1 rotating
    others = [await nodes.start(f"o{i}") for i in range(6)]
    for other in others:
        a.peers.discovered(other.node_id, ["127.0.0.1"], other.port)
    await eventually(lambda: len(outbound(a)) == 2)
    stable = {n for n, slot in a.peers.selection.picks.items() if slot.value == "stable"}
    rotating_seen: set[bytes] = set()
    for _ in range(60):  # 6 s: about five rotations
        await asyncio.sleep(0.1)
        assert len(outbound(a)) <= 2
        picks = a.peers.selection.picks
        rotating_seen |= {n for n, slot in picks.items() if slot.value == "rotating"}
        assert stable <= set(picks)
    assert len(rotating_seen) >= 3, "the rotating slot did not move"
