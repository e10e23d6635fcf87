"""Which peer forwards which author's new entries to us (replication v2), node-wide, sans-IO.

PROTOCOL.md 5 ("Replication v2") is the specification; this is the reference. One `Forwarding`
per node sees every v2 session's `Replication` (added once the peer's final clock is in) and
keeps, per author, at most one **forwarder**: the peer we asked (an eager note) to push that
author's new entries to us. Every other v2 peer only sends lazy notes ("I hold X up to n").

Rules (time is injected: every call takes `now`; timers are `get_timer` / `handle_timer`):
- We ask a peer only for authors it is **ahead** on (its clock or a note shows a higher seq than
  ours). So a forwarder always got the entries before us, and forwarders form trees rooted at the
  author, not cycles. The one exception is just as safe: on a session's final clock we ask
  the peer for its **own** feed if it has no forwarder (the author's node is the tree's root).
- An author gets a forwarder when a peer is ahead and none is chosen: on the peer's final clock
  (catch-up), or on its lazy note (the first peer to tell us of a new entry becomes the
  forwarder: the tree follows the fastest path). A chosen forwarder stays while its session does.
- Among several candidates: the highest seq, then the author's own node, then the peer that
  forwards us the fewest authors, then the smallest peer id.
- **Lagging**: from the moment a peer is known ahead on an author (a note, a clock, a new
  forwarder), we expect progress. Every stored entry of that author restarts the wait; once no
  v2 peer is ahead any more the author is no longer lagging. After `SWITCH_TIMEOUT` s without
  progress while a peer is still ahead, the forwarder has stalled (or lied about being ahead):
  it is not asked for that author for `SHUN_TIME` s, and the best other peer ahead is asked.
- Entries of an author refused from a peer (bad signature, fork, invalid) shun that peer for the
  author at once; if it was the forwarder, another one is asked at once.
- An author whose entries we refused because it **forked** its feed is held for `SHUN_TIME` s
  (`hold`): every peer holding the other branch is "ahead" for ever, so chasing it would only
  make each of them send the refused branch again. No forwarder is sought for it meanwhile.
- A session that closes hands its authors to the best other peer ahead, if any (otherwise the
  next lazy note picks one).
- `suspend(until)`: no stall switching before `until` (our disk is full: the stall is ours).

Each call returns the peer ids whose `Replication` got notes to send (the caller wakes them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .replication import Replication

#: seconds without progress on an author while a peer is ahead before its forwarder is replaced
SWITCH_TIMEOUT = 2.0
#: seconds a peer that stalled on (or sent refused entries of) an author is not asked for it
SHUN_TIME = 60.0


class Forwarding:
    """The node's choice of forwarder per author across its v2 sessions."""

    def __init__(self) -> None:
        self._sessions: dict[bytes, Replication] = {}
        #: author -> the peer we asked to push it
        self.forwarder: dict[bytes, bytes] = {}
        #: peer -> authors it forwards to us
        self._forwarded: dict[bytes, set[bytes]] = {}
        #: author -> since when we wait for progress while a peer is ahead
        self._lagging: dict[bytes, float] = {}
        #: (author, peer) -> until when that peer is not asked for that author
        self._shunned: dict[tuple[bytes, bytes], float] = {}
        self._suspended_until = 0.0
        #: author -> until when it is not chased (its next entry is a fork we refuse)
        self._held: dict[bytes, float] = {}
        #: forwarders replaced because they stalled or sent refused entries
        self.switches = 0

    # -- sessions --------------------------------------------------------------------------
    def add(self, peer: bytes, replication: Replication, local_clock: Mapping[bytes, int],
            now: float) -> set[bytes]:
        """A v2 session's final clock is in: ask it for the authors it is ahead on that have
        no forwarder (catch-up)."""
        touched: set[bytes] = set()
        old = self._sessions.get(peer)
        self._sessions[peer] = replication
        if old is not None and old is not replication:
            # a new session of the same peer (the old one was replaced) keeps its authors
            for author in self._forwarded.get(peer, ()):
                if replication.request(author, True):
                    touched.add(peer)
        for author, seq in replication.peer_clock.items():
            if seq <= local_clock.get(author, 0) or self._is_held(author, now):
                continue
            current = self.forwarder.get(author)
            if self._is_shunned(author, peer, now):
                pass
            elif current is None:
                self._assign(author, peer, touched)
            elif self._sessions[current].peer_clock.get(author, 0) <= local_clock.get(author, 0):
                # the forwarder has nothing more for us (as far as we know): this peer has
                self._assign(author, peer, touched)
            self._lagging.setdefault(author, now)
        if self.forwarder.get(peer) is None and not self._is_shunned(peer, peer, now):
            # the peer's own feed: its node is the root of that tree, so asking it makes no
            # cycle, and its next entry reaches us without a note's round trip
            self._assign(peer, peer, touched)
        return touched

    def remove(self, peer: bytes, replication: Replication, local_clock: Mapping[bytes, int],
               now: float) -> set[bytes]:
        """A session ended: its authors go to the best other peer ahead on them."""
        if self._sessions.get(peer) is not replication:
            return set()  # an older session of a peer that has a newer one
        del self._sessions[peer]
        touched: set[bytes] = set()
        for author in self._forwarded.pop(peer, set()):
            del self.forwarder[author]
            best = self._best(author, local_clock, now)
            if best is not None:
                self._assign(author, best, touched)
        return touched

    @property
    def peers(self) -> list[bytes]:
        return list(self._sessions)

    # -- what happens ----------------------------------------------------------------------
    def notes(self, peer: bytes, ahead: Iterable[tuple[bytes, int]],
              local_clock: Mapping[bytes, int], now: float) -> set[bytes]:
        """The peer's notes showed it ahead on these (author, seq) (`Replication.receive_notes`)."""
        touched: set[bytes] = set()
        if peer not in self._sessions:
            return touched
        for author, _seq in ahead:
            if self._is_held(author, now):
                continue
            if self.forwarder.get(author) is None and not self._is_shunned(author, peer, now):
                self._assign(author, peer, touched)
            self._lagging.setdefault(author, now)
        return touched

    def stored(self, authors: Iterable[bytes], local_clock: Mapping[bytes, int],
               now: float) -> None:
        """Entries of these authors were stored here: progress."""
        for author in authors:
            if author in self._lagging:
                if self._anyone_ahead(author, local_clock):
                    self._lagging[author] = now
                else:
                    del self._lagging[author]

    def refused(self, peer: bytes, authors: Iterable[bytes], local_clock: Mapping[bytes, int],
                now: float) -> set[bytes]:
        """We refused entries of these authors from `peer`: not asked for them again soon."""
        touched: set[bytes] = set()
        for author in authors:
            self._shunned[(author, peer)] = now + SHUN_TIME
            if self.forwarder.get(author) == peer:
                self._replace(author, local_clock, now, touched)
        return touched

    def hold(self, authors: Iterable[bytes], now: float) -> None:
        """These authors forked: the entries peers hold beyond ours are refused from anyone, so
        they are not chased (no forwarder sought, no stall) for `SHUN_TIME` s."""
        for author in authors:
            self._held[author] = now + SHUN_TIME
            self._lagging.pop(author, None)

    def suspend(self, until: float) -> None:
        """No stall switching before `until` (we are the one not storing)."""
        self._suspended_until = max(self._suspended_until, until)

    # -- timer -----------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """When `handle_timer` has work next (None: nothing to wait for)."""
        if not self._lagging:
            return None
        return max(min(self._lagging.values()) + SWITCH_TIMEOUT, self._suspended_until)

    def handle_timer(self, local_clock: Mapping[bytes, int], now: float) -> set[bytes]:
        """Replace the forwarders of authors with no progress for `SWITCH_TIMEOUT` s."""
        touched: set[bytes] = set()
        if now < self._suspended_until:
            return touched
        for author, since in list(self._lagging.items()):
            if now - since < SWITCH_TIMEOUT:
                continue
            if not self._anyone_ahead(author, local_clock):
                del self._lagging[author]
                continue
            current = self.forwarder.get(author)
            if current is not None:
                self._shunned[(author, current)] = now + SHUN_TIME
            self._replace(author, local_clock, now, touched)
            self._lagging[author] = now
        for key in [k for k, until in self._shunned.items() if until <= now]:
            del self._shunned[key]
        for author in [a for a, until in self._held.items() if until <= now]:
            del self._held[author]
        return touched

    # -- internals -------------------------------------------------------------------------
    def _replace(self, author: bytes, local_clock: Mapping[bytes, int], now: float,
                 touched: set[bytes]) -> None:
        best = self._best(author, local_clock, now)
        if best is None or best == self.forwarder.get(author):
            return  # nobody better: keep the one we have
        self.switches += 1
        self._assign(author, best, touched)

    def _assign(self, author: bytes, peer: bytes, touched: set[bytes]) -> None:
        old = self.forwarder.get(author)
        if old == peer:
            return
        if old is not None:
            self._forwarded[old].discard(author)
            if self._sessions[old].request(author, False):
                touched.add(old)
        self.forwarder[author] = peer
        self._forwarded.setdefault(peer, set()).add(author)
        if self._sessions[peer].request(author, True):
            touched.add(peer)

    def _best(self, author: bytes, local_clock: Mapping[bytes, int], now: float) -> bytes | None:
        ours = local_clock.get(author, 0)
        best: tuple[int, bool, int, bytes] | None = None
        for peer, replication in self._sessions.items():
            seq = replication.peer_clock.get(author, 0)
            if seq <= ours or self._is_shunned(author, peer, now):
                continue
            key = (seq, peer == author, -len(self._forwarded.get(peer, ())), _neg(peer))
            if best is None or key > best:
                best = key
        return None if best is None else _neg(best[3])

    def _anyone_ahead(self, author: bytes, local_clock: Mapping[bytes, int]) -> bool:
        ours = local_clock.get(author, 0)
        return any(r.peer_clock.get(author, 0) > ours for r in self._sessions.values())

    def _is_held(self, author: bytes, now: float) -> bool:
        until = self._held.get(author)
        return until is not None and now < until

    def _is_shunned(self, author: bytes, peer: bytes, now: float) -> bool:
        until = self._shunned.get((author, peer))
        return until is not None and now < until


def _neg(peer: bytes) -> bytes:
    """An order-reversing key for peer ids (the smallest id wins a tie under `max`)."""
    return bytes(255 - b for b in peer)
