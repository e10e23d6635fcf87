"""The rules of a learning circle (issue 9, items 1-8 and 11), at the action and store level:
co-facilitators, sign-up standing, capacity and the waiting list, reschedules that keep
history, cancelled and ended circles, honest no-ops, feedback, shared resources, and a damaged
database that must not let us fork our own feed.

The circle of the `people` fixture meets on Tuesdays at 18:30 in Johannesburg (16:30 UTC) from
2027-01-12, six times, with room for 3; each action is given its own clock (`at_ms`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from builders import circle_body, ms

from p2pnode import actions, config
from p2pnode.blobs.resources import share_file, unshare_resource
from p2pnode.errors import InvalidInput, NotAllowed, NotFound, RecoveryPending
from p2pnode.home import Home
from p2pnode.store import queries
from protocol.identity import fingerprint

#: a clock late enough for every entry these tests write (ingest refuses future timestamps),
#: and early enough that the circle's personal records have not expired (90 days after its end)
LATER = ms("2027-03-15")
BEFORE = ms("2027-01-05")  # a week before the first meeting
AFTER_TWO = ms("2027-01-20")  # meetings 1 (01-12) and 2 (01-19) took place


def sync(source: Home, *targets: Home) -> None:
    """Carry every entry of `source` to `targets` (what replication or a USB stick does)."""
    entries = list(source.store.iter_all_entries())
    for target in targets:
        report = target.store.ingest(entries, now_ms=LATER)
        assert not report.rejected, report.rejected


def everyone(people: dict, *names: str) -> None:
    """Carry the entries of the named homes to all the others."""
    homes = [people[n] for n in ("ana", "cal", "ben", "eve", "dan")]
    for name in names:
        sync(people[name], *[h for h in homes if h is not people[name]])


@pytest.fixture
def people(home_factory):
    """Ana (author) with Cal (co-facilitator); Ben, Eve and Dan (learners); all profiles
    known everywhere; Ana's circle with room for 3, announced on 2027-01-01."""
    homes = {name: home_factory(name) for name in ("ana", "cal", "ben", "eve", "dan")}
    for home in homes.values():
        actions.set_profile(home, home.path.name.title(), at_ms=ms("2027-01-01", "09:00"))
    record = circle_body([homes["cal"].identity.node_id], signup_limit=3)
    circle = actions.announce_circle(homes["ana"], record, at_ms=ms("2027-01-01")).id
    people = {**homes, "circle": circle}
    everyone(people, "ana", "cal", "ben", "eve", "dan")
    return people


def detail(home: Home, circle: bytes, at_ms: int = BEFORE):
    return queries.get_circle(home.store.conn, circle, now_ms=at_ms)


def statuses(home: Home, circle: bytes) -> dict[str, str]:
    return {p.display_name: p.status for p in detail(home, circle).participants}


def node(home: Home) -> bytes:
    return home.identity.node_id


# -- 1. co-facilitators --------------------------------------------------------------------------


def test_adding_a_co_facilitator_keeps_the_author_and_the_others(people):
    """Adding Eve appends her: Ana and Cal stay, and a new sign-up is sealed to all three."""
    ana, cal, eve, ben, circle = (people[n] for n in ("ana", "cal", "eve", "ben", "circle"))
    facilitators = actions.change_facilitators(ana, circle, add=[node(eve)])
    actions.update_circle(ana, circle, {"facilitators": facilitators}, at_ms=BEFORE)
    state = queries.circle_state(ana.store.conn, circle)
    assert state["facilitators"] == [node(ana), node(cal), node(eve)]
    sync(ana, ben)
    join = actions.join_circle(ben, circle, "Ben", contact="ben@example.org", at_ms=BEFORE)
    assert [pair[0] for pair in join.body()["sealed"]] == [node(ana), node(cal), node(eve)]


