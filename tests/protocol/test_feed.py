"""Tests for protocol/feed.py: per-author feed rules (append, duplicate, fork, gap, future) and
chain-anchored authentication of a run of entries."""

from __future__ import annotations

import dataclasses

import pytest
from builders import Feed, forged_chain, identity_from_seed, with_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.entry import Entry, create_entry, entry_from_parts
from protocol.feed import (
    MAX_FUTURE_MS,
    FeedHead,
    Verdict,
    authentic_prefix,
    authenticate_run,
    classify,
)

NOW = 1_800_000_000_000
ALICE = identity_from_seed("feed alice")
GARBAGE_SIGNATURE = b"\x07" * 64


def chain(count: int, start_ms: int = NOW - 3_600_000) -> list[Entry]:
    feed = Feed(ALICE, start_ms)
    return feed.fill(count)


def head_of(entry: Entry) -> FeedHead:
    return FeedHead(entry.seq, entry.id)


class CountingVerify:
    """Wraps Entry.signature_valid and counts the Ed25519 checks made."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, entry: Entry) -> bool:
        self.calls.append(entry.seq)
        return entry.signature_valid()


def altered(entry: Entry, **changes) -> Entry:
    """The entry with one header field changed and re-encoded, keeping the old signature."""
    header = dataclasses.replace(entry.header, **changes)
    return entry_from_parts([header.encode(), entry.signature, entry.body_bytes])


# -- classify ------------------------------------------------------------------------------------


def test_first_entry_of_an_unknown_feed_appends():
    """seq 1 with no head held is the start of the feed."""
    first = chain(1)[0]
    assert classify(None, first, now_ms=NOW) is Verdict.APPEND


def test_next_entry_linking_to_the_head_appends():
    """seq head+1 whose prev is the head's id extends the feed."""
    one, two = chain(2)
    assert classify(head_of(one), two, now_ms=NOW) is Verdict.APPEND


def test_the_same_entry_again_is_a_duplicate():
    """An entry with the id already held at its seq is a duplicate."""
    one, two = chain(2)
    assert classify(head_of(two), one, now_ms=NOW, held_id_at_seq=one.id) is Verdict.DUPLICATE
    assert classify(head_of(two), two, now_ms=NOW, held_id_at_seq=two.id) is Verdict.DUPLICATE


def test_a_different_entry_for_a_held_seq_is_a_fork():
    """Two different signed entries for one (author, seq) are a fork."""
    one, two = chain(2)
    other_two = create_entry(ALICE, seq=2, prev=one.id, timestamp_ms=NOW, kind="x", body={})
    assert classify(head_of(two), other_two, now_ms=NOW, held_id_at_seq=two.id) is Verdict.FORK


def test_next_seq_with_the_wrong_prev_is_a_fork():
    """An entry at head+1 naming another prev means the author signed two entries before it."""
    one, two = chain(2)
    other_one = create_entry(ALICE, seq=1, prev=None, timestamp_ms=NOW, kind="x", body={})
    rival_two = create_entry(ALICE, seq=2, prev=other_one.id, timestamp_ms=NOW, kind="x", body={})
    assert classify(head_of(one), rival_two, now_ms=NOW) is Verdict.FORK
    assert classify(head_of(one), two, now_ms=NOW) is Verdict.APPEND


@pytest.mark.parametrize(("held", "seq"), [(0, 2), (0, 5), (1, 3), (3, 10)])
def test_entries_beyond_the_next_seq_are_gaps(held, seq):
    """An entry further ahead than head+1 cannot be linked yet: a gap, not a fork."""
    entries = chain(seq)
    head = head_of(entries[held - 1]) if held else None
    assert classify(head, entries[seq - 1], now_ms=NOW) is Verdict.GAP


def stamped(timestamp_ms: int) -> Entry:
    return create_entry(ALICE, seq=1, prev=None, timestamp_ms=timestamp_ms, kind="x", body={})


def test_timestamp_exactly_ten_minutes_ahead_is_accepted():
    """The future limit is inclusive: now + 10 min is fine."""
    assert MAX_FUTURE_MS == 10 * 60 * 1000
    assert classify(None, stamped(NOW + MAX_FUTURE_MS), now_ms=NOW) is Verdict.APPEND


def test_timestamp_one_millisecond_beyond_ten_minutes_is_future():
    """now + 10 min + 1 ms is refused as a future timestamp."""
    assert classify(None, stamped(NOW + MAX_FUTURE_MS + 1), now_ms=NOW) is Verdict.FUTURE


def test_old_timestamps_and_timestamp_order_do_not_matter():
    """Timestamps are the author's claim: a later seq may carry an earlier time."""
    one = create_entry(ALICE, seq=1, prev=None, timestamp_ms=NOW, kind="x", body={})
    two = create_entry(ALICE, seq=2, prev=one.id, timestamp_ms=0, kind="x", body={})
    assert classify(head_of(one), two, now_ms=NOW) is Verdict.APPEND


