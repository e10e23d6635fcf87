"""Tests for p2pnode/store.py (with derive.py and queries.py): the durable entry log, ingest rules,
forks, deletion, retention, the derived tables and the circle queries over them."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from builders import (
    DAY_MS,
    MINUTE_MS,
    NOW_MS,
    Feed,
    accept_body,
    cancel_body,
    circle_body,
    delete_body,
    feedback_body,
    forged_chain,
    identity_from_seed,
    join_body,
    ms,
    note_body,
    profile_body,
    resource_body,
    rsvp_body,
    update_body,
    valid_bodies,
    with_signature,
)

from p2pnode.store import queries
from p2pnode.store.database import Store
from protocol.entry import create_entry, entry_from_parts
from protocol.errors import InvalidRecordError
from protocol.feed import MAX_FUTURE_MS, authenticate_run
from protocol.records import KNOWN_KINDS, validate_record

ROOT = Path(__file__).resolve().parents[2]
ANA = identity_from_seed("store ana")
BEN = identity_from_seed("store ben")
CAL = identity_from_seed("store cal")
EVE = identity_from_seed("store eve")


def feed(identity, start_ms: int = NOW_MS - 10 * DAY_MS) -> Feed:
    return Feed(identity, start_ms)


def ingest(store: Store, entries, now_ms: int = NOW_MS):
    return store.ingest(list(entries), now_ms=now_ms)


def body_of(store: Store, entry_id: bytes) -> bytes | None:
    return store.conn.execute("SELECT body FROM entries WHERE id = ?", (entry_id,)).fetchone()[0]


def names(circles) -> list[str]:
    return [c.name for c in circles]


@pytest.fixture
def ana() -> Feed:
    """Ana's feed: a profile, then a circle (Tuesdays from 2027-01-12, six weeks)."""
    f = feed(ANA)
    f.add("profile", profile_body("Ana"))
    return f


def announce(f: Feed, **fields):
    facilitators = fields.pop("facilitators", [f.node_id])
    return f.add("circle", circle_body(facilitators, **fields))


def test_builders_make_valid_bodies_of_every_kind():
    """Each body builder's output passes the record schema, for every known kind."""
    bodies = valid_bodies(ANA.node_id)
    assert set(bodies) == KNOWN_KINDS
    for kind, body in bodies.items():
        validate_record(kind, body)


# -- append ---------------------------------------------------------------------------------------


def test_append_assigns_seq_and_prev_and_signs(store):
    """Our own entries get seq 1, 2, 3… each naming the previous id, and verify."""
    made = [store.append(ANA, "profile", profile_body(f"Ana {i}"), now_ms=NOW_MS + i)
            for i in range(3)]
    assert [e.seq for e in made] == [1, 2, 3]
    assert [e.header.prev for e in made] == [None, made[0].id, made[1].id]
    assert store.head(ANA.node_id).id == made[-1].id
    assert store.feed_entries(ANA.node_id) == made
    assert authenticate_run(made) == [True] * 3
    for entry in made:
        entry.verify()
        assert store.get_entry(entry.id) == entry


def test_append_of_an_invalid_record_raises_and_changes_nothing(store):
    """A record that breaks the schema is refused before signing: no entry, no seq used up."""
    store.append(ANA, "profile", profile_body(), now_ms=NOW_MS)
    with pytest.raises(InvalidRecordError) as caught:
        store.append(ANA, "circle", circle_body([ANA.node_id], meeting_time="25:00"),
                     now_ms=NOW_MS)
    assert caught.value.field == "meeting_time"
    assert store.entry_count() == 1
    assert store.clock() == {ANA.node_id: 1}
    assert store.append(ANA, "profile", profile_body(), now_ms=NOW_MS).seq == 2


def test_appended_entries_survive_reopening(tmp_path):
    """Closing and reopening the database keeps every entry and the feed head."""
    path = tmp_path / "s.sqlite3"
    with Store(path) as first:
        entry = first.append(ANA, "profile", profile_body(), now_ms=NOW_MS)
    with Store(path) as again:
        assert again.get_entry(entry.id) == entry
        assert again.head(ANA.node_id).seq == 1
        assert again.append(ANA, "profile", profile_body(), now_ms=NOW_MS).seq == 2


_APPEND_AND_WAIT = """
import sys, time
from p2pnode.store.database import Store
from protocol.identity import Identity
identity = Identity.from_private_bytes(bytes.fromhex(sys.argv[2]))
store = Store(sys.argv[1])
entry = store.append(identity, "profile", {"name": "Ana", "enc_key": bytes(32)}, now_ms=1)
print("done", entry.id.hex(), flush=True)
time.sleep(30)
"""


