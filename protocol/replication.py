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
- Our own `gaps` (entries that arrived ahead of their predecessors) become `want` pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class Replication:
    """What one peer holds, as far as we know, and which authors we still owe it."""

    def __init__(self) -> None:
        self.peer_clock: dict[bytes, int] = {}
        self.peer_clock_final = False
        self._dirty: set[bytes] = set()
        self._pending_local: set[bytes] = set()
        self.entries_sent = 0
        self.entries_received = 0

    def receive_clock(self, pairs: Iterable[tuple[bytes, int]], final: bool,
                      local_clock: Mapping[bytes, int]) -> None:
        """Take (part of) the peer's clock; on the final part, owe it what it lacks."""
        for author, seq in pairs:
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

    def receive_want(self, pairs: Iterable[tuple[bytes, int]]) -> None:
        """The peer asks for authors' entries from a seq on: rewind its clock there."""
        for author, from_seq in pairs:
            self.peer_clock[author] = min(self.peer_clock.get(author, 0), max(from_seq - 1, 0))
            if self.peer_clock_final:
                self._dirty.add(author)
            else:
                self._pending_local.add(author)

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

    @staticmethod
    def want_pairs(gaps: Mapping[bytes, int]) -> list[list]:
        """`want` pairs asking for the entries missing before what arrived ahead."""
        return [[author, seq] for author, seq in gaps.items()]
