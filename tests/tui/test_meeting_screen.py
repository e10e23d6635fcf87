"""Meeting mode in the app, with a real facilitator node (Ben) and a real learner node (Ana) on
loopback: the facilitator runs a whole meeting on a clock the test drives, ticks attendance,
types the plus/delta and finishes; the learner's open app shows the note as it arrives, and it
verifies as Ben's signed `meeting.note` with the attendance count. Quitting mid-meeting and
reopening resumes it, and the note is written once."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from builders import circle_body
from textual.widgets import Digits, Input, SelectionList, Static
from tui_helpers import days_from_today, notifications, screen_text, settle, two_nodes

from p2pnode import actions, meeting
from p2pnode.net.remote import RemoteNode
from protocol.identity import node_id_text
from tui.run import open_node
from tui.screens.detail import DetailScreen
from tui.screens.meeting import MeetingScreen

MINUTE = 60.0


class Clock:
    """The app's one clock, moved by the test."""

    def __init__(self, at: float) -> None:
        self.now = at

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * MINUTE


async def circle_meeting_today(nodes, eventually):
    """Ben's circle began a week ago, so it meets today (its second meeting); Ana is accepted
    and said she would come; last week's note says what went well. Returns the nodes, the
    circle, today's date and a clock at noon that day in the circle's zone."""
    ben, me, circle = await two_nodes(nodes, eventually, start_in_days=-7)
    detail = await ben.circle(circle)
    last_week, today = detail.meetings[0].date, detail.meetings[1].date
    join = await me.perform(actions.join_circle, circle, "Ana")

    async def ben_has_join() -> bool:
        return bool(await ben.perform(actions.list_joins, circle))

    await eventually(ben_has_join, timeout=10)
    await ben.perform(actions.decide_join, join.id, True)
    await me.perform(actions.rsvp, circle, date=today, attending=True)
    await ben.perform(actions.add_meeting_note, circle, date=last_week, attendance=5,
                      plus=["good snacks"], delta=["start on time"])

    async def ben_has_rsvp() -> bool:
        return (await ben.circle(circle)).meetings[1].attending == 1

    await eventually(ben_has_rsvp, timeout=10)
    noon = dt.datetime.combine(dt.date.fromisoformat(today), dt.time(12),
                               ZoneInfo(detail.summary.timezone))
    return ben, me, circle, today, Clock(noon.timestamp())


async def open_meeting_mode(pilot, circle: bytes) -> MeetingScreen:
    pilot.app.open_circle(circle)
    await settle(pilot)
    assert isinstance(pilot.app.screen, DetailScreen)
    await pilot.press("m")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, MeetingScreen) and screen.draft is not None
    return screen


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def type_item(pilot, screen: MeetingScreen, column: str, text: str) -> None:
    screen.query_one(f"#{column}-input", Input).focus()
    await pilot.press(*text, "enter")
    await settle(pilot)


def notes_of(node, circle: bytes, date: str) -> list:
    return [e for e in node.home.store.iter_all_entries()
            if e.kind == "meeting.note" and e.body()["circle"] == circle
            and e.body()["date"] == date]