def test_an_append_that_returned_survives_sigkill(tmp_path):
    """A process killed (SIGKILL) right after append returns loses nothing: reopening the
    database finds the entry, every time."""
    path = tmp_path / "durable.sqlite3"
    for round_number in range(1, 4):
        child = subprocess.Popen(
            [sys.executable, "-c", _APPEND_AND_WAIT, str(path), ANA.private_bytes().hex()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
        try:
            line = child.stdout.readline().split()
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait(timeout=10)
            child.stdout.close()
            child.stderr.close()
        assert line[:1] == ["done"], child.stderr
        assert child.returncode == -signal.SIGKILL
        with Store(path) as reopened:
            assert reopened.entry_count() == round_number
            entry = reopened.get_entry(bytes.fromhex(line[1]))
            assert entry is not None and entry.seq == round_number
            entry.verify()


# -- ingest ---------------------------------------------------------------------------------------


def test_ingest_stores_a_foreign_feed_and_is_idempotent(store, ana):
    """Ingesting a feed stores every entry; a second ingest reports duplicates and changes
    nothing."""
    announce(ana)
    first = ingest(store, ana.entries)
    assert first.accepted == ana.entries and not first.rejected
    assert store.head(ANA.node_id).id == ana.entries[-1].id
    again = ingest(store, ana.entries)
    assert again.duplicates == 2 and not again.accepted and not again.rejected
    assert store.entry_count() == 2


def test_duplicates_inside_one_batch_are_counted_once(store, ana):
    """The same entry twice in one batch is stored once."""
    report = ingest(store, ana.entries * 2)
    assert len(report.accepted) == 1 and report.duplicates == 1


def test_ingest_of_several_authors_in_shuffled_order(store):
    """Entries of several authors in any order are sorted into their feeds and all accepted."""
    feeds = [feed(identity) for identity in (ANA, BEN, CAL)]
    for f in feeds:
        f.fill(7)
    mixed = [e for f in feeds for e in f.entries]
    random.Random(7).shuffle(mixed)
    report = ingest(store, mixed)
    assert len(report.accepted) == 21 and not report.rejected
    assert store.clock() == {f.node_id: 7 for f in feeds}
    for f in feeds:
        assert store.feed_entries(f.node_id) == f.entries


def test_entries_ahead_of_a_gap_are_not_stored_until_it_fills(store):
    """Entries 3-5 without 1-2 store nothing and report the gap; once 1-2 arrive, 3-5 fit."""
    f = feed(ANA)
    one, two, *rest = f.fill(5)
    report = ingest(store, rest)
    assert not report.accepted and store.entry_count() == 0
    assert report.gaps == {ANA.node_id: 1}
    assert len(report.rejected) == 3
    assert not ingest(store, [one, two]).rejected
    report = ingest(store, rest)
    assert report.accepted == rest and store.clock() == {ANA.node_id: 5}


def test_a_gap_after_held_entries_names_the_first_missing_seq(store):
    """Holding 1-2 and receiving 4-5 reports seq 3 as missing and stores nothing new."""
    entries = feed(ANA).fill(5)
    ingest(store, entries[:2])
    report = ingest(store, entries[3:])
    assert report.gaps == {ANA.node_id: 3}
    assert store.entry_count() == 2


def test_a_chain_forged_without_the_key_imports_nothing(store):
    """A correctly linked run whose every signature is an impostor's (including the anchor)
    stores nothing at all."""
    report = ingest(store, forged_chain(ANA.node_id, 6))
    assert not report.accepted and len(report.rejected) == 6
    assert store.entry_count() == 0 and store.clock() == {}


def test_a_run_with_one_altered_header_imports_only_the_entries_below_it(store):
    """Altering a header field of entry k (old signature kept) imports entries below k only."""
    entries = feed(ANA).fill(8)
    k = 4
    h = entries[k].header
    altered_header = h.__class__(h.author, h.seq, h.prev, h.timestamp_ms + 1, h.kind,
                                 h.body_hash, h.body_size).encode()
    entries[k] = entry_from_parts([altered_header, entries[k].signature, entries[k].body_bytes])
    report = ingest(store, entries)
    assert report.accepted == entries[:k]
    assert store.clock() == {ANA.node_id: k}
    assert {e.seq for e, _ in report.rejected} == set(range(k + 1, 9))


def test_a_forged_newest_entry_does_not_spoil_the_honest_ones_below(store):
    """With only the anchor's signature bad, the fallback keeps the valid prefix."""
    entries = feed(ANA).fill(5)
    entries[-1] = with_signature(entries[-1], b"\x00" * 64)
    report = ingest(store, entries)
    assert report.accepted == entries[:4]
    assert [reason for _, reason in report.rejected] == ["signature does not verify"]


def test_future_timestamps_are_refused_with_what_follows(store):
    """An entry more than 10 minutes ahead is refused and so is everything after it; exactly
    10 minutes ahead is fine."""
    f = feed(ANA)
    ok = f.add("x.test", {}, at_ms=NOW_MS + MAX_FUTURE_MS)
    ahead = f.add("x.test", {}, at_ms=NOW_MS + MAX_FUTURE_MS + 1)
    after = f.add("x.test", {}, at_ms=NOW_MS)
    report = ingest(store, f.entries)
    assert report.accepted == [ok]
    assert [e for e, _ in report.rejected] == [ahead, after]
    assert "future" in report.rejected[0][1]
    assert ingest(store, [ahead, after], now_ms=NOW_MS + 1).accepted == [ahead, after]


def test_an_invalid_body_is_refused_and_so_are_later_entries(store, ana):
    """A body that breaks its kind's schema is refused, and the author's later entries cannot
    link past it."""
    bad = ana.add("circle", {"name": ""})
    later = ana.add("profile", profile_body("Ana again"))
    report = ingest(store, ana.entries)
    assert report.accepted == ana.entries[:1]
    assert [e for e, _ in report.rejected] == [bad, later]
    assert "name" in report.rejected[0][1]
    assert store.entry_count() == 1 and queries.profile(store.conn, ANA.node_id)["name"] == "Ana"


def test_unknown_kinds_are_stored_but_change_no_view(store, ana):
    """A kind this node does not know is kept (to forward it) but derives nothing."""
    ana.add("circle.poll", {"question": "Which day?"})
    report = ingest(store, ana.entries)
    assert len(report.accepted) == 2
    assert store.counts_by_kind() == {"profile": 1, "circle.poll": 1}
    assert queries.list_circles(store.conn, now_ms=NOW_MS, include_past=True) == []


def test_body_less_entries_are_stored_and_extend_the_chain(store, ana):
    """Entries received without their body are accepted (headers verify) and later ones link."""
    circle = announce(ana)
    ana.add("profile", profile_body("Ana B"))
    report = ingest(store, [ana.entries[0], circle.without_body(), ana.entries[2]])
    assert len(report.accepted) == 3
    assert body_of(store, circle.id) is None
    assert queries.profile(store.conn, ANA.node_id)["name"] == "Ana B"


# -- forks ----------------------------------------------------------------------------------------


def rival(entry, **body):
    """A second, differently signed entry by the same author for the same seq and prev."""
    identity = {e.node_id: e for e in (ANA, BEN, CAL)}[entry.author]
    return create_entry(identity, seq=entry.seq, prev=entry.header.prev,
                        timestamp_ms=entry.header.timestamp_ms, kind="x.test",
                        body=body or {"r": 1})


def fork_rows(store: Store):
    return store.conn.execute(
        "SELECT author, seq, header_a, signature_a, header_b, signature_b FROM forks"
    ).fetchall()


def test_a_second_entry_for_a_held_seq_is_recorded_as_a_fork(store, ana):
    """Both headers are kept as proof, the first entry stays, and the author is flagged in the
    circle listings (Person.forked)."""
    circle = announce(ana)
    ana.add("x.test", {"n": 3})
    ingest(store, ana.entries)
    second = rival(circle)
    report = ingest(store, [second])
    assert report.forked == [ANA.node_id] and not report.accepted
    assert store.forked_authors() == {ANA.node_id}
    assert store.get_entry(circle.id) == circle and store.get_entry(second.id) is None
    assert fork_rows(store) == [
        (ANA.node_id, 2, circle.header_bytes, circle.signature, second.header_bytes,
         second.signature)
    ]
    [listed] = queries.list_circles(store.conn, now_ms=NOW_MS)
    assert listed.author.forked and listed.facilitators[0].forked
    assert "FORKED" in listed.author.label
    assert ingest(store, [rival(circle, r=2)]).forked == []  # flagged once


def test_a_next_entry_with_another_prev_is_a_fork(store, ana):
    """An entry at head+1 whose prev is not our head is fork proof too, and is not stored."""
    ingest(store, ana.entries)
    other_first = rival(ana.entries[0])
    branch = create_entry(ANA, seq=2, prev=other_first.id, timestamp_ms=NOW_MS - DAY_MS,
                          kind="x.test", body={})
    report = ingest(store, [branch])
    assert report.forked == [ANA.node_id]
    assert store.entry_count() == 1 and store.head(ANA.node_id).seq == 1
    [row] = fork_rows(store)
    assert row[4] == branch.header_bytes


def test_an_unsigned_rival_is_not_a_fork(store, ana):
    """Anyone can make up a header: a rival entry whose signature fails flags nobody."""
    ingest(store, ana.entries)
    forged = forged_chain(ANA.node_id, 1)[0]
    report = ingest(store, [forged])
    assert report.forked == [] and store.forked_authors() == set()
    assert fork_rows(store) == []


def test_an_unforked_author_is_not_flagged(store, ana):
    """Honest feeds show no fork mark."""
    announce(ana)
    ingest(store, ana.entries)
    [listed] = queries.list_circles(store.conn, now_ms=NOW_MS)
    assert not listed.author.forked and "FORKED" not in listed.author.label


# -- derived tables: circles ---------------------------------------------------------------------


def state(store: Store, circle_id: bytes) -> dict:
    return queries.circle_state(store.conn, circle_id)


def test_circle_update_by_its_author_applies(store, ana):
    """The author's update changes the listed circle and its search text."""
    circle = announce(ana)
    ana.add("circle.update", update_body(circle.id, name="Python on Thursdays",
                                         meeting_time="19:00"))
    ingest(store, ana.entries)
    assert state(store, circle.id)["name"] == "Python on Thursdays"
    assert state(store, circle.id)["meeting_time"] == "19:00"
    assert names(queries.list_circles(store.conn, now_ms=NOW_MS, search="thursdays")) == [
        "Python on Thursdays"
    ]


def test_circle_update_by_a_stranger_is_ignored(store, ana):
    """An update or cancel by someone who is not a facilitator is stored but has no effect."""
    circle = announce(ana)
    eve = feed(EVE)
    eve.add("circle.update", update_body(circle.id, name="Hijacked"))
    eve.add("circle.cancel", cancel_body(circle.id, "spite"))
    report = ingest(store, ana.entries + eve.entries)
    assert len(report.accepted) == 4
    assert state(store, circle.id)["name"] == "Python for Everybody"
    [listed] = queries.list_circles(store.conn, now_ms=NOW_MS)
    assert listed.status == "upcoming"


def test_circle_update_by_a_named_co_facilitator_applies(store, ana):
    """A facilitator named in the circle may update it."""
    circle = announce(ana, facilitators=[ANA.node_id, CAL.node_id])
    cal = feed(CAL)
    cal.add("circle.update", update_body(circle.id, description="Now with snacks."))
    ingest(store, ana.entries + cal.entries)
    assert state(store, circle.id)["description"] == "Now with snacks."
    assert queries.facilitators_of(store.conn, circle.id) == {ANA.node_id, CAL.node_id}


def test_a_removed_co_facilitator_loses_authority(store, ana):
    """After the author drops a co-facilitator, that person's later updates have no effect."""
    circle = announce(ana, facilitators=[ANA.node_id, CAL.node_id])
    ana.add("circle.update", update_body(circle.id, facilitators=[ANA.node_id]))
    cal = feed(CAL, start_ms=NOW_MS - DAY_MS)  # after Ana's update
    cal.add("circle.update", update_body(circle.id, name="Cal's circle"))
    ingest(store, ana.entries + cal.entries)
    assert state(store, circle.id)["name"] == "Python for Everybody"
    assert queries.facilitators_of(store.conn, circle.id) == {ANA.node_id}


def test_cancel_hides_the_circle_from_default_listings(store, ana):
    """A cancelled circle drops out of the upcoming list and shows as cancelled with --all."""
    circle = announce(ana)
    ana.add("circle.cancel", cancel_body(circle.id, "the library is closed"))
    ingest(store, ana.entries)
    assert queries.list_circles(store.conn, now_ms=NOW_MS) == []
    [listed] = queries.list_circles(store.conn, now_ms=NOW_MS, include_past=True)
    assert listed.status == "cancelled" and listed.next_meeting is None
    detail = queries.get_circle(store.conn, circle.id, now_ms=NOW_MS)
    assert detail.cancel_reason == "the library is closed"


def test_updates_that_arrive_before_their_circle_apply_once_it_arrives(store, ana):
    """A co-facilitator's update ingested before the circle counts when the circle comes."""
    circle = announce(ana, facilitators=[ANA.node_id, CAL.node_id])
    cal = feed(CAL)
    cal.add("circle.update", update_body(circle.id, name="Renamed early"))
    ana.add("circle.cancel", cancel_body(circle.id))
    ingest(store, cal.entries)
    assert state(store, circle.id) is None
    ingest(store, ana.entries)
    assert state(store, circle.id)["name"] == "Renamed early"
    assert queries.get_circle(store.conn, circle.id, now_ms=NOW_MS).summary.status == "cancelled"


def test_a_reschedule_is_marked(store, ana):
    """A changed meetings list sets the rescheduled flag; other updates do not."""
    circle = announce(ana)
    ana.add("circle.update", update_body(circle.id, name="Same days"))
    ingest(store, ana.entries)
    assert not queries.get_circle(store.conn, circle.id, now_ms=NOW_MS).rescheduled
    ingest(store, [ana.add("circle.update", update_body(circle.id, meetings=["2027-01-14"]))])
    detail = queries.get_circle(store.conn, circle.id, now_ms=NOW_MS)
    assert detail.rescheduled and [m.date for m in detail.meetings] == ["2027-01-14"]


# -- derived tables: sign-ups, RSVPs, notes, resources, profiles ---------------------------------


def seats(store: Store, circle_id: bytes) -> int:
    return queries.get_circle(store.conn, circle_id, now_ms=NOW_MS).summary.seats_taken


def statuses(store: Store, circle_id: bytes) -> dict[str, str]:
    detail = queries.get_circle(store.conn, circle_id, now_ms=NOW_MS)
    return {p.display_name: p.status for p in detail.participants}


def test_joins_take_seats_and_leaving_frees_one(store, ana):
    """Each member's latest join/leave counts: two joins take two seats, a leave frees one."""
    circle = announce(ana, signup_limit=2)
    ben, cal = feed(BEN), feed(CAL)
    ben.add("join", join_body(circle.id, "Ben"))
    cal.add("join", join_body(circle.id, "Cal"))
    ingest(store, ana.entries + ben.entries + cal.entries)
    assert seats(store, circle.id) == 2
    [listed] = queries.list_circles(store.conn, now_ms=NOW_MS)
    assert (listed.seats_taken, listed.signup_limit) == (2, 2)
    ingest(store, [ben.add("join", join_body(circle.id, "Ben", action="leave"))])
    assert seats(store, circle.id) == 1
    assert statuses(store, circle.id) == {"Cal": "pending"}


def test_facilitator_decisions_settle_seats_and_strangers_cannot_decide(store, ana):
    """A facilitator's decline frees the seat and an accept marks it; the same records from a
    non-facilitator change nothing."""
    circle = announce(ana, signup_limit=2)
    ben, cal, eve = feed(BEN), feed(CAL), feed(EVE)
    ben_join = ben.add("join", join_body(circle.id, "Ben"))
    cal_join = cal.add("join", join_body(circle.id, "Cal"))
    eve.add("join.accept", accept_body(circle.id, ben_join.id, accepted=False))
    eve.add("join.accept", accept_body(circle.id, cal_join.id, accepted=True))
    ingest(store, ana.entries + ben.entries + cal.entries + eve.entries)
    assert statuses(store, circle.id) == {"Ben": "pending", "Cal": "pending"}
    assert seats(store, circle.id) == 2
    ana.add("join.accept", accept_body(circle.id, ben_join.id, accepted=False))
    ana.add("join.accept", accept_body(circle.id, cal_join.id, accepted=True))
    ingest(store, ana.entries)
    assert statuses(store, circle.id) == {"Ben": "declined", "Cal": "accepted"}
    assert seats(store, circle.id) == 1


def test_rsvps_latest_wins_per_person_and_date(store, ana):
    """Each person's latest RSVP for a date counts; other dates are independent."""
    circle = announce(ana)
    ben, cal = feed(BEN), feed(CAL)
    ben.add("rsvp", rsvp_body(circle.id, "2027-01-12", attending=True))
    ben.add("rsvp", rsvp_body(circle.id, "2027-01-12", attending=False))
    ben.add("rsvp", rsvp_body(circle.id, "2027-01-19", attending=True))
    cal.add("rsvp", rsvp_body(circle.id, "2027-01-12", attending=True))
    ingest(store, ana.entries + ben.entries + cal.entries)
    meetings = queries.get_circle(store.conn, circle.id, now_ms=NOW_MS).meetings
    counts = {m.date: (m.attending, m.not_attending) for m in meetings}
    assert counts["2027-01-12"] == (1, 1)
    assert counts["2027-01-19"] == (1, 0)
    assert counts["2027-01-26"] == (0, 0)
    assert [m.number for m in meetings] == [1, 2, 3, 4, 5, 6]


def test_meeting_notes_show_only_when_a_facilitator_wrote_them(store, ana):
    """Notes by the facilitator appear under their meeting; notes by anyone else do not."""
    circle = announce(ana)
    ana.add("meeting.note", note_body(circle.id, "2027-01-12", recap="Chapter 1", rating=5))
    eve = feed(EVE)
    eve.add("meeting.note", note_body(circle.id, "2027-01-12", recap="fake"))
    eve.add("meeting.note", note_body(circle.id, "2027-01-19", recap="fake"))
    ingest(store, ana.entries + eve.entries)
    meetings = queries.get_circle(store.conn, circle.id, now_ms=NOW_MS).meetings
    [note] = meetings[0].notes
    assert note["recap"] == "Chapter 1" and note["plus"] == ["good pace"]
    assert note["author"].node_id == ANA.node_id
    assert meetings[1].notes == ()


def test_resources_are_listed_by_circle(store, ana):
    """Resources naming a circle show in it; others only in the full list."""
    circle = announce(ana)
    ana.add("resource", resource_body(circle.id, "Chapter 1"))
    ana.add("resource", resource_body(None, "Unrelated"))
    ingest(store, ana.entries)
    in_circle = queries.list_resources(store.conn, circle=circle.id)
    assert [r.title for r in in_circle] == ["Chapter 1"]
    assert sorted(r.title for r in queries.list_resources(store.conn)) == ["Chapter 1",
                                                                          "Unrelated"]
    detail = queries.get_circle(store.conn, circle.id, now_ms=NOW_MS)
    assert [r.title for r in detail.resources] == ["Chapter 1"]


def test_profiles_latest_wins(store, ana):
    """A later profile replaces the earlier one and names the author everywhere."""
    announce(ana)
    ana.add("profile", profile_body("Ana Lima", bio="Librarian"))
    ingest(store, ana.entries)
    assert queries.profile(store.conn, ANA.node_id)["name"] == "Ana Lima"
    [listed] = queries.list_circles(store.conn, now_ms=NOW_MS)
    assert listed.author.name == "Ana Lima"
    assert listed.author.label.startswith("Ana Lima (")


def test_feedback_ratings_are_aggregated(store, ana):
    """Course ratings from feedback are averaged per circle."""
    circle = announce(ana)
    ben, cal = feed(BEN), feed(CAL)
    ben.add("feedback", feedback_body(circle.id, course_rating=5))
    cal.add("feedback", feedback_body(circle.id, course_rating=2))
    ingest(store, ana.entries + ben.entries + cal.entries)
    detail = queries.get_circle(store.conn, circle.id, now_ms=NOW_MS)
    assert detail.feedback_count == 2 and detail.ratings["course"] == 3.5


# -- delete ---------------------------------------------------------------------------------------


def test_delete_drops_bodies_and_derived_rows_but_keeps_headers(store, ana):
    """A delete empties the named bodies, removes their effects, and the chain still verifies."""
    circle = announce(ana)
    ben = feed(BEN)
    join = ben.add("join", join_body(circle.id, "Ben"))
    rsvp = ben.add("rsvp", rsvp_body(circle.id))
    ingest(store, ana.entries + ben.entries)
    assert seats(store, circle.id) == 1
    ben.add("delete", delete_body([join.id, rsvp.id], "privacy"))
    ingest(store, ben.entries)
    assert body_of(store, join.id) is None and body_of(store, rsvp.id) is None
    assert seats(store, circle.id) == 0
    assert queries.get_circle(store.conn, circle.id, now_ms=NOW_MS).meetings[0].attending == 0
    kept = store.feed_entries(BEN.node_id)
    assert [e.id for e in kept] == [e.id for e in ben.entries]
    assert authenticate_run(kept) == [True] * 3
    assert kept[0].body_bytes is None and kept[2].body_bytes is not None


def test_deleting_a_circle_removes_it(store, ana):
    """A deleted circle disappears from every listing."""
    circle = announce(ana)
    ana.add("delete", delete_body([circle.id]))
    ingest(store, ana.entries)
    assert queries.list_circles(store.conn, now_ms=NOW_MS, include_past=True) == []
    assert queries.get_circle(store.conn, circle.id, now_ms=NOW_MS) is None


def test_a_delete_naming_someone_elses_entry_has_no_effect(store, ana):
    """Only an entry's own author can delete it."""
    circle = announce(ana)
    eve = feed(EVE)
    eve.add("delete", delete_body([circle.id, ana.entries[0].id]))
    report = ingest(store, ana.entries + eve.entries)
    assert len(report.accepted) == 3
    assert body_of(store, circle.id) == circle.body_bytes
    assert state(store, circle.id)["name"] == "Python for Everybody"
    assert queries.profile(store.conn, ANA.node_id)["name"] == "Ana"


def test_a_deleted_body_does_not_come_back(store, ana):
    """Receiving the entry again with its body (from a node that missed the delete) does not
    restore it."""
    circle = announce(ana)
    ana.add("delete", delete_body([circle.id]))
    ingest(store, ana.entries)
    report = ingest(store, [circle])
    assert report.duplicates == 1 and body_of(store, circle.id) is None


# -- retention ------------------------------------------------------------------------------------


def ended_circle_with_people(store: Store, ana: Feed):
    circle = announce(ana)  # last meeting 2027-02-16
    ben = feed(BEN)
    ben.add("join", join_body(circle.id, "Ben"))
    ben.add("rsvp", rsvp_body(circle.id))
    ben.add("feedback", feedback_body(circle.id, reason="Great group"))
    ingest(store, ana.entries + ben.entries)
    return circle, ben


def test_prune_expired_drops_personal_bodies_91_days_after_the_last_meeting(store, ana):
    """Joins, RSVPs and feedback of a circle that ended over 90 days ago lose their bodies; the
    circle keeps its own, and ratings stay aggregated."""
    circle, ben = ended_circle_with_people(store, ana)
    assert store.prune_expired(now_ms=ms("2027-05-17")) == 0  # 90 days: kept
    assert store.prune_expired(now_ms=ms("2027-05-18")) == 3  # 91 days
    assert all(body_of(store, e.id) is None for e in ben.entries)
    assert body_of(store, circle.id) == circle.body_bytes
    later = ms("2027-05-18")
    detail = queries.get_circle(store.conn, circle.id, now_ms=later)
    assert detail.participants == () and detail.summary.seats_taken == 0
    assert detail.meetings[0].attending == 0
    assert detail.ratings["course"] == 4 and detail.feedback_count == 1
    assert store.conn.execute("SELECT count(*) FROM feedback WHERE author IS NOT NULL"
                              ).fetchone()[0] == 0
    assert store.prune_expired(now_ms=later) == 0


def test_a_join_for_an_expired_circle_arrives_without_its_body(store, ana):
    """Personal records of a long-ended circle are stored header-only when they arrive."""
    circle = announce(ana)
    ingest(store, ana.entries)
    cal = feed(CAL)
    join = cal.add("join", join_body(circle.id, "Cal"))
    profile = cal.add("profile", profile_body("Cal"))
    report = ingest(store, cal.entries, now_ms=ms("2027-06-01"))
    assert [e.id for e in report.accepted] == [join.id, profile.id]
    assert body_of(store, join.id) is None
    assert body_of(store, profile.id) == profile.body_bytes
    assert queries.get_circle(store.conn, circle.id, now_ms=NOW_MS).participants == ()


# -- queries --------------------------------------------------------------------------------------


@pytest.fixture
def catalogue(store):
    """Four circles of different languages, topics, weekdays and dates, plus an ended one."""
    f = feed(ANA)
    f.add("profile", profile_body("Ana"))
    made = {
        "python": announce(f, name="Python for Everybody", start="2027-01-12",
                           topics=["Programming", "python"]),  # Tuesday
        "portuguese": announce(f, name="Introdução à Programação", language="pt-BR",
                               start="2027-01-07", topics=["programação"],
                               description="Aprender juntos na Biblioteca São Paulo"),  # Thursday
        "spanish": announce(f, name="Historia del arte", language="es", start="2027-02-01",
                            topics=["art"]),  # Monday
        "running": announce(f, name="Statistics", start="2026-12-15", weeks=8,
                            topics=["maths"]),  # Tuesday
        "ended": announce(f, name="Old circle", start="2026-09-01", weeks=4, topics=[]),
    }
    ingest(store, f.entries)
    return made


def listing(store, **filters) -> list[str]:
    return names(queries.list_circles(store.conn, now_ms=NOW_MS, **filters))


def test_listing_shows_upcoming_and_running_soonest_first(store, catalogue):
    """By default: circles not yet ended, ordered by their next meeting."""
    assert listing(store) == [
        "Statistics",  # running, next meeting 2027-01-05
        "Introdução à Programação",  # 2027-01-07
        "Python for Everybody",  # 2027-01-12
        "Historia del arte",  # 2027-02-01
    ]
    circles = queries.list_circles(store.conn, now_ms=NOW_MS)
    nexts = [c.next_meeting for c in circles]
    assert nexts == sorted(nexts)
    assert {c.name: c.status for c in circles}["Statistics"] == "running"


def test_ended_circles_show_only_with_include_past(store, catalogue):
    """An ended circle is listed only when past circles are asked for, with status ended."""
    assert "Old circle" not in listing(store)
    everything = queries.list_circles(store.conn, now_ms=NOW_MS, include_past=True)
    assert {c.name: c.status for c in everything}["Old circle"] == "ended"
    assert len(everything) == 5
    # on 2027-02-12 Statistics (last 02-02) and the Portuguese circle (last 02-11) have ended
    later = names(queries.list_circles(store.conn, now_ms=ms("2027-02-12")))
    assert later == ["Historia del arte", "Python for Everybody"]  # next 02-15, then 02-16


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("pyth", ["Python for Everybody"]),
        ("PYTHON", ["Python for Everybody"]),
        ("introducao", ["Introdução à Programação"]),
        ("sao paulo", ["Introdução à Programação"]),
        ("São", ["Introdução à Programação"]),
        ("histor arte", ["Historia del arte"]),
        ("cape town", ["Statistics", "Python for Everybody", "Historia del arte",
                       "Introdução à Programação"]),
        ("nothing-like-this", []),
        ("   ", []),
        ('"; DROP TABLE circles; --', []),
    ],
)
def test_text_search_matches_prefixes_without_accents(store, catalogue, search, expected):
    """Search words match as prefixes anywhere in name, description, course, venue and topics,
    accents folded; odd input is just words."""
    result = listing(store, search=search)
    assert sorted(result) == sorted(expected)


