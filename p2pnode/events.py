"""What the node tells its user interfaces: events, and a bus to subscribe to them.

Events are frozen dataclasses under `NodeEvent`. `EventBus.subscribe()` gives an async iterator
with its own bounded queue; a subscriber too slow to keep up loses the oldest events and gets a
`Lagged` marker instead of slowing the node down.
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


class EventBus:
    """Fan-out of node events to any number of subscribers."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[NodeEvent]] = set()

    def publish(self, event: NodeEvent) -> None:
        for queue in self._queues:
            if queue.full():
                missed = 1
                with contextlib.suppress(asyncio.QueueEmpty):
                    dropped = queue.get_nowait()
                    if isinstance(dropped, Lagged):
                        missed += dropped.missed
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                    missed += 1
                queue.put_nowait(Lagged(missed))
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[NodeEvent]:
        """Yield events from now on, until the consumer stops iterating."""
        queue: asyncio.Queue[NodeEvent] = asyncio.Queue(_QUEUE_SIZE)
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)