def test_removing_is_explicit_and_the_author_stays_unless_handing_over(people):
    """Removing Cal leaves Ana; removing Ana is refused unless she hands over on purpose, and a
    list that drops her is refused the same way; nobody can be removed twice or added twice."""
    ana, cal, eve, circle = (people[n] for n in ("ana", "cal", "eve", "circle"))
    with pytest.raises(InvalidInput, match="already a facilitator"):
        actions.change_facilitators(ana, circle, add=[node(cal)])
    with pytest.raises(InvalidInput, match="not a facilitator"):
        actions.change_facilitators(ana, circle, remove=[node(eve)])
    with pytest.raises(InvalidInput, match="--hand-over"):
        actions.change_facilitators(ana, circle, remove=[node(ana)])
    with pytest.raises(InvalidInput, match="hand the circle over"):
        actions.update_circle(ana, circle, {"facilitators": [node(cal)]}, at_ms=BEFORE)
    assert actions.change_facilitators(ana, circle, remove=[node(cal)]) == [node(ana)]
    handed = actions.change_facilitators(ana, circle, remove=[node(ana)], hand_over=True)
    actions.update_circle(ana, circle, {"facilitators": handed}, hand_over=True, at_ms=BEFORE)
    assert queries.circle_state(ana.store.conn, circle)["facilitators"] == [node(cal)]


def test_at_most_five_facilitators_and_never_none(people):
    """The list stays within 1-5 people: the error says how many it would make."""
    ana, circle = people["ana"], people["circle"]
    with pytest.raises(InvalidInput, match="at most 5 facilitators; this would make 6"):
        actions.change_facilitators(ana, circle, add=[bytes([i]) * 32 for i in range(1, 5)])
    with pytest.raises(InvalidInput, match="at least one facilitator"):
        actions.change_facilitators(ana, circle, remove=[node(ana), node(people["cal"])],
                                    hand_over=True)


# -- 2. a sign-up keeps its standing -------------------------------------------------------------


def test_joining_again_keeps_an_accepted_seat(people):
    """Ben, accepted, joins again to change his name: still accepted, one seat, new name."""
    ana, ben, circle = people["ana"], people["ben"], people["circle"]
    first = actions.join_circle(ben, circle, "Ben", at_ms=BEFORE)
    sync(ben, ana)
    actions.decide_join(ana, first.id, at_ms=BEFORE)
    sync(ana, ben)
    actions.join_circle(ben, circle, "Benjamin", at_ms=BEFORE + 1000)
    sync(ben, ana)
    for home in (ana, ben):
        assert statuses(home, circle) == {"Benjamin": "accepted"}
        assert detail(home, circle).summary.seats_taken == 1
    assert actions.my_signup(ben, circle)["status"] == "accepted"


def test_leaving_ends_the_standing(people):
    """After a leave, a new join starts over as pending: the acceptance was for the old one."""
    ana, ben, circle = people["ana"], people["ben"], people["circle"]
    first = actions.join_circle(ben, circle, "Ben", at_ms=BEFORE)
    sync(ben, ana)
    actions.decide_join(ana, first.id, at_ms=BEFORE)
    actions.leave_circle(ben, circle, at_ms=BEFORE + 1000)
    actions.join_circle(ben, circle, "Ben", at_ms=BEFORE + 2000)
    sync(ben, ana)
    assert statuses(ana, circle) == {"Ben": "pending"}


# -- 3. capacity ---------------------------------------------------------------------------------


def test_a_join_beyond_capacity_is_on_the_waiting_list(people, home_factory):
    """With room for 3, the 4th sign-up waits (and is told its place); when someone leaves,
    the first on the waiting list gets the seat."""
    ana, circle = people["ana"], people["circle"]
    fay = home_factory("fay")
    actions.set_profile(fay, "Fay", at_ms=ms("2027-01-01", "09:00"))
    sync(ana, fay)
    for minute, name in enumerate(("ben", "eve", "dan")):
        actions.join_circle(people[name], circle, name.title(), at_ms=BEFORE + minute * 60_000)
        sync(people[name], ana, fay)
    actions.join_circle(fay, circle, "Fay", at_ms=BEFORE + 3600_000)
    sync(fay, ana)
    assert statuses(ana, circle) == {"Ben": "pending", "Eve": "pending", "Dan": "pending",
                                     "Fay": "waiting"}
    assert detail(ana, circle).summary.seats_taken == 3
    signup = actions.my_signup(fay, circle)
    assert (signup["status"], signup["waiting_position"]) == ("waiting", 1)
    actions.leave_circle(people["eve"], circle, at_ms=BEFORE + 7200_000)
    sync(people["eve"], ana)
    assert statuses(ana, circle)["Fay"] == "pending"


