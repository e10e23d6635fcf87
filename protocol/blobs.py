"""Content-addressed blobs: chunking, manifests, per-chunk checks, the swarm download plan.

DESIGN.md "Resources (blobs)". The rules this module keeps:

- A blob is cut into `CHUNK_SIZE` (256 KiB) chunks; only the last may be shorter, and a zero-byte
  blob has zero chunks.
- Its manifest is the canonical msgpack array ``[size, chunk_size, [sha256(chunk), ...]]``
  (`codec.pack`, every value in its smallest encoding); the blob id is SHA-256 of those bytes.
  One content, one manifest, one id: `decode_manifest` rejects any other encoding.
- Only ``chunk_size == CHUNK_SIZE`` is accepted for now. A future size would be a new manifest
  version; until then a single size keeps ids unique per content.
- A manifest can be larger than a frame (`max_manifest_size`); it is fetched in pieces and
  accepted only once whole and hashing to the blob id it was asked for.
- `DownloadPlan` decides which chunk to ask of which peer; it does no I/O and keeps no clock
  (timeouts are the caller's: it reports them with `request_failed`).

Pure: no files, sockets, event loop or clock.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .codec import pack, unpack_strict
from .errors import LocalProtocolError, MalformedError

CHUNK_SIZE = 256 * 1024
MAX_BLOB_SIZE = 4 * 1024**3
HASH_SIZE = 32
BLOB_ID_SIZE = 32

#: Strikes (bad chunks) after which a `DownloadPlan` stops asking a peer for anything.
#: Sessions are authenticated and encrypted, so an honest peer (which re-verifies every chunk
#: before serving it) never sends a bad one; three leaves room for a local bug, not for a liar.
MAX_STRIKES = 3

# msgpack framing around the hashes, at its largest: fixarray(3) 1 + uint64 size 9 +
# uint32 chunk_size 5 + array32 header 5. Each hash is bin8: 2 + 32 bytes.
_MANIFEST_OVERHEAD = 1 + 9 + 5 + 5
_HASH_ENTRY_SIZE = 2 + HASH_SIZE


def chunk_count_for(size: int, chunk_size: int = CHUNK_SIZE) -> int:
    """Number of chunks a blob of `size` bytes has (0 for an empty blob)."""
    return -(-size // chunk_size)


def max_manifest_size(max_blob_size: int = MAX_BLOB_SIZE) -> int:
    """Largest encoded manifest of a blob no bigger than `max_blob_size`.

    4 GiB gives 16384 chunks x 34 bytes + 20 bytes of framing = 557,076 bytes.
    """
    return _MANIFEST_OVERHEAD + _HASH_ENTRY_SIZE * chunk_count_for(max_blob_size)


MAX_MANIFEST_SIZE = max_manifest_size(MAX_BLOB_SIZE)


@dataclass(frozen=True)
class Manifest:
    """What a blob is made of. Build with `ManifestBuilder` or `decode_manifest`, not by hand:
    the constructor trusts its arguments (tests use that to fake sizes without data).
    """

    size: int
    chunk_size: int
    chunk_hashes: tuple[bytes, ...]

    @cached_property
    def _encoded(self) -> bytes:
        return pack([self.size, self.chunk_size, list(self.chunk_hashes)])

    def encode(self) -> bytes:
        """The canonical manifest bytes (what the blob id hashes)."""
        return self._encoded

    @cached_property
    def blob_id(self) -> bytes:
        """SHA-256 of the encoded manifest: the blob's 32-byte content id."""
        return hashlib.sha256(self._encoded).digest()

    @property
    def chunk_count(self) -> int:
        return len(self.chunk_hashes)

    def chunk_offset(self, index: int) -> int:
        """Byte offset of chunk `index` in the blob.

        Raises:
            IndexError: `index` is not a chunk of this blob.
        """
        self._check_index(index)
        return index * self.chunk_size

    def chunk_length(self, index: int) -> int:
        """Length of chunk `index`: `chunk_size`, except possibly the last one.

        Raises:
            IndexError: `index` is not a chunk of this blob.
        """
        self._check_index(index)
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self.chunk_hashes):
            raise IndexError(f"chunk {index} out of range 0-{len(self.chunk_hashes) - 1}")


