"""When a short file operation runs on the event loop, and when it goes to a thread.

Reading a chunk to serve and hashing and writing a received one take well under a millisecond
when the page cache is warm, and handing each to a thread costs more CPU than that (a future, a
wake-up of the thread and one of the loop, the GIL changing hands). So `serving` and `download`
run them on the loop while they are quick, and in the blob I/O threads while they are not: a
cold file on a slow disk, or writes throttled by the kernel, must never stall the loop that
keeps every session alive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")


class InlineGate:
    """Says whether the next operation of one kind may run on the event loop.

    Inline while operations are quick. One that takes longer than `slow` seconds, or a recent
    average (exponentially weighted) above `average`, sends the following ones to a thread for
    `cooldown` seconds; after that the loop is tried again.
    """

    __slots__ = ("_average", "_clock", "_cooldown", "_mean", "_slow", "_threads_until")

    #: weight of the newest operation in the running average
    _WEIGHT = 0.2

    def __init__(self, *, slow: float, average: float, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._slow = slow
        self._average = average
        self._cooldown = cooldown
        self._clock = clock
        self._mean = 0.0
        self._threads_until = float("-inf")

    @property
    def inline(self) -> bool:
        return self._clock() >= self._threads_until

    def record(self, seconds: float) -> None:
        """An operation run on the loop took `seconds`."""
        self._mean += self._WEIGHT * (seconds - self._mean)
        if seconds > self._slow or self._mean > self._average:
            self._threads_until = self._clock() + self._cooldown
            self._mean = 0.0

    def run(self, pool: Executor, fn: Callable[..., T], *args: Any,
            allow_inline: bool = True) -> asyncio.Future[T]:
        """`fn(*args)`: at once on the running loop while the gate allows it (and
        `allow_inline`), timed; else in `pool`. Either way its result or exception comes as a
        future of the running loop."""
        loop = asyncio.get_running_loop()
        if not (allow_inline and self.inline):
            return loop.run_in_executor(pool, fn, *args)
        future: asyncio.Future[T] = loop.create_future()
        started = time.perf_counter()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # delivered as a thread's would be
            future.set_exception(exc)
        self.record(time.perf_counter() - started)
        return future