def test_accepting_beyond_capacity_needs_saying_so(people):
    """With every seat accepted, accepting one more is refused with the numbers, unless
    `over_capacity`; declining is always possible."""
    ana, circle = people["ana"], people["circle"]
    joins = {}
    for minute, name in enumerate(("ben", "eve", "dan")):
        joins[name] = actions.join_circle(people[name], circle, name.title(),
                                          at_ms=BEFORE + minute * 60_000).id
        sync(people[name], ana)
    actions.update_circle(ana, circle, {"signup_limit": 2}, at_ms=BEFORE)
    actions.decide_join(ana, joins["ben"], at_ms=BEFORE)
    actions.decide_join(ana, joins["eve"], at_ms=BEFORE)
    assert statuses(ana, circle)["Dan"] == "waiting"
    with pytest.raises(InvalidInput, match=r"full: 2 of 2 seats are accepted.*--over-capacity"):
        actions.decide_join(ana, joins["dan"], at_ms=BEFORE)
    actions.decide_join(ana, joins["dan"], accepted=False, at_ms=BEFORE)
    actions.decide_join(ana, joins["dan"], over_capacity=True, at_ms=BEFORE + 1)
    assert statuses(ana, circle)["Dan"] == "accepted"


def test_lowering_capacity_below_the_accepted_is_refused_with_the_numbers(people):
    """Two accepted: a capacity of 1 is refused and nothing is written; 2 is fine."""
    ana, circle = people["ana"], people["circle"]
    for name in ("ben", "eve"):
        join = actions.join_circle(people[name], circle, name.title(), at_ms=BEFORE)
        sync(people[name], ana)
        actions.decide_join(ana, join.id, at_ms=BEFORE)
    count = ana.store.entry_count()
    with pytest.raises(InvalidInput, match="capacity of 1 is below the 2 sign-ups already"):
        actions.update_circle(ana, circle, {"signup_limit": 1}, at_ms=BEFORE)
    assert ana.store.entry_count() == count
    actions.update_circle(ana, circle, {"signup_limit": 2}, at_ms=BEFORE)


# -- 4. a reschedule keeps history ---------------------------------------------------------------


def held_history(people) -> None:
    """Ben RSVPs meetings 1 and 2, Ana notes both after they took place."""
    ana, ben, circle = people["ana"], people["ben"], people["circle"]
    actions.join_circle(ben, circle, "Ben", at_ms=BEFORE)
    actions.rsvp(ben, circle, number=1, at_ms=BEFORE)
    actions.rsvp(ben, circle, number=2, attending=False, at_ms=BEFORE)
    sync(ben, ana)
    for number in (1, 2):
        actions.add_meeting_note(ana, circle, number=number, plus=[f"good {number}"],
                                 at_ms=AFTER_TWO - 1000)


def test_a_reschedule_of_a_running_circle_keeps_the_meetings_that_took_place(people):
    """On 2027-01-20 Ana moves the rest to Thursdays from 01-28: meetings 1 and 2 keep their
    dates, numbers, RSVPs and notes; six meetings in all; the circle is still running."""
    ana, circle = people["ana"], people["circle"]
    held_history(people)
    meetings = actions.reschedule(ana, circle, start=dt.date(2027, 1, 28), at_ms=AFTER_TWO)
    assert meetings == ["2027-01-12", "2027-01-19", "2027-01-28", "2027-02-04", "2027-02-11",
                        "2027-02-18"]
    actions.update_circle(ana, circle, {"meetings": meetings}, at_ms=AFTER_TWO)
    shown = detail(ana, circle, AFTER_TWO)
    assert shown.summary.status == "running" and shown.rescheduled
    first, second = shown.meetings[:2]
    assert (first.number, first.date, first.attending) == (1, "2027-01-12", 1)
    assert (second.number, second.date, second.not_attending) == (2, "2027-01-19", 1)
    assert [n["plus"] for n in first.notes + second.notes] == [["good 1"], ["good 2"]]


