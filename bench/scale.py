"""Replication at scale: 1 000 simulated nodes in one process (issue 13 item 3).

What is real and what is simulated:
- **Real**: every replication decision. Each simulated session holds the product's
  `protocol.replication.Replication` and each node the product's `protocol.forwarding.Forwarding`,
  driven exactly as `p2pnode/net/connection.py` and `p2pnode/node.py` drive them: hello and clock
  on open, notes, pushes of requested authors (v2) or of everything (v1), wants for gaps, the
  forwarding timer. Control frames (`replication`, `clock`, `notes`, `want`) are the product's
  frame objects and are counted at their real encoded size (`protocol.frames.encode_frame`).
- **Simulated**: the transport (an in-memory, discrete-event network), the store (a node's store
  is its clock, a dict author -> latest seq: every node holds whole feed prefixes, so that names
  every entry it holds), and entries on the wire (``(author, seq)`` pairs standing for entries of
  the wire size of a real circle announcement, measured at start).
- **Time** is simulated: one-way latency per hop `--latency-ms` (default 1 ms, a LAN), each node's
  uplink serialises what it sends at `--uplink-mbps` (default 20 MB/s, Wi-Fi), and each node
  stores batches one at a time, costing `--batch-ms` (0.5 ms, a commit) plus `--entry-us` (50 us,
  a verification) per new entry; a duplicate costs nothing (dropped before verification). Bytes
  are per frame: the encoded frame plus 16 (Noise tag) plus 6 (WebSocket header).

Topologies (`--nodes N`, default 1 000):
- **lan**: everyone sees everyone; each node dials 8 random others and takes at most 24 inbound
  sessions (peer selection, issue 13 item 2: `_MAX_OUTBOUND` 8, `_MAX_INBOUND` 24), so about 16
  sessions each.
- **random4**: a random graph of degree 4.
- **4lans**: four LANs of N/4 as above, each with one always-on node; the four always-on nodes
  are connected to each other (reached by address).
- **mesh** (on request): a full mesh, N - 1 sessions per node (`--nodes 65 --compare 65`: 64).

For one new announcement (an author all nodes know, seq 1 held everywhere before the sessions
start): convergence time p50/p99 over nodes, copies received per node, bytes received per node.
Two announcements are made: the first after the sessions start (v2: the forwarding trees form on
it), and a second one once trees exist. Then a node joins the LAN late and catches up with
10 000 entries (100 authors x 100). Memory per node: tracemalloc over building the LAN and one
announcement, divided by the nodes. Each v2 figure is printed next to the same figure for v1
(push to every session, what a node of the previous revision does) on `--compare` nodes (100),
measured in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import random
import statistics
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol import frames as fr
from protocol.codec import pack
from protocol.entry import create_entry
from protocol.forwarding import Forwarding
from protocol.identity import Identity
from protocol.replication import Replication

#: peer selection (issue 13 item 2): outbound dials per node, inbound sessions accepted
LAN_DIALS = 8
LAN_INBOUND = 24
FRAME_OVERHEAD = 16 + 6  # Noise tag, WebSocket header
CATCH_UP_AUTHORS = 100
CATCH_UP_PER_AUTHOR = 100


@dataclasses.dataclass
class Model:
    latency: float = 0.001
    uplink: float = 20e6
    batch_cost: float = 0.0005
    entry_cost: float = 0.00005
    entry_size: int = 700


class Net:
    """A discrete-event loop: callbacks at simulated times."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def at(self, when: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, fn))

    def run(self, until: float | None = None) -> None:
        while self._queue:
            when, _, fn = self._queue[0]
            if until is not None and when > until:
                return
            heapq.heappop(self._queue)
            self.now = when
            fn()


class Link:
    """One side of a session: the product's per-session state plus the simulated wire."""

    __slots__ = ("node", "peer", "remote", "replication", "scheduled")

    def __init__(self, node: SimNode, peer: SimNode) -> None:
        self.node = node
        self.peer = peer
        self.replication = Replication(version=node.version)
        self.remote: Link | None = None
        self.scheduled = False