def test_filter_by_topic_is_case_insensitive(store, catalogue):
    """A topic filter matches the exact topic, in any case."""
    assert listing(store, topic="programming") == ["Python for Everybody"]
    assert listing(store, topic="Python") == ["Python for Everybody"]
    assert listing(store, topic="prog") == []


def test_filter_by_language_matches_subtags(store, catalogue):
    """"pt" finds pt-BR circles; "pt-BR" finds them exactly; "p" finds nothing."""
    assert listing(store, language="pt") == ["Introdução à Programação"]
    assert listing(store, language="pt-BR") == ["Introdução à Programação"]
    assert listing(store, language="es") == ["Historia del arte"]
    assert listing(store, language="p") == []


def test_filter_by_weekday(store, catalogue):
    """The weekday filter uses the weekday of the meetings (0 = Monday)."""
    assert sorted(listing(store, weekday=1)) == ["Python for Everybody", "Statistics"]
    assert listing(store, weekday=3) == ["Introdução à Programação"]
    assert listing(store, weekday=0) == ["Historia del arte"]
    assert listing(store, weekday=6) == []


def test_filters_combine(store, catalogue):
    """All filters given must match."""
    assert listing(store, search="python", weekday=1, language="en") == ["Python for Everybody"]
    assert listing(store, search="python", language="es") == []


