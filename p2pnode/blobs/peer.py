"""The blob exchange's state for one connected peer, shared by `service`, `serving` and
`download`.

One `BlobPeer` per session, made by `BlobService.session_opened` and forgotten when the session
ends. Rules it keeps:

- It holds state only; the modules that use it decide what to do (`serving` answers the peer's
  requests, `download` files our requests at the peer, `service` records what it announced).
- Request ids are ours to pick, unique among our open requests at the peer (``blob_cancel`` and
  the peer's answers name them).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from p2pnode.blobs.download import Request
    from p2pnode.blobs.host import BlobHost, PeerLink
    from protocol import frames as fr


class BlobPeer:
    """Our side of the blob exchange with one connected peer."""

    __slots__ = (
        "_host",
        "_next_id",
        "bytes_received",
        "bytes_served",
        "chunks_requested",
        "chunks_served",
        "conn",
        "current",
        "current_cancelled",
        "has",
        "queued",
        "requests",
        "wake",
    )

    def __init__(self, conn: PeerLink, host: BlobHost) -> None:
        self.conn = conn
        self._host = host
        #: blob ids the peer announced
        self.has: set[bytes] = set()
        #: our open requests at the peer, by req id
        self.requests: dict[int, Request] = {}
        #: the peer's requests waiting to be served, in arrival order
        self.queued: dict[int, fr.BlobGet] = {}
        self.current: int | None = None
        self.current_cancelled = False
        self.wake = asyncio.Event()
        self.chunks_requested = 0
        self.chunks_served = 0
        #: resource bytes sent to the peer and received (verified) from it, since the session began
        self.bytes_served = 0
        self.bytes_received = 0
        self._next_id = 0

    @property
    def peer_id(self) -> bytes | None:
        return self.conn.peer_id

    def penalise(self, reason: str, amount: float) -> None:
        """Lower the peer's score (a bad chunk, a lying manifest, a protocol slip)."""
        self._host.penalise(self.conn, reason, amount)

    def new_req_id(self) -> int:
        while True:
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF
            if self._next_id not in self.requests:
                return self._next_id

    def __repr__(self) -> str:
        return f"<peer {self.conn.label}>"


def retrieve(future: asyncio.Future[Any]) -> None:
    """Done-callback for futures nobody may await: mark their exception as seen."""
    if not future.cancelled():
        future.exception()
