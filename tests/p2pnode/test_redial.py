"""Peers that go away and come back (issue: "when that peer comes back, the node reconnects
within a few seconds", "`peers` shows one row per peer"), with the production backoff: the
autouse `fast_redial` fixture is undone here, since the backoff itself is what is tested.

Real nodes on 127.0.0.1, mDNS off (discovery is played by calling `peers.discovered`).
"""

from __future__ import annotations

import asyncio
import io
import socket
import time

import pytest

from p2pnode.cli.blobs import WAITING, ProgressBar
from p2pnode.net import peers as peers_module

#: How long the peer stays away: long enough for an uncapped backoff to pass 10 s between dials.
_AWAY = 20.0


@pytest.fixture
def production_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers_module, "_RETRY_MIN", 0.5)
    monkeypatch.setattr(peers_module, "_RETRY_MAX", 60.0)


def _dead_port() -> int:
    with socket.socket() as spare:  # a port nobody listens on
        spare.bind(("127.0.0.1", 0))
        return spare.getsockname()[1]


async def test_a_manual_peer_that_comes_back_is_reconnected_within_seconds(
    nodes, eventually, production_backoff
) -> None:
    """A `--peer` that was away for 20 s is redialled within a few seconds of its return (the
    backoff for manual peers is capped at `_RETRY_MAX_MANUAL`, not a minute)."""
    b = await nodes.start("b")
    port = b.port
    a = await nodes.start("a", peers=[f"127.0.0.1:{port}"])
    await eventually(lambda: b.node_id in a.peers.connections, timeout=10)
    await b.close()
    await eventually(lambda: b.node_id not in a.peers.connections, timeout=10)
    await asyncio.sleep(_AWAY)
    back = await nodes.start("b", port=port)
    returned = time.monotonic()
    await eventually(lambda: back.node_id in a.peers.connections, timeout=15)
    # at most one capped backoff (3 s, +20% jitter) and a dial; an uncapped one would be
    # at least 5 s here (the sixth dial is due 25-38 s after the first failure)
    assert time.monotonic() - returned < 4.6


async def test_a_peer_that_is_away_is_one_row_in_peers(nodes, eventually) -> None:
    """While a manual peer is unreachable, `peers` lists it once: as the node it was (with the
    dial error), not once more as a bare address."""
    b = await nodes.start("b")
    a = await nodes.start("a", peers=[b])
    await eventually(lambda: b.node_id in a.peers.connections, timeout=10)
    await b.close()

    async def failed_again() -> bool:
        rows = await a.peers_info()
        return any("cannot connect" in (r["last_error"] or "") for r in rows)

    await eventually(failed_again, timeout=10)
    rows = await a.peers_info()
    assert len(rows) == 1, rows
    assert rows[0]["node_id"] == b.node_id and not rows[0]["connected"]
    assert "cannot connect" in rows[0]["last_error"]


async def test_an_address_never_reached_is_its_own_row(nodes, eventually) -> None:
    """A manual address that never answered has nothing to belong to: it is listed by address."""
    port = _dead_port()
    a = await nodes.start("a", peers=[f"127.0.0.1:{port}"])

    async def listed() -> list:
        return [r for r in await a.peers_info() if r["address"] == f"127.0.0.1:{port}"]

    rows = await eventually(listed, timeout=10)
    assert rows[0]["node_id"] is None and "cannot connect" in rows[0]["last_error"]


async def test_a_new_announcement_cuts_the_backoff_short(
    nodes, eventually, production_backoff
) -> None:
    """A discovered peer that failed for a while and announces itself again (it restarted) is
    dialled at once, not at the end of a backoff that has grown meanwhile."""
    a = await nodes.start("a")
    b = await nodes.start("b")
    port = b.port
    await b.close()
    a.peers.discovered(b.node_id, ["127.0.0.1"], port)  # b is down: dials fail, backoff grows
    # dials are due 0.5, 1.5, 3.5, 7.5, 15.5 s (±20%) after the first: the fourth has failed
    # by 10 s, and the fifth would come at least 2.4 s after b is back
    await asyncio.sleep(10.0)
    back = await nodes.start("b", port=port)
    announced = time.monotonic()
    a.peers.discovered(back.node_id, ["127.0.0.1"], port)
    await eventually(lambda: back.node_id in a.peers.connections, timeout=15)
    assert time.monotonic() - announced < 2.0


def test_fetch_shows_waiting_instead_of_a_frozen_bar() -> None:
    """While no connected peer holds the resource, `fetch` says it is waiting for one; the
    rate comes back once chunks flow again."""
    out = io.StringIO()
    bar = ProgressBar("fetching", enabled=True, stream=out)
    bar.update(1_000_000, 4_000_000)
    bar.update(1_000_000, 4_000_000, note=WAITING)
    bar.update(2_000_000, 4_000_000)
    bar.finish()
    lines = out.getvalue().splitlines()
    assert lines[1].endswith(WAITING) and "25%" in lines[1]
    assert WAITING not in lines[-1] and "50%" in lines[-1]