def test_get_circle_returns_meetings_with_counts_and_notes(store, catalogue):
    """get_circle gives every meeting numbered with its date, RSVP counts and notes."""
    circle = catalogue["python"]
    ben = feed(BEN)
    ben.add("rsvp", rsvp_body(circle.id, "2027-01-19"))
    ana = Feed(ANA, NOW_MS - DAY_MS)
    ana.entries = store.feed_entries(ANA.node_id)
    ana.add("meeting.note", note_body(circle.id, "2027-01-19", attendance=7))
    ingest(store, ben.entries + ana.entries[-1:])
    detail = queries.get_circle(store.conn, circle.id, now_ms=NOW_MS)
    assert detail.summary.name == "Python for Everybody"
    assert detail.summary.weekday == "Tuesday" and detail.summary.next_meeting == "2027-01-12"
    assert [(m.number, m.date, m.attending) for m in detail.meetings][:2] == [
        (1, "2027-01-12", 0),
        (2, "2027-01-19", 1),
    ]
    assert detail.meetings[1].notes[0]["attendance"] == 7
    assert queries.get_circle(store.conn, b"\x00" * 32, now_ms=NOW_MS) is None


def test_status_is_decided_in_the_circles_own_timezone(store):
    """A circle in Pacific/Auckland has started there while it is still the day before in UTC."""
    f = feed(ANA)
    circle = announce(f, start="2027-01-12", timezone="Pacific/Auckland")
    ingest(store, f.entries)
    utc_evening = ms("2027-01-11", "20:00")  # already 2027-01-12 in Auckland
    [listed] = queries.list_circles(store.conn, now_ms=utc_evening)
    assert listed.status == "running" and listed.id == circle.id
    [listed] = queries.list_circles(store.conn, now_ms=ms("2027-01-11", "08:00"))
    assert listed.status == "upcoming"


