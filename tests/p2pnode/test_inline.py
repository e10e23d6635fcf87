"""When short file operations run on the event loop (p2pnode/inline.py)."""

from __future__ import annotations

from p2pnode.inline import InlineGate


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