def test_weeks_alone_extends_or_shortens_the_meetings_to_come(people):
    """`weeks` is the number of meetings in all: 8 adds two weekly after the last; 2 is
    refused once two took place (nothing would be left to come)."""
    ana, circle = people["ana"], people["circle"]
    longer = actions.reschedule(ana, circle, weeks=8, at_ms=AFTER_TWO)
    assert longer[-3:] == ["2027-02-16", "2027-02-23", "2027-03-02"] and len(longer) == 8
    assert actions.reschedule(ana, circle, weeks=3, at_ms=AFTER_TWO)[-1] == "2027-01-26"
    with pytest.raises(InvalidInput, match=r"--weeks must be 3-52.*2 have taken place"):
        actions.reschedule(ana, circle, weeks=2, at_ms=AFTER_TWO)
    with pytest.raises(InvalidInput, match="not after 2027-01-19"):
        actions.reschedule(ana, circle, start=dt.date(2027, 1, 15), at_ms=AFTER_TWO)


def test_a_reschedule_into_the_far_past_or_future_is_refused(people):
    """New meetings obey the announce window: a start a month back or in year 9000 is refused,
    naming the date; nothing is written."""
    ana, circle = people["ana"], people["circle"]
    count = ana.store.entry_count()
    back = actions.reschedule(ana, circle, start=dt.date(2026, 12, 1), at_ms=BEFORE)
    with pytest.raises(InvalidInput, match="2026-12-01, is 35 days in the past"):
        actions.update_circle(ana, circle, {"meetings": back}, at_ms=BEFORE)
    far = actions.reschedule(ana, circle, start=dt.date(9000, 1, 4), at_ms=BEFORE)
    with pytest.raises(InvalidInput, match="9000-01-04, is more than 2 years ahead"):
        actions.update_circle(ana, circle, {"meetings": far}, at_ms=BEFORE)
    assert ana.store.entry_count() == count


def test_a_record_that_drops_held_meetings_is_merged_back_on_every_node(people):
    """An update written without the rule (an older node, another implementation) that lists
    only new dates still keeps the meetings held before it: every node derives the same."""
    ana, cal, circle = people["ana"], people["cal"], people["circle"]
    held_history(people)
    ana.store.append(ana.identity, "circle.update",
                     {"circle": circle, "meetings": ["2027-02-01", "2027-02-08"]},
                     now_ms=AFTER_TWO)
    sync(ana, cal)
    for home in (ana, cal):
        shown = detail(home, circle, AFTER_TWO)
        assert [m.date for m in shown.meetings] == ["2027-01-12", "2027-01-19", "2027-02-01",
                                                     "2027-02-08"]
        assert shown.meetings[0].notes and shown.summary.status == "running"


# -- 5. cancelled and ended circles --------------------------------------------------------------


def test_a_cancelled_circle_refuses_joins_rsvps_updates_and_a_second_cancel(people):
    """After Ana cancels: Ben's join and RSVP are refused naming the reason; updating is refused
    (a cancellation is final); cancelling again says it already is."""
    ana, ben, circle = people["ana"], people["ben"], people["circle"]
    actions.cancel_circle(ana, circle, "the library is closed", at_ms=BEFORE)
    sync(ana, ben)
    with pytest.raises(NotAllowed, match=r"cancelled \(the library is closed\); cannot sign up"):
        actions.join_circle(ben, circle, "Ben", at_ms=BEFORE)
    with pytest.raises(NotAllowed, match=r"cancelled.*cannot RSVP"):
        actions.rsvp(ben, circle, number=1, at_ms=BEFORE)
    with pytest.raises(NotAllowed, match="cancellation is final"):
        actions.update_circle(ana, circle, {"name": "Back on"}, at_ms=BEFORE)
    with pytest.raises(InvalidInput, match="already cancelled"):
        actions.cancel_circle(ana, circle)


