"""Tests for p2pnode/actions.py and p2pnode/home.py: what a user can do, who may do it, sealed
sign-up details across several homes, and the safety rules of a node home."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest
from builders import NOW_MS, circle_body, ms

from p2pnode import actions, config
from p2pnode.errors import HomeError, InvalidInput, NotAllowed, NotFound, RecoveryPending
from p2pnode.home import Home
from p2pnode.store import queries
from protocol.errors import InvalidRecordError
from protocol.sealing import unseal


def sync(source: Home, *targets: Home) -> None:
    """Carry every entry of `source` to `targets` (what replication or a USB stick does)."""
    entries = list(source.store.iter_all_entries())
    for target in targets:
        report = target.store.ingest(entries, now_ms=actions.now_ms())
        assert not report.rejected, report.rejected


def announce(home: Home, **fields) -> bytes:
    """Publish a profile if needed and announce a circle; returns the circle id."""
    if actions.my_profile(home) is None:
        actions.set_profile(home, home.path.name.title())
    facilitators = fields.pop("facilitators", [])
    record = circle_body(facilitators, **fields)
    return actions.announce_circle(home, record).id


@pytest.fixture
def people(home_factory):
    """Ana (author), Cal (co-facilitator), Ben (learner) and Eve (a stranger), each with a
    profile, all having seen each other's profiles and Ana's circle."""
    ana, cal, ben, eve = (home_factory(name) for name in ("ana", "cal", "ben", "eve"))
    for home in (cal, ben, eve):
        actions.set_profile(home, home.path.name.title())
        sync(home, ana)
    circle = announce(ana, facilitators=[cal.identity.node_id], signup_limit=3,
                      signup_question="Why join?")
    for home in (cal, ben, eve):
        sync(ana, home)
    return {"ana": ana, "cal": cal, "ben": ben, "eve": eve, "circle": circle}


# -- profiles and circles ------------------------------------------------------------------------


def test_profile_publishes_the_sealing_key(home):
    """A profile carries the name, bio, languages and this home's X25519 public key."""
    actions.set_profile(home, "Ana", bio="Librarian", languages=["pt-BR", "en"])
    profile = actions.my_profile(home)
    assert profile == {"name": "Ana", "bio": "Librarian", "languages": ["pt-BR", "en"],
                       "enc_key": home.sealing_key.public_bytes}


def test_announcing_needs_a_profile_first(home):
    """Without a profile nobody could seal sign-ups to us: announcing is refused, nothing is
    written."""
    with pytest.raises(InvalidInput, match="profile"):
        actions.announce_circle(home, circle_body([home.identity.node_id]))
    assert home.store.entry_count() == 0


def test_announcer_is_always_the_first_facilitator(home):
    """The author is put first among facilitators, once, whatever the record said."""
    other = b"\x42" * 32
    circle = announce(home, facilitators=[other, home.identity.node_id])
    assert queries.circle_state(home.store.conn, circle)["facilitators"] == [
        home.identity.node_id,
        other,
    ]


def test_an_invalid_circle_is_refused_and_nothing_is_written(home):
    """A record breaking the schema raises InvalidRecordError and appends nothing."""
    actions.set_profile(home, "Ana")
    with pytest.raises(InvalidRecordError):
        actions.announce_circle(home, circle_body([], venue={"name": "Hall"}))
    assert home.store.entry_count() == 1


def test_only_facilitators_update_or_cancel(people):
    """A co-facilitator may update; a stranger is refused before anything is written."""
    cal, eve, circle = people["cal"], people["eve"], people["circle"]
    actions.update_circle(cal, circle, {"meeting_time": "17:00"})
    assert queries.circle_state(cal.store.conn, circle)["meeting_time"] == "17:00"
    before = eve.store.entry_count()
    with pytest.raises(NotAllowed):
        actions.update_circle(eve, circle, {"name": "Mine"})
    with pytest.raises(NotAllowed):
        actions.cancel_circle(eve, circle, "no")
    assert eve.store.entry_count() == before


