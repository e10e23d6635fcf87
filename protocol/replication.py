"""The replication state of one session (SSB EBT style), as a sans-IO object: clocks in, work out.

Two versions (PROTOCOL.md 5): a v2 side sends ``replication 2`` before its clock. When both
sides did, the session is *v2*: after the clocks nothing is pushed until the peer asks for an
author with an eager note (`receive_notes`); new entries of other authors only queue a lazy note
(`take_notes`). Which peer we ask for which author is decided node-wide by
`protocol.forwarding.Forwarding`, which calls `request`. Otherwise (the peer never announced v2,
or we were made to speak v1) the v1 rules below hold unchanged: push everything.

Rules:
- On session start each side sends its whole clock `{author: latest seq}` (possibly over several
  `clock` frames, the last marked final). Until the peer's final clock arrives we send nothing.
- We then owe the peer, for every author, the entries after what its clock says it holds. Owed
  authors are kept in a *dirty* set; the node's sender takes it, reads entries from
  `next_seq(author)` on, sends them in batches and reports them with `sent`. The sender keeps going
  until a read returns nothing, so entries committed meanwhile are never missed.
- A new entry (ours or received from anyone) marks its author dirty for every session: that is
  the live push. Entries the peer sent us, or that we sent it, advance its clock, so nothing is
  echoed back to the peer that sent it.
- `want` from the peer (it lost data, or found a gap) rewinds its clock for those authors.
  What a peer's wants make us send *again* (entries at or below what we believe it holds) is
  budgeted: `RESEND_RATE` entries per second, bursts of `RESEND_BURST`; a want beyond the budget
  is ignored. A want for entries we sent it less than `RESEND_MEMORY` seconds ago is counted in
  `reasked` (the session scores the peer down for it): honest peers do not ask twice.
- Our own `gaps` (entries that arrived ahead of their predecessors) become `want` pairs, but
  never for a seq whose entry we refused from this peer (asking would bring the same refused
  entry back, forever), and the same want at most once per `WANT_INTERVAL`.
- Bodies a relay stripped (PROTOCOL.md 5, "Missing bodies"): `BodyRequests` plans which peer
  to ask for which body — one that holds the entry by its clock, not asked for it lately, and
  another one when the first stays silent — and `BodyBudget` caps how many bodies a peer may
  make us send.
- A peer cannot grow our memory: its clock is kept only for authors we hold (plus at most
  `MAX_UNKNOWN_AUTHORS` others), wants for authors we do not hold are ignored, and a clock frame
  after the final one is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .frames import MAX_BODY_IDS, REPLICATION_VERSION

#: seconds before the same `want` (author, from_seq) is sent or honoured again
WANT_INTERVAL = 10.0
#: seconds a refusal from this peer keeps us from asking it for that entry again
REFUSAL_MEMORY = 600.0
#: authors we do not hold that a peer's clock may name (beyond that they are not remembered)
MAX_UNKNOWN_AUTHORS = 10_000
#: entries a peer's wants may make us send again, per second (bursts of `RESEND_BURST`)
RESEND_RATE = 1000.0
RESEND_BURST = 4096.0
#: seconds during which a want for entries we sent the peer counts as asking again
RESEND_MEMORY = 10.0
#: bodies a peer may make us send per second through `want_bodies` (bursts of twice that)
BODY_RATE = 256.0
#: seconds without the body before another holder is asked for it
BODY_RETRY = 3.0
#: seconds before the same peer is asked for the same body again; doubled after each time
#: (a body may have been dropped everywhere, e.g. expired) up to `BODY_ASK_MAX`
BODY_ASK_AGAIN = 10.0
BODY_ASK_MAX = 3600.0


class ResendBudget:
    """What wants may make us send again (`RESEND_RATE`/s, bursts of `RESEND_BURST`); one may
    be shared by every session from one address, so fresh identities do not refill it."""

    def __init__(self) -> None:
        self.tokens = RESEND_BURST
        self.time: float | None = None


class Replication:
    """What one peer holds, as far as we know, and which authors we still owe it."""

    def __init__(self, resend: ResendBudget | None = None, *,
                 version: int = REPLICATION_VERSION) -> None:
        #: the replication version we speak (1 only in tests: never announce v2)
        self.version = version
        #: the version the peer announced (1 until a ``replication`` frame says otherwise)
        self.peer_version = 1
        self._clock_started = False
        #: v2: authors the peer asked us to push (its last note for them was eager)
        self.peer_eager: set[bytes] = set()
        #: v2: authors we asked the peer to push (our notes to it say eager)
        self.requested: set[bytes] = set()
        #: v2: authors to send a note about -> True when our eager flag changed (always sent)
        self._notes: dict[bytes, bool] = {}
        self.notes_sent = 0
        self.notes_received = 0
        self.peer_clock: dict[bytes, int] = {}
        self.peer_clock_final = False
        self._dirty: set[bytes] = set()
        self._pending_local: set[bytes] = set()
        self.entries_sent = 0
        self.entries_received = 0
        self._unknown_authors = 0
        self._wanted: dict[bytes, tuple[int, float]] = {}
        self._honoured: dict[bytes, tuple[int, float]] = {}
        self._refused: dict[bytes, tuple[int, float]] = {}
        #: author -> (highest seq we sent the peer, when)
        self._sent_recently: dict[bytes, tuple[int, float]] = {}
        self._resend = resend if resend is not None else ResendBudget()
        #: pairs of the last `receive_want` that asked again for what we had just sent
        self.reasked = 0

    @property
    def v2(self) -> bool:
        """Both sides speak replication v2: push only what the peer asks for."""
        return self.version >= 2 and self.peer_version >= 2

    def receive_hello(self, version: int) -> bool:
        """The peer announced its replication version.

        Returns:
            False when the frame was refused: it came after the peer's first clock frame.
        """
        if self._clock_started:
            return False
        self.peer_version = version
        return True

    def receive_clock(self, pairs: Iterable[tuple[bytes, int]], final: bool,
                      local_clock: Mapping[bytes, int]) -> bool:
        """Take (part of) the peer's clock; on the final part, owe it what it lacks (v1).

        Returns:
            False when the frame was refused: the peer's clock was already complete.
        """
        if self.peer_clock_final:
            return False
        self._clock_started = True
        for author, seq in pairs:
            if not self._may_remember(author, local_clock):
                continue
            if seq > self.peer_clock.get(author, 0):
                self.peer_clock[author] = seq
        if final and not self.peer_clock_final:
            self.peer_clock_final = True
            if not self.v2:
                self._dirty.update(
                    author for author, seq in local_clock.items()
                    if seq > self.peer_clock.get(author, 0)
                )
            self._dirty.update(self._pending_local)
            self._pending_local.clear()
        return True

    def _may_remember(self, author: bytes, local_clock: Mapping[bytes, int]) -> bool:
        """Authors we do not hold are remembered only up to `MAX_UNKNOWN_AUTHORS`."""
        if author in local_clock or author in self.peer_clock:
            return True
        if self._unknown_authors >= MAX_UNKNOWN_AUTHORS:
            return False
        self._unknown_authors += 1
        return True

    def receive_notes(self, notes: Iterable[tuple[bytes, int, bool]],
                      local_clock: Mapping[bytes, int]) -> list[tuple[bytes, int]]:
        """Take the peer's v2 notes: how far it is, and whether it wants an author pushed.

        Returns:
            (author, seq) of the notes showing the peer ahead of us (for `Forwarding.notes`).
        """
        ahead = []
        for author, seq, eager in notes:
            self.notes_received += 1
            if not self._may_remember(author, local_clock):
                continue
            if seq > self.peer_clock.get(author, 0):
                self.peer_clock[author] = seq
            if eager:
                if author not in self.peer_eager:
                    self.peer_eager.add(author)
                    self._owe(author)
                elif local_clock.get(author, 0) > self.peer_clock.get(author, 0):
                    self._owe(author)
            else:
                self.peer_eager.discard(author)
            if seq > local_clock.get(author, 0):
                ahead.append((author, seq))
        return ahead

    def _owe(self, author: bytes) -> None:
        if self.peer_clock_final:
            self._dirty.add(author)
        else:
            self._pending_local.add(author)

    def request(self, author: bytes, eager: bool) -> bool:
        """Ask the peer to push `author` (eager) or to stop (lazy notes only): queues a note.

        Returns:
            True when our flag for that author changed (a note is then owed to the peer).
        """
        if eager == (author in self.requested):
            return False
        if eager:
            self.requested.add(author)
        else:
            self.requested.discard(author)
        self._notes[author] = True
        return True

    def take_notes(self, local_clock: Mapping[bytes, int]) -> list[tuple[bytes, int, bool]]:
        """The notes owed to the peer since the last call: every changed eager flag, and a lazy
        note for each author we now hold further than the peer does."""
        out = []
        for author, changed in self._notes.items():
            seq = local_clock.get(author, 0)
            if changed or seq > self.peer_clock.get(author, 0):
                out.append((author, seq, author in self.requested))
        self._notes.clear()
        self.notes_sent += len(out)
        return out

    def receive_want(self, pairs: Iterable[tuple[bytes, int]], local_clock: Mapping[bytes, int],
                     now: float) -> int:
        """The peer asks for authors' entries from a seq on: rewind its clock there.

        Returns:
            How many pairs were ignored (authors we do not hold, the same pair again too soon,
            or beyond the re-send budget). `reasked` then says how many asked again for
            entries we had just sent.
        """
        ignored = 0
        self.reasked = 0
        budget = self._resend
        if budget.time is not None:
            budget.tokens = min(RESEND_BURST, budget.tokens + (now - budget.time) * RESEND_RATE)
        budget.time = now
        for author, from_seq in pairs:
            last = self._honoured.get(author)
            if author not in local_clock or (
                last is not None and last[0] == from_seq and now - last[1] < WANT_INTERVAL
            ):
                ignored += 1
                continue
            again = max(0, min(self.peer_clock.get(author, 0), local_clock[author]) - from_seq + 1)
            sent = self._sent_recently.get(author)
            if again and sent is not None and from_seq <= sent[0] and now - sent[1] < RESEND_MEMORY:
                self.reasked += 1
            # a full bucket serves any one want (running into debt), so a big honest re-fetch
            # is not refused for ever, only spread out
            if again > budget.tokens and budget.tokens < RESEND_BURST:
                ignored += 1
                continue
            budget.tokens -= again
            self._honoured[author] = (from_seq, now)
            self.peer_clock[author] = min(self.peer_clock.get(author, 0), max(from_seq - 1, 0))
            if self.peer_clock_final:
                self._dirty.add(author)
            else:
                self._pending_local.add(author)
        return ignored

    def receive_entries(self, seqs: Iterable[tuple[bytes, int]]) -> None:
        """The peer sent us these (author, seq): it holds them."""
        for author, seq in seqs:
            self.entries_received += 1
            if seq > self.peer_clock.get(author, 0):
                self.peer_clock[author] = seq

    def local_entries(self, seqs: Iterable[tuple[bytes, int]]) -> bool:
        """New entries were stored here; returns True when the peer is now owed something
        (v1: the entries; v2: the entries of authors it asked for, a lazy note for the rest)."""
        owed = False
        v2 = self.v2
        for author, seq in seqs:
            if seq > self.peer_clock.get(author, 0):
                owed = True
                if v2 and author not in self.peer_eager:
                    self._notes.setdefault(author, False)
                else:
                    self._owe(author)
        return owed

    def take_dirty(self) -> set[bytes]:
        """Authors owed to the peer since the last call (the sender then reads and sends)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    @property
    def has_work(self) -> bool:
        return bool(self._dirty or self._notes)

    def next_seq(self, author: bytes) -> int:
        """The first seq of `author` the peer does not hold."""
        return self.peer_clock.get(author, 0) + 1

    def sent(self, seqs: Iterable[tuple[bytes, int]], now: float | None = None) -> None:
        """We sent the peer these (author, seq) at `now` (remembered to spot it asking again)."""
        for author, seq in seqs:
            self.entries_sent += 1
            if seq > self.peer_clock.get(author, 0):
                self.peer_clock[author] = seq
            if now is not None:
                self._sent_recently[author] = (seq, now)

    def note_refused(self, blocked: Mapping[bytes, int], now: float) -> None:
        """We refused these (author, seq) entries from this peer (bad, forked, or too new)."""
        for author, seq in blocked.items():
            self._refused[author] = (seq, now)

    def wants(self, gaps: Mapping[bytes, int], now: float) -> list[tuple[bytes, int]]:
        """`want` pairs for entries missing before what arrived ahead, minus the pointless ones
        (the missing entry is one we refused from this peer) and the repeated ones."""
        out = []
        for author, from_seq in gaps.items():
            refused = self._refused.get(author)
            if refused is not None and refused[0] == from_seq and now - refused[1] < REFUSAL_MEMORY:
                continue
            last = self._wanted.get(author)
            if last is not None and last[0] == from_seq and now - last[1] < WANT_INTERVAL:
                continue
            self._wanted[author] = (from_seq, now)
            out.append((author, from_seq))
        return out


