"""The per-session replication state (protocol/replication.py): clocks in, owed authors out.

Pure: no sockets, no loop. Two `Replication`s are wired back to back over in-memory feeds (as
h11's ConnectionPair does for connections) to check that a sync converges without echoes.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.replication import (
    BODY_ASK_AGAIN,
    BODY_RATE,
    BODY_RETRY,
    MAX_UNKNOWN_AUTHORS,
    REFUSAL_MEMORY,
    RESEND_BURST,
    RESEND_RATE,
    WANT_INTERVAL,
    BodyBudget,
    BodyRequests,
    Replication,
)

A, B, C, D = (bytes([i]) * 32 for i in (0xA1, 0xB2, 0xC3, 0xD4))


def after_clock(peer_clock: dict[bytes, int], local_clock: dict[bytes, int]) -> Replication:
    """A replication state that has received the peer's whole clock in one final frame."""
    rep = Replication()
    rep.receive_clock(peer_clock.items(), True, local_clock)
    return rep


def test_final_clock_marks_the_authors_the_peer_lacks() -> None:
    """Owed authors are exactly those where our seq is ahead of the peer's (absent = 0)."""
    rep = after_clock({A: 3, C: 2, D: 4}, {A: 3, B: 1, C: 5})
    assert rep.take_dirty() == {B, C}
    assert rep.next_seq(B) == 1
    assert rep.next_seq(C) == 3
    assert rep.next_seq(D) == 5
    assert rep.take_dirty() == set()  # taken once


def test_equal_clocks_owe_nothing() -> None:
    """Two nodes with identical clocks owe each other nothing."""
    rep = after_clock({A: 2, B: 7}, {A: 2, B: 7})
    assert rep.take_dirty() == set()
    assert not rep.has_work


def test_nothing_is_owed_before_the_final_clock_part() -> None:
    """A clock in several frames owes nothing until its final part; the merged clock decides."""
    rep = Replication()
    rep.receive_clock([(A, 5)], False, {A: 5, B: 2})
    assert not rep.peer_clock_final
    assert rep.take_dirty() == set()
    rep.receive_clock([(B, 1)], True, {A: 5, B: 2})
    assert rep.peer_clock == {A: 5, B: 1}
    assert rep.take_dirty() == {B}


def test_a_later_clock_never_lowers_what_the_peer_holds() -> None:
    """Clock pairs only raise the peer's known seqs; a second final clock re-owes nothing."""
    rep = after_clock({A: 4}, {A: 4})
    rep.receive_clock([(A, 1)], True, {A: 9})
    assert rep.next_seq(A) == 5
    assert rep.take_dirty() == set()


def test_local_entries_before_the_final_clock_are_held_back() -> None:
    """Entries stored before the peer's clock is complete are owed only once it is."""
    rep = Replication()
    assert rep.local_entries([(A, 1)]) is True
    assert rep.take_dirty() == set()
    rep.receive_clock([], True, {})
    assert rep.take_dirty() == {A}


def test_local_entries_after_the_final_clock_are_pushed_live() -> None:
    """A new entry beyond the peer's clock marks its author owed at once (the live push)."""
    rep = after_clock({A: 3}, {A: 3})
    assert rep.local_entries([(A, 4)]) is True
    assert rep.take_dirty() == {A}
    assert rep.next_seq(A) == 4


def test_local_entries_the_peer_holds_are_not_pushed() -> None:
    """An entry the peer already holds (same or lower seq) is not owed."""
    rep = after_clock({A: 3}, {A: 3})
    assert rep.local_entries([(A, 2), (A, 3)]) is False
    assert rep.take_dirty() == set()


def test_received_entries_advance_the_peer_clock_so_nothing_echoes() -> None:
    """Entries the peer sent us count as held by it: storing them owes it nothing back."""
    rep = after_clock({}, {})
    rep.receive_entries([(A, 1), (A, 2), (B, 1)])
    assert rep.entries_received == 3
    assert rep.next_seq(A) == 3 and rep.next_seq(B) == 2
    assert rep.local_entries([(A, 1), (A, 2), (B, 1)]) is False
    assert rep.take_dirty() == set()
    # but a third party's newer entry of the same author is still pushed
    assert rep.local_entries([(A, 3)]) is True
    assert rep.take_dirty() == {A}


def test_sent_entries_advance_the_peer_clock() -> None:
    """After sending, the next read starts past what was sent, and the count says so."""
    rep = after_clock({}, {A: 5})
    assert rep.take_dirty() == {A}
    rep.sent([(A, 1), (A, 2), (A, 3)])
    assert rep.next_seq(A) == 4
    assert rep.entries_sent == 3


def test_want_rewinds_the_peer_clock_and_owes_the_author() -> None:
    """`want` from seq n makes the next read start at n, even below what was sent."""
    rep = after_clock({A: 5}, {A: 5})
    assert rep.receive_want([(A, 2)], {A: 5}, 0.0) == 0
    assert rep.next_seq(A) == 2
    assert rep.take_dirty() == {A}