def test_update_needs_changes_and_a_known_circle(people):
    """An empty update and an unknown circle are clear errors."""
    ana = people["ana"]
    with pytest.raises(InvalidInput):
        actions.update_circle(ana, people["circle"], {})
    with pytest.raises(NotFound):
        actions.update_circle(ana, b"\x01" * 32, {"name": "x"})
    with pytest.raises(NotFound):
        actions.join_circle(ana, b"\x01" * 32, "Ana")


def test_cancel_marks_the_circle_cancelled(people):
    """The author's cancel shows with its reason."""
    ana, circle = people["ana"], people["circle"]
    actions.cancel_circle(ana, circle, "venue closed")
    detail = queries.get_circle(ana.store.conn, circle, now_ms=NOW_MS)
    assert detail.summary.status == "cancelled" and detail.cancel_reason == "venue closed"


# -- sealed sign-ups -----------------------------------------------------------------------------


def test_join_details_are_sealed_to_each_facilitator(people):
    """Ben's contact, goal and answer are readable by both facilitators and by nobody else,
    and never appear in clear in the entry."""
    ana, cal, ben, eve, circle = (people[k] for k in ("ana", "cal", "ben", "eve", "circle"))
    join = actions.join_circle(ben, circle, "Ben", contact="ben@example.org",
                               goal="learn Python", answer="curiosity")
    assert b"ben@example.org" not in join.body_bytes and b"curiosity" not in join.body_bytes
    sync(ben, ana, cal, eve)
    expected = {"contact": "ben@example.org", "goal": "learn Python", "answer": "curiosity"}
    for facilitator in (ana, cal):
        [row] = actions.list_joins(facilitator, circle)
        assert row["details"] == expected
        assert (row["display_name"], row["status"]) == ("Ben", "pending")
        assert row["node_id"] == ben.identity.node_id and row["join_id"] == join.id
    sealed = join.body()["sealed"]
    assert {recipient for recipient, _ in sealed} == {ana.identity.node_id, cal.identity.node_id}
    assert unseal(sealed, eve.identity.node_id, eve.sealing_key.private_key) is None


def test_listing_sign_up_details_is_for_facilitators_only(people):
    """A learner or a stranger asking for the sign-ups gets NotAllowed."""
    ben, eve, circle = people["ben"], people["eve"], people["circle"]
    actions.join_circle(ben, circle, "Ben", contact="ben@example.org")
    sync(ben, eve)
    for home in (ben, eve):
        with pytest.raises(NotAllowed):
            actions.list_joins(home, circle)


def test_details_cannot_be_sealed_before_a_facilitator_profile_arrives(home_factory):
    """If no facilitator's sealing key is known, a join with details is refused (nothing is
    sent in clear), while a join without details works."""
    ana, ben = home_factory("ana"), home_factory("ben")
    circle = announce(ana)
    profile, circle_entry = ana.store.feed_entries(ana.identity.node_id)
    # the profile arrived without its body, so Ana's sealing key is unknown here
    ben.store.ingest([profile.without_body(), circle_entry], now_ms=actions.now_ms())
    with pytest.raises(InvalidInput, match="sealed"):
        actions.join_circle(ben, circle, "Ben", contact="ben@example.org")
    assert ben.store.entry_count() == 2
    join = actions.join_circle(ben, circle, "Ben")
    assert "sealed" not in join.body()


def test_a_facilitator_without_a_known_profile_gets_no_copy(home_factory):
    """Details are sealed only to facilitators whose enc_key is known."""
    ana, ben = home_factory("ana"), home_factory("ben")
    circle = announce(ana, facilitators=[b"\x33" * 32])
    sync(ana, ben)
    join = actions.join_circle(ben, circle, "Ben", goal="learn")
    assert [r for r, _ in join.body()["sealed"]] == [ana.identity.node_id]


