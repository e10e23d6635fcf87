"""The replication state of one session (SSB EBT style), as a sans-IO object: clocks in, work out.

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
- Our own `gaps` (entries that arrived ahead of their predecessors) become `want` pairs, but
  never for a seq whose entry we refused from this peer (asking would bring the same refused
  entry back, forever), and the same want at most once per `WANT_INTERVAL`.
- A peer cannot grow our memory: its clock is kept only for authors we hold (plus at most
  `MAX_UNKNOWN_AUTHORS` others), wants for authors we do not hold are ignored, and a clock frame
  after the final one is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: seconds before the same `want` (author, from_seq) is sent or honoured again
WANT_INTERVAL = 10.0
#: seconds a refusal from this peer keeps us from asking it for that entry again
REFUSAL_MEMORY = 600.0
#: authors we do not hold that a peer's clock may name (beyond that they are not remembered)
MAX_UNKNOWN_AUTHORS = 10_000


class Replication:
    """What one peer holds, as far as we know, and which authors we still owe it."""

    def __init__(self) -> None:
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

    def receive_clock(self, pairs: Iterable[tuple[bytes, int]], final: bool,
                      local_clock: Mapping[bytes, int]) -> bool:
        """Take (part of) the peer's clock; on the final part, owe it what it lacks.

        Returns:
            False when the frame was refused: the peer's clock was already complete.
        """
        if self.peer_clock_final:
            return False
        for author, seq in pairs:
            if author not in local_clock and author not in self.peer_clock:
                if self._unknown_authors >= MAX_UNKNOWN_AUTHORS:
                    continue
                self._unknown_authors += 1
            if seq > self.peer_clock.get(author, 0):
                self.peer_clock[author] = seq
        if final and not self.peer_clock_final:
            self.peer_clock_final = True
            self._dirty.update(
                author for author, seq in local_clock.items()
                if seq > self.peer_clock.get(author, 0)
            )
            self._dirty.update(self._pending_local)
            self._pending_local.clear()
        return True

    def receive_want(self, pairs: Iterable[tuple[bytes, int]], local_clock: Mapping[bytes, int],
                     now: float) -> int:
        """The peer asks for authors' entries from a seq on: rewind its clock there.

        Returns:
            How many pairs were ignored (authors we do not hold, or asked again too soon).
        """
        ignored = 0
        for author, from_seq in pairs:
            last = self._honoured.get(author)
            if author not in local_clock or (
                last is not None and last[0] == from_seq and now - last[1] < WANT_INTERVAL
            ):
                ignored += 1
                continue
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
        """New entries were stored here; returns True when the peer is now owed something."""
        owed = False
        for author, seq in seqs:
            if seq > self.peer_clock.get(author, 0):
                owed = True
                if self.peer_clock_final:
                    self._dirty.add(author)
                else:
                    self._pending_local.add(author)
        return owed

    def take_dirty(self) -> set[bytes]:
        """Authors owed to the peer since the last call (the sender then reads and sends)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    @property
    def has_work(self) -> bool:
        return bool(self._dirty)

    def next_seq(self, author: bytes) -> int:
        """The first seq of `author` the peer does not hold."""
        return self.peer_clock.get(author, 0) + 1

    def sent(self, seqs: Iterable[tuple[bytes, int]]) -> None:
        for author, seq in seqs:
            self.entries_sent += 1
            if seq > self.peer_clock.get(author, 0):
                self.peer_clock[author] = seq

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