def test_timestamps_in_minutes_do_not_reorder_feeds(store):
    """Feed order is by seq: an entry with an earlier timestamp than its predecessor is fine."""
    f = feed(ANA)
    f.add("x.test", {}, at_ms=NOW_MS)
    f.add("x.test", {}, at_ms=NOW_MS - 5 * MINUTE_MS)
    assert len(ingest(store, f.entries).accepted) == 2


def test_same_millisecond_decisions_follow_the_facilitators_feed_order(store, ana):
    """A facilitator's later decision on a sign-up wins even when both carry the same
    timestamp (order within a feed is by seq, never by timestamp or id)."""
    circle = announce(ana)
    others = [feed(identity_from_seed(f"joiner {i}")) for i in range(4)]
    joins = [f.add("join", join_body(circle.id, f"Joiner {i}")) for i, f in enumerate(others)]
    expected = {}
    for i, join in enumerate(joins):
        first, last = (True, False) if i % 2 else (False, True)
        at = NOW_MS - DAY_MS + i
        ana.add("join.accept", accept_body(circle.id, join.id, accepted=first), at_ms=at)
        ana.add("join.accept", accept_body(circle.id, join.id, accepted=last), at_ms=at)
        expected[f"Joiner {i}"] = "accepted" if last else "declined"
    ingest(store, ana.entries + [e for f in others for e in f.entries])
    assert statuses(store, circle.id) == expected