def test_want_never_advances_the_peer_clock() -> None:
    """A want from beyond what the peer holds does not skip entries it lacks."""
    rep = after_clock({A: 2}, {A: 9})
    rep.take_dirty()
    rep.receive_want([(A, 7)], {A: 9}, 0.0)
    assert rep.next_seq(A) == 3


def test_want_before_the_final_clock_waits_for_it() -> None:
    """A want that arrives before the clock is complete is served once it is."""
    rep = Replication()
    rep.receive_want([(B, 1)], {B: 1}, 0.0)
    assert rep.take_dirty() == set()
    rep.receive_clock([], True, {B: 1})
    assert rep.take_dirty() == {B}
    assert rep.next_seq(B) == 1


def test_wants_from_gaps() -> None:
    """Gaps found on ingest become `want` pairs (author, first missing seq)."""
    assert Replication().wants({A: 3, B: 1}, 0.0) == [(A, 3), (B, 1)]


def test_a_want_is_not_repeated_within_the_interval() -> None:
    """The same gap asks again only after WANT_INTERVAL: no want storms."""
    rep = Replication()
    assert rep.wants({A: 3}, 0.0) == [(A, 3)]
    assert rep.wants({A: 3}, 1.0) == []
    assert rep.wants({A: 4}, 1.0) == [(A, 4)]
    assert rep.wants({A: 4}, 1.0 + WANT_INTERVAL) == [(A, 4)]


def test_no_want_for_an_entry_refused_from_this_peer() -> None:
    """If the missing entry is one we refused (fork, bad, too new), asking brings it back."""
    rep = Replication()
    rep.note_refused({A: 3}, 0.0)
    assert rep.wants({A: 3}, 100.0) == []
    assert rep.wants({A: 3}, REFUSAL_MEMORY + 1) == [(A, 3)]


def test_wants_for_unknown_authors_and_repeats_are_ignored() -> None:
    """A peer cannot make us rewind for authors we do not hold, nor resend in a loop."""
    rep = after_clock({A: 5}, {A: 5})
    assert rep.receive_want([(B, 1)], {A: 5}, 0.0) == 1
    assert rep.receive_want([(A, 1)], {A: 5}, 0.0) == 0
    assert rep.receive_want([(A, 1)], {A: 5}, 1.0) == 1
    assert B not in rep.peer_clock


def test_a_clock_after_the_final_one_is_refused_and_unknown_authors_are_capped() -> None:
    """A peer cannot grow our memory through clock frames."""
    rep = Replication()
    many = [(i.to_bytes(32, "big"), 1) for i in range(MAX_UNKNOWN_AUTHORS + 50)]
    assert rep.receive_clock(many, False, {}) is True
    assert len(rep.peer_clock) == MAX_UNKNOWN_AUTHORS
    assert rep.receive_clock([(A, 1)], True, {A: 1}) is True
    assert rep.receive_clock([(B, 1)], True, {}) is False
    assert B not in rep.peer_clock


# -- two states back to back over in-memory feeds -----------------------------------------------


class Side:
    """One node's feeds (author -> highest seq, contiguous from 1) and its view of the peer."""

    def __init__(self, clock: dict[bytes, int]) -> None:
        self.clock = dict(clock)
        self.rep = Replication()
        self.received: list[tuple[bytes, int]] = []

    def send_owed(self) -> list[tuple[bytes, int]]:
        """What the node's sender would send now: every owed author from `next_seq` on."""
        out = []
        for author in sorted(self.rep.take_dirty()):
            out += [(author, s) for s in range(self.rep.next_seq(author),
                                               self.clock.get(author, 0) + 1)]
        self.rep.sent(out)
        return out

    def take(self, seqs: list[tuple[bytes, int]]) -> None:
        """Receive entries from the peer and store them (in order, as the store does)."""
        self.rep.receive_entries(seqs)
        self.received += seqs
        stored = []
        for author, seq in seqs:
            if seq == self.clock.get(author, 0) + 1:
                self.clock[author] = seq
                stored.append((author, seq))
        self.rep.local_entries(stored)


def sync(x: Side, y: Side) -> None:
    x.rep.receive_clock(y.clock.items(), True, x.clock)
    y.rep.receive_clock(x.clock.items(), True, y.clock)
    for _ in range(10):
        to_y, to_x = x.send_owed(), y.send_owed()
        if not to_x and not to_y:
            return
        y.take(to_y)
        x.take(to_x)
    raise AssertionError("did not settle")


clocks = st.dictionaries(st.sampled_from([A, B, C, D]), st.integers(0, 6))