async def test_a_meeting_run_in_the_app_reaches_the_learner_live(nodes, open_app, eventually):
    """Ben runs the four phases on the driven clock, ticks Ana present, types plus and delta
    and finishes; Ana's open detail shows the note without a key press, and it is Ben's signed
    meeting.note with attendance 1. A phase that runs over says so once."""
    ben, me, circle, today, clock = await circle_meeting_today(nodes, eventually)
    async with open_app(me, clock=clock, welcome=False) as learner:
        learner.app.open_circle(circle)
        await settle(learner)
        seen = learner.app.screen
        day = text_of(seen, "#meeting-day")
        assert "Today: meeting 2 of 6" in day and "18:40 coursework" in day
        assert "Last week's plus/delta" in day and "+ good snacks" in day
        assert "Today's plus/delta" not in day

        async with open_app(ben, clock=clock, welcome=False) as pilot:
            screen = await open_meeting_mode(pilot, circle)
            assert screen.draft.date == today and not screen.draft.dry_run
            assert "meeting 2 of 6" in text_of(screen, "#meeting-title")
            attendance = screen.query_one("#attendance-list", SelectionList)
            assert attendance.option_count == 1 and "said yes" in str(
                attendance.get_option_at_index(0).prompt)
            await pilot.press("s")  # the clock starts
            await pilot.press("space")  # Ana came (the first row is highlighted)
            await settle(pilot)
            assert screen.draft.present == (node_id_text(me.node_id),)
            assert "Came 1" in text_of(screen, "#attendance-title")

            clock.advance(4)
            screen.tick()
            assert screen.query_one("#phase-time", Digits).value == "06:00"
            clock.advance(7)  # 11 minutes of a 10-minute check-in
            screen.tick()
            screen.tick()
            await settle(pilot)
            assert screen.query_one("#phase-time", Digits).value == "+01:00"
            over = [n for n in notifications(pilot.app) if n.startswith("Time:")]
            assert len(over) == 1 and "Check-in has had its 10 minutes" in over[0]

            for _ in range(3):
                await pilot.press("n")
                clock.advance(1)
            await settle(pilot)
            assert screen.draft.phase == meeting.PLUS_DELTA
            assert pilot.app.focused is screen.query_one("#plus-input")  # ready to type
            await type_item(pilot, screen, "plus", "pairing worked")
            await type_item(pilot, screen, "delta", "more breaks")
            await pilot.press("escape")  # out of the text box, keys work again
            await pilot.press("f")
            await settle(pilot)
            assert "1 came · 1 plus · 1 delta" in screen_text(pilot.app)
            await pilot.click("#ok")
            await settle(pilot)
            assert isinstance(pilot.app.screen, DetailScreen)
            assert any("Meeting note published: 1 came" in n
                       for n in notifications(pilot.app))

        async def shown() -> bool:
            await settle(learner)
            return "+ pairing worked" in text_of(learner.app.screen, "#meeting-day")

        await eventually(shown, timeout=10)
        day = text_of(learner.app.screen, "#meeting-day")
        assert "Today's plus/delta" in day and "Δ more breaks" in day and "1 came" in day

    (note,) = notes_of(me, circle, today)
    note.verify()
    assert note.author == ben.node_id
    assert note.body()["attendance"] == 1
    assert (note.body()["plus"], note.body()["delta"]) == (["pairing worked"], ["more breaks"])


async def test_quitting_mid_meeting_resumes_and_the_note_is_written_once(
        nodes, open_app, eventually):
    """Ben quits the app during coursework; reopened later, meeting mode is in coursework with
    the time that passed counted (redrawn by the app's own interval), Ana ticked and the plus
    item kept; finishing writes one note, and opening meeting mode again cannot write another."""
    ben, me, circle, today, clock = await circle_meeting_today(nodes, eventually)
    async with open_app(ben, clock=clock, welcome=False) as pilot:
        screen = await open_meeting_mode(pilot, circle)
        await pilot.press("s", "space")
        await type_item(pilot, screen, "plus", "the quiz")
        clock.advance(10)
        await pilot.press("escape", "n")  # into coursework, then quit with the meeting on
        clock.advance(5)
        await settle(pilot)
        before = screen.draft
    assert before is not None and before.phase == 1

    clock.advance(15)  # the app was closed for a quarter of an hour
    async with open_app(ben, clock=clock, welcome=False) as pilot:
        screen = await open_meeting_mode(pilot, circle)
        assert screen.draft == before
        assert any("Resumed" in n for n in notifications(pilot.app))
        assert "COURSEWORK" in text_of(screen, "#phase-band")
        assert screen.query_one("#phase-time", Digits).value == "25:00"  # 20 of 45 min ran
        clock.advance(1)
        await pilot.pause(1.3)  # no key, no call: the screen's interval redraws
        assert screen.query_one("#phase-time", Digits).value == "24:00"
        await pilot.press("f")
        await settle(pilot)
        await pilot.click("#ok")
        await settle(pilot)
        assert len(notes_of(ben, circle, today)) == 1

        screen = await open_meeting_mode(pilot, circle)  # the same day, again
        assert screen.draft.finished
        await pilot.press("f", "n")
        await settle(pilot)
        assert isinstance(pilot.app.screen, MeetingScreen)  # no confirm: nothing to finish
        assert screen.draft.phase == len(meeting.PHASES)
    (note,) = notes_of(ben, circle, today)
    assert note.body()["attendance"] == 1 and note.body()["plus"] == ["the quiz"]
    await eventually(lambda: notes_of(me, circle, today), timeout=10)
    assert len(notes_of(me, circle, today)) == 1


