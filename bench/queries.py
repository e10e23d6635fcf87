"""Listing and search times on a store holding 10 000 circles of realistic traffic.

The store is filled by importing the benchmark workload (`workload.py`, 125 000 entries by
default: 8 % of them circles, the rest updates, joins, RSVPs, notes, feedback and resources
about them). Each query the TUI and CLI make is timed as the median of several runs.
Target: every listing and search answers in under 100 ms (a screen redraw).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import _BASE_MS, make_feeds, write_export

from p2pnode.store import queries
from p2pnode.store.database import Store
from p2pnode.store.exchange import import_entries

_RUNS = 7


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """(median seconds over _RUNS calls, the last result)."""
    times, result = [], None
    for _ in range(_RUNS):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=125_000)
    parser.add_argument("--authors", type=int, default=200)
    args = parser.parse_args()
    print(f"building {args.entries} entries from {args.authors} authors…", flush=True)
    feeds = make_feeds(args.authors, args.entries)
    # "now" is when the last entry was written: every circle is upcoming or running
    now_ms = _BASE_MS + args.entries * 1000
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "bench.p2p"
        write_export(feeds, export)
        with Store(Path(tmp) / "store.sqlite3") as store:
            start = time.perf_counter()
            report = import_entries(store, export, now_ms=now_ms)
            elapsed = time.perf_counter() - start
            assert report.rejected == 0, report.reasons[:3]
            conn = store.conn
            circles = conn.execute("SELECT count(*) FROM circles").fetchone()[0]
            print(f"store: {store.entry_count()} entries, {circles} circles"
                  f" (imported in {elapsed:.1f} s)")
            some = conn.execute("SELECT id FROM circles ORDER BY rowid LIMIT 1 OFFSET ?",
                                (circles // 2,)).fetchone()[0]
            cases = [
                ("list upcoming (first 500)", queries.list_circles, {}),
                ("list, past included (500)", queries.list_circles, {"include_past": True}),
                ("search 'python'", queries.list_circles, {"search": "python"}),
                ("search 'library cape'", queries.list_circles, {"search": "library cape"}),
                ("search, no match", queries.list_circles, {"search": "zzzzqx"}),
                ("topic 'statistics'", queries.list_circles, {"topic": "statistics"}),
                ("weekday Monday", queries.list_circles, {"weekday": 0}),
                ("list, limit 50", queries.list_circles, {"limit": 50}),
            ]
            worst = 0.0
            for label, fn, kwargs in cases:
                seconds, found = timed(fn, conn, now_ms=now_ms, **kwargs)
                worst = max(worst, seconds)
                print(f"{label:28s} {seconds * 1000:8.1f} ms  ({len(found)} circles)")
            seconds, _ = timed(queries.get_circle, conn, some, now_ms=now_ms)
            worst = max(worst, seconds)
            print(f"{'one circle in full':28s} {seconds * 1000:8.1f} ms")
            seconds, found = timed(queries.list_resources, conn)
            print(f"{'all resources':28s} {seconds * 1000:8.1f} ms  ({len(found)} resources)")
    print(f"target < 100 ms per listing:  {'met' if worst < 0.1 else 'NOT met'}"
          f" (slowest {worst * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
