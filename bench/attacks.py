"""Attacks (issue 12): what each costs the node under attack, and whether honest peers notice.

The target is a real `p2pnode run` process (so its CPU and memory can be read from /proc);
two honest nodes h1 and h2 (in this process) are connected only through it, and the attacker
(`tests/hostile.py`, in a process of its own) connects from other loopback addresses
(127.0.0.2 ...), as another host would; a third honest node joins at the end (how long until it
has synced). For each attack, while it runs for `--seconds`: the time for an honest
announcement by h1 to reach h2 through the target (median and worst of several), the target's
CPU (share of one core) and its memory (RSS at the end, peak RSS). Loopback only, no mDNS.

    .venv/bin/python bench/attacks.py [--seconds 10] [--only NAME] [--target-src DIR]

`--target-src` runs the target from another source tree (e.g. `git archive main` unpacked), to
compare with an older node; the attacker and the honest nodes stay this tree's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import aiohttp  # noqa: E402
from hostile import HandshakeRefused, HostilePeer  # noqa: E402

from p2pnode.home import Home  # noqa: E402
from p2pnode.node import Node  # noqa: E402
from protocol.entry import create_entry  # noqa: E402
from protocol.frames import Clock, Ping, Want  # noqa: E402
from protocol.identity import Identity  # noqa: E402

P2PNODE = str(Path(sys.executable).with_name("p2pnode"))
TARGET_SRC: Path | None = None
TICKS = os.sysconf("SC_CLK_TCK")
FEED = 4500


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return (int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024)


def seed_feed(home: Path) -> bytes:
    """A 4 500-entry feed of a fresh author in the target's home (what a want can re-send)."""
    writer = Identity.generate()
    now = int(time.time() * 1000)
    chain, prev = [], None
    for seq in range(1, FEED + 1):
        entry = create_entry(writer, seq=seq, prev=prev, timestamp_ms=now, kind="note.test",
                             body={"n": seq, "pad": "x" * 100})
        chain.append(entry)
        prev = entry.id
    with Home.open(home, create=True) as opened:
        opened.store.ingest(chain, now_ms=now)
    return writer.node_id


async def connected(port: int, source: str, *, finish: bool = True,
                    identity: Identity | None = None,
                    clock: tuple[tuple[bytes, int], ...] = ()) -> HostilePeer | None:
    peer = HostilePeer(identity, source=source)
    try:
        await peer.connect(port, timeout=3.0)
        if finish:
            await peer.handshake(timeout=3.0)
            await peer.send_frame(Clock(clock, True))
        else:
            await peer.half_open()
        return peer
    except (aiohttp.ClientError, HandshakeRefused, TimeoutError, OSError):
        await peer.close()
        return None