def test_changes_after_a_cancel_have_no_effect_anywhere(people):
    """An update or second cancel written after the cancel (bypassing the action) changes
    nothing on any node: the name and the first reason stay."""
    ana, cal, circle = people["ana"], people["cal"], people["circle"]
    actions.cancel_circle(ana, circle, "first reason", at_ms=BEFORE)
    cal.store.ingest(list(ana.store.iter_all_entries()), now_ms=LATER)
    cal.store.append(cal.identity, "circle.update", {"circle": circle, "name": "Back on"},
                     now_ms=BEFORE + 1000)
    cal.store.append(cal.identity, "circle.cancel", {"circle": circle, "reason": "second"},
                     now_ms=BEFORE + 2000)
    sync(cal, ana)
    for home in (ana, cal):
        shown = detail(home, circle)
        assert (shown.summary.name, shown.cancel_reason) == ("Python for Everybody",
                                                             "first reason")


def test_an_ended_circle_refuses_joins_and_rsvps(people):
    """After the last meeting (2027-02-16) nobody can sign up or RSVP."""
    ben, circle = people["ben"], people["circle"]
    with pytest.raises(NotAllowed, match="ended on 2027-02-16; cannot sign up"):
        actions.join_circle(ben, circle, "Ben", at_ms=ms("2027-03-01"))
    with pytest.raises(NotAllowed, match="ended on 2027-02-16; cannot RSVP"):
        actions.rsvp(ben, circle, number=6, at_ms=ms("2027-03-01"))


def test_announcing_in_the_past_or_far_ahead_is_refused_with_the_reason(people):
    """A first meeting up to 7 days back is fine (announced after the first meeting); 8 days
    back, or more than two years ahead, is refused naming the date; nothing is written."""
    ana = people["ana"]
    count = ana.store.entry_count()
    at = ms("2027-01-20")
    with pytest.raises(InvalidInput, match="2027-01-12, is 8 days in the past"):
        actions.announce_circle(ana, circle_body([node(ana)], start="2027-01-12"), at_ms=at)
    with pytest.raises(InvalidInput, match="9999-01-01, is more than 2 years ahead"):
        actions.announce_circle(ana, circle_body([node(ana)], start="9999-01-01", weeks=1),
                                at_ms=at)
    assert ana.store.entry_count() == count
    actions.announce_circle(ana, circle_body([node(ana)], start="2027-01-13"), at_ms=at)


# -- 6. honest no-ops ----------------------------------------------------------------------------


def test_leaving_a_circle_never_joined_and_deleting_twice_say_so(people):
    """Leave without a sign-up and delete of an already deleted entry raise and write
    nothing."""
    ben, circle = people["ben"], people["circle"]
    with pytest.raises(InvalidInput, match="not signed up"):
        actions.leave_circle(ben, circle, at_ms=BEFORE)
    join = actions.join_circle(ben, circle, "Ben", at_ms=BEFORE)
    actions.leave_circle(ben, circle, at_ms=BEFORE + 1)
    with pytest.raises(InvalidInput, match="not signed up"):
        actions.leave_circle(ben, circle, at_ms=BEFORE + 2)
    actions.delete_entries(ben, [join.id], at_ms=BEFORE + 3)
    count = ben.store.entry_count()
    with pytest.raises(InvalidInput, match=f"{fingerprint(join.id)} is already deleted"):
        actions.delete_entries(ben, [join.id], at_ms=BEFORE + 4)
    assert ben.store.entry_count() == count


def test_deciding_a_sign_up_twice_says_so(people):
    """Accepting an accepted sign-up (or declining a declined one) is refused; changing one's
    mind is not."""
    ana, ben, circle = people["ana"], people["ben"], people["circle"]
    join = actions.join_circle(ben, circle, "Ben", at_ms=BEFORE)
    sync(ben, ana)
    actions.decide_join(ana, join.id, at_ms=BEFORE)
    with pytest.raises(InvalidInput, match="already accepted"):
        actions.decide_join(ana, join.id, at_ms=BEFORE + 1)
    actions.decide_join(ana, join.id, accepted=False, at_ms=BEFORE + 2)
    with pytest.raises(InvalidInput, match="already declined"):
        actions.decide_join(ana, join.id, accepted=False, at_ms=BEFORE + 3)


# -- 7. feedback ---------------------------------------------------------------------------------


