"""Ingest 50 000 foreign entries from 100 authors into a fresh store, from an export file.

The entries are the realistic mix of `workload.py` (circles, updates, joins, RSVPs, notes, …), so
every derived table is written. Prints entries/s next to baselines measured in the same run: the
bare Ed25519 verification rate on one thread and on all cores, and Hypercore replicating as many
entries over loopback TCP (when node and npm are installed; see `hypercore.py`).
Target: at least the all-core verification rate, reachable only because a run of one author's
entries is authenticated by one signature plus the prev-hash chain
(protocol.feed.authenticate_run).
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

from hypercore import hypercore_rate
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
    parser.add_argument("--no-hypercore", action="store_true",
                        help="skip the Hypercore baseline (it takes a minute)")
    args = parser.parse_args()
    hypercore, hypercore_note = (None, "Hypercore baseline skipped (--no-hypercore)")
    if not args.no_hypercore:
        hypercore, hypercore_note = hypercore_rate(args.entries)
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
    print(f"ingest from export ({args.entries}/{args.authors}): {rate:9,.0f} entries/s"
          f" in {elapsed:.2f} s")
    print(f"ratio to 1-thread verification:  {rate / one:.2f}x")
    print(f"ratio to all-core verification:  {rate / many:.2f}x"
          f"  (target >= 1.0x: {'met' if rate >= many else 'NOT met'})")
    print(hypercore_note)
    if hypercore is not None:
        print(f"hypercore replicate, tcp:        {hypercore:9,.0f} entries/s")
        print(f"ratio to Hypercore:              {rate / hypercore:.2f}x")


if __name__ == "__main__":
    main()
