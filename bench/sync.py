"""Sync: a fresh node pulls 50 000 entries (100 authors) from one peer over a real session.

The serving peer is a separate `p2pnode run` process on 127.0.0.1 whose home was filled by
importing the benchmark workload (the realistic mix of `workload.py`); the pulling node runs in
this process. Prints entries/s next to baselines measured in the same run: the bare Ed25519
verification rate on all cores, and Hypercore 11 replicating as many entries over loopback TCP
(when node and npm are installed; see `hypercore.py`). Target: at least 1.5x Hypercore.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from hypercore import Hypercore  # noqa: E402
from ingest import verify_rate  # noqa: E402
from workload import make_feeds, write_export  # noqa: E402

from p2pnode.events import EntryArrived, Lagged  # noqa: E402
from p2pnode.node import Node  # noqa: E402

P2PNODE = [sys.executable, "-m", "p2pnode.cli"]


def wait_for_control(home: Path, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads((home / "control.json").read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise TimeoutError("the serving node did not start")


async def pull(home: Path, port: int, expected: int, timeout: float) -> tuple[float, int]:
    node = Node(home, port=0, host="127.0.0.1", mdns=False, control=False)
    await node.start()
    count = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal count
        async for event in node.events():
            if isinstance(event, EntryArrived | Lagged):
                # a big batch can outrun this subscriber's queue: the events it lost are
                # entries too (nothing else happens meanwhile)
                count += event.missed if isinstance(event, Lagged) else 1
                if count >= expected:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    start = time.perf_counter()
    node.peers.add_address("127.0.0.1", port)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        watcher.cancel()
        await node.close()
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--authors", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of (Hypercore, our sync); the median ratio is reported")
    parser.add_argument("--no-hypercore", action="store_true",
                        help="skip the Hypercore baseline (it takes a minute a round)")
    args = parser.parse_args()
    feeds = make_feeds(args.authors, args.entries)
    flat = [e for feed in feeds for e in feed]
    cores = os.cpu_count() or 1
    rounds: list[tuple[float, float, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        anchor = None if args.no_hypercore else stack.enter_context(Hypercore())
        server_home = Path(tmp) / "server"
        export = Path(tmp) / "feeds.p2p"
        write_export(feeds, export)
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        subprocess.run([*P2PNODE, "--home", str(server_home), "import", str(export)],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        server = subprocess.Popen(
            [*P2PNODE, "--home", str(server_home), "run", "--no-mdns", "--port", "0",
             "--listen", "127.0.0.1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            port = wait_for_control(server_home)["peer_port"]
            for index in range(args.repeat):
                hypercore = anchor.rate(args.entries) if anchor is not None else None
                all_core = verify_rate(flat[:10_000], cores)
                client_home = Path(tmp) / f"client{index}"
                elapsed, count = asyncio.run(pull(client_home, port, args.entries, 300.0))
                rate = count / elapsed
                rounds.append((rate, all_core, hypercore))
                against = f"   Hypercore {hypercore:9,.0f} /s   ratio {rate / hypercore:.2f}x" \
                    if hypercore else ""
                print(f"sync {rate:9,.0f} entries/s ({count} in {elapsed:.2f} s, connect"
                      f" included)   ed25519 {cores} threads {all_core:9,.0f} /s{against}",
                      flush=True)
        finally:
            server.terminate()
            server.wait(10)
    rate = statistics.median(r[0] for r in rounds)
    print(f"sync over one session, median of {args.repeat}: {rate:9,.0f} entries/s")
    print(f"ratio to all-core verification: {statistics.median(r[0] / r[1] for r in rounds):.2f}x"
          " (median)")
    if anchor is None or anchor.problem:
        print(anchor.problem if anchor else "Hypercore baseline skipped (--no-hypercore)")
    else:
        ratio = statistics.median(r[0] / r[2] for r in rounds if r[2])
        print(anchor.last_line)
        print(f"ratio to Hypercore:           {ratio:.2f}x (median)"
              f"  (target >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