def test_a_sealed_copy_that_does_not_open_is_reported_not_raised(people):
    """A sign-up whose copy for us was made with another key shows an error in its details."""
    ana, ben, circle = people["ana"], people["ben"], people["circle"]
    actions.join_circle(ben, circle, "Ben", contact="ben@example.org")
    sync(ben, ana)
    row = ana.store.conn.execute("SELECT entry_id, sealed FROM joins").fetchone()
    sealed = msgpack.unpackb(row[1])
    for pair in sealed:
        pair[1] = pair[1][:-1] + bytes([pair[1][-1] ^ 1])
    ana.store.conn.execute("UPDATE joins SET sealed = ? WHERE entry_id = ?",
                           (msgpack.packb(sealed), row[0]))
    [listed] = actions.list_joins(ana, circle)
    assert "could not be opened" in listed["details"]["error"]


def test_accepting_is_for_facilitators(people):
    """A facilitator's accept marks the sign-up; a learner's attempt is refused."""
    ana, ben, circle = people["ana"], people["ben"], people["circle"]
    join = actions.join_circle(ben, circle, "Ben")
    sync(ben, ana)
    with pytest.raises(NotAllowed):
        actions.decide_join(ben, join.id)
    with pytest.raises(NotFound):
        actions.decide_join(ana, b"\x05" * 32)
    actions.decide_join(ana, join.id, accepted=True)
    assert [r["status"] for r in actions.list_joins(ana, circle)] == ["accepted"]
    actions.decide_join(ana, join.id, accepted=False)
    assert [r["status"] for r in actions.list_joins(ana, circle)] == ["declined"]
    assert queries.get_circle(ana.store.conn, circle, now_ms=NOW_MS).summary.seats_taken == 0


def test_leaving_frees_the_seat(people):
    """Leave after join: the member is gone from the list and the seat is free."""
    ana, ben, circle = people["ana"], people["ben"], people["circle"]
    actions.join_circle(ben, circle, "Ben")
    actions.leave_circle(ben, circle)
    sync(ben, ana)
    assert actions.list_joins(ana, circle) == []
    assert queries.get_circle(ana.store.conn, circle, now_ms=NOW_MS).summary.seats_taken == 0


# -- meetings, RSVPs, feedback, delete -----------------------------------------------------------


def test_meeting_dates_are_checked_against_the_schedule(people):
    """RSVPs and notes name a meeting by number or date; wrong ones are clear errors."""
    ben, circle = people["ben"], people["circle"]
    assert actions.rsvp(ben, circle, number=2).body()["date"] == "2027-01-19"
    assert actions.rsvp(ben, circle, date="2027-01-26", attending=False).body() == {
        "circle": circle, "date": "2027-01-26", "attending": False}
    for kwargs, message in (
        ({"number": 7}, "1-6"),
        ({"number": 0}, "1-6"),
        ({"date": "2027-01-13"}, "not one of"),
        ({"number": 1, "date": "2027-01-19"}, "meeting 1 is on 2027-01-12"),
        ({}, "--number or --date"),
    ):
        with pytest.raises(InvalidInput, match=message):
            actions.rsvp(ben, circle, **kwargs)


def test_meeting_notes_are_for_facilitators(people):
    """A facilitator's plus/delta is stored and shown; a learner is refused."""
    cal, ben, circle = people["cal"], people["ben"], people["circle"]
    with pytest.raises(NotAllowed):
        actions.add_meeting_note(ben, circle, number=1, plus=["fun"])
    actions.add_meeting_note(cal, circle, number=1, plus=["fun"], delta=["too hot"],
                             attendance=5, rating=4, recap="Loops")
    note = queries.get_circle(cal.store.conn, circle, now_ms=NOW_MS).meetings[0].notes[0]
    assert (note["plus"], note["delta"], note["attendance"], note["recap"]) == (
        ["fun"], ["too hot"], 5, "Loops")


def test_feedback_role_follows_who_gives_it(people):
    """Feedback from a facilitator says so; from anyone else it is a learner's."""
    cal, ben, circle = people["cal"], people["ben"], people["circle"]
    actions.join_circle(ben, circle, "Ben")
    sync(ben, cal)
    started = ms("2027-01-13")
    assert actions.give_feedback(cal, circle, course_rating=5,
                                 at_ms=started).body()["role"] == "facilitator"
    learner = actions.give_feedback(ben, circle, course_rating=3, reason="ok",
                                    goal="loops", goal_rating=2, recommendation_rating=4,
                                    next_steps="more", at_ms=started)
    assert learner.body()["role"] == "learner" and learner.body()["goal_rating"] == 2