class Attack:
    """An attack loop run against the target until `stop` is set."""

    def __init__(self, port: int, feed_author: bytes, h1_home: Path) -> None:
        self.port = port
        self.feed_author = feed_author
        self.h1_home = h1_home
        self.stop = asyncio.Event()
        self.peers: list[HostilePeer] = []
        self.notes: dict[str, float] = {}

    async def close(self) -> None:
        for peer in self.peers:
            with contextlib.suppress(Exception):
                await peer.close()

    def _live(self) -> None:
        self.peers = [p for p in self.peers if not p.closed]

    async def none(self) -> None:
        await self.stop.wait()

    async def half_open_one_address(self) -> None:
        """64 half-open handshakes from 127.0.0.2, renewed as they are dropped."""
        while not self.stop.is_set():
            self._live()
            fresh = await asyncio.gather(*[connected(self.port, "127.0.0.2", finish=False)
                                           for _ in range(64 - len(self.peers))])
            self.peers += [p for p in fresh if p]
            await asyncio.sleep(0.2)

    async def half_open_many_addresses(self) -> None:
        """4 half-open handshakes from each of 16 addresses, renewed as they are dropped."""
        sources = [f"127.0.1.{i}" for i in range(1, 17)]
        while not self.stop.is_set():
            self._live()
            fresh = await asyncio.gather(*[connected(self.port, s, finish=False)
                                           for s in sources for _ in range(4)])
            self.peers += [p for p in fresh if p]
            await asyncio.sleep(0.5)

    async def fresh_identities(self) -> None:
        """Polite sessions under fresh identities from 127.0.0.2, 64 wanted at all times."""
        while not self.stop.is_set():
            self._live()
            fresh = await asyncio.gather(*[connected(self.port, "127.0.0.2")
                                           for _ in range(min(16, 64 - len(self.peers)))])
            self.peers += [p for p in fresh if p]
            self.notes["sessions held"] = len(self.peers)
            await asyncio.sleep(0.2)

    async def want_amplification(self) -> None:
        """Alternating wants for the whole 4 500-entry feed, 20 a second; a fresh identity
        whenever the last one is banned."""
        resent, started = 0, time.monotonic()
        while not self.stop.is_set():
            # it claims the whole feed, so nothing is owed: all it gets, it gets by asking
            peer = await connected(self.port, "127.0.0.2", clock=((self.feed_author, FEED),))
            if peer is None:
                await asyncio.sleep(0.2)
                continue
            self.peers.append(peer)
            i = 0
            while not peer.closed and not self.stop.is_set():
                await peer.send_frame(Want(((self.feed_author, 1 + i % 2),)))
                i += 1
                await asyncio.sleep(0.05)
            resent += sum(len(getattr(f, "entries", ())) for f in peer.frames)
            self.notes["identities"] = self.notes.get("identities", 0) + 1
            await peer.close()
        self.notes["entries re-sent"] = resent
        self.notes["attack_s"] = round(time.monotonic() - started, 1)

    async def ping_flood(self) -> None:
        """Pings as fast as the attacker can encrypt them; a fresh identity after each ban."""
        while not self.stop.is_set():
            peer = await connected(self.port, "127.0.0.2")
            if peer is None:
                await asyncio.sleep(0.2)
                continue
            self.peers.append(peer)
            while not peer.closed and not self.stop.is_set():
                await peer.flood(Ping(1), 200)
                await asyncio.sleep(0)
            await peer.close()

    async def stripped_bodies(self) -> None:
        """A lone author's feed sent to the target by a prankster, without its bodies (the
        author is not connected yet: the prankster is the first to bring its circle)."""
        prankster = await connected(self.port, "127.0.0.2")
        assert prankster is not None
        self.peers.append(prankster)
        home = Home.open(self.h1_home)
        try:
            while not self.stop.is_set():
                entries = home.store.feed_entries(home.identity.node_id, 1, 1000)
                await prankster.send_entries([e.without_body() for e in entries])
                await asyncio.sleep(0.05)
        finally:
            home.close()


async def announcement_time(h1: Node, h2: Node, label: str) -> float:
    started = time.monotonic()
    entry = await h1.set_profile(f"h1 {label}")
    while h2.clock_snapshot().get(h1.node_id, 0) < entry.header.seq:
        await asyncio.sleep(0.005)
        if time.monotonic() - started > 30:
            return float("inf")
    return time.monotonic() - started


async def newcomer_syncs(home: Path, port: int, h1: Node) -> float:
    """A new honest node dials the target during the attack: seconds until it holds h1's feed."""
    started = time.monotonic()
    h3 = Node(home, host="127.0.0.1", port=0, mdns=False, control=False,
              peers=[f"127.0.0.1:{port}"])
    await h3.start()
    try:
        want = h1.clock_snapshot()[h1.node_id]
        while h3.clock_snapshot().get(h1.node_id, 0) < want:
            await asyncio.sleep(0.02)
            if time.monotonic() - started > 30:
                return float("inf")
        return time.monotonic() - started
    finally:
        await h3.close()


async def stripped_circle_visible_after(author: Node, h2: Node, port: int) -> float:
    """`author` (alone) announces a circle, which the prankster brings to the target stripped;
    once h2 holds it bodiless, the author dials the target: seconds until h2 lists the circle."""
    from builders import circle_body
    start = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 14 * 86400))
    await author.set_profile("Author")
    entry = await author.announce_circle(circle_body([], name="Hidden?", start=start))
    for _ in range(400):
        if h2.clock_snapshot().get(author.node_id, 0) >= entry.header.seq:
            break
        await asyncio.sleep(0.05)
    assert await h2.circle(entry.id) is None, "the prankster was not first"
    started = time.monotonic()
    author.add_peer("127.0.0.1", port)
    while await h2.circle(entry.id) is None:
        await asyncio.sleep(0.05)
        if time.monotonic() - started > 30:
            return float("inf")
    return time.monotonic() - started


