"""The circle rules that live in derived state hold on every node: two real nodes syncing over
127.0.0.1 agree on a re-joined learner's standing, on the meetings a reschedule must keep, and
on a cancellation being final, even when the records were written without the local checks
(as an older node or another implementation might write them)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from builders import circle_body

from p2pnode import actions
from p2pnode.home import Home
from p2pnode.store import queries

DAY_MS = 24 * 3600 * 1000


def raw_append(home: Home, kind: str, body: dict[str, Any]) -> None:
    """Sign a record straight into our feed, skipping the actions' checks."""
    home.store.append(home.identity, kind, body, now_ms=actions.now_ms())


async def test_two_nodes_derive_the_same_circle_rules(nodes, eventually):
    """Ana's and Ben's nodes both show: Ben's re-join keeps his acceptance; an update that
    lists only new dates keeps the two meetings already held (still running); an update and a
    second cancel written after the cancel change nothing."""
    ana = await nodes.start("ana")
    ben = await nodes.start("ben", peers=[ana])
    await ana.set_profile("Ana")
    await ben.set_profile("Ben")
    now = int(time.time() * 1000)
    first = dt.datetime.fromtimestamp(now / 1000, dt.UTC).date() - dt.timedelta(days=8)
    record = circle_body([ana.node_id], start=first.isoformat(), timezone="UTC",
                         meeting_time="00:00", signup_limit=1)
    circle = (await ana.perform(actions.announce_circle, record, at_ms=now - 9 * DAY_MS)).id
    held = [first.isoformat(), (first + dt.timedelta(weeks=1)).isoformat()]

    async def on_both(check) -> None:
        for node in (ana, ben):
            await eventually(lambda node=node: _holds(node, circle, check), timeout=10)

    await on_both(lambda d: d is not None)
    join = await ben.join_circle(circle, "Ben")
    await eventually(lambda: _holds(ana, circle, lambda d: d.participants), timeout=10)
    await ana.perform(actions.decide_join, join.id)
    await on_both(lambda d: [p.status for p in d.participants] == ["accepted"])
    await ben.join_circle(circle, "Benjamin")
    await on_both(lambda d: [(p.display_name, p.status) for p in d.participants]
                  == [("Benjamin", "accepted")])

    later = [(first + dt.timedelta(weeks=w)).isoformat() for w in (3, 4)]
    await ana.perform(raw_append, "circle.update", {"circle": circle, "meetings": later})
    await on_both(lambda d: [m.date for m in d.meetings] == [*held, *later]
                  and d.summary.status == "running")

    await ana.perform(actions.cancel_circle, circle, "first reason")
    await ana.perform(raw_append, "circle.update", {"circle": circle, "name": "Back on"})
    await ana.perform(raw_append, "circle.cancel", {"circle": circle, "reason": "second"})
    await ana.set_profile("Ana, later")  # feeds arrive in seq order: once Ben has this, he has
    await eventually(lambda: _name_at(ben, ana.node_id, "Ana, later"), timeout=10)  # the rest
    await on_both(lambda d: d.summary.status == "cancelled" and d.cancel_reason == "first reason"
                  and d.summary.name == "Python for Everybody")


async def _holds(node, circle: bytes, check) -> bool:
    return bool(check(await node.circle(circle)))


async def _name_at(node, author: bytes, name: str) -> bool:
    profile = await node.perform(lambda home: queries.profile(home.store.conn, author))
    return bool(profile and profile["name"] == name)
