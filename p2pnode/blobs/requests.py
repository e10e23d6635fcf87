"""Our requests at a peer: sending ``blob_get``, filing the answers, cancelling.

Each open request is filed under its req id in `BlobPeer.requests`; the peer's ``blob_data`` and
``blob_error`` frames go to it (`on_data`, `on_error`), and a session that ends calls
`Request.on_lost` on each request still open. `ManifestRequest` gathers a manifest for
`download.Download`; `ChunkRequest` hands a whole chunk to its download. Rules it keeps:

- Handlers never await: they file what arrived and return, so a transfer never stalls the
  session's reader.
- A request is filed only once its ``blob_get`` was sent, and leaves `BlobPeer.requests` when it
  is answered in full, refused, cancelled or lost; pieces that arrive after that are dropped.
- Pieces must come in order, at the offsets and total announced: a manifest out of order is a
  protocol penalty and a failure, a chunk out of order counts as a bad chunk (`Download.garbled`).
- A manifest is never gathered beyond `MAX_MANIFEST_SIZE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from protocol import frames as fr
from protocol.blobs import MAX_MANIFEST_SIZE
from protocol.errors import ProtocolError

if TYPE_CHECKING:
    from p2pnode.blobs.download import Download
    from p2pnode.blobs.peer import BlobPeer

log = logging.getLogger(__name__)

_PROTOCOL_PENALTY = 10.0


class PeerFailed(Exception):
    """One peer could not give us what we asked (try another)."""


class Request:
    """One of our open requests at a peer."""

    __slots__ = ("peer", "req_id")

    def __init__(self, peer: BlobPeer, req_id: int) -> None:
        self.peer = peer
        self.req_id = req_id

    def on_data(self, frame: fr.BlobData) -> None:
        raise NotImplementedError

    def on_error(self, code: str, message: str) -> None:
        raise NotImplementedError

    def on_lost(self) -> None:
        """The session ended with the request open."""
        raise NotImplementedError


class ManifestRequest(Request):
    __slots__ = ("data", "future", "total", "touched")

    def __init__(self, peer: BlobPeer, req_id: int, future: asyncio.Future[bytes]) -> None:
        super().__init__(peer, req_id)
        self.future = future
        self.data = bytearray()
        self.total: int | None = None
        self.touched = time.monotonic()

    def _fail(self, reason: str) -> None:
        self.peer.requests.pop(self.req_id, None)
        if not self.future.done():
            self.future.set_exception(PeerFailed(reason))

    def on_data(self, frame: fr.BlobData) -> None:
        self.touched = time.monotonic()
        if self.total is None:
            self.total = frame.total
        if frame.offset != len(self.data) or frame.total != self.total:
            self.peer.penalise("manifest pieces out of order", _PROTOCOL_PENALTY)
            self._cancel_and_fail("sent manifest pieces out of order")
            return
        if frame.total > MAX_MANIFEST_SIZE:
            self._cancel_and_fail(f"announced a {frame.total}-byte manifest (limit "
                                  f"{MAX_MANIFEST_SIZE})")
            return
        self.data += frame.data
        if frame.final:
            self.peer.requests.pop(self.req_id, None)
            if not self.future.done():
                self.future.set_result(bytes(self.data))

    def _cancel_and_fail(self, reason: str) -> None:
        send_cancel(self.peer, self.req_id)
        self._fail(reason)

    def on_error(self, code: str, message: str) -> None:
        self._fail(f"answered {code}" + (f": {message}" if message else ""))

    def on_lost(self) -> None:
        self._fail("disconnected")


class ChunkRequest(Request):
    __slots__ = ("download", "index", "length", "parts", "received")

    def __init__(self, download: Download, peer: BlobPeer, req_id: int, index: int,
                 length: int) -> None:
        super().__init__(peer, req_id)
        self.download = download
        self.index = index
        self.length = length
        self.parts: list[bytes] = []
        self.received = 0

    def on_data(self, frame: fr.BlobData) -> None:
        download = self.download
        download.progress_at[self.peer] = time.monotonic()
        if frame.offset != self.received or frame.total != self.length:
            download.garbled(self)
            return
        self.parts.append(frame.data)
        self.received += len(frame.data)
        if self.received == self.length:
            del self.peer.requests[self.req_id]
            download.chunk_arrived(self)

    def on_error(self, code: str, message: str) -> None:
        self.download.request_refused(self, code, message)

    def on_lost(self) -> None:
        self.download.requests.pop((self.peer, self.index), None)


def send_request(peer: BlobPeer, req: Request, frame: fr.BlobGet) -> bool:
    """Send `frame` and file `req` under its id; False when the session cannot take it."""
    conn = peer.conn
    if not conn.is_open:
        return False
    try:
        conn.send(frame)
    except ProtocolError as exc:  # over the open-request limit: our bug, not the peer's
        log.warning("not asking %s: %s", conn.label, exc)
        return False
    peer.requests[req.req_id] = req
    return True


def send_cancel(peer: BlobPeer, req_id: int) -> None:
    peer.requests.pop(req_id, None)
    if peer.conn.is_open:
        with contextlib.suppress(ProtocolError):
            peer.conn.send(fr.BlobCancel(req_id))


# -- frame handlers (never await) ----------------------------------------------------------------
def on_data(peer: BlobPeer, frame: fr.BlobData) -> None:
    req = peer.requests.get(frame.req_id)
    if req is not None:  # else: late pieces of a request we cancelled
        req.on_data(frame)


def on_error(peer: BlobPeer, frame: fr.BlobError) -> None:
    req = peer.requests.pop(frame.req_id, None)
    if req is not None:
        req.on_error(frame.code, frame.message)