# -- authenticate_run ----------------------------------------------------------------------------


def test_an_honest_run_costs_exactly_one_signature_check():
    """A contiguous honest run is authenticated by verifying its newest entry only."""
    run = chain(50)
    verify = CountingVerify()
    assert authenticate_run(run, verify) == [True] * 50
    assert verify.calls == [50]
    assert authentic_prefix(run) == 50


def test_the_default_verifier_checks_signatures():
    """Without an injected verifier the real Ed25519 check is used."""
    run = chain(3)
    assert authenticate_run(run) == [True, True, True]
    assert authenticate_run([*run[:2], with_signature(run[2], GARBAGE_SIGNATURE)]) == [
        True,
        True,
        False,
    ]


def test_a_run_forged_by_someone_without_the_key_authenticates_nothing():
    """A correctly linked chain signed by an impostor has no authentic entry at all."""
    run = forged_chain(ALICE.node_id, 8)
    verify = CountingVerify()
    assert authenticate_run(run, verify) == [False] * 8
    assert authentic_prefix(run) == 0
    assert sorted(verify.calls) == list(range(1, 9))  # the fallback tried each in turn


def test_a_forged_anchor_falls_back_to_the_entries_below():
    """If only the newest entry's signature is bad, the one below becomes the anchor."""
    run = chain(6)
    run[-1] = with_signature(run[-1], GARBAGE_SIGNATURE)
    verify = CountingVerify()
    assert authenticate_run(run, verify) == [True] * 5 + [False]
    assert verify.calls == [6, 5]


def test_an_altered_header_in_the_middle_is_not_authentic():
    """Changing a header field of entry k (signature kept) breaks k's signature and the link from
    k+1: only entry k is unauthentic, and the authentic prefix stops below it."""
    run = chain(9)
    k = 4  # zero-based
    run[k] = altered(run[k], timestamp_ms=run[k].header.timestamp_ms + 1)
    verify = CountingVerify()
    flags = authenticate_run(run, verify)
    assert flags == [True] * k + [False] + [True] * (len(run) - k - 1)
    assert authentic_prefix(run) == k
    assert verify.calls == [9, 5, 4]  # anchor, the altered entry, the next anchor below


def test_a_run_with_a_seq_gap_needs_an_anchor_per_piece():
    """Entries that do not link (a missing seq) are authenticated by separate anchors."""
    full = chain(6)
    run = [full[0], full[1], full[3], full[4], full[5]]
    verify = CountingVerify()
    assert authenticate_run(run, verify) == [True] * 5
    assert verify.calls == [6, 2]


def test_a_foreign_entry_spliced_into_a_run_is_not_authenticated_by_the_chain():
    """A chain link is only by prev: an entry of the same seq signed by someone else is not
    reached by the anchor and fails its own check."""
    run = chain(4)
    impostor = forged_chain(ALICE.node_id, 2)[1]
    spliced = [run[0], impostor, run[2], run[3]]
    assert authenticate_run(spliced) == [True, False, True, True]
    assert authentic_prefix(spliced) == 1


def test_empty_run():
    """An empty run authenticates nothing and costs nothing."""
    verify = CountingVerify()
    assert authenticate_run([], verify) == []
    assert verify.calls == []
    assert authentic_prefix([]) == 0


def reference_flags(run: list[Entry]) -> list[bool]:
    """DESIGN.md's rule, written directly: authentic if the signature verifies, or the next
    entry is authentic and links to this one by seq and prev."""
    flags = [False] * len(run)
    for i in reversed(range(len(run))):
        linked = (
            i + 1 < len(run)
            and flags[i + 1]
            and run[i + 1].seq == run[i].seq + 1
            and run[i + 1].header.prev == run[i].id
        )
        flags[i] = run[i].signature_valid() or linked
    return flags


_HONEST = chain(12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["keep", "forge", "alter", "drop"]), min_size=12, max_size=12),
)
def test_authenticate_run_matches_the_rule_for_any_damage(actions):
    """For any mix of forged signatures, altered headers and missing entries, authenticate_run
    agrees with the rule stated in DESIGN.md, and an honest run costs one check."""
    run = []
    for entry, action in zip(_HONEST, actions, strict=True):
        if action == "forge":
            run.append(with_signature(entry, GARBAGE_SIGNATURE))
        elif action == "alter":
            run.append(altered(entry, kind="changed"))
        elif action == "keep":
            run.append(entry)
    verify = CountingVerify()
    flags = authenticate_run(run, verify)
    assert flags == reference_flags(run)
    if run and all(a == "keep" for a in actions):
        assert len(verify.calls) == 1
    assert len(verify.calls) <= len(run)