@pytest.mark.parametrize("swap", [False, True], ids=["x-first", "y-first"])
def test_back_to_back_sync_converges(swap: bool) -> None:
    """Two sides with overlapping feeds end with equal clocks, each entry sent once."""
    x, y = Side({A: 3, B: 1}), Side({B: 4, C: 2})
    if swap:
        x, y = y, x
    sync(x, y)
    assert x.clock == y.clock == {A: 3, B: 4, C: 2}
    assert sorted(x.received) == sorted(set(x.received))
    assert sorted(y.received) == sorted(set(y.received))


@settings(max_examples=200, deadline=None)
@given(clocks, clocks)
def test_back_to_back_sync_converges_for_any_clocks(cx: dict, cy: dict) -> None:
    """Any two clocks converge to the per-author maximum with no entry sent twice and no echo."""
    x, y = Side(cx), Side(cy)
    sync(x, y)
    expected = {a: max(cx.get(a, 0), cy.get(a, 0)) for a in {*cx, *cy}}
    expected = {a: s for a, s in expected.items() if s}
    assert {a: s for a, s in x.clock.items() if s} == expected
    assert {a: s for a, s in y.clock.items() if s} == expected
    assert len(x.received) == len(set(x.received))
    assert len(y.received) == len(set(y.received))
    assert not set(x.received) & set(y.received)  # no echo


# -- missing bodies ----------------------------------------------------------------------------

E1, E2 = b"\x01" * 32, b"\x02" * 32


def test_a_missing_body_is_asked_of_one_holder_then_of_another() -> None:
    """One holder at a time; after BODY_RETRY of silence the next; the first only much later."""
    requests = BodyRequests()
    missing = [(E1, A, 3)]
    holders = {B: {A: 3}, C: {A: 5}, D: {A: 2}}  # D does not hold seq 3
    first = requests.plan(missing, holders, 0.0)
    assert len(first) == 1 and next(iter(first.values())) == [E1]
    assert requests.plan(missing, holders, BODY_RETRY / 2) == {}
    second = requests.plan(missing, holders, BODY_RETRY)
    assert set(second) == {B, C} - set(first)
    assert requests.plan(missing, holders, 2 * BODY_RETRY) == {}  # both asked lately
    assert set(requests.plan(missing, holders, BODY_ASK_AGAIN + 0.1)) == set(first)


def test_asking_the_same_peer_again_backs_off() -> None:
    """Each time a peer is asked again for one body, it waits twice as long as before."""
    requests = BodyRequests()
    times = [t / 10 for t in range(0, 10 * int(8 * BODY_ASK_AGAIN))]
    asked = [t for t in times if requests.plan([(E1, A, 1)], {B: {A: 1}}, t)]
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert gaps == pytest.approx([BODY_ASK_AGAIN, 2 * BODY_ASK_AGAIN, 4 * BODY_ASK_AGAIN],
                                 abs=0.11)


def test_a_body_that_arrived_is_forgotten() -> None:
    """Once an id is no longer missing it leaves the bookkeeping (memory stays bounded)."""
    requests = BodyRequests()
    requests.plan([(E1, A, 1), (E2, A, 2)], {B: {A: 2}}, 0.0)
    requests.plan([(E2, A, 2)], {B: {A: 2}}, 1.0)
    assert set(requests._asked) == {E2}


def test_body_budget_caps_what_a_peer_makes_us_send() -> None:
    """A burst of twice BODY_RATE, then BODY_RATE per second."""
    budget = BodyBudget(0.0)
    assert budget.take(10_000, 0.0) == 2 * BODY_RATE
    assert budget.take(10_000, 0.0) == 0
    assert budget.take(10_000, 0.5) == BODY_RATE / 2


# -- re-send budget ----------------------------------------------------------------------------


def test_wants_for_what_was_just_sent_are_counted_and_budgeted() -> None:
    """Alternating wants re-send at most the budget, and each one is counted as asking again."""
    rep = after_clock({A: 5000}, {A: 5000})
    rep.sent([(A, 5000)], 0.0)
    assert rep.receive_want([(A, 1)], {A: 5000}, 0.1) == 0  # a full bucket serves one want
    assert rep.reasked == 1
    rep.sent([(A, 5000)], 0.2)
    assert rep.receive_want([(A, 2)], {A: 5000}, 0.3) == 1  # in debt: ignored
    assert rep.reasked == 1
    full = 0.1 + (5000 + RESEND_BURST) / RESEND_RATE  # debt paid and the bucket full again
    assert rep.receive_want([(A, 3)], {A: 5000}, full + 0.1) == 0


def test_wants_for_entries_never_sent_are_not_asking_again() -> None:
    """A want for entries the peer claimed to hold (but we never sent) is not held against it."""
    rep = after_clock({A: 50}, {A: 50})
    assert rep.receive_want([(A, 10)], {A: 50}, 0.0) == 0
    assert rep.reasked == 0
    assert rep.next_seq(A) == 10
