"""Convergence: 30 nodes in one process on loopback, a random graph of degree 3, one circle
announced; how long until all 30 hold it (median of 10 announcements).

Every node starts with the same pre-filled store (`--prefill`, 50 000 entries of the realistic
mix of `workload.py` by default), so each hop ingests into derived tables of real size.

Baseline, measured in the same run: as many sequential loopback WebSocket round trips as the
graph's hop distance from the announcer to the farthest node (the least a flood could take).
Target: under 100 ms for 30 nodes. mDNS is off; everything stays on 127.0.0.1.

`--first` times each announcer's first entry since the sessions started instead (replication v2
forms its forwarding trees on it: one more round trip per hop, once per author).

`--mesh K` measures amplification instead: K + 1 nodes in a full mesh (K sessions each), two
authors announce `--announcements` circles between them, and the bench counts the entries the
nodes received (`entries_received` per session, what `p2pnode peers` shows) against the copies
they needed (announcements x K). Issue 13 target: at most 1.5 copies per needed copy.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from aiohttp import WSMsgType, web
from workload import make_feeds, write_export

from p2pnode import config
from p2pnode.events import EntryArrived
from p2pnode.home import Home
from p2pnode.node import Node
from p2pnode.store.database import Store
from p2pnode.store.exchange import import_entries


def random_regular_edges(n: int, degree: int, rng: random.Random) -> set[tuple[int, int]]:
    """A connected graph where every node has about `degree` neighbours."""
    while True:
        stubs = [i for i in range(n) for _ in range(degree)]
        rng.shuffle(stubs)
        pairs = zip(stubs[::2], stubs[1::2], strict=True)
        edges = {tuple(sorted(p)) for p in pairs if p[0] != p[1]}
        if _diameter_from(0, n, edges) is not None:
            return edges


def _diameter_from(start: int, n: int, edges) -> int | None:
    adj = {i: set() for i in range(n)}
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    depth = {start: 0}
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        for nxt in adj[cur]:
            if nxt not in depth:
                depth[nxt] = depth[cur] + 1
                queue.append(nxt)
    return max(depth.values()) if len(depth) == n else None


async def loopback_rtt(samples: int = 200) -> float:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    times = []
    url = f"http://127.0.0.1:{port}/"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for _ in range(samples):
            start = time.perf_counter()
            await ws.send_bytes(b"x" * 300)
            await ws.receive()
            times.append(time.perf_counter() - start)
    await runner.cleanup()
    return statistics.median(times)


CIRCLE = {
    "name": "Bench circle", "description": "d",
    "course": {"title": "c", "format": "course", "topics": [], "language": "en"},
    "venue": {"name": "Library", "city": "Nairobi", "online": False},
    "language": "en", "timezone": "UTC", "meeting_time": "18:00", "duration_min": 90,
    # a few weeks ahead: nodes refuse to announce circles in the past or years ahead
    "meetings": [(dt.date.today() + dt.timedelta(days=28)).isoformat()],
}


def prefill_homes(root: Path, n: int, entries: int) -> None:
    """Homes n0..n{n-1} with their own keys and a copy of one store holding `entries`."""
    template = root / "template.sqlite3"
    if entries:
        export = root / "prefill.p2p"
        write_export(make_feeds(100, entries), export)
        with Store(template) as store:
            report = import_entries(store, export, now_ms=int(time.time() * 1000))
        assert report.rejected == 0, report.reasons[:3]
    for i in range(n):
        home = root / f"n{i}"
        Home.create(home).close()
        if entries:
            (home / config.DATABASE_FILE).unlink()
            shutil.copyfile(template, home / config.DATABASE_FILE)


async def run(n: int, degree: int, rounds: int, prefill: int, first: bool = False) -> None:
    rng = random.Random(7)
    edges = random_regular_edges(n, degree, rng)
    with tempfile.TemporaryDirectory() as tmp:
        prefill_homes(Path(tmp), n, prefill)
        nodes = [Node(Path(tmp) / f"n{i}", port=0, host="127.0.0.1", mdns=False, control=False)
                 for i in range(n)]
        for node in nodes:
            await node.start()
        for a, b in edges:
            nodes[a].peers.add_address("127.0.0.1", nodes[b].port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(len(node.peers.open_connections()) >= 1 for node in nodes) and sum(
                len(node.peers.open_connections()) for node in nodes
            ) >= 2 * len(edges):
                break
            await asyncio.sleep(0.05)
        if not first:
            await nodes[0].set_profile("Announcer")
        await asyncio.sleep(0.5)
        results = []
        kind = "profile" if first else "circle"
        for r in range(rounds):
            announcer = r % n
            if r and not first:
                await nodes[announcer].set_profile(f"Announcer {r}")
                await asyncio.sleep(0.3)
            arrived: dict[int, float] = {}
            done = asyncio.Event()

            async def watch(i: int, node: Node, arrived=arrived, done=done) -> None:
                async for event in node.events():
                    if isinstance(event, EntryArrived) and event.kind == kind:
                        arrived[i] = time.perf_counter()
                        if len(arrived) == n:
                            done.set()
                        return

            watchers = [asyncio.create_task(watch(i, node)) for i, node in enumerate(nodes)]
            await asyncio.sleep(0)
            start = time.perf_counter()
            if first:
                await nodes[announcer].set_profile(f"Announcer {r}")
            else:
                await nodes[announcer].announce_circle({**CIRCLE, "name": f"Bench circle {r}"})
            await asyncio.wait_for(done.wait(), 30)
            results.append(max(arrived.values()) - start)
            for w in watchers:
                w.cancel()
        hops = _diameter_from(0, n, edges)
        for node in nodes:
            await node.close()
    rtt = await loopback_rtt()
    median = statistics.median(results)
    baseline = hops * rtt
    print(f"graph: {n} nodes, {len(edges)} edges (degree ~{degree}), {hops} hops from node 0;"
          f" each store pre-filled with {prefill} entries")
    print(f"loopback WebSocket round trip:   {rtt * 1000:.3f} ms (median of 200)")
    print(f"baseline: {hops} sequential round trips = {baseline * 1000:.2f} ms")
    what = "an author's first entry" if first else "an announcement"
    print(f"timed: {what} (each round's announcer is node r mod {n})")
    print(f"convergence, median of {rounds}:     {median * 1000:.1f} ms "
          f"(min {min(results) * 1000:.1f}, max {max(results) * 1000:.1f})")
    print(f"ratio to baseline:               {median / baseline:.1f}x")
    print(f"target < 100 ms:                 {'met' if median < 0.1 else 'NOT met'}")


async def run_mesh(connections: int, announcements: int) -> None:
    """Full mesh of `connections` + 1 nodes; copies of each new entry received per node."""
    n = connections + 1
    with tempfile.TemporaryDirectory() as tmp:
        prefill_homes(Path(tmp), n, 0)
        nodes = [Node(Path(tmp) / f"n{i}", port=0, host="127.0.0.1", mdns=False, control=False)
                 for i in range(n)]
        for node in nodes:
            await node.start()
        for a in range(n):
            for b in range(a + 1, n):
                nodes[a].peers.add_address("127.0.0.1", nodes[b].port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
                len(node.peers.open_connections()) == connections for node in nodes):
            await asyncio.sleep(0.05)
        authors = nodes[:2]
        for i, node in enumerate(authors):
            await node.set_profile(f"Author {i}")
        await _all_hold(nodes, authors)
        await asyncio.sleep(0.5)

        def received() -> int:
            return sum(c.replication.entries_received
                       for node in nodes for c in node.peers.open_connections())

        before = received()
        start = time.perf_counter()
        for k in range(announcements):
            await authors[k % 2].announce_circle({**CIRCLE, "name": f"Mesh circle {k}"})
        await _all_hold(nodes, authors)
        elapsed = time.perf_counter() - start
        await asyncio.sleep(0.5)  # copies still in flight count too
        copies = received() - before
        for node in nodes:
            await node.close()
    needed = announcements * connections
    print(f"full mesh: {n} nodes, {connections} sessions each, {announcements} announcements"
          f" by 2 authors: {copies} entries received, {needed} needed:"
          f" {copies / needed:.2f} copies per needed copy (all held after {elapsed:.2f} s)")


async def _all_hold(nodes: list[Node], authors: list[Node], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        heads = {a.node_id: a.clock_snapshot()[a.node_id] for a in authors}
        if all(node.clock_snapshot().get(author, 0) >= seq
               for node in nodes for author, seq in heads.items()):
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("the mesh did not converge")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=30)
    parser.add_argument("--degree", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--prefill", type=int, default=50_000,
                        help="entries of the realistic mix in every store before the start")
    parser.add_argument("--mesh", type=int, metavar="K",
                        help="measure copies per needed copy in a full mesh of K sessions each")
    parser.add_argument("--announcements", type=int, default=40)
    parser.add_argument("--first", action="store_true",
                        help="time each announcer's first entry since the sessions started"
                             " (replication v2 forms its forwarding trees on it)")
    args = parser.parse_args()
    if args.mesh:
        asyncio.run(run_mesh(args.mesh, args.announcements))
    else:
        asyncio.run(run(args.nodes, args.degree, args.rounds, args.prefill, args.first))


if __name__ == "__main__":
    main()