def test_delete_own_entries_only(people):
    """We may delete our own entries (bodies go, headers stay); not someone else's, and not
    unknown ones."""
    ana, ben, circle = people["ana"], people["ben"], people["circle"]
    rsvp = actions.rsvp(ben, circle, number=1)
    with pytest.raises(NotAllowed):
        actions.delete_entries(ben, [circle])
    with pytest.raises(NotFound):
        actions.delete_entries(ben, [b"\x09" * 32])
    actions.delete_entries(ben, [rsvp.id, rsvp.id], reason="changed my mind")
    kept = ben.store.get_entry(rsvp.id)
    assert kept.body_bytes is None and kept.signature_valid()
    sync(ben, ana)
    assert ana.store.get_entry(rsvp.id).body_bytes is None


# -- the home ------------------------------------------------------------------------------------


def test_home_files_are_private(home):
    """The key files are 0600 and the home 0700."""
    for name in (config.IDENTITY_FILE, config.SEALING_KEY_FILE):
        assert (home.path / name).stat().st_mode & 0o777 == 0o600
    assert home.path.stat().st_mode & 0o777 == 0o700


def test_a_key_file_readable_by_others_is_refused_with_a_hint(home):
    """A 0644 identity key is refused, and the message says how to fix it."""
    key = home.path / config.IDENTITY_FILE
    home.close()
    os.chmod(key, 0o644)
    with pytest.raises(HomeError, match=f"chmod 600 {key}"):
        Home.open(home.path)
    os.chmod(key, 0o600)
    Home.open(home.path).close()


def test_a_damaged_key_file_is_refused(home):
    """A key file of the wrong length is reported as damaged."""
    key = home.path / config.IDENTITY_FILE
    home.close()
    key.write_bytes(b"short")
    with pytest.raises(HomeError, match="damaged"):
        Home.open(home.path)


def test_create_never_overwrites_an_identity(home):
    """Creating a home where one exists is refused, and the key is unchanged."""
    key = (home.path / config.IDENTITY_FILE).read_bytes()
    with pytest.raises(HomeError, match="refusing to overwrite"):
        Home.create(home.path)
    assert (home.path / config.IDENTITY_FILE).read_bytes() == key


def test_opening_a_missing_home_is_an_error(tmp_path: Path):
    """Without `create`, a home with no identity is not made silently."""
    with pytest.raises(HomeError, match="p2pnode init"):
        Home.open(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_a_kept_key_with_a_lost_database_waits_for_recovery(home):
    """With the database gone but the key kept, appends are refused (they would fork our feed)
    until recovery is settled."""
    actions.set_profile(home, "Ana")
    home.close()
    (home.path / config.DATABASE_FILE).unlink()
    with Home.open(home.path) as reopened:
        assert reopened.recovery_pending
        with pytest.raises(RecoveryPending):
            actions.set_profile(reopened, "Ana")
        assert reopened.store.entry_count() == 0
        reopened.finish_recovery()
        assert actions.set_profile(reopened, "Ana").seq == 1


def test_recovery_stays_pending_until_declared_done(home_factory):
    """Entries of our own that arrive do not by themselves end the recovery (more may follow:
    the node ends it once a peer's whole feed is in); after that, appends continue the feed."""
    ana, peer = home_factory("ana"), home_factory("peer")
    actions.set_profile(ana, "Ana")
    sync(ana, peer)
    ana.close()
    (ana.path / config.DATABASE_FILE).unlink()
    with Home.open(ana.path) as reopened:
        sync(peer, reopened)
        assert reopened.recovery_pending
        with pytest.raises(RecoveryPending):
            actions.set_profile(reopened, "Ana again")
        reopened.finish_recovery()
        assert actions.set_profile(reopened, "Ana again").seq == 2


def test_home_close_is_safe_twice(home):
    """close() may be called twice."""
    home.close()
    home.close()
