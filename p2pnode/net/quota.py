"""What strangers may make us store (issue 12, item 7).

Identities are free, and every entry a peer sends us is stored for good; so what authors new to
this node may bring in is capped, per hour:

- an author first seen here less than an hour ago ("new") may have at most
  `NEW_AUTHOR_ENTRIES_PER_HOUR` entries and `NEW_AUTHOR_BYTES_PER_HOUR` bytes stored in that
  hour (an honest newcomer's feed is a few dozen entries; an old feed first met here arrives over
  a few hours instead of at once);
- one peer may introduce at most `NEW_AUTHORS_PER_PEER_PER_HOUR` new authors per hour, bringing
  at most `NEW_AUTHOR_BYTES_PER_PEER_PER_HOUR` bytes of their entries.

Entries over a cap are dropped before any verification, the peer is not scored down (an honest
relay may forward a spammer's feed), and the session does not ask for them again for a while
(`Replication.note_refused`); once the hour has passed they come with the next catch-up. Each
author or peer that hits a cap is logged once per hour. Authors we held before this run are not
new; the memory is bounded by `_MAX_TRACKED` authors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol.entry import Entry
from protocol.identity import fingerprint

log = logging.getLogger(__name__)

HOUR = 3600.0
NEW_AUTHOR_ENTRIES_PER_HOUR = 10_000
NEW_AUTHOR_BYTES_PER_HOUR = 32 * 1024 * 1024
NEW_AUTHORS_PER_PEER_PER_HOUR = 200
#: bytes of new authors' entries one peer may bring per hour, all authors together
NEW_AUTHOR_BYTES_PER_PEER_PER_HOUR = 64 * 1024 * 1024
_MAX_TRACKED = 50_000


@dataclass
class _Allowance:
    since: float
    entries: int = 0
    size: int = 0
    warned: bool = False


class AuthorQuota:
    """Node-wide accounting of what new authors, and the peers bringing them, may store."""

    def __init__(self) -> None:
        self._authors: dict[bytes, _Allowance] = {}
        #: peer id -> [hour start, new authors introduced in it, warned, their bytes]
        self._peers: dict[bytes, list] = {}

    def admit(self, peer: bytes, entries: Sequence[Entry], clock: Mapping[bytes, int],
              now: float | None = None) -> tuple[list[Entry], dict[bytes, int]]:
        """Split a batch into what may be stored and what is over a cap.

        Returns:
            (entries to store, author -> first seq dropped).
        """
        now = time.monotonic() if now is None else now
        kept: list[Entry] = []
        dropped: dict[bytes, int] = {}
        for entry in entries:
            author = entry.header.author
            allowance = self._allowance(peer, author, clock, now)
            if allowance is None:
                dropped.setdefault(author, entry.header.seq)
                continue
            size = len(entry.header_bytes) + len(entry.body_bytes or b"") + 64
            hour = self._peers.get(peer)
            peer_bytes = hour[3] if hour is not None and allowance.since >= 0 else 0
            if allowance.since >= 0 and (
                    allowance.entries >= NEW_AUTHOR_ENTRIES_PER_HOUR
                    or allowance.size + size > NEW_AUTHOR_BYTES_PER_HOUR
                    or peer_bytes + size > NEW_AUTHOR_BYTES_PER_PEER_PER_HOUR):
                if not allowance.warned:
                    allowance.warned = True
                    log.warning("author %s is new here and over its hourly quota (%d entries,"
                                " %d MiB; %d MiB from one peer): the rest waits",
                                fingerprint(author), NEW_AUTHOR_ENTRIES_PER_HOUR,
                                NEW_AUTHOR_BYTES_PER_HOUR >> 20,
                                NEW_AUTHOR_BYTES_PER_PEER_PER_HOUR >> 20)
                dropped.setdefault(author, entry.header.seq)
                continue
            if allowance.since >= 0:
                allowance.entries += 1
                allowance.size += size
                if hour is not None:
                    hour[3] += size
            kept.append(entry)
        return kept, dropped

    def _allowance(self, peer: bytes, author: bytes, clock: Mapping[bytes, int],
                   now: float) -> _Allowance | None:
        """The author's allowance (`since` < 0: not new, unlimited), or None when the peer may
        introduce no more new authors this hour."""
        allowance = self._authors.get(author)
        if allowance is not None and now - allowance.since >= HOUR:
            allowance = self._authors[author] = _Allowance(-1.0)  # an hour on: no longer new
        if allowance is not None:
            return allowance
        if author in clock:
            return _Allowance(-1.0)  # held before this run (or stored since): not new
        hour = self._peers.get(peer)
        if hour is None or now - hour[0] >= HOUR:
            hour = self._peers[peer] = [now, 0, False, 0]
        if hour[1] >= NEW_AUTHORS_PER_PEER_PER_HOUR:
            if not hour[2]:
                hour[2] = True
                log.warning("peer %s brought %d new authors within an hour: no more for now",
                            fingerprint(peer), NEW_AUTHORS_PER_PEER_PER_HOUR)
            return None
        hour[1] += 1
        if len(self._authors) >= _MAX_TRACKED:
            self._forget(now)
        allowance = self._authors[author] = _Allowance(now)
        return allowance

    def _forget(self, now: float) -> None:
        for author in [a for a, q in self._authors.items() if now - q.since >= HOUR]:
            del self._authors[author]
        while len(self._authors) >= _MAX_TRACKED:  # all recent: drop the oldest
            del self._authors[next(iter(self._authors))]
