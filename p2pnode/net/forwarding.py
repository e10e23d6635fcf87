"""The node's replication v2 forwarding (`protocol.forwarding.Forwarding`) on the event loop.

`ForwardingDriver` owns the sans-IO state and one timer task (`run`, owned by the node). Calls
that may change which peers owe notes wake those peers' senders; calls that may bring the
state's timer forward wake the task. With nothing lagging the task sleeps without a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from protocol.forwarding import Forwarding

if TYPE_CHECKING:
    from p2pnode.net.connection import PeerConnection


class ForwardingDriver:
    """One per node: which peer forwards which author to us, and when to replace it."""

    def __init__(self, clock: Callable[[], Mapping[bytes, int]],
                 connections: Callable[[], list[PeerConnection]]) -> None:
        self.state = Forwarding()
        self._clock = clock
        self._connections = connections
        self._changed = asyncio.Event()

    def session_ready(self, conn: PeerConnection) -> None:
        """A v2 session's final clock is in."""
        assert conn.peer_id is not None
        self._wake(self.state.add(conn.peer_id, conn.replication, self._clock(),
                                  time.monotonic()))

    def session_closed(self, conn: PeerConnection) -> None:
        if conn.peer_id is not None:
            self._wake(self.state.remove(conn.peer_id, conn.replication, self._clock(),
                                         time.monotonic()))

    def notes(self, conn: PeerConnection, ahead: list[tuple[bytes, int]]) -> None:
        if ahead and conn.peer_id is not None:
            self._wake(self.state.notes(conn.peer_id, ahead, self._clock(), time.monotonic()))

    def stored(self, authors: Iterable[bytes]) -> None:
        self.state.stored(authors, self._clock(), time.monotonic())

    def refused(self, conn: PeerConnection, authors: Iterable[bytes]) -> None:
        if conn.peer_id is not None:
            self._wake(self.state.refused(conn.peer_id, authors, self._clock(),
                                          time.monotonic()))

    def hold(self, authors: set[bytes]) -> None:
        """These authors forked: do not chase their feeds for a while."""
        if authors:
            self.state.hold(authors, time.monotonic())

    def suspend(self, seconds: float) -> None:
        """No stall switching for `seconds` (our disk is full)."""
        self.state.suspend(time.monotonic() + seconds)

    async def run(self) -> None:
        """Replace stalled forwarders when the state's timer says so (runs until cancelled)."""
        while True:
            deadline = self.state.get_timer()
            self._changed.clear()
            if deadline is None:
                await self._changed.wait()
                continue
            delay = deadline - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay)
                continue
            self._wake(self.state.handle_timer(self._clock(), time.monotonic()), timer=False)

    def _wake(self, peers: set[bytes], timer: bool = True) -> None:
        if timer:
            self._changed.set()
        if peers:
            for conn in self._connections():
                if conn.peer_id in peers:
                    conn.wake_sender()
