"""Swarm downloads from slow peers: what learners meet on Wi-Fi, where each laptop sends at
20-40 MB/s. k = 1, 2, 4 holders, each serving at most R (the node's `--upload-limit`, one
process per node, 127.0.0.1 only), one fetcher. Target: the fetch reaches at least 0.9 * k * R
(until the receiver's own limit, which on loopback is far above 4 * 40 MB/s).

The baseline printed beside each figure is k * R, the most the holders may send; a ratio under
0.9 means the downloader leaves holders idle (its windows, its requests or its plan).

    .venv/bin/python bench/swarm.py [--rate-mb 20] [--size-mib 64] [--holders 1 2 4]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import transfer

MiB = 1024 * 1024


def transfer_args(rate: float, timeout: float) -> argparse.Namespace:
    """What bench/transfer.py's `multi_process` reads, for holders limited to `rate` B/s."""
    return argparse.Namespace(profile=None, set=[], frame_rate=None, serves=1,
                              timeout=timeout, upload_rate=rate)


async def one(root: Path, source: Path, holders: int, rate: float) -> dict:
    homes, blob_id = transfer.prepare_holders(root / f"k{holders}", source, holders)
    size = source.stat().st_size
    timeout = 30 + 3 * size / (holders * rate)
    try:
        result = await transfer.multi_process(root, homes, blob_id, transfer_args(rate, timeout))
    finally:
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
    if not result.get("done"):
        raise SystemExit(f"the fetch from {holders} holders failed: {result}")
    achieved = size / result["seconds"]
    return {"holders": holders, "rate": rate, "achieved": achieved,
            "ratio": achieved / (holders * rate), "served": result["served"]}


async def run(args: argparse.Namespace) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="p2pnode-swarm-", dir=args.dir) as tmp:
        root = Path(tmp)
        source = root / "file.bin"
        transfer.make_file(source, args.size_mib * MiB)
        return [await one(root, source, k, args.rate_mb * 1e6) for k in args.holders]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate-mb", type=float, default=20.0, help="R, per holder, in MB/s")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--holders", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--dir", help="where the temporary homes go (default: the system's)")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print(f"swarm fetch of {args.size_mib} MiB, each holder limited to {args.rate_mb:g} MB/s:")
    for row in rows:
        k = row["holders"]
        verdict = "met" if row["ratio"] >= 0.9 else "NOT met"
        print(f"  {k} holder{'s' if k > 1 else ' '}: {row['achieved'] / 1e6:6.1f} MB/s"
              f"  = {row['ratio']:.2f} x k*R ({k * row['rate'] / 1e6:.0f} MB/s)"
              f"  chunks per holder {row['served']}  target >= 0.9: {verdict}")


if __name__ == "__main__":
    main()
