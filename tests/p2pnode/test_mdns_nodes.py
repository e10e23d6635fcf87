"""Real `p2pnode run` processes in throwaway network namespaces find each other by mDNS.

Each node runs in its own namespace joined to the others by a bridge that lives in a namespace
too (tests/netns.py), with no flag but `--interface eth0`: multicast never reaches the host's
interfaces. Skipped when not root (CI runs as root).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import Bridge, Host, child_env, netns_unavailable_reason

#: the CLI announces circles starting within two years
START = (dt.date.today() + dt.timedelta(days=30)).isoformat()

pytestmark = pytest.mark.skipif(
    netns_unavailable_reason() is not None, reason=netns_unavailable_reason() or ""
)

P2PNODE = [sys.executable, "-m", "p2pnode.cli"]
_CONVERGE_TIMEOUT = 30.0


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*P2PNODE, "--home", str(home), *args],
        capture_output=True, text=True, env=child_env(), timeout=60, check=False,
    )


def in_netns(host: Host, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", host.netns, *P2PNODE, "--home", str(home), *args],
        capture_output=True, text=True, env=child_env(), timeout=60, check=False,
    )


def start_node(host: Host, home: Path) -> subprocess.Popen[str]:
    return host.popen(
        [*P2PNODE, "--home", str(home), "run", "--interface", "eth0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env(),
    )


def profile_names(home: Path) -> set[str]:
    """Names of every profile this home's database holds (read straight from SQLite)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{home / 'store.sqlite3'}?mode=ro", uri=True) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM profiles")}
    except sqlite3.Error:
        return set()


def wait_until(condition, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout} s")


def test_three_nodes_in_three_namespaces_discover_each_other_and_converge(tmp_path: Path):
    """Three `run` processes, confined only by --interface, find each other and sync entries."""
    homes = [tmp_path / f"n{i}" for i in range(3)]
    for i, home in enumerate(homes):
        assert cli(home, "init", "--name", f"Learner {i}").returncode == 0
    with Bridge(3) as hosts:
        procs = [start_node(host, home) for host, home in zip(hosts, homes, strict=True)]
        names = {f"Learner {i}" for i in range(3)}
        elapsed = wait_until(lambda: all(profile_names(h) == names for h in homes),
                             _CONVERGE_TIMEOUT)
        print(f"3 nodes discovered each other and converged in {elapsed:.2f} s")
        # a circle announced on one node (through its CLI, in its namespace) reaches the others
        announce = in_netns(
            hosts[0], homes[0], "circle", "announce", "--name", "Stats together",
            "--description", "Weekly", "--course-title", "Statistics", "--venue", "Library",
            "--city", "Accra", "--start", START, "--time", "17:00", "--language", "en",
            "--timezone", "UTC",
        )
        assert announce.returncode == 0, announce.stderr
        for home in homes[1:]:
            wait_until(lambda home=home: "Stats together" in cli(home, "circles").stdout, 10)
        status = json.loads(in_netns(hosts[1], homes[1], "status", "--json").stdout)
        assert status["peers_connected"] == 2 and status["mdns"] is True
        peers = json.loads(in_netns(hosts[1], homes[1], "peers", "--json").stdout)
        assert {p["how"] for p in peers if p["connected"]} <= {"mdns", "incoming"}
        for proc in procs:
            proc.terminate()
        for proc in procs:
            assert proc.wait(15) == 0, proc.stdout.read() if proc.stdout else ""
    for home in homes:
        assert not (home / "control.json").exists()


def test_doctor_sees_the_other_node_over_multicast(tmp_path: Path):
    """`p2pnode doctor` in one namespace reports the node of another namespace answering mDNS."""
    node_home, doctor_home = tmp_path / "node", tmp_path / "doctor"
    assert cli(node_home, "init", "--name", "Ana").returncode == 0
    with Bridge(2) as hosts:
        start_node(hosts[0], node_home)
        wait_until(lambda: (node_home / "control.json").exists(), 15)
        time.sleep(1.5)  # the node's mDNS registration probes for about 1.2 s
        result = in_netns(hosts[1], doctor_home, "doctor", "--interface", "eth0",
                          "--timeout", "3", "--json")
        assert result.returncode == 0, result.stderr
        checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
        mdns = checks["mdns eth0"]
        assert mdns["ok"] is True and "1 of our network" in mdns["detail"], mdns