def test_same_millisecond_updates_follow_the_authors_feed_order(store, ana):
    """Of two updates by one author with the same timestamp, the later in the feed wins."""
    circle = announce(ana)
    expected = None
    for i in range(4):
        at = NOW_MS - DAY_MS + i
        for name in (f"First {i}", f"Second {i}"):
            ana.add("circle.update", update_body(circle.id, name=name), at_ms=at)
            expected = name
    ingest(store, ana.entries)
    assert state(store, circle.id)["name"] == expected


def test_a_backwards_clock_cannot_reorder_one_authors_updates(store, ana):
    """An update later in the feed wins even when its timestamp is earlier (clock went back)."""
    circle = announce(ana)
    ana.add("circle.update", update_body(circle.id, name="Before"), at_ms=NOW_MS - DAY_MS + 5000)
    ana.add("circle.update", update_body(circle.id, name="After"), at_ms=NOW_MS - DAY_MS + 1000)
    ingest(store, ana.entries)
    assert state(store, circle.id)["name"] == "After"


def test_two_rival_entries_in_one_batch_are_recorded_as_a_fork(store, ana):
    """A batch holding two validly signed entries for one seq keeps the first as the feed and
    the second as fork proof, and flags the author."""
    circle = announce(ana)
    second = rival(circle)
    report = ingest(store, [*ana.entries, second])
    assert report.forked == [ANA.node_id]
    assert store.get_entry(circle.id) == circle and store.get_entry(second.id) is None
    assert store.forked_authors() == {ANA.node_id}


