"""Meeting mode's model (p2pnode/meeting.py): the four phases on a clock the test drives,
attendance and plus/delta, a draft that survives quitting and crashes, and exactly one signed
`meeting.note` at the end, which reaches a learner's node over a real session."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from builders import circle_body
from hypothesis import given
from hypothesis import strategies as st

from p2pnode import actions, meeting
from p2pnode.errors import InvalidInput, NotAllowed, NotFound
from p2pnode.home import Home
from p2pnode.store import queries

MINUTE = 60.0


def _circle(home: Home, *co: bytes, duration: int = 90) -> tuple[bytes, str]:
    start = dt.date.today() + dt.timedelta(days=7)
    record = circle_body(list(co), start=start.isoformat(), duration_min=duration)
    return actions.announce_circle(home, record).id, start.isoformat()


@pytest.fixture
def ana(home_factory) -> Home:
    home = home_factory("ana")
    actions.set_profile(home, "Ana")
    return home


def _share(*sources: Home, to: Home | None = None) -> None:
    """Hand entries over as a session would: every source's entries into `to`, or the first
    source's into the others."""
    targets = [to] if to is not None else list(sources[1:])
    givers = sources if to is not None else sources[:1]
    for giver in givers:
        for target in targets:
            target.store.ingest(list(giver.store.iter_all_entries()),
                                now_ms=int(time.time() * 1000))


def _notes(home: Home, circle: bytes, date: str) -> list[dict]:
    detail = queries.get_circle(home.store.conn, circle, now_ms=int(time.time() * 1000))
    assert detail is not None
    return [n for m in detail.meetings if m.date == date for n in m.notes]


# -- the plan -------------------------------------------------------------------------------
def test_the_default_plan_is_p2pus_ninety_minutes() -> None:
    """Check-in 10, coursework 45, activity 20, plus/delta 15 for a 90-minute meeting."""
    assert meeting.scaled_plan(90) == (10, 45, 20, 15)


@given(st.integers(4, 480))
def test_a_scaled_plan_adds_up_to_the_duration(duration: int) -> None:
    """Any duration a circle may have is split into four whole phases of at least a minute."""
    plan = meeting.scaled_plan(duration)
    assert sum(plan) == duration and all(m >= 1 for m in plan)


def test_a_plan_is_remembered_per_circle(ana) -> None:
    """A facilitator's own plan is used for that circle's next meeting, not for others."""
    circle, date = _circle(ana)
    other, _ = _circle(ana)
    meeting.save_plan(ana, circle, [5, 60, 15, 10])
    assert meeting.open_meeting(ana, circle, date, now=0.0).plan == (5, 60, 15, 10)
    assert meeting.open_meeting(ana, other, None, now=0.0).plan == (10, 45, 20, 15)
    with pytest.raises(InvalidInput):
        meeting.save_plan(ana, circle, [5, 60, 15])


def test_a_new_plan_applies_to_the_meeting_under_way() -> None:
    """Editing the plan mid-phase changes the time allotted, not the time already run; a plan
    the protocol's limits refuse changes nothing."""
    draft = meeting.start(meeting.MeetingDraft(b"c" * 32, "2027-01-12", (10, 45, 20, 15),
                                               created_at=0.0), 0.0)
    shorter = meeting.set_plan(draft, [5, 45, 25, 15])
    status = meeting.phase_status(shorter, 7 * MINUTE)
    assert (status.allotted_s, status.over_s) == (5 * MINUTE, 2 * MINUTE)
    with pytest.raises(InvalidInput):
        meeting.set_plan(draft, [0, 45, 25, 15])


