"""Twenty nodes on one LAN (twenty network namespaces on one bridge) find each other by mDNS,
keep a bounded set of sessions that still connects them all, flood an announcement to all
twenty, and do not storm the network with mDNS queries.

Each node runs in a namespace of its own (tests/netns.py) with mDNS on its ``eth0``; a 21st
namespace on the bridge only listens, and counts the mDNS queries and responses on the wire.
Skipped when not root (CI runs as root).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from netns import (
    MDNS_COUNTER,
    NODE_DRIVER,
    Bridge,
    Host,
    child_env,
    mdns_packets,
    netns_unavailable_reason,
)

pytestmark = pytest.mark.skipif(
    netns_unavailable_reason() is not None, reason=netns_unavailable_reason() or ""
)

NODES = 20
#: `--max-peers 6`: 2 sessions dialled by each node, at most 4 dialled to it
MAX_PEERS = 6
#: zeroconf's browser: 4 startup queries (0, 1, 4, 9 s after it starts), then only refreshes
#: at 75 % of the PTR's 75-minute TTL; registering probes 3 times; a resolution that finds the
#: cache incomplete asks once or twice more.
_QUERIES_PER_NODE = 4 + 3 + 3
_STARTUP_SERIES = 10.0
_WAVE = 10
#: Seconds to keep the nodes running after the announcement before counting, to measure the
#: steady state over minutes (``P2PNODE_NETNS_SOAK=120``); 0 in the suite.
_SOAK = float(os.environ.get("P2PNODE_NETNS_SOAK", "0"))
_START = (dt.date.today() + dt.timedelta(days=30)).isoformat()


def status(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads((home / "netns-status.json").read_text())
    except (OSError, ValueError):
        return None


def statuses(homes: list[Path]) -> list[dict[str, Any]] | None:
    found = [status(h) for h in homes]
    return None if any(s is None for s in found) else found  # type: ignore[return-value]


def wait_for(condition, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def components(nodes: list[dict[str, Any]]) -> list[set[str]]:
    """Connected components of the session graph (an edge where either side has a session)."""
    links: dict[str, set[str]] = {s["id"]: set() for s in nodes}
    for s in nodes:
        for session in s["sessions"]:
            links[s["id"]].add(session["peer"])
            links.setdefault(session["peer"], set()).add(s["id"])
    left, found = set(links), []
    while left:
        todo, part = [left.pop()], set()
        while todo:
            node = todo.pop()
            part.add(node)
            todo.extend(links[node] & left)
            left -= links[node]
        found.append(part)
    return found


def circle_names(home: Path) -> set[str]:
    try:
        with sqlite3.connect(f"file:{home / 'store.sqlite3'}?mode=ro", uri=True) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM circles")}
    except sqlite3.Error:
        return set()


def test_twenty_nodes_on_one_lan_keep_bounded_sessions_that_connect_them_all(tmp_path: Path):
    """20 nodes discover all 19 others by mDNS, keep at most `--max-peers` sessions each, form
    one connected graph, and an announcement on one reaches all 20; each node sends only
    zeroconf's startup series of mDNS queries, then none."""
    started = time.monotonic()
    homes = [tmp_path / f"n{i:02d}" for i in range(NODES)]
    packets_file = tmp_path / "mdns.jsonl"
    with Bridge(NODES + 1) as hosts:
        listener: Host = hosts[NODES]
        listener.popen([sys.executable, "-c", MDNS_COUNTER, listener.address, str(packets_file)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
        wait_for(lambda: mdns_packets(packets_file), 15, "the mDNS counter listening")
        counter_zero = time.monotonic()  # its clock's 0, give or take 0.2 s
        #: when each node was seen running (its mDNS browser started before), counter clock
        up: dict[str, float] = {}
        # in two waves: twenty Pythons importing at once on two busy cores take long
        for wave in range(0, NODES, _WAVE):
            for i in range(wave, min(NODES, wave + _WAVE)):
                homes[i].mkdir()
                with (homes[i] / "driver.log").open("w") as log:
                    hosts[i].popen([sys.executable, "-c", NODE_DRIVER, str(homes[i]),
                                    f"Learner {i}", str(MAX_PEERS)], stdout=log,
                                   stderr=subprocess.STDOUT, env=child_env())
            wait_for(lambda w=wave: statuses(homes[w:w + _WAVE]), 30,
                     f"nodes {wave}-{wave + _WAVE - 1} running")
            for i in range(wave, min(NODES, wave + _WAVE)):
                up[hosts[i].address] = time.monotonic() - counter_zero + 0.2
        up_at = time.monotonic()
        all_up = statuses(homes)
        assert all_up is not None
        ids = {s["id"] for s in all_up}
        most_sessions = 0

        def look() -> list[dict[str, Any]]:
            nonlocal most_sessions
            now = statuses(homes) or []
            most_sessions = max([most_sessions, *(len(s["sessions"]) for s in now)])
            return now

        wait_for(lambda: all(set(s["discovered"]) == ids - {s["id"]} for s in look()), 30,
                 "every node discovering the 19 others")
        discovered_in = time.monotonic() - up_at

        def converged() -> list[dict[str, Any]] | None:
            now = look()
            everyone = all(set(s["clock"]) == ids for s in now)
            return now if everyone and len(components(now)) == 1 else None

        wait_for(converged, 30, "one connected graph holding all 20 profiles")
        profiles_in = time.monotonic() - up_at

        announce = subprocess.run(
            ["ip", "netns", "exec", hosts[0].netns, sys.executable, "-m", "p2pnode.cli",
             "--home", str(homes[0]), "circle", "announce", "--name", "Stats together",
             "--description", "Weekly", "--course-title", "Statistics", "--venue", "Library",
             "--city", "Accra", "--start", _START, "--time", "17:00", "--language", "en",
             "--timezone", "UTC"],
            capture_output=True, text=True, env=child_env(), timeout=60, check=False,
        )
        assert announce.returncode == 0, announce.stderr
        announced = time.monotonic()
        wait_for(lambda: all("Stats together" in circle_names(h) for h in homes), 20,
                 "the announcement on every node")
        reached_in = time.monotonic() - announced
        # watch the first wave for 10 s past its startup series at least
        time.sleep(max(_SOAK, min(up.values()) + _STARTUP_SERIES + 10
                       - (time.monotonic() - counter_zero)))
        final = look()
        measured = time.monotonic() - counter_zero
        packets = [p for p in mdns_packets(packets_file) if p.get("t", 0) <= measured]
    # (leaving the `with` ended the nodes: their goodbyes come after `measured`)

    sessions = [len(s["sessions"]) for s in final]
    dialled = [sum(x["dialled"] for x in s["sessions"]) for s in final]
    links = {frozenset((s["id"], x["peer"])) for s in final for x in s["sessions"]}
    queries = [p for p in packets if p.get("kind") == "query"]
    responses = [p for p in packets if p.get("kind") == "response"]
    # IPv4 queries, counted per sender (each query also goes out once over IPv6)
    sent = Counter(p["from"] for p in queries if p["v"] == 4)
    # zeroconf's startup series ends 9 s after the browser starts: later, only refreshes
    late = [p for p in queries if p["v"] == 4 and p["t"] > up[p["from"]] + _STARTUP_SERIES]
    watched = sum(max(0.0, measured - t - _STARTUP_SERIES) for t in up.values())
    print(f"\n{NODES} nodes: all discovered in {discovered_in:.1f} s and all 20 profiles "
          f"everywhere in {profiles_in:.1f} s after the last came up; the announcement reached "
          f"all in {reached_in:.2f} s; test {time.monotonic() - started:.1f} s")
    print(f"sessions per node (cap {MAX_PEERS}): {sorted(sessions)} (most seen "
          f"{most_sessions}); dialled per node: {dict(Counter(dialled))}; {len(links)} links, "
          f"one component")
    print(f"mDNS in {measured:.0f} s: {len(queries)} queries (IPv4 + IPv6), {len(responses)} "
          f"responses; IPv4 queries per node: {sorted(sent.values())}; after each node's "
          f"startup series: {len(late)} in {watched:.0f} node-seconds "
          f"({60 * len(late) / max(watched, 1):.2f} per node per minute)")
    assert max(sessions) <= MAX_PEERS and most_sessions <= MAX_PEERS
    assert max(dialled) <= 2
    assert len(components(final)) == 1
    assert max(sent.values()) <= _QUERIES_PER_NODE, sent
    assert watched >= 100 and len(late) <= 2 + watched / 600, late