def test_feedback_is_for_members_once_started_and_is_shown(people):
    """Before the first meeting, or from someone who never joined, feedback is refused; a
    member's latest feedback counts once, with its text, in the circle's detail."""
    ana, ben, eve, circle = people["ana"], people["ben"], people["eve"], people["circle"]
    actions.join_circle(ben, circle, "Ben", at_ms=BEFORE)
    with pytest.raises(InvalidInput, match="has not started yet"):
        actions.give_feedback(ben, circle, course_rating=5, at_ms=BEFORE)
    with pytest.raises(NotAllowed, match="sign up first"):
        actions.give_feedback(eve, circle, course_rating=1, at_ms=AFTER_TWO)
    actions.give_feedback(ben, circle, course_rating=2, at_ms=AFTER_TWO)
    actions.give_feedback(ben, circle, course_rating=4, reason="Great pace", at_ms=AFTER_TWO + 1)
    actions.give_feedback(ana, circle, course_rating=5, recommendation_rating=5,
                          at_ms=AFTER_TWO)
    sync(ben, ana)
    shown = detail(ana, circle, AFTER_TWO)
    assert shown.feedback_count == 2 and shown.ratings["course"] == 4.5
    assert shown.ratings["recommendation"] == 5 and shown.ratings["goal"] is None
    by_role = {f.role: f for f in shown.feedback}
    assert by_role["learner"].reason == "Great pace" and by_role["learner"].author.name == "Ben"


# -- 8. resources --------------------------------------------------------------------------------


def test_sharing_a_file_twice_lists_it_once_and_unshare_withdraws_it(people, tmp_path):
    """The same bytes with the same details publish nothing new; new details replace the old
    ones in the listing; unshare drops it everywhere; only the sharer can unshare."""
    ana, ben = people["ana"], people["ben"]
    path = tmp_path / "chapter1.pdf"
    path.write_bytes(b"%PDF chapter one" * 100)
    first = share_file(ana, path, at_ms=BEFORE)
    again = share_file(ana, path, at_ms=BEFORE + 1)
    assert again.already and again.entry.id == first.entry.id
    share_file(ana, path, title="Chapter 1", at_ms=BEFORE + 2)
    sync(ana, ben)
    for home in (ana, ben):
        assert [r.title for r in queries.list_resources(home.store.conn)] == ["Chapter 1"]
    with pytest.raises(NotAllowed, match="shared by someone else"):
        unshare_resource(ben, first.blob_id, at_ms=BEFORE + 3)
    unshare_resource(ana, first.blob_id, at_ms=BEFORE + 3)
    sync(ana, ben)
    for home in (ana, ben):
        assert queries.list_resources(home.store.conn) == []
    with pytest.raises(NotFound):
        unshare_resource(ana, first.blob_id, at_ms=BEFORE + 4)


# -- 11. an empty or damaged database ------------------------------------------------------------


def written_home(home_factory) -> Path:
    """A home whose owner has written entries, closed; its path."""
    home = home_factory("owner")
    actions.set_profile(home, "Owner")
    actions.set_profile(home, "Owner again")
    home.close()
    return home.path


@pytest.mark.parametrize("keep", [0, 100, 4096], ids=["empty", "header-cut", "one-page"])
def test_an_empty_or_truncated_database_waits_for_recovery(home_factory, keep):
    """A store.sqlite3 cut to `keep` bytes is treated like a lost one: the owner cannot write
    seq 1 again until recovery; a damaged file is kept aside, never deleted."""
    path = written_home(home_factory)
    db = path / config.DATABASE_FILE
    data = db.read_bytes()
    for extra in path.glob(config.DATABASE_FILE + "-*"):
        extra.unlink()
    db.write_bytes(data[:keep])
    with Home.open(path) as home:
        assert home.recovery_pending
        with pytest.raises(RecoveryPending):
            actions.set_profile(home, "Owner")
        assert home.store.entry_count() == 0
    kept = [p for p in path.iterdir() if ".damaged-" in p.name
            and not p.name.endswith(("-wal", "-shm"))]
    assert [p.read_bytes() for p in kept] == ([data[:keep]] if keep else [])