def test_the_roster_is_accepted_learners_and_who_said_yes(home_factory, ana) -> None:
    """Accepted learners and anyone who RSVP'd yes for that date (yes first); a no is shown as
    a no; nobody's RSVP counts in a dry run; facilitators are not on it."""
    circle, date = _circle(ana)
    people = {}
    for name in ("Ben", "Cleo", "Dan"):
        home = home_factory(name.lower())
        actions.set_profile(home, name)
        people[name] = home
    _share(ana, *people.values())
    joins = {name: actions.join_circle(home, circle, name) for name, home in people.items()}
    _share(*people.values(), to=ana)
    for name in ("Ben", "Cleo"):
        actions.decide_join(ana, joins[name].id, True)
    actions.rsvp(people["Cleo"], circle, date=date, attending=True)
    actions.rsvp(people["Dan"], circle, date=date, attending=True)
    actions.rsvp(people["Ben"], circle, date=date, attending=False)
    actions.rsvp(ana, circle, date=date, attending=True)
    _share(*people.values(), to=ana)
    roster = meeting.meeting_roster(ana, circle, date)
    assert [(p["name"], p["status"], p["rsvp"]) for p in roster] == [
        ("Cleo", "accepted", True), ("Dan", "pending", True), ("Ben", "accepted", False)]
    assert [p["rsvp"] for p in meeting.meeting_roster(ana, circle, None)] == [None, None]
    with pytest.raises(NotFound):
        meeting.meeting_roster(ana, b"\x07" * 32, date)


# -- the clock ------------------------------------------------------------------------------
def test_phases_run_on_the_clock_given() -> None:
    """Elapsed time counts only while running; a phase that runs over says by how much;
    adding time extends it; moving on starts the next phase at once."""
    draft = meeting.MeetingDraft(b"c" * 32, "2027-01-12", (10, 45, 20, 15), created_at=0.0)
    t = 1000.0
    draft = meeting.start(draft, t)
    assert meeting.phase_status(draft, t + 4 * MINUTE).remaining_s == 6 * MINUTE
    draft = meeting.pause(draft, t + 4 * MINUTE)
    assert meeting.phase_status(draft, t + 30 * MINUTE).elapsed_s == 4 * MINUTE  # paused
    draft = meeting.start(draft, t + 30 * MINUTE)
    status = meeting.phase_status(draft, t + 37 * MINUTE)
    assert status.name == "check-in" and status.over_s == 1 * MINUTE
    draft = meeting.add_time(draft, 5)
    assert meeting.phase_status(draft, t + 37 * MINUTE).remaining_s == 4 * MINUTE
    draft = meeting.next_phase(draft, t + 38 * MINUTE)
    status = meeting.phase_status(draft, t + 40 * MINUTE)
    assert (status.name, status.elapsed_s, status.allotted_s) == ("coursework", 2 * MINUTE,
                                                                  45 * MINUTE)
    for _ in range(3):
        draft = meeting.next_phase(draft, t + 50 * MINUTE)
    assert meeting.phase_status(draft, t + 60 * MINUTE) is None


def test_plus_and_delta_keep_the_notes_limits() -> None:
    """Items are trimmed, never empty, at most 280 characters and 20 a column."""
    draft = meeting.MeetingDraft(b"c" * 32, "2027-01-12", (10, 45, 20, 15), created_at=0.0)
    draft = meeting.add_item(draft, "plus", "  good pace ")
    assert draft.plus == ("good pace",)
    for bad in ("   ", "x" * 281):
        with pytest.raises(InvalidInput):
            meeting.add_item(draft, "delta", bad)
    for i in range(19):
        draft = meeting.add_item(draft, "plus", f"item {i}")
    with pytest.raises(InvalidInput, match="20"):
        meeting.add_item(draft, "plus", "one too many")
    assert meeting.remove_item(draft, "plus", 0).plus[0] == "item 0"
    with pytest.raises(InvalidInput):
        meeting.add_item(draft, "minus", "no such column")


# -- drafts and the note ----------------------------------------------------------------------
def test_a_meeting_resumes_after_quitting(ana, tmp_path) -> None:
    """Everything ticked and typed is on disk; reopened (a new process), the meeting is where
    it was, and the time that passed meanwhile counts."""
    circle, date = _circle(ana)
    t = time.time()
    draft = meeting.open_meeting(ana, circle, date, now=t)
    draft = meeting.start(draft, t)
    draft = meeting.set_present(draft, "Ben")
    draft = meeting.add_item(draft, "delta", "start on time")
    meeting.update_meeting(ana, draft)
    ana.close()
    with Home.open(tmp_path / "ana") as again:
        resumed = meeting.open_meeting(again, circle, date, now=t + 20 * MINUTE)
        assert resumed == draft
        assert meeting.phase_status(resumed, t + 20 * MINUTE).over_s == 10 * MINUTE


