"""Replication v2 without sockets: per-session notes (`protocol.replication.Replication`) and the
node-wide choice of forwarder per author (`protocol.forwarding.Forwarding`), PROTOCOL.md 5."""

from __future__ import annotations

import pytest

from protocol.forwarding import SHUN_TIME, SWITCH_TIMEOUT, Forwarding
from protocol.replication import Replication

AUTHOR = b"\xaa" * 32
OTHER = b"\xbb" * 32
P1, P2, P3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def v2_session(peer_clock: dict[bytes, int], local: dict[bytes, int],
               version: int = 2) -> Replication:
    """A session whose peer announced `version` and sent `peer_clock` (final)."""
    rep = Replication()
    assert rep.receive_hello(version)
    rep.receive_clock(peer_clock.items(), True, local)
    return rep


def about(notes: list[tuple[bytes, int, bool]], author: bytes = AUTHOR) -> list:
    """The notes about one author (peers' own feeds are asked for on connect)."""
    return [note for note in notes if note[0] == author]


def test_v2_session_pushes_nothing_until_asked() -> None:
    """After the clocks a v2 session owes nothing; an eager note makes it owe that author."""
    local = {AUTHOR: 5, OTHER: 3}
    rep = v2_session({AUTHOR: 2}, local)
    assert rep.v2 and rep.take_dirty() == set()
    assert rep.receive_notes([(AUTHOR, 2, True)], local) == []
    assert rep.take_dirty() == {AUTHOR}
    assert rep.next_seq(AUTHOR) == 3


@pytest.mark.parametrize("ours, theirs", [(1, 2), (2, 1)])
def test_either_side_forced_to_v1_pushes_everything(ours: int, theirs: int) -> None:
    """If either side speaks v1 the session keeps v1's rule: everything the peer lacks."""
    local = {AUTHOR: 5, OTHER: 3}
    rep = Replication(version=ours)
    rep.receive_hello(theirs)
    rep.receive_clock([(AUTHOR, 2)], True, local)
    assert not rep.v2
    assert rep.take_dirty() == {AUTHOR, OTHER}
    assert rep.local_entries([(AUTHOR, 6)])
    assert rep.take_dirty() == {AUTHOR}


def test_a_hello_after_the_clock_is_refused() -> None:
    """`replication` must come before the clock; later it changes nothing."""
    rep = Replication()
    rep.receive_clock([], False, {})
    assert not rep.receive_hello(2)
    assert not rep.v2


def test_new_entries_queue_lazy_notes_for_peers_that_did_not_ask() -> None:
    """A stored entry owes a lazy note (not the entry) to a peer that did not ask for the
    author, and nothing to a peer that already holds it."""
    local = {AUTHOR: 5}
    rep = v2_session({AUTHOR: 5}, local)
    local[AUTHOR] = 6
    assert rep.local_entries([(AUTHOR, 6)])
    assert rep.take_dirty() == set()
    assert rep.take_notes(local) == [(AUTHOR, 6, False)]
    rep.receive_entries([(AUTHOR, 7)])  # the peer sent us 7: it is not behind any more
    local[AUTHOR] = 7
    assert not rep.local_entries([(AUTHOR, 7)])
    assert rep.take_notes(local) == []


def test_eager_flag_changes_are_always_sent() -> None:
    """Asking and un-asking a peer sends a note with our seq and the new flag, once each."""
    local = {AUTHOR: 3}
    rep = v2_session({AUTHOR: 9}, local)
    assert rep.request(AUTHOR, True) and not rep.request(AUTHOR, True)
    assert rep.take_notes(local) == [(AUTHOR, 3, True)]
    assert rep.request(AUTHOR, False)
    assert rep.take_notes(local) == [(AUTHOR, 3, False)]


def test_catch_up_asks_one_peer_per_author() -> None:
    """Two peers ahead on an author at connect: only the first is asked; a peer that is not
    ahead is never asked."""
    local = {AUTHOR: 1}
    fw = Forwarding()
    first, second, behind = (v2_session({AUTHOR: 10}, local), v2_session({AUTHOR: 10}, local),
                             v2_session({AUTHOR: 1}, local))
    fw.add(P1, first, local, 0.0)
    fw.add(P2, second, local, 0.0)
    fw.add(P3, behind, local, 0.0)
    assert about(first.take_notes(local)) == [(AUTHOR, 1, True)]
    assert about(second.take_notes(local)) == [] and about(behind.take_notes(local)) == []


def test_a_peer_is_asked_for_its_own_feed_on_connect() -> None:
    """The peer's own feed is asked of it at once, ahead or not (it is the root of that tree),
    unless another peer already forwards it."""
    local = {P1: 4}
    fw = Forwarding()
    via = v2_session({P1: 4}, local)
    fw.add(P2, via, local, 0.0)
    assert fw.forwarder == {P2: P2}
    author = v2_session({P1: 4}, local)
    assert fw.add(P1, author, local, 0.0) == {P1}
    assert author.take_notes(local) == [(P1, 4, True)]
    assert fw.forwarder == {P1: P1, P2: P2}
    assert fw.get_timer() is None  # nobody is ahead: nothing to wait for


def test_the_first_lazy_note_picks_the_forwarder() -> None:
    """With no forwarder, the first peer whose note shows it ahead is asked; later ones are not."""
    local = {AUTHOR: 4}
    fw = Forwarding()
    reps = {p: v2_session({AUTHOR: 4}, local) for p in (P1, P2)}
    for peer, rep in reps.items():
        fw.add(peer, rep, local, 0.0)
    assert fw.notes(P2, reps[P2].receive_notes([(AUTHOR, 5, False)], local), local, 1.0) == {P2}
    assert fw.notes(P1, reps[P1].receive_notes([(AUTHOR, 5, False)], local), local, 1.0) == set()
    assert fw.forwarder[AUTHOR] == P2


