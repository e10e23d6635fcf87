"""When short file operations run on the event loop (p2pnode/inline.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from p2pnode.blobs.inline import InlineGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_quick_operations_stay_inline() -> None:
    gate = InlineGate(slow=0.005, average=0.002, clock=Clock())
    for _ in range(1000):
        assert gate.inline
        gate.record(0.0003)
    assert gate.inline


def test_one_slow_operation_sends_the_next_ones_to_a_thread_for_the_cooldown() -> None:
    clock = Clock()
    gate = InlineGate(slow=0.005, average=0.002, cooldown=30.0, clock=clock)
    gate.record(0.0003)
    gate.record(0.050)
    assert not gate.inline
    clock.now += 29.9
    assert not gate.inline
    clock.now += 0.2
    assert gate.inline  # tried again, with a fresh average
    gate.record(0.0003)
    assert gate.inline


def test_operations_that_are_each_tolerable_but_slow_on_average_go_to_a_thread() -> None:
    """A cold disk at ~3 ms a read never trips the 5 ms limit, but it trips the average."""
    gate = InlineGate(slow=0.005, average=0.002, clock=Clock())
    trips = 0
    while gate.inline:
        gate.record(0.003)
        trips += 1
        assert trips < 20
    assert trips > 1


async def test_run_inline_then_in_the_pool_with_results_and_errors_as_futures() -> None:
    gate = InlineGate(slow=0.005, average=0.002)
    where: list[str] = []

    def job(value: int) -> int:
        where.append(threading.current_thread().name)
        if value < 0:
            raise ValueError("negative")
        return value * 2

    with ThreadPoolExecutor(1, thread_name_prefix="test-pool") as pool:
        done = gate.run(pool, job, 21)
        assert done.done() and done.result() == 42  # ran at once, on the loop
        failed = gate.run(pool, job, -1)
        assert isinstance(failed.exception(), ValueError)
        assert where == ["MainThread", "MainThread"]
        gate.record(1.0)  # a slow one: the next go to the pool
        assert await gate.run(pool, job, 5) == 10
        assert where[-1].startswith("test-pool")
        assert await gate.run(pool, job, 6, allow_inline=False) == 12