def test_finishing_writes_one_note_even_after_a_crash(ana) -> None:
    """The note holds the attendance count and the items; finishing again, or after a crash
    that lost the draft's record of it, writes no second note."""
    circle, date = _circle(ana)
    t = time.time()
    draft = meeting.open_meeting(ana, circle, date, now=t)
    for who in ("Ben", "Eve", "Dan"):
        draft = meeting.set_present(draft, who)
    draft = meeting.set_present(draft, "Dan", present=False)
    draft = meeting.add_item(draft, "plus", "good pace")
    meeting.update_meeting(ana, draft)
    before = next((ana.path / "meetings").glob("*.json")).read_bytes()

    done = meeting.finish_meeting(ana, circle, date, now=t + 90 * MINUTE)
    notes = _notes(ana, circle, date)
    assert len(notes) == 1
    assert notes[0]["attendance"] == 2 and notes[0]["plus"] == ["good pace"]
    assert meeting.finish_meeting(ana, circle, date, now=t + 91 * MINUTE).note == done.note
    # a crash between writing the note and recording it: the draft on disk is the old one
    draft_file = next((ana.path / "meetings").glob("*.json"))
    draft_file.write_bytes(before)
    assert meeting.finish_meeting(ana, circle, date, now=t + 92 * MINUTE).note == done.note
    assert len(_notes(ana, circle, date)) == 1
    with pytest.raises(NotAllowed):
        meeting.update_meeting(ana, meeting.add_item(done, "plus", "too late"))


def test_only_facilitators_run_a_real_meeting_and_a_dry_run_writes_nothing(home_factory, ana):
    """A learner cannot open a real meeting of someone else's circle; anyone can rehearse, and
    a rehearsal never becomes a note."""
    circle, date = _circle(ana)
    ben = home_factory("ben")
    ben.store.ingest(list(ana.store.iter_all_entries()), now_ms=int(time.time() * 1000))
    with pytest.raises(NotAllowed):
        meeting.open_meeting(ben, circle, date, now=0.0)
    rehearsal = meeting.open_meeting(ben, circle, None, now=0.0)
    assert rehearsal.dry_run
    with pytest.raises(NotAllowed):
        meeting.finish_meeting(ben, circle, meeting.DRY_RUN, now=1.0)
    assert meeting.discard_meeting(ben, circle, meeting.DRY_RUN)
    with pytest.raises(InvalidInput):
        meeting.open_meeting(ana, circle, "2000-01-01", now=0.0)
    with pytest.raises(NotFound):
        meeting.finish_meeting(ana, circle, date, now=0.0)


def test_a_damaged_draft_is_reported_not_a_traceback(ana) -> None:
    """A draft file edited by hand into nonsense is one clear error."""
    circle, date = _circle(ana)
    meeting.open_meeting(ana, circle, date, now=0.0)
    path = next((ana.path / "meetings").glob("*.json"))
    path.write_text(json.dumps({"circle": "nonsense"}))
    with pytest.raises(InvalidInput, match="damaged"):
        meeting.open_meeting(ana, circle, date, now=0.0)


async def test_the_note_reaches_a_learner_when_the_meeting_ends(nodes, eventually) -> None:
    """Run through the node's public API (as the app does), the finished meeting's note is on
    the learner's node moments later, with its attendance."""
    ana = await nodes.start("ana")
    ben = await nodes.start("ben", peers=[ana])
    await ana.set_profile("Ana")
    circle, date = await ana.perform(lambda home: _circle(home))
    t = time.time()
    draft = await ana.perform(meeting.open_meeting, circle, date, now=t)
    draft = meeting.set_present(meeting.start(draft, t), "Ben")
    draft = meeting.add_item(draft, "delta", "more breaks")
    await ana.perform(meeting.update_meeting, draft)
    await ana.perform(meeting.finish_meeting, circle, date, now=t + 90 * MINUTE)

    async def arrived() -> list:
        found = await ben.circle(circle)
        return [n for m in (found.meetings if found else ()) if m.date == date for n in m.notes]

    notes = await eventually(arrived, timeout=10)
    assert notes[0]["attendance"] == 1 and notes[0]["delta"] == ["more breaks"]
