"""bench/scale.py simulates the workload it claims: node counts, topology degrees, one new
announcement, a late joiner catching up 10 000 entries, the product's replication code."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

import scale

from protocol.forwarding import Forwarding
from protocol.replication import Replication

MODEL = scale.Model(entry_size=400)


def test_lan_topology_respects_the_peer_selection_caps() -> None:
    """LAN: each node dials at most 8 and takes at most 24 inbound; the graph is connected."""
    members = list(range(120))
    edges = scale.lan_edges(members, random.Random(1))
    degrees = scale.degrees(120, edges)
    assert scale.connected(120, edges)
    assert max(degrees) <= scale.LAN_DIALS + scale.LAN_INBOUND
    assert len(edges) == 120 * scale.LAN_DIALS  # every dial made, none twice
    assert 15.5 <= sum(degrees) / 120 <= 16.0


def test_random_and_bridged_topologies() -> None:
    """random4 has degree about 4; 4lans has four LANs joined only by their always-on nodes."""
    edges = scale.random_edges(200, 4, random.Random(2))
    assert scale.connected(200, edges)
    assert 3.8 <= sum(scale.degrees(200, edges)) / 200 <= 4.0
    edges, bridges = scale.four_lans_edges(200, random.Random(3))
    assert scale.connected(200, edges) and len(bridges) == 4
    crossing = {(a, b) for a, b in edges if a // 50 != b // 50}
    assert crossing == {(a, b) for a in bridges for b in bridges if a < b}


def test_one_announcement_is_one_new_entry_reaching_every_node() -> None:
    """`announce` writes exactly one entry, every node ends holding it and nothing else new;
    v2 receives it about once per node, v1 once per session; the sessions hold the product's
    replication objects."""
    for version, most in ((2, 1.0), (1, None)):
        sim, edges = scale.build("lan", 60, version, MODEL, seed=4)
        assert len(sim.nodes) == 60
        link = next(iter(sim.nodes[0].links.values()))
        assert isinstance(link.replication, Replication)
        assert isinstance(sim.nodes[0].forwarding, Forwarding)
        result = scale.announce(sim)
        author = sim.nodes[1].id
        assert all(node.clock == {author: 2} for node in sim.nodes)
        sessions = 2 * len(edges) / 60
        if most is not None:
            assert result.copies == most
        else:
            assert result.copies > sessions / 2


def test_the_late_joiner_catches_up_ten_thousand_entries() -> None:
    """The joiner dials 8 nodes and ends with 100 authors x 100 entries; v2 receives each once."""
    took, copies, size = scale.late_joiner("lan", 40, 2, MODEL, seed=5)
    assert copies == 10_000 and took > 0 and size > 10_000 * 400
    _, copies_v1, _ = scale.late_joiner("lan", 40, 1, MODEL, seed=5)
    assert copies_v1 == 8 * 10_000