class SimNode:
    """A node: a clock as its store, the product's `Forwarding`, its sessions."""

    def __init__(self, sim: Sim, index: int, version: int) -> None:
        self.sim = sim
        self.index = index
        self.id = index.to_bytes(4, "big") + bytes(28)
        self.version = version
        self.clock: dict[bytes, int] = {}
        self.links: dict[bytes, Link] = {}
        self.forwarding = Forwarding()
        self.uplink_free = 0.0
        self.store_queue: deque[tuple[Link, list[tuple[bytes, int]]]] = deque()
        self.store_busy = False
        self.timer_armed: float | None = None
        self.bytes_in = 0
        self.received: dict[tuple[bytes, int], int] = {}
        self.arrived: dict[tuple[bytes, int], float] = {}

    # -- sending ---------------------------------------------------------------------------
    def send(self, link: Link, kind: str, payload: Any, size: int) -> None:
        sim = self.sim
        start = max(sim.net.now, self.uplink_free)
        self.uplink_free = start + size / sim.model.uplink
        remote = link.remote
        assert remote is not None
        sim.net.at(self.uplink_free + sim.model.latency,
                   lambda: remote.node.receive(remote, kind, payload, size))

    def send_frame(self, link: Link, frame: fr.Frame) -> None:
        self.send(link, frame.TYPE, frame, len(fr.encode_frame(frame)) + FRAME_OVERHEAD)

    def wake(self, link: Link) -> None:
        if not link.scheduled:
            link.scheduled = True
            self.sim.net.at(self.sim.net.now, lambda: self.run_sender(link))

    def wake_peers(self, peers: set[bytes]) -> None:
        for peer in peers:
            link = self.links.get(peer)
            if link is not None:
                self.wake(link)
        self.arm_timer()

    def run_sender(self, link: Link) -> None:
        """`PeerConnection._sender`: notes first, then each owed author's entries."""
        link.scheduled = False
        rep = link.replication
        for frame in fr.note_frames(rep.take_notes(self.clock)):
            self.send_frame(link, frame)
        model = self.sim.model
        for author in rep.take_dirty():
            head = self.clock.get(author, 0)
            seq = rep.next_seq(author)
            while seq <= head:
                # an entries frame: at most 256 entries and what fits in a frame
                count = min(head - seq + 1, fr.MAX_ENTRIES,
                            (fr.MAX_FRAME_SIZE - 64) // (model.entry_size + 12))
                batch = [(author, s) for s in range(seq, seq + count)]
                size = count * (model.entry_size + 12) + fr.ENTRIES_FRAME_OVERHEAD
                self.send(link, "entries", batch, size + FRAME_OVERHEAD)
                rep.sent(batch, self.sim.net.now)
                seq += count

    # -- receiving -------------------------------------------------------------------------
    def receive(self, link: Link, kind: str, payload: Any, size: int) -> None:
        self.bytes_in += size
        rep = link.replication
        now = self.sim.net.now
        if kind == "entries":
            rep.receive_entries(payload)
            for key in payload:
                self.received[key] = self.received.get(key, 0) + 1
            self.ingest(link, payload)
        elif kind == "clock":
            rep.receive_clock(payload.pairs, payload.final, self.clock)
            if payload.final and rep.v2:
                self.wake_peers(self.forwarding.add(link.peer.id, rep, self.clock, now))
            self.wake(link)
        elif kind == "notes":
            if rep.v2:
                ahead = rep.receive_notes(payload.notes, self.clock)
                self.wake_peers(self.forwarding.notes(link.peer.id, ahead, self.clock, now))
                if rep.has_work:
                    self.wake(link)
        elif kind == "replication":
            rep.receive_hello(payload.version)
        elif kind == "want":
            rep.receive_want(payload.pairs, self.clock, now)
            self.wake(link)

    def ingest(self, link: Link, batch: list[tuple[bytes, int]]) -> None:
        """Queue a batch for the store (`PeerConnection._ingester`): one batch at a time."""
        self.store_queue.append((link, batch))
        if not self.store_busy:
            self.store_next()

    def store_next(self) -> None:
        """Store the next batch: what extends the feeds costs time, duplicates (dropped before
        verification) nothing; then dispatch like `Node._scan` and ask for gaps."""
        if not self.store_queue:
            self.store_busy = False
            return
        self.store_busy = True
        link, batch = self.store_queue.popleft()
        model = self.sim.model
        new = sum(1 for author, seq in batch if seq > self.clock.get(author, 0))
        cost = model.batch_cost + new * model.entry_cost if new else 0.0

        def stored() -> None:
            accepted = []
            gaps: dict[bytes, int] = {}
            for author, seq in batch:
                held = self.clock.get(author, 0)
                if seq == held + 1:
                    self.clock[author] = seq
                    accepted.append((author, seq))
                    self.arrived[(author, seq)] = self.sim.net.now
                elif seq > held + 1:
                    gaps.setdefault(author, held + 1)
            if accepted:
                self.dispatch(accepted)
            wants = link.replication.wants(gaps, self.sim.net.now)
            if wants and link.remote is not None:
                self.send_frame(link, fr.Want(tuple(wants)))
            self.store_next()

        self.sim.net.at(self.sim.net.now + cost, stored)

    def dispatch(self, seqs: list[tuple[bytes, int]]) -> None:
        """`Node._dispatch`: progress for forwarding, pushes and notes for every session."""
        self.forwarding.stored({author for author, _ in seqs}, self.clock, self.sim.net.now)
        for link in self.links.values():
            if link.replication.local_entries(seqs):
                self.wake(link)
        self.arm_timer()

    def write(self, author: bytes) -> int:
        """Our own new entry (the author's node)."""
        seq = self.clock.get(author, 0) + 1
        self.clock[author] = seq
        self.arrived[(author, seq)] = self.sim.net.now
        self.dispatch([(author, seq)])
        return seq

    # -- forwarding timer --------------------------------------------------------------------
    def arm_timer(self) -> None:
        due = self.forwarding.get_timer()
        if due is None or (self.timer_armed is not None and self.timer_armed <= due):
            return
        self.timer_armed = due
        self.sim.net.at(due, self.fire_timer)

    def fire_timer(self) -> None:
        self.timer_armed = None
        due = self.forwarding.get_timer()
        if due is not None and due <= self.sim.net.now:
            self.wake_peers(self.forwarding.handle_timer(self.clock, self.sim.net.now))
        else:
            self.arm_timer()


class Sim:
    def __init__(self, n: int, version: int, model: Model) -> None:
        self.net = Net()
        self.model = model
        self.nodes = [SimNode(self, i, version) for i in range(n)]

    def connect(self, a: SimNode, b: SimNode) -> None:
        """A session opens: hello (v2) and clock from each side (`PeerConnection._on_open`)."""
        if b.id in a.links or a is b:
            return
        la, lb = Link(a, b), Link(b, a)
        la.remote, lb.remote = lb, la
        a.links[b.id], b.links[a.id] = la, lb
        for node, link in ((a, la), (b, lb)):
            if node.version >= 2:
                node.send_frame(link, fr.ReplicationHello(fr.REPLICATION_VERSION))
            for frame in fr.clock_frames(node.clock.items()):
                node.send_frame(link, frame)


# -- topologies --------------------------------------------------------------------------------


def lan_edges(members: list[int], rng: random.Random) -> set[tuple[int, int]]:
    """Each member dials `LAN_DIALS` random others whose inbound sessions are not full."""
    inbound = dict.fromkeys(members, 0)
    edges: set[tuple[int, int]] = set()
    for a in members:
        dialled = 0
        for b in rng.sample(members, len(members)):
            if dialled == LAN_DIALS:
                break
            edge = (min(a, b), max(a, b))
            if b == a or edge in edges or inbound[b] >= LAN_INBOUND:
                continue
            inbound[b] += 1
            edges.add(edge)
            dialled += 1
    return edges


def random_edges(n: int, degree: int, rng: random.Random) -> set[tuple[int, int]]:
    """A connected random graph where every node has about `degree` neighbours."""
    while True:
        stubs = [i for i in range(n) for _ in range(degree)]
        rng.shuffle(stubs)
        edges = {(min(p), max(p)) for p in zip(stubs[::2], stubs[1::2], strict=True)
                 if p[0] != p[1]}
        if connected(n, edges):
            return edges


def four_lans_edges(n: int, rng: random.Random) -> tuple[set[tuple[int, int]], list[int]]:
    size = n // 4
    edges: set[tuple[int, int]] = set()
    bridges = []
    for k in range(4):
        members = list(range(k * size, (k + 1) * size if k < 3 else n))
        edges |= lan_edges(members, rng)
        bridges.append(members[0])
    edges |= {(a, b) for a in bridges for b in bridges if a < b}
    return edges, bridges


def topology(name: str, n: int, rng: random.Random) -> set[tuple[int, int]]:
    if name == "mesh":
        return {(a, b) for a in range(n) for b in range(a + 1, n)}
    if name == "lan":
        return lan_edges(list(range(n)), rng)
    if name == "random4":
        return random_edges(n, 4, rng)
    return four_lans_edges(n, rng)[0]


def connected(n: int, edges: set[tuple[int, int]]) -> bool:
    adj: dict[int, list[int]] = {i: [] for i in range(n)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    seen = {0}
    todo = [0]
    while todo:
        for nxt in adj[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return len(seen) == n


def degrees(n: int, edges: set[tuple[int, int]]) -> list[int]:
    out = [0] * n
    for a, b in edges:
        out[a] += 1
        out[b] += 1
    return out


# -- runs ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Announcement:
    p50: float
    p99: float
    copies: float
    copies_max: int
    bytes: float


@dataclasses.dataclass
class Result:
    nodes: int
    sessions: float
    first: Announcement
    second: Announcement
    catch_up: float | None = None
    catch_up_copies: int = 0
    catch_up_bytes: int = 0
    memory: float | None = None


def build(name: str, n: int, version: int, model: Model, seed: int) -> tuple[Sim, set]:
    """Nodes holding the announcer's profile (seq 1), then every session opened, settled."""
    rng = random.Random(seed)
    sim = Sim(n, version, model)
    author = sim.nodes[1].id
    for node in sim.nodes:
        node.clock[author] = 1
    edges = topology(name, n, rng)
    for a, b in sorted(edges):
        sim.connect(sim.nodes[a], sim.nodes[b])
    sim.net.run()
    return sim, edges


def announce(sim: Sim) -> Announcement:
    """The announcer (node 1) writes one entry; run until nothing moves."""
    announcer = sim.nodes[1]
    for node in sim.nodes:
        node.bytes_in = 0
    start = sim.net.now
    seq = announcer.write(announcer.id)
    sim.net.run()
    key = (announcer.id, seq)
    others = [node for node in sim.nodes if node is not announcer]
    missing = [node.index for node in others if key not in node.arrived]
    if missing:
        raise AssertionError(f"{len(missing)} nodes never got the announcement")
    times = sorted(node.arrived[key] - start for node in others)
    copies = [node.received.get(key, 0) for node in others]
    return Announcement(
        p50=statistics.median(times), p99=times[min(len(times) - 1, int(0.99 * len(times)))],
        copies=statistics.fmean(copies), copies_max=max(copies),
        bytes=statistics.fmean(node.bytes_in for node in others))


def late_joiner(name: str, n: int, version: int, model: Model, seed: int) -> tuple[float, int,
                                                                                   int]:
    """Every node holds 10 000 entries (100 authors x 100); a new node dials 8 of them."""
    rng = random.Random(seed)
    sim = Sim(n + 1, version, model)
    authors = [bytes([0xC0]) + i.to_bytes(31, "big") for i in range(CATCH_UP_AUTHORS)]
    joiner = sim.nodes[n]
    for node in sim.nodes[:n]:
        node.clock = dict.fromkeys(authors, CATCH_UP_PER_AUTHOR)
    for a, b in sorted(topology(name, n, rng)):
        sim.connect(sim.nodes[a], sim.nodes[b])
    sim.net.run()
    start = sim.net.now
    for b in rng.sample(range(n), LAN_DIALS):
        sim.connect(joiner, sim.nodes[b])
    sim.net.run()
    done = max(joiner.arrived.values()) - start
    assert sum(joiner.clock.values()) == CATCH_UP_AUTHORS * CATCH_UP_PER_AUTHOR
    return done, sum(joiner.received.values()), joiner.bytes_in


def measure(name: str, n: int, version: int, model: Model, seed: int,
            memory: bool = False, catch_up: bool = False) -> Result:
    if memory:
        tracemalloc.start()
    sim, edges = build(name, n, version, model, seed)
    first = announce(sim)
    used = None
    if memory:
        used = tracemalloc.get_traced_memory()[0] / n
        tracemalloc.stop()
    second = announce(sim)
    result = Result(n, 2 * len(edges) / n, first, second, memory=used)
    if catch_up:
        result.catch_up, result.catch_up_copies, result.catch_up_bytes = late_joiner(
            name, n, version, model, seed)
    return result


def entry_size() -> int:
    """The wire size of a real circle announcement (as `bench/convergence.py` writes)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from convergence import CIRCLE

    entry = create_entry(Identity.generate(), seq=2, prev=b"\x00" * 32,
                         timestamp_ms=int(time.time() * 1000), kind="circle", body=CIRCLE)
    return len(pack(entry.wire()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--compare", type=int, default=100,
                        help="nodes in the v1 (push to every session) comparison runs")
    parser.add_argument("--topology", choices=["lan", "random4", "4lans", "mesh"],
                        action="append", help="default: lan, random4, 4lans (mesh: a full"
                        " mesh, every node in session with every other; use small --nodes)")
    parser.add_argument("--latency-ms", type=float, default=1.0)
    parser.add_argument("--uplink-mbps", type=float, default=20.0, help="MB/s per node")
    parser.add_argument("--batch-ms", type=float, default=0.5)
    parser.add_argument("--entry-us", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    model = Model(latency=args.latency_ms / 1000, uplink=args.uplink_mbps * 1e6,
                  batch_cost=args.batch_ms / 1000, entry_cost=args.entry_us / 1e6,
                  entry_size=entry_size())
    print(f"model: one-way latency {args.latency_ms} ms per hop, uplink {args.uplink_mbps} MB/s"
          f" per node, store {args.batch_ms} ms per batch + {args.entry_us} us per new entry;"
          f" an entry is {model.entry_size} bytes on the wire; times are simulated")
    for name in args.topology or ["lan", "random4", "4lans"]:
        started = time.perf_counter()
        big = measure(name, args.nodes, 2, model, args.seed, memory=(name == "lan"),
                      catch_up=(name == "lan"))
        small2 = measure(name, args.compare, 2, model, args.seed, memory=(name == "lan"),
                         catch_up=(name == "lan"))
        small1 = measure(name, args.compare, 1, model, args.seed, memory=(name == "lan"),
                         catch_up=(name == "lan"))
        report(name, big, small2, small1, time.perf_counter() - started)


def report(name: str, big: Result, small2: Result, small1: Result, took: float) -> None:
    cols = (f"v2, {big.nodes} nodes", f"v2, {small2.nodes} nodes", f"v1, {small1.nodes} nodes")
    print(f"\n== {name}: sessions per node {big.sessions:.1f} / {small2.sessions:.1f} /"
          f" {small1.sessions:.1f} (bench took {took:.1f} s of real time)")
    print(f"{'':44}{cols[0]:>18}{cols[1]:>18}{cols[2]:>18}")

    def row(label: str, values: list[str]) -> None:
        print(f"{label:44}" + "".join(f"{v:>18}" for v in values))

    runs = (big, small2, small1)
    for which in ("first", "second"):
        what = ("first announcement (trees form)" if which == "first"
                else "second announcement (trees formed)")
        print(f"  {what}")
        ann = [getattr(r, which) for r in runs]
        row("    convergence p50 / p99 (ms)",
            [f"{a.p50 * 1000:.1f} / {a.p99 * 1000:.1f}" for a in ann])
        row("    copies received per node (mean / max)",
            [f"{a.copies:.2f} / {a.copies_max}" for a in ann])
        row("    bytes received per node (mean)", [f"{a.bytes:,.0f}" for a in ann])
    if big.catch_up is not None:
        print("  late joiner, 10 000 entries (dials 8)")
        row("    time to catch up (s)", [f"{r.catch_up:.2f}" for r in runs])
        row("    entries received", [f"{r.catch_up_copies:,}" for r in runs])
        row("    bytes received", [f"{r.catch_up_bytes:,}" for r in runs])
    if big.memory is not None:
        row("  replication memory per node (tracemalloc)",
            [f"{r.memory / 1024:.1f} KiB" if r.memory else "-" for r in runs])


if __name__ == "__main__":
    main()
