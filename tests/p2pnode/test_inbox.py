"""What the node keeps for its own user: my circles, notices taken once per home, interface
preferences, and adding a peer by address."""

from __future__ import annotations

import pytest
from builders import DAY_MS, NOW_MS, Feed, circle_body, identity_from_seed

from p2pnode import actions
from p2pnode.errors import InvalidInput
from p2pnode.store import inbox


async def test_my_circles_are_those_i_facilitate_or_joined(nodes):
    """Facilitating and joined circles are listed with my role; one I left is not."""
    node = await nodes.start("me")
    await node.perform(actions.set_profile, "Ana")
    mine = await node.perform(actions.announce_circle, circle_body([], name="Mine"))
    other = Feed(identity_from_seed("other"), start_ms=NOW_MS - DAY_MS)
    joined = other.add("circle", circle_body([other.node_id], name="Joined"))
    left = other.add("circle", circle_body([other.node_id], name="Left"))
    node.home.store.ingest(other.entries, now_ms=NOW_MS)
    await node.perform(actions.join_circle, joined.id, "Ana")
    await node.perform(actions.join_circle, left.id, "Ana")
    await node.perform(actions.leave_circle, left.id)
    assert await node.my_circles() == {mine.id: "facilitating", joined.id: "joined"}


async def test_notices_are_taken_once_and_only_about_my_circles(nodes):
    """A facilitator's reschedule and cancel of a circle I joined make notices; another
    circle's, an outsider's forged update and my own entries do not; each is taken once."""
    node = await nodes.start("me")
    await node.perform(actions.set_profile, "Ana")
    ben = Feed(identity_from_seed("ben"), start_ms=NOW_MS - DAY_MS)
    mine = ben.add("circle", circle_body([ben.node_id], name="Joined one"))
    theirs = ben.add("circle", circle_body([ben.node_id], name="Not mine"))
    node.home.store.ingest(ben.entries, now_ms=NOW_MS)
    await node.perform(actions.join_circle, mine.id, "Ana")
    assert await node.take_notices() == []
    ben.add("circle.update", {"circle": mine.id, "meetings": ["2027-02-01"]})
    ben.add("circle.update", {"circle": theirs.id, "meetings": ["2027-02-01"]})
    ben.add("circle.cancel", {"circle": mine.id, "reason": "flood"})
    outsider = Feed(identity_from_seed("outsider"), start_ms=NOW_MS - DAY_MS)
    outsider.add("circle.update", {"circle": mine.id, "name": "Hijacked"})
    node.home.store.ingest([*ben.entries, *outsider.entries], now_ms=NOW_MS)
    notices = await node.take_notices()
    assert [(n.kind, n.text) for n in notices] == [
        ("rescheduled", "Joined one was rescheduled: meetings now 2027-02-01 to 2027-02-01 (1)"),
        ("cancelled", "Joined one was cancelled: flood"),
    ]
    assert await node.take_notices() == []


async def test_facilitators_hear_of_sign_ups_and_learners_of_decisions(nodes, eventually):
    """A sign-up to my circle is a notice for me; Ben's accept of my sign-up is one for me."""
    node = await nodes.start("me")
    await node.perform(actions.set_profile, "Ana")
    mine = await node.perform(actions.announce_circle, circle_body([], name="Mine"))
    ben = Feed(identity_from_seed("ben"), start_ms=NOW_MS - DAY_MS)
    his = ben.add("circle", circle_body([ben.node_id], name="His"))
    ben.add("join", {"circle": mine.id, "action": "join", "display_name": "Ben"})
    node.home.store.ingest(ben.entries, now_ms=NOW_MS)
    my_join = await node.perform(actions.join_circle, his.id, "Ana")
    ben.add("join.accept", {"circle": his.id, "join": my_join.id, "accepted": True})
    node.home.store.ingest(ben.entries, now_ms=NOW_MS)
    assert [n.text for n in await node.take_notices()] == [
        "Mine: Ben signed up", "His: your sign-up was accepted"]


async def test_the_notice_mark_survives_a_restart(nodes):
    """Taken notices stay taken after the node restarts (the mark is in the home)."""
    node = await nodes.start("me")
    await node.perform(actions.set_profile, "Ana")
    ben = Feed(identity_from_seed("ben"), start_ms=NOW_MS - DAY_MS)
    circle = ben.add("circle", circle_body([ben.node_id]))
    node.home.store.ingest(ben.entries, now_ms=NOW_MS)
    await node.perform(actions.join_circle, circle.id, "Ana")
    ben.add("circle.cancel", {"circle": circle.id})
    node.home.store.ingest(ben.entries, now_ms=NOW_MS)
    assert len(await node.take_notices()) == 1
    await node.close()
    again = await nodes.start("me")
    assert await again.take_notices() == []
    assert again.home.store.get_meta(inbox.NOTICE_MARK) is not None


async def test_preferences_are_kept_per_home(nodes):
    """A preference set by an interface reads back after a restart and can be removed."""
    node = await nodes.start("me")
    assert await node.preference("tui.welcomed") is None
    await node.set_preference("tui.welcomed", "1")
    await node.close()
    again = await nodes.start("me")
    assert await again.preference("tui.welcomed") == "1"
    await again.set_preference("tui.welcomed", None)
    assert await again.preference("tui.welcomed") is None


async def test_add_peer_dials_and_refuses_a_bad_address(nodes, eventually):
    """A HOST:PORT is dialled and connects; anything else is InvalidInput, nothing dialled."""
    a = await nodes.start("a")
    b = await nodes.start("b")
    with pytest.raises(InvalidInput, match="HOST:PORT"):
        b.add_peer("not an address")
    b.add_peer(f"127.0.0.1:{a.port}")
    await eventually(lambda: a.peers.open_connections(), timeout=10)


async def test_leave_and_delete_drops_every_sign_up_body(nodes):
    """Leaving with deletion drops the bodies of my join and leave entries for the circle."""
    node = await nodes.start("me")
    await node.perform(actions.set_profile, "Ana")
    ben = Feed(identity_from_seed("ben"), start_ms=NOW_MS - DAY_MS)
    circle = ben.add("circle", circle_body([ben.node_id]))
    node.home.store.ingest(ben.entries, now_ms=NOW_MS)
    first = await node.perform(actions.join_circle, circle.id, "Ana")
    await node.perform(actions.leave_circle, circle.id)
    second = await node.perform(actions.join_circle, circle.id, "Ana")
    await node.perform(actions.leave_and_delete_signup, circle.id)
    for entry_id in (first.id, second.id):
        assert node.home.store.get_entry(entry_id).body_bytes is None
    assert circle.id not in await node.my_circles()