def test_a_stalled_forwarder_is_replaced_after_the_timeout() -> None:
    """No progress for SWITCH_TIMEOUT while another peer is ahead: the other peer is asked,
    the stalled one told to stop, and not asked again for SHUN_TIME."""
    local = {AUTHOR: 4}
    fw = Forwarding()
    reps = {p: v2_session({AUTHOR: 4}, local) for p in (P1, P2)}
    for peer, rep in reps.items():
        fw.add(peer, rep, local, 0.0)
    fw.notes(P1, reps[P1].receive_notes([(AUTHOR, 6, False)], local), local, 10.0)
    reps[P1].take_notes(local)
    fw.notes(P2, reps[P2].receive_notes([(AUTHOR, 6, False)], local), local, 10.5)
    assert fw.get_timer() == 10.0 + SWITCH_TIMEOUT
    local[AUTHOR] = 5  # progress restarts the wait
    fw.stored([AUTHOR], local, 11.0)
    assert fw.handle_timer(local, 12.5) == set()
    assert fw.handle_timer(local, 11.0 + SWITCH_TIMEOUT) == {P1, P2}
    assert fw.forwarder[AUTHOR] == P2 and fw.switches == 1
    assert about(reps[P1].take_notes(local)) == [(AUTHOR, 5, False)]
    assert about(reps[P2].take_notes(local)) == [(AUTHOR, 5, True)]
    # P2 stalls too: P1 is shunned, so P2 is kept (nobody better)
    assert fw.handle_timer(local, 11.0 + 2 * SWITCH_TIMEOUT) == set()
    assert fw.forwarder[AUTHOR] == P2
    # once the shun has expired, P1 may be asked again
    fw.handle_timer(local, 11.0 + SWITCH_TIMEOUT + SHUN_TIME + 0.1)
    assert fw.forwarder[AUTHOR] == P1


def test_caught_up_authors_stop_lagging() -> None:
    """Once no peer is ahead any more, the author has no timer (an idle node sleeps)."""
    local = {AUTHOR: 4}
    fw = Forwarding()
    rep = v2_session({AUTHOR: 4}, local)
    fw.add(P1, rep, local, 0.0)
    fw.notes(P1, rep.receive_notes([(AUTHOR, 5, False)], local), local, 1.0)
    assert fw.get_timer() is not None
    local[AUTHOR] = 5
    fw.stored([AUTHOR], local, 1.1)
    assert fw.get_timer() is None


def test_refused_entries_replace_the_forwarder_at_once() -> None:
    """A forwarder whose entries were refused (forged) is replaced without waiting."""
    local = {AUTHOR: 1}
    fw = Forwarding()
    reps = {p: v2_session({AUTHOR: 9}, local) for p in (P1, P2)}
    for peer, rep in reps.items():
        fw.add(peer, rep, local, 0.0)
    assert fw.forwarder[AUTHOR] == P1
    assert fw.refused(P1, [AUTHOR], local, 0.5) == {P1, P2}
    assert fw.forwarder[AUTHOR] == P2


def test_a_closed_forwarder_hands_over_and_a_replacement_session_keeps_its_authors() -> None:
    """Closing the forwarder's session asks the next peer ahead; a peer's newer session keeps
    what its older one forwarded."""
    local = {AUTHOR: 1, OTHER: 1}
    fw = Forwarding()
    first = v2_session({AUTHOR: 9, OTHER: 9}, local)
    second = v2_session({AUTHOR: 9}, local)
    fw.add(P1, first, local, 0.0)
    fw.add(P2, second, local, 0.0)
    newer = v2_session({AUTHOR: 9, OTHER: 9}, local)
    assert fw.add(P1, newer, local, 1.0) == {P1}
    assert newer.requested == {AUTHOR, OTHER, P1}
    assert fw.remove(P1, first, local, 1.0) == set()  # the old session: nothing changes
    assert fw.remove(P1, newer, local, 2.0) == {P2}
    assert fw.forwarder == {AUTHOR: P2, P2: P2}


def test_a_peer_cannot_grow_our_memory_with_notes() -> None:
    """Notes about authors we do not hold count against the same cap as clocks."""
    from protocol import replication
    rep = v2_session({}, {})
    cap = replication.MAX_UNKNOWN_AUTHORS
    notes = [(i.to_bytes(32, "big"), 1, True) for i in range(cap + 50)]
    rep.receive_notes(notes, {})
    assert len(rep.peer_clock) == cap and len(rep.peer_eager) == cap


def test_a_forked_author_is_not_chased() -> None:
    """After a fork is refused, peers ahead on that author are neither asked nor waited for,
    so none of them is made to send the refused branch again; after SHUN_TIME it is chased
    again."""
    local = {AUTHOR: 3}
    fw = Forwarding()
    reps = {p: v2_session({AUTHOR: 3}, local) for p in (P1, P2)}
    for peer, rep in reps.items():
        fw.add(peer, rep, local, 0.0)
    fw.notes(P1, reps[P1].receive_notes([(AUTHOR, 600, False)], local), local, 1.0)
    fw.hold([AUTHOR], 1.5)
    assert fw.get_timer() is None
    assert fw.notes(P2, reps[P2].receive_notes([(AUTHOR, 600, False)], local), local, 2.0) == set()
    assert fw.get_timer() is None
    fw.handle_timer(local, 1.5 + SHUN_TIME)
    reps[P2].take_notes(local)
    fw.notes(P2, reps[P2].receive_notes([(AUTHOR, 601, False)], local), local, 2.0 + SHUN_TIME)
    assert fw.get_timer() is not None
