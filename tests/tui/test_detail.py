"""The circle screen's actions, by a learner and by a facilitator, each on its own real node on
loopback: join (details sealed to the facilitators), leave, leave and delete, RSVP, calendar,
feedback; edit, cancel, meeting note, accept."""

from __future__ import annotations

import time

from textual.widgets import Input, Select, Static, TextArea
from tui_helpers import days_ago_ms, settle, two_nodes

from p2pnode import actions
from p2pnode.errors import NotAllowed
from tui.screens.detail import DetailScreen


async def open_circle(pilot, circle_id: bytes) -> DetailScreen:
    pilot.app.open_circle(circle_id)
    await settle(pilot)
    assert isinstance(pilot.app.screen, DetailScreen)
    return pilot.app.screen


async def members(node, circle_id: bytes) -> dict[str, str]:
    detail = await node.circle(circle_id)
    return {p.display_name: p.status for p in detail.participants}


async def test_join_seals_details_so_only_the_facilitator_reads_them(
        tmp_path, nodes, open_app, eventually):
    """Joining through the form: Ben's node opens the contact and answer; mine cannot, and the
    stored entry carries no plain copy of them."""
    ben, me, circle_id = await two_nodes(nodes, eventually)
    async with open_app(me, welcome=False) as pilot:
        await open_circle(pilot, circle_id)
        await pilot.press("j")
        await settle(pilot)
        form = pilot.app.screen
        assert form.query_one("#display_name", Input).value == "Ana"
        assert "sealed" in str(form.query_one(".hint").render())
        form.query_one("#contact", Input).value = "ana@example.org"
        form.query_one("#answer", Input).value = "A little Scratch"
        await pilot.click("#ok")
        await settle(pilot)
    await eventually(lambda: _has_join(ben, circle_id), timeout=10)
    joins = await ben.perform(actions.list_joins, circle_id)
    assert [(j["display_name"], j["details"]) for j in joins] == [
        ("Ana", {"contact": "ana@example.org", "answer": "A little Scratch"})]
    try:
        await me.perform(actions.list_joins, circle_id)
        raise AssertionError("a learner's node opened the sign-ups")
    except NotAllowed:
        pass
    entry = me.home.store.get_entry(joins[0]["join_id"])
    assert "sealed" in entry.body() and b"ana@example.org" not in entry.body_bytes


async def _has_join(node, circle_id):
    return (await members(node, circle_id)).get("Ana") == "pending"


async def test_rsvp_leave_and_leave_and_delete(tmp_path, nodes, open_app, eventually):
    """RSVP counts on the facilitator's node; leave removes me; leave-and-delete drops my
    sign-up's body on the facilitator's node too."""
    ben, me, circle_id = await two_nodes(nodes, eventually)
    join = await me.perform(actions.join_circle, circle_id, "Ana", contact="ana@example.org")
    async with open_app(me, welcome=False) as pilot:
        screen = await open_circle(pilot, circle_id)
        await pilot.press("r")
        await settle(pilot)
        await pilot.click("#ok")  # "Going"
        await settle(pilot)

        async def going():
            return (await ben.circle(circle_id)).meetings[0].attending == 1
        await eventually(going, timeout=10)

        await pilot.press("l")
        await settle(pilot)
        await eventually(lambda: _gone(ben, circle_id), timeout=10)
        assert screen.check_action("join", ()) is True

        await me.perform(actions.join_circle, circle_id, "Ana", contact="ana@example.org")
        await settle(pilot)
        await pilot.press("D")
        await settle(pilot)
        await pilot.click("#ok")
        await settle(pilot)
    await eventually(lambda: _gone(ben, circle_id), timeout=10)
    await eventually(lambda: ben.home.store.get_entry(join.id).body_bytes is None, timeout=10)


async def _gone(node, circle_id):
    return "Ana" not in await members(node, circle_id)


