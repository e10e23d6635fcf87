"""Per-author append-only feed rules and chain-anchored authentication.

Rules (DESIGN.md "Entries"):
- an author's feed starts at seq 1 with prev nil; entry n+1 names entry n's id as prev;
- a second, different entry for an (author, seq) already held is a fork: the first one stays,
  both headers are kept as proof, and the author is flagged;
- an entry that claims the next seq but names another prev is a fork as well (the author signed
  two different entries at the previous seq);
- an entry further ahead than the next seq cannot be linked yet: it is a gap, not an error of the
  author, and is left for a later, contiguous batch;
- timestamps are the author's claim, ordered by nothing; one more than 10 minutes ahead of the
  receiver's clock is refused.

`authenticate_run` implements the Hypercore-style shortcut: in a run of one author's entries, an
entry is authentic when its own signature verifies or an authentic later entry reaches it through
`prev` links; so a contiguous run costs one Ed25519 verification plus a hash per entry.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .entry import Entry

MAX_FUTURE_MS = 10 * 60 * 1000


class Verdict(enum.Enum):
    #: the entry is the next one of the feed
    APPEND = "append"
    #: the very same entry is already held
    DUPLICATE = "duplicate"
    #: a different entry for a held seq, or a next entry whose prev is not our head
    FORK = "fork"
    #: the entry is further ahead than the next seq; its predecessors are missing
    GAP = "gap"
    #: the timestamp is more than MAX_FUTURE_MS ahead of the receiver's clock
    FUTURE = "future"


@dataclass(frozen=True, slots=True)
class FeedHead:
    """The latest entry held of a feed."""

    seq: int
    id: bytes


def classify(
    head: FeedHead | None, entry: Entry, *, now_ms: int, held_id_at_seq: bytes | None = None
) -> Verdict:
    """Decide how `entry` relates to a feed whose latest held entry is `head`.

    Args:
        head: the feed's head, or None when nothing of this author is held.
        entry: a decoded entry of that author (its signature is not checked here).
        now_ms: the receiver's clock, for the future-timestamp rule.
        held_id_at_seq: the id held at `entry.seq` when `entry.seq <= head.seq`.
    """
    seq = entry.header.seq
    if head is not None and seq <= head.seq:
        return Verdict.DUPLICATE if held_id_at_seq == entry.id else Verdict.FORK
    if entry.header.timestamp_ms > now_ms + MAX_FUTURE_MS:
        return Verdict.FUTURE
    expected_seq = 1 if head is None else head.seq + 1
    if seq != expected_seq:
        return Verdict.GAP
    if head is not None and entry.header.prev != head.id:
        return Verdict.FORK
    return Verdict.APPEND


def authenticate_run(
    run: Sequence[Entry], verify: Callable[[Entry], bool] | None = None
) -> list[bool]:
    """Authenticate a run of one author's entries, in increasing seq order.

    Walks down from the newest entry: a verified anchor authenticates every entry below it that
    it reaches through `prev` links; where a link breaks (or an anchor fails), the next lower
    entry is tried as a new anchor. An honest run costs one signature check.

    Args:
        run: entries of a single author sorted by seq (not necessarily contiguous).
        verify: signature check, default `Entry.signature_valid` (injectable for batching).

    Returns:
        One flag per entry: True when it is authentic.
    """
    check = verify or Entry.signature_valid
    authentic = [False] * len(run)
    index = len(run) - 1
    while index >= 0:
        if not check(run[index]):
            index -= 1
            continue
        authentic[index] = True
        while index > 0:
            lower, upper = run[index - 1], run[index]
            if upper.header.seq != lower.header.seq + 1 or upper.header.prev != lower.id:
                break
            authentic[index - 1] = True
            index -= 1
        index -= 1
    return authentic


def authentic_prefix(run: Sequence[Entry], verify: Callable[[Entry], bool] | None = None) -> int:
    """How many leading entries of `run` are authentic (see `authenticate_run`)."""
    for count, ok in enumerate(authenticate_run(run, verify)):
        if not ok:
            return count
    return len(run)
