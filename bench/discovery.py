"""Discovery: two `p2pnode run` processes in two network namespaces (joined by a bridge that
lives in a namespace too: multicast never reaches the host), each with only `--interface eth0`.
Time from starting both to each holding the other's profile, real mDNS probing included
(median of 5). Target: under 3 s. Needs root (`ip netns`).

Baseline, in the same run: the time from starting a node process to its control API answering
(interpreter start-up, imports, opening the store), which discovery cannot beat.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.netns import Bridge, child_env, netns_unavailable_reason

P2PNODE = [sys.executable, "-m", "p2pnode.cli"]


def names(home: Path) -> set[str]:
    try:
        with sqlite3.connect(f"file:{home / 'store.sqlite3'}?mode=ro", uri=True) as conn:
            return {r[0] for r in conn.execute("SELECT name FROM profiles")}
    except sqlite3.Error:
        return set()


def one_round(tmp: Path, round_no: int) -> tuple[float, float]:
    homes = [tmp / f"r{round_no}n{i}" for i in range(2)]
    for i, home in enumerate(homes):
        subprocess.run([*P2PNODE, "--home", str(home), "init", "--name", f"N{i}"], check=True,
                       env=child_env(), capture_output=True)
    with Bridge(2) as hosts:
        start = time.perf_counter()
        for host, home in zip(hosts, homes, strict=True):
            host.popen([*P2PNODE, "--home", str(home), "run", "--interface", "eth0"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
        started = None
        deadline = start + 30
        while time.perf_counter() < deadline:
            if started is None and all((h / "control.json").exists() for h in homes):
                started = time.perf_counter() - start
            if all(names(h) == {"N0", "N1"} for h in homes):
                return time.perf_counter() - start, started or 0.0
            time.sleep(0.02)
    raise TimeoutError("the nodes did not converge within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    reason = netns_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    results, startups = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            total, startup = one_round(Path(tmp), r)
            results.append(total)
            startups.append(startup)
    median, base = statistics.median(results), statistics.median(startups)
    print(json.dumps({"rounds": [round(x, 3) for x in results]}))
    print(f"node start-up to control API:     {base:.2f} s (baseline, median)")
    print(f"start to discovered + converged:  {median:.2f} s (median of {args.rounds}; "
          f"min {min(results):.2f}, max {max(results):.2f})")
    print(f"ratio to start-up:                {median / base:.1f}x")
    print(f"target < 3 s:                     {'met' if median < 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