async def test_feedback_once_the_circle_has_ended(tmp_path, nodes, open_app, eventually):
    """Feedback is offered on an ended circle and its ratings reach the facilitator."""
    ben, me, circle_id = await two_nodes(nodes, eventually, start_in_days=-70)
    # joined before it began (an ended circle takes no sign-ups)
    await me.perform(actions.join_circle, circle_id, "Ana", at_ms=days_ago_ms(71))
    async with open_app(me, welcome=False) as pilot:
        screen = await open_circle(pilot, circle_id)
        assert screen.check_action("feedback", ()) is True
        await pilot.press("b")
        await settle(pilot)
        form = pilot.app.screen
        form.query_one("#course_rating", Select).value = 5
        form.query_one("#recommendation_rating", Select).value = 4
        form.query_one("#reason", TextArea).text = "Great pace."
        await pilot.click("#ok")
        await settle(pilot)

    async def rated():
        return (await ben.circle(circle_id)).ratings["course"] == 5
    await eventually(rated, timeout=10)


async def test_add_to_calendar_writes_an_ics_next_to_the_home(
        tmp_path, nodes, open_app, eventually):
    """The calendar file lands next to the home, holds every meeting, and an existing file is
    never overwritten."""
    _ben, me, circle_id = await two_nodes(nodes, eventually)
    async with open_app(me, welcome=False) as pilot:
        await open_circle(pilot, circle_id)
        await pilot.press("c")
        await settle(pilot)
        path = pilot.app.calendar_path(await me.circle(circle_id))
        assert path.parent == me.home_path.parent
        await pilot.click("#ok")
        await settle(pilot)
        assert path.read_bytes().count(b"BEGIN:VEVENT") == 6
        await pilot.press("c")
        await settle(pilot)
        await pilot.click("#ok")
        await settle(pilot)
        assert "already exists" in str(pilot.app.screen.query_one("#error").render())


async def test_facilitator_accepts_notes_edits_and_cancels(
        tmp_path, nodes, open_app, eventually):
    """On Ben's app: accept my sign-up, note a meeting, move the time, cancel — each reaches
    my node."""
    ben, me, circle_id = await two_nodes(nodes, eventually, start_in_days=-14)
    await me.perform(actions.join_circle, circle_id, "Ana", contact="ana@example.org")
    await eventually(lambda: _has_join(ben, circle_id), timeout=10)
    async with open_app(ben, welcome=False) as pilot:
        await open_circle(pilot, circle_id)
        await pilot.press("s")
        await settle(pilot)
        assert "ana@example.org" in str(pilot.app.screen.query_one("#signups").get_row_at(0))
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)

        async def accepted():
            return (await members(me, circle_id)).get("Ana") == "accepted"
        await eventually(accepted, timeout=10)

        await pilot.press("n")
        await settle(pilot)
        note = pilot.app.screen
        note.query_one("#attendance", Input).value = "7"
        note.query_one("#plus", TextArea).text = "good pace\nsnacks"
        note.query_one("#delta", TextArea).text = "start on time"
        await pilot.click("#ok")
        await settle(pilot)

        async def noted():
            notes = [n for m in (await me.circle(circle_id)).meetings for n in m.notes]
            return notes and notes[0]["plus"] == ["good pace", "snacks"]
        await eventually(noted, timeout=10)

        await pilot.press("e")
        await settle(pilot)
        pilot.app.screen.query_one("#meeting-time", Input).value = "19:15"
        await pilot.press("ctrl+s")
        await settle(pilot)

        async def moved():
            return (await me.circle(circle_id)).summary.meeting_time == "19:15"
        await eventually(moved, timeout=10)

        await pilot.press("x")
        await settle(pilot)
        pilot.app.screen.query_one("#reason", Input).value = "The library is closed."
        await pilot.click("#ok")
        await settle(pilot)

        async def cancelled():
            return (await me.circle(circle_id)).cancel_reason == "The library is closed."
        await eventually(cancelled, timeout=10)


async def test_few_sign_ups_close_to_the_start_are_pointed_out(tmp_path, nodes, open_app,
                                                              eventually):
    """Two days before the first meeting with nobody accepted, the circle's detail says that
    circles work best with 4-15 people (a hint: every action stays available)."""
    _ben, me, circle_id = await two_nodes(nodes, eventually, start_in_days=2)
    async with open_app(me, welcome=False, clock=time.time) as pilot:
        screen = await open_circle(pilot, circle_id)
        people = str(screen.query_one("#people", Static).render())
        assert "only 0 accepted sign-ups" in people and "4-15" in people
        assert screen.check_action("join", ()) is True
