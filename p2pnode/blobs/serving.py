"""Serving blobs: answering a peer's ``blob_get`` and ``blob_cancel``.

PROTOCOL.md section 6. `transfer.BlobService.session_opened` registers `on_get` and `on_cancel`
for each session and runs `serve` for it; chunks are read through `BlobService._load_chunk`, on
the event loop or in the service's blob I/O threads (`inline`). Rules it keeps:

- Handlers never await: they queue the request (or mark it cancelled) and return, so serving
  never stalls the session's reader.
- Each connection's requests are answered in order, one at a time, chunk pieces via `send_bulk`
  (flow control); a request stops as soon as the peer cancels it, and a chunk whose sending was
  cancelled is not counted as served.
- Memory is bounded: the chunk being sent, `_READ_AHEAD` chunks read ahead, and the connection's
  bounded outgoing queue.
- A chunk is read (and verified, unless it verified before and the file is unchanged:
  `BlobStore.read_chunk_pieces`) already cut into ``blob_data`` pieces; it is never joined or
  sliced on the loop. It is read on the event loop while reads are quick (from the page cache
  a 256 KiB read takes ~30 µs, a hand-off to a thread costs more CPU than that); after a read
  slower than `_INLINE_READ_LIMIT`, or while they average over `_INLINE_READ_AVERAGE` (a cold
  file on a slow disk), the service's reads go to the blob I/O threads for a while
  (`inline.InlineGate`). A chunk that fails verification is answered ``not_found``, and its
  blob leaves the set announced to new sessions.
- With an upload limit (`BlobService.upload_limit`), each chunk waits its turn in the node's
  one token bucket before it is sent (`ratelimit`); manifests are not paced.
- What we cannot serve is answered with ``blob_error`` (``not_found`` or ``bad_request``), never
  by dropping the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import TYPE_CHECKING

from p2pnode.blobs.errors import BlobNotFound, CorruptBlob
from p2pnode.blobs.inline import InlineGate
from p2pnode.blobs.peer import BlobPeer, retrieve
from p2pnode.blobs.store import BlobStore
from protocol import frames as fr
from protocol.errors import ProtocolError
from protocol.identity import fingerprint

if TYPE_CHECKING:
    from p2pnode.blobs.service import BlobService

log = logging.getLogger(__name__)

#: Chunks read ahead per connection while one is being sent.
_READ_AHEAD = 2
#: A chunk read on the event loop slower than this, or reads averaging more than the second,
#: send the service's reads to the blob I/O threads for a while (on the 2-core bench, reading
#: inline saves the server ~0.05 of its ~0.3 CPU-seconds per 256 MiB).
_INLINE_READ_LIMIT = 0.005
_INLINE_READ_AVERAGE = 0.002


# -- frame handlers (never await) ----------------------------------------------------------------
def on_get(peer: BlobPeer, frame: fr.BlobGet) -> None:
    peer.queued[frame.req_id] = frame
    peer.wake.set()


def on_cancel(peer: BlobPeer, frame: fr.BlobCancel) -> None:
    if peer.queued.pop(frame.req_id, None) is None and peer.current == frame.req_id:
        peer.current_cancelled = True


# -- reading (in a blob I/O thread) --------------------------------------------------------------
def load_chunk(store: BlobStore, blob_id: bytes, index: int) -> list[bytes]:
    """Read one chunk to serve, cut into `blob_data` pieces (in a blob I/O thread; verified
    by the store unless it verified before and the file has not changed since)."""
    return store.read_chunk_pieces(blob_id, index, fr.MAX_BLOB_DATA)


def _load_manifest(store: BlobStore, blob_id: bytes) -> bytes:
    if not store.has(blob_id):
        raise BlobNotFound("not held here")
    return store.manifest_bytes(blob_id)


def read_gate() -> InlineGate:
    """The gate a `BlobService` keeps for its chunk reads."""
    return InlineGate(slow=_INLINE_READ_LIMIT, average=_INLINE_READ_AVERAGE)


def _start_read(service: BlobService, get: fr.BlobGet) -> asyncio.Future[list[bytes]]:
    """Read a chunk to serve: on the loop while the service's reads are quick, else in the
    blob I/O threads."""
    future = service.read_gate.run(service._pool, service._load_chunk, get.blob_id, get.index,
                                   allow_inline=service.inline_reads)
    future.add_done_callback(retrieve)
    return future


# -- answering ----------------------------------------------------------------------------------
async def serve(service: BlobService, peer: BlobPeer) -> None:
    """Answer the peer's requests in order, one at a time, with the chunks of the next
    `_READ_AHEAD` queued requests read ahead (and verified, where they need it): at once on
    the loop while reads are quick, else meanwhile in the blob I/O threads."""
    ahead: dict[int, asyncio.Future[list[bytes]]] = {}
    while True:
        if not peer.queued:
            ahead.clear()
            peer.wake.clear()
            await peer.wake.wait()
            continue
        req_id = next(iter(peer.queued))
        get = peer.queued.pop(req_id)
        peer.current, peer.current_cancelled = req_id, False
        try:
            if get.part == "manifest":
                data = await service._io(_load_manifest, service.store, get.blob_id)
                start = get.index
                if start > len(data):
                    raise ValueError(f"offset {start} is past the manifest's end "
                                     f"({len(data)} bytes)")
                step = fr.MAX_BLOB_DATA
                pieces = [data[i : i + step] for i in range(start, len(data), step)] or [b""]
                total = len(data)
            else:
                future = ahead.pop(req_id, None)
                if future is None:
                    future = _start_read(service, get)
                _plan_reads(service, peer, ahead)
                pieces = await future
                start = 0
                total = sum(len(piece) for piece in pieces)
                if service.upload_limit is not None:
                    await service.upload_limit.take(total)
            if not await _send_pieces(peer, req_id, start, total, pieces):
                return
            if get.part == "chunk" and not peer.current_cancelled:
                peer.chunks_served += 1
                peer.bytes_served += total
                service.chunks_served += 1
        except BlobNotFound as exc:
            _refuse(peer, req_id, "not_found", str(exc))
        except CorruptBlob as exc:
            log.error("not serving %s: %s", fingerprint(get.blob_id), exc)
            service._local.discard(get.blob_id)
            _refuse(peer, req_id, "not_found", "damaged here")
        except ValueError as exc:
            _refuse(peer, req_id, "bad_request", str(exc))
        except ConnectionError:
            return
        except OSError as exc:
            log.warning("cannot read %s to serve it: %s", fingerprint(get.blob_id), exc)
            _refuse(peer, req_id, "not_found", "cannot be read here")
        finally:
            peer.current = None


def _plan_reads(service: BlobService, peer: BlobPeer,
                ahead: dict[int, asyncio.Future[list[bytes]]]) -> None:
    """Start reading the chunks of the next queued requests; forget cancelled ones."""
    for stale in [r for r in ahead if r not in peer.queued]:
        del ahead[stale]
    for get in itertools.islice(peer.queued.values(), _READ_AHEAD):
        if get.part == "chunk" and get.req_id not in ahead:
            ahead[get.req_id] = _start_read(service, get)


def _refuse(peer: BlobPeer, req_id: int, code: str, message: str) -> None:
    if peer.conn.is_open:
        with contextlib.suppress(ProtocolError):
            peer.conn.send(fr.BlobError(req_id, code, message[: fr.MAX_MESSAGE_LENGTH]))


async def _send_pieces(peer: BlobPeer, req_id: int, start: int, total: int,
                       pieces: list[bytes]) -> bool:
    """Send `pieces` (consecutive, each at most `MAX_BLOB_DATA`, from offset `start` up to
    `total`) as ``blob_data`` frames; False when the session is gone."""
    conn = peer.conn
    offset = start
    for piece in pieces:
        if peer.current_cancelled:
            return True
        try:
            await conn.send_bulk(fr.BlobData(req_id, offset, piece, total))
        except ConnectionError:
            return False
        offset += len(piece)
    return True