def decode_manifest(
    data: bytes, expected_blob_id: bytes, *, max_blob_size: int = MAX_BLOB_SIZE
) -> Manifest:
    """Decode manifest bytes fetched for `expected_blob_id`, checking everything.

    Args:
        data: the whole manifest (all pieces joined).
        expected_blob_id: the id the manifest was asked for; the bytes must hash to it.
        max_blob_size: largest blob we accept; also bounds the manifest's length.

    Raises:
        MalformedError: naming the field (``manifest``, ``manifest.size``,
            ``manifest.chunk_size``, ``manifest.chunk_hashes``) and the rule broken.
        LocalProtocolError: `expected_blob_id` is not 32 bytes (our bug, not the peer's).
    """
    if not isinstance(expected_blob_id, bytes) or len(expected_blob_id) != BLOB_ID_SIZE:
        raise LocalProtocolError(f"must be {BLOB_ID_SIZE} bytes", "blob_id")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(f"expected bytes, got {type(data).__name__}", "manifest")
    data = bytes(data)
    limit = max_manifest_size(max_blob_size)
    if len(data) > limit:
        raise MalformedError(f"{len(data)} bytes exceeds the limit of {limit}", "manifest")
    if hashlib.sha256(data).digest() != expected_blob_id:
        raise MalformedError("does not hash to the blob id", "manifest")
    fields = unpack_strict(data, "manifest", max_size=limit, max_depth=2)
    if not isinstance(fields, list) or len(fields) != 3:
        raise MalformedError("must be an array [size, chunk_size, chunk_hashes]", "manifest")
    size, chunk_size, hashes = fields
    if type(size) is not int or not 0 <= size <= max_blob_size:
        raise MalformedError(f"must be an integer 0-{max_blob_size}", "manifest.size")
    if type(chunk_size) is not int or chunk_size != CHUNK_SIZE:
        raise MalformedError(
            f"{chunk_size!r} is not supported: only {CHUNK_SIZE} for now", "manifest.chunk_size"
        )
    if not isinstance(hashes, list):
        raise MalformedError("must be an array", "manifest.chunk_hashes")
    expected_count = chunk_count_for(size, chunk_size)
    if len(hashes) != expected_count:
        raise MalformedError(
            f"has {len(hashes)} hashes, a {size}-byte blob has {expected_count} chunks",
            "manifest.chunk_hashes",
        )
    for i, digest in enumerate(hashes):
        if not isinstance(digest, bytes) or len(digest) != HASH_SIZE:
            raise MalformedError(f"must be {HASH_SIZE} bytes", f"manifest.chunk_hashes[{i}]")
    manifest = Manifest(size, chunk_size, tuple(hashes))
    if manifest.encode() != data:
        raise MalformedError("is not canonically encoded", "manifest")
    return manifest


def verify_chunk(manifest: Manifest, index: int, data: bytes | bytearray | memoryview) -> bool:
    """True when `data` is exactly chunk `index` of the blob (length and SHA-256).

    An index outside the blob is False, not an error: it is what a lying peer sends.
    """
    if not 0 <= index < manifest.chunk_count:
        return False
    if len(data) != manifest.chunk_length(index):
        return False
    return hashlib.sha256(data).digest() == manifest.chunk_hashes[index]


def verify_chunk_pieces(
    manifest: Manifest, index: int, pieces: Sequence[bytes | bytearray | memoryview]
) -> bool:
    """`verify_chunk` for a chunk held as consecutive pieces (as it travels), without joining
    them: True when their concatenation is exactly chunk `index`."""
    if not 0 <= index < manifest.chunk_count:
        return False
    if sum(len(piece) for piece in pieces) != manifest.chunk_length(index):
        return False
    hasher = hashlib.sha256()
    for piece in pieces:
        hasher.update(piece)
    return hasher.digest() == manifest.chunk_hashes[index]


