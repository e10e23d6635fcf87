"""An upload limit for serving blobs: a token bucket that paces bytes to a rate.

Rules it keeps: the average over any stretch longer than `burst / rate` seconds stays at or
under the rate; a sender pays after sending (the bucket may go into debt and the next caller
waits it out), so a chunk bigger than the burst is never refused, only paced; several peers
served at once share the one bucket (the limit is the node's upload, like a Wi-Fi link).
Time and sleeping come from the caller (tests drive them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """Paces `take(n)` calls to `rate` bytes a second, with bursts of up to `burst` bytes.

    Args:
        rate: bytes per second (> 0).
        burst: bytes that may go out at once after an idle spell (default: a quarter second's).
    """

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"a rate limit must be positive, not {rate}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate / 4)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    async def take(self, size: int) -> None:
        """Account for `size` bytes about to be sent; wait while the bucket is in debt."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= size
        if self._tokens < 0:
            await self._sleep(-self._tokens / self.rate)