def test_a_body_stripped_by_a_relay_is_filled_in_when_it_arrives(store, ana):
    """A body-less copy first, the real one later: the body is stored and the circle shown."""
    circle = announce(ana)
    ingest(store, [e.without_body() if e.id == circle.id else e for e in ana.entries])
    assert queries.circle_state(store.conn, circle.id) is None
    report = ingest(store, [circle])
    assert report.bodies_filled == 1 and report.duplicates == 1
    assert store.get_entry(circle.id).body_bytes == circle.body_bytes
    assert queries.circle_state(store.conn, circle.id)["name"] == "Python for Everybody"


def test_a_deleted_body_never_comes_back(store, ana):
    """After a `delete`, an old copy carrying the body does not restore it — even when the
    body had never arrived here before the delete."""
    circle = announce(ana)
    ana.add("delete", delete_body([circle.id]))
    stripped = [e.without_body() if e.id == circle.id else e for e in ana.entries]
    ingest(store, stripped)
    report = ingest(store, [circle])
    assert report.bodies_filled == 0
    assert store.get_entry(circle.id).body_bytes is None
    assert queries.circle_state(store.conn, circle.id) is None


def test_refusals_are_counted_for_the_senders_score(store, ana):
    """Bad signatures and invalid bodies are counted, and the blocking seq is reported."""
    announce(ana)
    forged = with_signature(ana.add("x.test", {"n": 1}), b"\x00" * 64)
    report = ingest(store, [*ana.entries[:-1], forged])
    assert report.bad_signatures == 1 and report.blocked == {ANA.node_id: forged.seq}


def test_a_circle_must_name_its_author_as_first_facilitator(store, ana):
    """Nobody can make another node the facilitator (and sealing recipient) of their circle."""
    ana.add("profile", profile_body())
    ben = identity_from_seed("store ben")
    entry = ana.add("circle", circle_body([ben.node_id, ANA.node_id]))
    report = ingest(store, ana.entries)
    assert report.invalid == 1 and store.get_entry(entry.id) is None
    assert "facilitators[0]" in report.rejected[0][1]