async def test_any_other_day_is_a_dry_run_that_publishes_nothing(nodes, open_app, eventually):
    """The day after the meeting, meeting mode is offered as a dry run: earlier plus/delta is
    one key away, ending it writes no note and leaves no draft, and an edited plan is
    remembered for the circle."""
    ben, _me, circle, today, clock = await circle_meeting_today(nodes, eventually)
    clock.advance(24 * 60)
    async with open_app(ben, clock=clock, welcome=False) as pilot:
        screen = await open_meeting_mode(pilot, circle)
        assert screen.draft.dry_run and "Dry run" in text_of(screen, "#meeting-title")
        await pilot.press("h")  # "last time you said…", one key away
        await settle(pilot)
        shown = screen_text(pilot.app)
        assert "Last time you said" in shown and "Meeting 1" in shown
        assert "+ good snacks" in shown and "Δ start on time" in shown
        await pilot.press("escape")
        await settle(pilot)
        assert pilot.app.screen is screen
        await pilot.press("e")
        await settle(pilot)
        pilot.app.screen.query_one("#phase-0", Input).value = "5"
        await pilot.click("#ok")
        await settle(pilot)
        assert screen.draft.plan == (5, 45, 20, 15)
        await pilot.press("s", "f")
        await settle(pilot)
        await pilot.click("#ok")
        await settle(pilot)
        assert isinstance(pilot.app.screen, DetailScreen)
    assert notes_of(ben, circle, today) == []
    assert not list((ben.home.path / "meetings").glob("*dry-run*"))
    assert await ben.perform(meeting.saved_plan, circle) == (5, 45, 20, 15)


async def test_the_announce_form_suggests_fifteen_seats_and_says_why(nodes, open_app):
    """Capacity defaults to 15, with P2PU's reason (4-15 people) under the field."""
    node = await nodes.start("ana")
    await node.perform(actions.set_profile, "Ana")
    async with open_app(node, welcome=False) as pilot:
        await pilot.press("a")
        await settle(pilot)
        form = pilot.app.screen
        assert form.query_one("#capacity", Input).value == "15"
        hint = str(form.query_one(".field-hint", Static).render())
        assert "15 suggested" in hint and "4-15 people" in hint


async def test_meeting_mode_works_attached_to_a_running_node(cli, open_app, tmp_path):
    """The app attached to `p2pnode run` (a RemoteNode) runs a meeting the same way: the draft
    and the finished note go through the control API, and the note is written by the run
    process."""
    home = tmp_path / "ana"
    await cli.start(home)
    node = await open_node(home)
    assert isinstance(node, RemoteNode)
    try:
        await node.perform(actions.set_profile, "Ana")
        circle = (await node.perform(actions.announce_circle, circle_body(
            [], start=days_from_today(1)))).id
        detail = await node.circle(circle)
        date = detail.meetings[0].date
        noon = dt.datetime.combine(dt.date.fromisoformat(date), dt.time(12),
                                   ZoneInfo(detail.summary.timezone))
        async with open_app(node, clock=Clock(noon.timestamp()), welcome=False) as pilot:
            screen = await open_meeting_mode(pilot, circle)
            assert screen.draft.date == date
            await pilot.press("s")
            await type_item(pilot, screen, "plus", "works attached")
            await pilot.press("escape", "f")
            await settle(pilot)
            await pilot.click("#ok")
            await settle(pilot)
            assert isinstance(pilot.app.screen, DetailScreen)
        (note,) = [n for m in (await node.circle(circle)).meetings for n in m.notes]
        assert note["plus"] == ["works attached"] and note["attendance"] == 0
    finally:
        await node.close()


async def test_names_in_the_attendance_are_shown_as_written(nodes, open_app):
    """A name is never read as markup (one typed as a walk-in here; a peer's profile name goes
    the same way): "[/b] Zoë [red]" is listed and counted as typed, and an empty roster says
    how to record who came."""
    ben = await nodes.start("ben")
    await ben.perform(actions.set_profile, "Ben")
    circle = (await ben.perform(actions.announce_circle, circle_body(
        [], name="Python for Everybody", start=days_from_today(7)))).id
    async with open_app(ben, welcome=False) as pilot:
        screen = await open_meeting_mode(pilot, circle)
        assert "Nobody has signed up" in text_of(screen, "#attendance-title")
        screen.query_one("#walk-in", Input).focus()
        await pilot.press(*"[/b] Zoë [red]", "enter")
        await settle(pilot)
        listed = screen.query_one("#attendance-list", SelectionList)
        assert [str(listed.get_option_at_index(0).prompt)] == ["[/b] Zoë [red]  came along"]
        assert "Came 1" in text_of(screen, "#attendance-title")
        assert "Nobody has signed up" not in text_of(screen, "#attendance-title")