async def measure(name: str, seconds: float, root: Path) -> dict[str, object]:
    home = root / name / "target"
    feed_author = await asyncio.to_thread(seed_feed, home)
    env = dict(os.environ)
    command = [P2PNODE]
    if TARGET_SRC is not None:
        env["PYTHONPATH"] = str(TARGET_SRC)
        command = [sys.executable, "-m", "p2pnode.cli"]
    proc = await asyncio.create_subprocess_exec(
        *command, "--home", str(home), "run", "--no-mdns", "--port", "0", "--listen",
        "127.0.0.1", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env=env, cwd=str(TARGET_SRC or ROOT))
    nodes: list[Node] = []
    attacker = None
    try:
        for _ in range(300):
            with contextlib.suppress(OSError, ValueError, KeyError):
                info = json.loads((home / "control.json").read_text())
                if info["pid"] == proc.pid:
                    break
            await asyncio.sleep(0.05)
        port = info["peer_port"]
        for label in ("h1", "h2"):
            node = Node(root / name / label, host="127.0.0.1", port=0, mdns=False,
                        control=False, peers=[f"127.0.0.1:{port}"])
            await node.start()
            nodes.append(node)
        h1, h2 = nodes[:2]
        await h1.set_profile("h1")
        while h2.clock_snapshot().get(feed_author, 0) < FEED:
            await asyncio.sleep(0.05)
        author = None
        if name == "stripped_bodies":
            author = Node(root / name / "author", host="127.0.0.1", port=0, mdns=False,
                          control=False)
            await author.start()
            nodes.append(author)
        attacker = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--attacker", name, "--port", str(port),
            "--feed", feed_author.hex(), "--h1-home", str(root / name / "author"),
            "--seconds", str(seconds + 30), stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL)
        await asyncio.sleep(1.5)  # let the attack get going
        cpu_before, started = cpu_seconds(proc.pid), time.monotonic()
        times, visible = [], None
        while time.monotonic() - started < seconds:
            if author is not None and visible is None:
                visible = await stripped_circle_visible_after(author, h2, port)
            times.append(await announcement_time(h1, h2, str(len(times))))
            await asyncio.sleep(0.5)
        cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - started)
        rss, peak = memory_mb(proc.pid)
        join = await newcomer_syncs(root / name / "h3", port, h1)
        attacker.send_signal(signal.SIGINT)
        try:
            out, _ = await asyncio.wait_for(attacker.communicate(), 30)
            notes = json.loads((out.decode().strip().splitlines() or ["{}"])[-1])
        except (TimeoutError, ValueError):
            notes = {}  # an attacker stuck closing its sessions: killed in `finally`
        attacker_cpu = notes.pop("attacker_cpu_core_share", None)
        result: dict[str, object] = {
            "attack": name,
            "announce_median_ms": round(statistics.median(times) * 1000, 1),
            "announce_max_ms": round(max(times) * 1000, 1),
            "newcomer_sync_s": round(join, 2),
            "cpu_core_share": round(cpu, 3),
            "rss_mb": round(rss, 1),
            "peak_rss_mb": round(peak, 1),
            "attacker_cpu_core_share": attacker_cpu,
            **notes,
        }
        if visible is not None:
            result["stripped_circle_visible_s"] = round(visible, 2)
        return result
    finally:
        if attacker is not None and attacker.returncode is None:
            attacker.kill()
            await attacker.wait()
        for node in reversed(nodes):
            await node.close()
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


ATTACKS = ["none", "half_open_one_address", "half_open_many_addresses", "fresh_identities",
           "want_amplification", "ping_flood", "stripped_bodies"]


async def run_attacker(name: str, port: int, feed: bytes, h1_home: Path, seconds: float) -> None:
    """The attacker process: run one attack until SIGINT (or `seconds`), print its notes."""
    attack = Attack(port, feed, h1_home)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, attack.stop.set)
    cpu_before, started = time.process_time(), time.monotonic()
    task = asyncio.create_task(getattr(attack, name)())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(attack.stop.wait(), seconds)
    attack.stop.set()
    with contextlib.suppress(TimeoutError, Exception):
        await asyncio.wait_for(task, 10)
    await attack.close()
    attack.notes["attacker_cpu_core_share"] = round(
        (time.process_time() - cpu_before) / (time.monotonic() - started), 3)
    print(json.dumps(attack.notes), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=ATTACKS, action="append")
    parser.add_argument("--target-src", type=Path)
    parser.add_argument("--attacker", choices=ATTACKS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--feed", help=argparse.SUPPRESS)
    parser.add_argument("--h1-home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker:
        await run_attacker(args.attacker, args.port, bytes.fromhex(args.feed), args.h1_home,
                           args.seconds)
        return
    global TARGET_SRC
    TARGET_SRC = args.target_src
    with tempfile.TemporaryDirectory(prefix="p2pnode-attacks-") as tmp:
        for name in args.only or ATTACKS:
            print(json.dumps(await measure(name, args.seconds, Path(tmp))), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
