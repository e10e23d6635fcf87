"""What the node tells its user interfaces: events, and a bus to subscribe to them.

Events are frozen dataclasses under `NodeEvent`. `EventBus.subscribe()` gives an async iterator
with its own bounded queue; a subscriber too slow to keep up loses the oldest events and, before
its next event, gets one `Lagged` marker counting them, instead of slowing the node down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

_QUEUE_SIZE = 1000


@dataclass(frozen=True)
class NodeEvent:
    """Base of every event."""


@dataclass(frozen=True)
class EntryArrived(NodeEvent):
    """An entry was stored: ours (`own`), from a peer, or from an import."""

    entry_id: bytes
    author: bytes
    seq: int
    kind: str
    own: bool


@dataclass(frozen=True)
class PeerUp(NodeEvent):
    node_id: bytes
    address: str
    how: str


@dataclass(frozen=True)
class PeerDown(NodeEvent):
    node_id: bytes
    reason: str


@dataclass(frozen=True)
class PeerDiscovered(NodeEvent):
    node_id: bytes
    addresses: tuple[str, ...]
    port: int


@dataclass(frozen=True)
class TransferProgress(NodeEvent):
    blob_id: bytes
    done_bytes: int
    total_bytes: int
    peers: int


@dataclass(frozen=True)
class TransferFinished(NodeEvent):
    blob_id: bytes
    ok: bool
    message: str


@dataclass(frozen=True)
class Lagged(NodeEvent):
    """This subscriber fell behind; `missed` events were dropped for it."""

    missed: int


class _Subscription:
    """One subscriber's queue, and how many events it lost since it last read."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[NodeEvent] = asyncio.Queue(_QUEUE_SIZE)
        self.missed = 0


class EventBus:
    """Fan-out of node events to any number of subscribers; publishing never blocks."""

    def __init__(self) -> None:
        self._subscriptions: set[_Subscription] = set()

    def publish(self, event: NodeEvent) -> None:
        for sub in self._subscriptions:
            if sub.queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    sub.queue.get_nowait()  # the oldest goes: the subscriber is told below
                    sub.missed += 1
            sub.queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[NodeEvent]:
        """Yield events from now on, until the consumer stops iterating. After falling behind,
        a `Lagged` marker saying how many events were dropped comes before the next event."""
        sub = _Subscription()
        self._subscriptions.add(sub)
        try:
            while True:
                event = await sub.queue.get()
                if sub.missed:
                    missed, sub.missed = sub.missed, 0
                    yield Lagged(missed)
                yield event
        finally:
            self._subscriptions.discard(sub)
