"""bench/swarm.py measures what it claims: holders really limited to R, each of them used."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

import swarm


def test_swarm_bench_fetches_from_every_limited_holder(tmp_path: Path) -> None:
    """Two holders at 4 MB/s: both serve, no chunk is sent twice, and the fetch is no faster
    than the two limits allow (with each holder's quarter-second burst)."""
    args = argparse.Namespace(rate_mb=4.0, size_mib=8, holders=[2], dir=str(tmp_path))
    (row,) = asyncio.run(swarm.run(args))
    assert len(row["served"]) == 2 and all(row["served"])
    assert sum(row["served"]) == 8 * 4  # 256 KiB chunks: each sent once
    size = 8 * 1024 * 1024
    fastest = size / ((size - 2 * 1e6) / (2 * 4e6))  # both bursts spent at once, then R each
    assert row["achieved"] <= fastest * 1.1
