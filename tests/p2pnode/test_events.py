"""The node's event bus: fan-out to subscribers, and a slow subscriber never slows the node."""

from __future__ import annotations

import asyncio

from p2pnode import events as events_module
from p2pnode.events import EntryArrived, EventBus, Lagged, PeerDown


def _entry(n: int) -> EntryArrived:
    return EntryArrived(bytes([n % 256]) * 32, b"\x01" * 32, n, "circle", False)


async def test_every_subscriber_gets_every_event_in_order():
    """Two subscribers each see all events published after they subscribed, in order."""
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    got_first = asyncio.ensure_future(anext(first))
    got_second = asyncio.ensure_future(anext(second))
    await asyncio.sleep(0)
    bus.publish(PeerDown(b"\x02" * 32, "shutdown"))
    assert await got_first == await got_second == PeerDown(b"\x02" * 32, "shutdown")
    await first.aclose()
    await second.aclose()


async def test_a_slow_subscriber_loses_the_oldest_events_and_is_told(monkeypatch):
    """Past the queue size, old events are dropped and a Lagged marker counts them."""
    monkeypatch.setattr(events_module, "_QUEUE_SIZE", 4)
    bus = EventBus()
    stream = bus.subscribe()
    waiter = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    bus.publish(_entry(0))
    assert await waiter == _entry(0)
    for n in range(1, 11):
        bus.publish(_entry(n))  # never blocks, whatever the subscriber does
    seen = [await anext(stream) for _ in range(5)]  # the marker, then the 4 newest
    lagged = [e for e in seen if isinstance(e, Lagged)]
    assert len(lagged) == 1 and lagged[0].missed >= 6
    assert seen[-1] == _entry(10)
    await stream.aclose()


async def test_an_abandoned_subscription_is_removed():
    """Closing the iterator unsubscribes it: publishing no longer queues for it."""
    bus = EventBus()
    stream = bus.subscribe()
    waiter = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    bus.publish(_entry(1))
    await waiter
    await stream.aclose()
    assert bus._subscriptions == set()