class BodyBudget:
    """How many bodies a peer may make us send: a token bucket of `BODY_RATE` per second."""

    def __init__(self, now: float, rate: float = BODY_RATE) -> None:
        self._rate = rate
        self._tokens = 2 * rate
        self._time = now

    def take(self, wanted: int, now: float) -> int:
        """How many of `wanted` bodies may be sent now (the rest are not answered)."""
        self._tokens = min(2 * self._rate, self._tokens + max(0.0, now - self._time) * self._rate)
        self._time = now
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted


class BodyRequests:
    """Which peer to ask for which missing body (node-wide, across sessions)."""

    def __init__(self) -> None:
        #: entry id -> peer id -> when that peer was asked
        self._asked: dict[bytes, dict[bytes, float]] = {}
        #: entry id -> peer id -> when that peer may be asked again
        self._again: dict[bytes, dict[bytes, float]] = {}
        #: the last plan skipped ids because their answer may still come (plan again soon)
        self.awaiting = False

    def plan(self, missing: Sequence[tuple[bytes, bytes, int]],
             holders: Mapping[bytes, Mapping[bytes, int]], now: float) -> dict[bytes, list[bytes]]:
        """Assign missing bodies to peers.

        Args:
            missing: (entry id, author, seq) of entries held without a body.
            holders: peer id -> that peer's clock (author -> latest seq it holds).

        Returns:
            peer id -> entry ids to ask it for (at most `MAX_BODY_IDS` each). An id is asked of
            one peer at a time; after `BODY_RETRY` s without the body, of a peer not yet asked,
            or asked long enough ago (`BODY_ASK_AGAIN`, doubling per peer up to `BODY_ASK_MAX`).
        """
        wanted = {entry_id for entry_id, _, _ in missing}
        for entry_id in [i for i in self._asked if i not in wanted]:
            del self._asked[entry_id]  # the body came (or the entry was dropped)
            self._again.pop(entry_id, None)
        plan: dict[bytes, list[bytes]] = {}
        self.awaiting = False
        for entry_id, author, seq in missing:
            asked = self._asked.setdefault(entry_id, {})
            again = self._again.setdefault(entry_id, {})
            if asked and now - max(asked.values()) < BODY_RETRY:
                self.awaiting = True  # an answer may still come
                continue
            candidates = [
                peer for peer, clock in holders.items()
                if clock.get(author, 0) >= seq and now >= again.get(peer, now)
                and len(plan.get(peer, ())) < MAX_BODY_IDS
            ]
            if not candidates:
                continue
            peer = min(candidates, key=lambda p: (asked.get(p, -1e18), len(plan.get(p, ()))))
            wait = BODY_ASK_AGAIN if peer not in asked else min(
                BODY_ASK_MAX, 2 * (again[peer] - asked[peer]))
            asked[peer] = now
            again[peer] = now + wait
            plan.setdefault(peer, []).append(entry_id)
        self.awaiting = self.awaiting or bool(plan)
        return plan
