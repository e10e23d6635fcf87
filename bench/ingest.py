"""Ingest 50 000 foreign entries from 100 authors into a fresh store, from an export file.

Prints entries/s next to the bare Ed25519 verification rate measured in the same run, on one
thread and on all cores, and the ratios. Target: >= 20 000 entries/s, above even the all-core
verification rate: reachable only because a run of one author's entries is authenticated by
one signature plus the prev-hash chain (protocol.feed.authenticate_run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import make_feeds, write_export

from p2pnode.store.database import Store
from p2pnode.store.exchange import import_entries


def verify_rate(entries, threads: int) -> float:
    """Bare Ed25519 verifications per second over `entries`, spread over `threads` threads."""
    chunks = [entries[i::threads] for i in range(threads)]

    def work(chunk) -> None:
        for entry in chunk:
            entry.verify()

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, chunks))
    return len(entries) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--authors", type=int, default=100)
    args = parser.parse_args()
    print(f"building {args.entries} entries from {args.authors} authors…", flush=True)
    feeds = make_feeds(args.authors, args.entries)
    flat = [e for feed in feeds for e in feed]
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "bench.p2p"
        write_export(feeds, export)
        size_mb = export.stat().st_size / 1e6
        sample = flat[:10_000]
        one = verify_rate(sample, 1)
        cores = os.cpu_count() or 1
        many = verify_rate(sample, cores)
        store = Store(Path(tmp) / "store.sqlite3")
        start = time.perf_counter()
        report = import_entries(store, export, now_ms=int(time.time() * 1000))
        elapsed = time.perf_counter() - start
        stored = store.entry_count()
        store.close()
    assert report.rejected == 0 and stored == args.entries, (report.rejected, report.reasons[:3])
    rate = args.entries / elapsed
    print(f"export file: {size_mb:.1f} MB")
    print(f"ed25519 verify, 1 thread:        {one:9,.0f} /s")
    print(f"ed25519 verify, {cores} threads:       {many:9,.0f} /s  ({many / one:.2f}x)")
    print(f"ingest from export (50k/100):    {rate:9,.0f} entries/s in {elapsed:.2f} s")
    print(f"ratio to 1-thread verification:  {rate / one:.2f}x")
    print(f"ratio to all-core verification:  {rate / many:.2f}x")
    print(f"target 20,000 entries/s:         {'met' if rate >= 20_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