class ManifestBuilder:
    """Build a manifest from data streamed in pieces of any size.

    Each chunk is hashed as its bytes arrive, so memory stays flat whatever the file size:
    nothing is buffered but the running SHA-256 state.
    """

    def __init__(self, *, max_size: int = MAX_BLOB_SIZE) -> None:
        self.max_size = max_size
        self.size = 0
        self._hashes: list[bytes] = []
        self._hasher = hashlib.sha256()
        self._filled = 0
        self._finished = False

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next piece of the blob.

        Raises:
            LocalProtocolError: after `finish`, or when the blob would exceed `max_size`.
        """
        if self._finished:
            raise LocalProtocolError("update() after finish()", "manifest")
        view = memoryview(data).cast("B")
        if self.size + len(view) > self.max_size:
            raise LocalProtocolError(f"blob exceeds the limit of {self.max_size} bytes", "size")
        self.size += len(view)
        while view:
            take = min(CHUNK_SIZE - self._filled, len(view))
            self._hasher.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == CHUNK_SIZE:
                self._hashes.append(self._hasher.digest())
                self._hasher = hashlib.sha256()
                self._filled = 0

    def finish(self) -> Manifest:
        """Close the last (possibly short) chunk and return the manifest."""
        if not self._finished:
            if self._filled:
                self._hashes.append(self._hasher.digest())
            self._finished = True
        return Manifest(self.size, CHUNK_SIZE, tuple(self._hashes))


def manifest_for(data: bytes | bytearray | memoryview) -> Manifest:
    """The manifest of a blob held wholly in memory (small blobs, tests)."""
    builder = ManifestBuilder(max_size=max(len(data), MAX_BLOB_SIZE))
    builder.update(data)
    return builder.finish()


class Bitmap:
    """Which chunks are held: one bit per chunk, BitTorrent's order (chunk 0 is the most
    significant bit of byte 0); unused bits of the last byte are zero.
    """

    __slots__ = ("_bits", "_count", "_set")

    def __init__(self, count: int) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        self._count = count
        self._bits = bytearray((count + 7) // 8)
        self._set = 0

    @classmethod
    def from_bytes(cls, count: int, data: bytes) -> Bitmap:
        """Decode a bitmap of `count` bits.

        Raises:
            MalformedError: wrong length or a padding bit set (field ``bitmap``).
        """
        bitmap = cls(count)
        if len(data) != len(bitmap._bits):
            raise MalformedError(f"must be {len(bitmap._bits)} bytes for {count} chunks", "bitmap")
        tail = count % 8
        if tail and data[-1] & (0xFF >> tail):
            raise MalformedError("padding bits must be zero", "bitmap")
        bitmap._bits[:] = data
        bitmap._set = int.from_bytes(data, "big").bit_count()
        return bitmap

    @classmethod
    def full(cls, count: int) -> Bitmap:
        bitmap = cls(count)
        for i in range(count):
            bitmap.set(i)
        return bitmap

    def to_bytes(self) -> bytes:
        return bytes(self._bits)

    def copy(self) -> Bitmap:
        return Bitmap.from_bytes(self._count, self._bits)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> bool:
        self._check(index)
        return bool(self._bits[index >> 3] & (0x80 >> (index & 7)))

    def __iter__(self) -> Iterator[bool]:
        return (self[i] for i in range(self._count))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bitmap):
            return NotImplemented
        return self._count == other._count and self._bits == other._bits

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Bitmap({self._set}/{self._count})"

    def set(self, index: int) -> bool:
        """Set bit `index`; True when it was not set before."""
        self._check(index)
        mask = 0x80 >> (index & 7)
        if self._bits[index >> 3] & mask:
            return False
        self._bits[index >> 3] |= mask
        self._set += 1
        return True

    def clear(self, index: int) -> bool:
        """Clear bit `index`; True when it was set before."""
        self._check(index)
        mask = 0x80 >> (index & 7)
        if not self._bits[index >> 3] & mask:
            return False
        self._bits[index >> 3] &= ~mask & 0xFF
        self._set -= 1
        return True

    @property
    def count_set(self) -> int:
        return self._set

    @property
    def all_set(self) -> bool:
        return self._set == self._count

    def missing(self) -> list[int]:
        """Indices of the bits that are not set, ascending."""
        return [i for i in range(self._count) if not self[i]]

    def _check(self, index: int) -> None:
        if not 0 <= index < self._count:
            raise IndexError(f"bit {index} out of range 0-{self._count - 1}")


PeerId = Hashable


@dataclass
class _Peer:
    outstanding: dict[int, None] = field(default_factory=dict)  # an insertion-ordered set


class DownloadPlan:
    """Which chunk to ask of which peer, for one blob fetched from several peers at once.

    Rules:
    - Every holder holds the whole blob, so there is no rarest-first: unrequested chunks are
      handed out lowest index first, each to exactly one peer, so peers fetch different chunks.
    - A peer has at most `window` requests outstanding (the caller passes the window).
    - End-game: when no unrequested chunk is left and a peer has nothing outstanding (it is
      idle), it may duplicate chunks outstanding at other peers: those with the fewest
      requesters, and of those the ones the others will send last (peers answer in request
      order, so the tail of a queue is what an idle peer can fetch sooner). The first good copy
      wins and `chunk_received` names the peers whose duplicates became redundant (the caller
      cancels them, before they are sent when they were still queued). A peer that still has
      requests out never duplicates: with equally slow holders, duplicating early would spend
      their upload on copies (measured: 4 holders at 20 MB/s reached 0.45 of 80 MB/s).
    - A bad chunk (``ok=False``) goes back to the pool, is never asked of that peer again, and
      gives the peer a strike; at `MAX_STRIKES` the peer is dropped and listed in `bad_peers`.
      Strikes survive `remove_peer`/`add_peer`, so reconnecting does not wash them off.
    - `request_failed` (not found, busy, timeout, disconnect) returns a chunk to the pool with
      no strike.

    Misuse (a peer never added asking for work, an index outside the blob) raises
    `LocalProtocolError` and changes nothing.
    """

    def __init__(self, manifest: Manifest, held: Bitmap | None = None) -> None:
        count = manifest.chunk_count
        if held is None:
            held = Bitmap(count)
        elif len(held) != count:
            raise LocalProtocolError(f"has {len(held)} bits for {count} chunks", "held")
        self.manifest = manifest
        self._held = held.copy()
        self._pool: set[int] = set(self._held.missing())
        self._heap: list[int] = sorted(self._pool)  # sorted is a valid heap
        self._requested_by: dict[int, set[PeerId]] = {}
        self._peers: dict[PeerId, _Peer] = {}
        self._excluded: dict[PeerId, set[int]] = {}
        self._strikes: dict[PeerId, int] = {}
        #: Peers dropped for sending `MAX_STRIKES` bad chunks.
        self.bad_peers: set[PeerId] = set()
        #: Good chunks each peer delivered first (duplicates from the end-game not counted).
        self.served_by: dict[PeerId, int] = {}

    # -- peers -------------------------------------------------------------------------------

    def add_peer(self, peer_id: PeerId) -> bool:
        """Start using a peer that holds the blob. False (and ignored) for a bad peer."""
        if peer_id in self.bad_peers:
            return False
        self._peers.setdefault(peer_id, _Peer())
        self.served_by.setdefault(peer_id, 0)
        return True

    def remove_peer(self, peer_id: PeerId) -> list[int]:
        """Stop using a peer (disconnected); its outstanding chunks go back to the pool.

        Returns:
            The chunk indices that were outstanding at it, ascending ([] for an unknown peer).
        """
        peer = self._peers.pop(peer_id, None)
        if peer is None:
            return []
        returned = sorted(peer.outstanding)
        for index in returned:
            self._unassign(index, peer_id)
        return returned

    @property
    def peers(self) -> list[PeerId]:
        """Peers in use (added, not removed, not bad)."""
        return list(self._peers)

    def strikes(self, peer_id: PeerId) -> int:
        return self._strikes.get(peer_id, 0)

    def outstanding(self, peer_id: PeerId) -> list[int]:
        """Chunks requested of `peer_id` and not yet answered, in request order."""
        peer = self._peers.get(peer_id)
        return list(peer.outstanding) if peer else []

    # -- scheduling --------------------------------------------------------------------------

    def next_requests(self, peer_id: PeerId, window: int) -> list[int]:
        """Chunks to ask of `peer_id` now, so that it has at most `window` outstanding.

        Returns:
            Chunk indices, possibly empty; [] for a peer in `bad_peers`.

        Raises:
            LocalProtocolError: the peer was never added (or was removed).
        """
        if peer_id in self.bad_peers:
            return []
        peer = self._peers.get(peer_id)
        if peer is None:
            raise LocalProtocolError(f"peer {peer_id!r} is not in the plan", "peer_id")
        room = window - len(peer.outstanding)
        chosen: list[int] = []
        if room <= 0:
            return chosen
        excluded = self._excluded.get(peer_id, set())
        skipped: list[int] = []
        while room and self._heap:
            index = heapq.heappop(self._heap)
            if index not in self._pool:
                continue  # stale entry: assigned or held since it was pushed
            if index in excluded:
                skipped.append(index)  # this peer lied about it; leave it for the others
                continue
            self._pool.discard(index)
            self._assign(index, peer_id, peer)
            chosen.append(index)
            room -= 1
        for index in skipped:
            heapq.heappush(self._heap, index)
        if room and not peer.outstanding:
            chosen.extend(self._endgame(peer_id, peer, excluded, room))
        return chosen

    def _endgame(self, peer_id: PeerId, peer: _Peer, excluded: set[int], room: int) -> list[int]:
        #: how far back in its requesters' queues each chunk is (the later, the longer it takes)
        depth: dict[int, int] = {}
        for other_id, other in self._peers.items():
            if other_id != peer_id:
                for position, index in enumerate(other.outstanding):
                    depth[index] = max(depth.get(index, 0), position)
        candidates = [
            index
            for index, requesters in self._requested_by.items()
            if peer_id not in requesters and index not in excluded
        ]
        candidates.sort(key=lambda index: (len(self._requested_by[index]), -depth.get(index, 0),
                                           index))
        chosen = candidates[:room]
        for index in chosen:
            self._assign(index, peer_id, peer)
        return chosen

    # -- outcomes ----------------------------------------------------------------------------

    def chunk_received(self, peer_id: PeerId, index: int, ok: bool) -> list[PeerId]:
        """Record a chunk that arrived from `peer_id`.

        Args:
            ok: True when it verified against the manifest and was stored; False when it did
                not verify (the peer lied): it goes back to the pool and the peer gets a strike.

        Returns:
            Other peers that still had this chunk outstanding (end-game duplicates), now
            redundant: the caller may cancel them and ignore their answers.
        """
        self._check_index(index)
        peer = self._peers.get(peer_id)
        if peer is not None and index in peer.outstanding:
            self._unassign(index, peer_id, requeue=False)
        if not ok:
            self._strike(peer_id, index)
            self._requeue(index)
            return []
        if not self._held.set(index):
            return []  # a late duplicate of a chunk we already have
        self._pool.discard(index)
        self.served_by[peer_id] = self.served_by.get(peer_id, 0) + 1
        others = self._requested_by.pop(index, set())
        for other in others:
            self._peers[other].outstanding.pop(index, None)
        return list(others)

    def request_failed(self, peer_id: PeerId, index: int) -> None:
        """The request for `index` at `peer_id` ended without data (not found, busy, timeout,
        disconnect): the chunk goes back to the pool, with no strike.
        """
        self._check_index(index)
        peer = self._peers.get(peer_id)
        if peer is not None and index in peer.outstanding:
            self._unassign(index, peer_id)

    # -- state -------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return self._held.all_set

    @property
    def held_count(self) -> int:
        return self._held.count_set

    @property
    def held_bytes(self) -> int:
        """Bytes held, for progress bars."""
        count = self._held.count_set
        if not count:
            return 0
        last = self.manifest.chunk_count - 1
        short = self.manifest.chunk_size - self.manifest.chunk_length(last)
        return count * self.manifest.chunk_size - (short if self._held[last] else 0)

    def is_held(self, index: int) -> bool:
        return self._held[index]

    def missing(self) -> list[int]:
        """Chunks not held yet (requested or not), ascending."""
        return self._held.missing()

    @property
    def in_endgame(self) -> bool:
        """Every missing chunk is already requested somewhere."""
        return not self._pool and not self.complete

    @property
    def stalled(self) -> bool:
        """Not complete, nothing in flight, and no peer in use may be asked for what is missing
        (no peers, or each lied about every remaining chunk). The caller should find more peers.
        """
        if self.complete or self._requested_by:
            return False
        return not any(self._pool - self._excluded.get(p, set()) for p in self._peers)

    # -- internals ---------------------------------------------------------------------------

    def _assign(self, index: int, peer_id: PeerId, peer: _Peer) -> None:
        peer.outstanding[index] = None
        self._requested_by.setdefault(index, set()).add(peer_id)

    def _unassign(self, index: int, peer_id: PeerId, *, requeue: bool = True) -> None:
        peer = self._peers.get(peer_id)
        if peer is not None:
            peer.outstanding.pop(index, None)
        requesters = self._requested_by.get(index)
        if requesters is not None:
            requesters.discard(peer_id)
            if not requesters:
                del self._requested_by[index]
        if requeue:
            self._requeue(index)

    def _requeue(self, index: int) -> None:
        if self._held[index] or index in self._requested_by or index in self._pool:
            return
        self._pool.add(index)
        heapq.heappush(self._heap, index)

    def _strike(self, peer_id: PeerId, index: int) -> None:
        if peer_id in self.bad_peers:
            return
        self._excluded.setdefault(peer_id, set()).add(index)
        self._strikes[peer_id] = self._strikes.get(peer_id, 0) + 1
        if self._strikes[peer_id] >= MAX_STRIKES:
            self.bad_peers.add(peer_id)
            self.remove_peer(peer_id)

    def _check_index(self, index: Any) -> None:
        if type(index) is not int or not 0 <= index < self.manifest.chunk_count:
            raise LocalProtocolError(
                f"{index!r} is not a chunk of this blob (0-{self.manifest.chunk_count - 1})",
                "index",
            )
