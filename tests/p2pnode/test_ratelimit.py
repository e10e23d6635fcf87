"""The upload limit (p2pnode/blobs/ratelimit.py and `run --upload-limit`): the token bucket on a
clock the test drives, and a real node serving no faster than its limit."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from p2pnode.blobs.ratelimit import TokenBucket
from p2pnode.cli.main import main


class FakeTime:
    """A clock that moves only when the bucket sleeps (so the test sees every wait)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_the_bucket_paces_to_its_rate_after_a_burst() -> None:
    """A full bucket lets its burst go at once; past it, 1 MB at 1 MB/s takes one second in
    all, however it is cut."""
    t = FakeTime()
    bucket = TokenBucket(1_000_000, burst=250_000, clock=t.clock, sleep=t.sleep)
    await bucket.take(250_000)
    assert t.slept == []  # the burst
    for _ in range(4):
        await bucket.take(250_000)
    assert sum(t.slept) == pytest.approx(1.0)


async def test_a_chunk_bigger_than_the_burst_is_paced_not_refused() -> None:
    """A 256 KiB chunk through a bucket with a 64 KiB burst goes, and the wait covers it."""
    t = FakeTime()
    bucket = TokenBucket(65_536, burst=65_536, clock=t.clock, sleep=t.sleep)
    await bucket.take(262_144)
    assert t.slept == [pytest.approx(3.0)]


async def test_idle_time_refills_only_up_to_the_burst() -> None:
    """A long pause does not bank more than the burst: the rate holds after it."""
    t = FakeTime()
    bucket = TokenBucket(1000, burst=100, clock=t.clock, sleep=t.sleep)
    t.now += 3600
    await bucket.take(1100)
    assert t.slept == [pytest.approx(1.0)]


def test_a_rate_must_be_positive() -> None:
    """A zero or negative rate is a clear error, not a division by zero later."""
    with pytest.raises(ValueError):
        TokenBucket(0)


async def test_a_node_with_an_upload_limit_serves_no_faster(nodes, tmp_path: Path) -> None:
    """8 MiB from a node limited to 8 MB/s takes at least ~0.8 s (the first quarter-second's
    burst aside); the same file from an unlimited node is not held back."""
    data = random.Random(5).randbytes(8 * 1024 * 1024)
    (tmp_path / "f.bin").write_bytes(data)
    slow = await nodes.start("slow", upload_rate=8e6)
    shared = await slow.blobs.share(tmp_path / "f.bin")
    fetcher = await nodes.start("fetcher", peers=[slow])
    deadline = time.monotonic() + 10
    while not fetcher.blobs.holders(shared.blob_id):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    start = time.monotonic()
    final = [u async for u in fetcher.fetch_progress(shared.blob_id, None)][-1]
    elapsed = time.monotonic() - start
    assert final.get("done"), final
    assert Path(final["path"]).read_bytes() == data
    assert elapsed >= (len(data) - 2e6) / 8e6 * 0.95


def test_run_refuses_a_nonsense_upload_limit(tmp_path: Path, capsys) -> None:
    """`run --upload-limit 0` is a usage error (exit 2) naming the option."""
    with pytest.raises(SystemExit) as stop:
        main(["--home", str(tmp_path / "h"), "run", "--upload-limit", "0"])
    assert stop.value.code == 2
    assert "--upload-limit" in capsys.readouterr().err
