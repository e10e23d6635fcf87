"""Idle cost: a `p2pnode run` with nothing to do (no peers, mDNS off, loopback only), watched
for `--seconds` (default 60): its CPU use (share of one core) and its wake-ups per second (context
switches of all its threads, from /proc). Targets: < 0.1 % of a core and at most one wake-up a
second, with a CLI write still reaching the running node within 200 ms (median of 5).

Baselines measured in the same run, side by side:
- the floor: a bare Python asyncio loop sleeping (what any Python daemon costs);
- polling: the same node with the database watch it had before, 10 `data_version` checks a second
  in the store thread (`_WATCH_INTERVAL = 0.1`, with no stat in front).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from p2pnode.net import control_client  # noqa: E402

P2PNODE = [sys.executable, "-m", "p2pnode.cli"]
_TICKS = os.sysconf("SC_CLK_TCK")

#: a bare asyncio loop: the floor any Python daemon pays
FLOOR = ("import asyncio, sys\n"
         "async def main():\n"
         "    print('ready', flush=True)\n"
         "    await asyncio.sleep(3600)\n"
         "asyncio.run(main())\n")
#: the node with the watch as it was: data_version in the store thread 10 times a second
POLLING = ("import sys\n"
           "import p2pnode.node as node\n"
           "node._WATCH_INTERVAL = 0.1\n"
           "node.Node._database_stamp = lambda self: object()  # always 'changed': no stat gate\n"
           "from p2pnode.cli.main import main\n"
           "sys.exit(main(sys.argv[1:]))\n")


@dataclass(frozen=True)
class Idle:
    """What a process cost while idle."""

    cpu_percent: float  # of one core
    wakeups_per_s: float  # context switches of all its threads


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def context_switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue  # a thread that just ended
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def start_node(home: Path, runner: list[str]) -> subprocess.Popen[bytes]:
    subprocess.run([*P2PNODE, "--home", str(home), "init", "--name", "Idle"], check=True,
                   capture_output=True)
    proc = subprocess.Popen([*runner, "--home", str(home), "run", "--port", "0", "--listen",
                             "127.0.0.1", "--no-mdns"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (home / "control.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"the node in {home} did not start")
        time.sleep(0.05)
    time.sleep(2.0)  # let start-up work (imports, first scans) settle before watching
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_latency(home: Path, rounds: int = 5) -> list[float]:
    """Seconds from a CLI write returning to the running node counting the new entry."""
    latencies = []
    for i in range(rounds):
        before = control_client.request(home, "GET", "/v1/status")["entries"]
        subprocess.run([*P2PNODE, "--home", str(home), "profile", "--name", f"Idle {i}"],
                       check=True, capture_output=True)
        done = time.monotonic()
        while control_client.request(home, "GET", "/v1/status")["entries"] == before:
            if time.monotonic() - done > 5:
                raise RuntimeError("the node did not see a CLI write within 5 s")
            time.sleep(0.005)
        latencies.append(time.monotonic() - done)
    return latencies


def measure(seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="p2pnode-idle-") as tmp:
        floor = subprocess.Popen([sys.executable, "-c", FLOOR], stdout=subprocess.PIPE)
        assert floor.stdout is not None
        floor.stdout.readline()
        shipped = start_node(Path(tmp) / "shipped", P2PNODE)
        polling = start_node(Path(tmp) / "polling", [sys.executable, "-c", POLLING])
        try:
            # the three are watched at once, so they share whatever else the machine does
            results: dict[str, Idle] = {}
            pids = {"floor": floor.pid, "shipped": shipped.pid, "polling": polling.pid}
            ticks = {k: cpu_ticks(p) for k, p in pids.items()}
            switches = {k: context_switches(p) for k, p in pids.items()}
            start = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - start
            for name, pid in pids.items():
                results[name] = Idle(
                    100.0 * (cpu_ticks(pid) - ticks[name]) / _TICKS / elapsed,
                    (context_switches(pid) - switches[name]) / elapsed,
                )
            latencies = write_latency(Path(tmp) / "shipped")
        finally:
            for proc in (shipped, polling, floor):
                stop(proc)
        return {"seconds": seconds, **{k: vars(v) for k, v in results.items()},
                "cli_write_ms": [round(x * 1000, 1) for x in latencies]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.seconds)
    if args.json:
        print(json.dumps(result))
        return
    shipped, polling, floor = result["shipped"], result["polling"], result["floor"]
    writes = result["cli_write_ms"]
    print(f"idle node over {args.seconds:g} s (no peers, mDNS off):")
    for name, row in (("node, as shipped", shipped), ("node, polling 10/s (before)", polling),
                      ("bare asyncio loop (floor)", floor)):
        print(f"  {name:30} {row['cpu_percent']:6.3f} % of a core  "
              f"{row['wakeups_per_s']:6.2f} wake-ups/s")
    cpu_ratio = shipped["cpu_percent"] / max(polling["cpu_percent"], 1e-9)
    wake_ratio = shipped["wakeups_per_s"] / max(polling["wakeups_per_s"], 1e-9)
    print(f"  ratio shipped/polling: CPU {cpu_ratio:.2f}x, wake-ups {wake_ratio:.2f}x")
    print(f"  CLI write seen by the running node: median {statistics.median(writes):.0f} ms,"
          f" max {max(writes):.0f} ms (target < 200 ms)")
    print(f"  targets: < 0.1 % CPU ({'met' if shipped['cpu_percent'] < 0.1 else 'NOT met'}),"
          f" <= 1 wake-up/s ({'met' if shipped['wakeups_per_s'] <= 1.0 else 'NOT met'})")


if __name__ == "__main__":
    main()
