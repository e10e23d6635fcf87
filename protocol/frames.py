"""The frames peers exchange once the handshake is done (PROTOCOL.md "3. Frames").

A frame is the msgpack array ``[type, ...]``; one frame travels in one Noise transport message,
so its encoding is at most `MAX_FRAME_SIZE` bytes (65535 minus the 16-byte tag). Each known type
has an exact shape: the right number of items, each of the right msgpack type and range, lists
capped in length. Decoding is strict and all-or-nothing: one bad item (one bad entry among 256)
makes the whole frame a `MalformedError` that names the field, e.g. ``frame.entries[3].header.seq``.

A frame whose type string we do not know decodes to `UnknownFrame` (forward compatibility: a newer
peer may send frames this version ignores); only its type is kept.

Encoding checks the same rules, so we never send what a peer would reject: `encode_frame` raises
`LocalProtocolError` for a frame that is out of range or does not fit.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from .codec import pack, unpack_strict
from .entry import Entry, entry_from_parts
from .errors import LocalProtocolError, MalformedError

#: Largest Noise message (65535) minus the ChaCha20-Poly1305 tag.
MAX_FRAME_SIZE = 65535 - 16
#: Pairs in one ``clock`` or ``want`` frame (1024 pairs always fit in `MAX_FRAME_SIZE`).
MAX_CLOCK_PAIRS = 1024
MAX_WANT_PAIRS = 1024
MAX_ENTRIES = 256
MAX_BLOB_IDS = 1024
MAX_BODY_IDS = 256
MAX_NOTES = 1024
#: Replication versions: 1 pushes everything (no ``replication`` frame); 2 forwards per author
#: on request (PROTOCOL.md 5).
REPLICATION_VERSION = 2
#: Largest ``data`` in one ``blob_data`` frame.
MAX_BLOB_DATA = 60 * 1024
MAX_CODE_LENGTH = 32
MAX_MESSAGE_LENGTH = 256
MAX_TYPE_LENGTH = 32
#: Bytes an ``entries`` frame adds around its entries' wire forms (``len(entry.encode())``).
ENTRIES_FRAME_OVERHEAD = 1 + 8 + 3
#: Integers that count things (seq, offsets, sizes) stay below 2**53 (exact in a double).
MAX_UINT = 2**53 - 1
MAX_UINT32 = 2**32 - 1
ID_SIZE = 32

BLOB_PARTS = ("manifest", "chunk")
BLOB_ERROR_CODES = ("not_found", "busy", "bad_request")
_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True, slots=True)
class Frame:
    """Base of every frame. Each subclass names its wire type in `TYPE`."""

    TYPE: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class Clock(Frame):
    """Part of the sender's clock: the latest seq it holds per author (0: none).

    A whole clock may span several frames; the last one has ``final=True``.
    """

    TYPE: ClassVar[str] = "clock"
    pairs: tuple[tuple[bytes, int], ...]
    final: bool = True


@dataclass(frozen=True, slots=True)
class Entries(Frame):
    """Up to 256 entries, each already decoded and shape-checked (signatures are not checked)."""

    TYPE: ClassVar[str] = "entries"
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Want(Frame):
    """Ask the peer to send each named author's entries from ``from_seq`` on."""

    TYPE: ClassVar[str] = "want"
    pairs: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True, slots=True)
class WantBodies(Frame):
    """Ask the peer for the bodies of entries we hold without one (a relay stripped them); it
    answers with `Entries` holding those it has with a body, and says nothing of the rest."""

    TYPE: ClassVar[str] = "want_bodies"
    entry_ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReplicationHello(Frame):
    """The sender speaks replication ``version`` (2: per-author forwarding); sent before its
    first ``clock`` frame. A peer that never sends it speaks version 1."""

    TYPE: ClassVar[str] = "replication"
    version: int


@dataclass(frozen=True, slots=True)
class Notes(Frame):
    """Replication v2 notes: ``(author, seq, eager)``: the sender holds ``author`` up to ``seq``;
    ``eager``: push that author's later entries to it; otherwise only tell it how far you are."""

    TYPE: ClassVar[str] = "notes"
    notes: tuple[tuple[bytes, int, bool], ...]


@dataclass(frozen=True, slots=True)
class HaveBlobs(Frame):
    """Blob ids the sender holds completely."""

    TYPE: ClassVar[str] = "have_blobs"
    blob_ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class BlobGet(Frame):
    """Request part of a blob: the manifest from byte ``index`` on, or chunk number ``index``."""

    TYPE: ClassVar[str] = "blob_get"
    req_id: int
    blob_id: bytes
    part: str
    index: int


@dataclass(frozen=True, slots=True)
class BlobData(Frame):
    """Bytes ``[offset, offset + len(data))`` of a requested manifest or chunk (``total`` long)."""

    TYPE: ClassVar[str] = "blob_data"
    req_id: int
    offset: int
    data: bytes
    total: int

    @property
    def final(self) -> bool:
        """True for the piece that reaches the end, which completes the request."""
        return self.offset + len(self.data) == self.total


@dataclass(frozen=True, slots=True)
class BlobError(Frame):
    """The request ``req_id`` fails; ``code`` is one of `BLOB_ERROR_CODES` (others: treat as
    ``bad_request``)."""

    TYPE: ClassVar[str] = "blob_error"
    req_id: int
    code: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class BlobCancel(Frame):
    """The requester no longer wants ``req_id``."""

    TYPE: ClassVar[str] = "blob_cancel"
    req_id: int


@dataclass(frozen=True, slots=True)
class Ping(Frame):
    """Keep-alive probe; the peer answers with a `Pong` carrying the same nonce."""

    TYPE: ClassVar[str] = "ping"
    nonce: int


@dataclass(frozen=True, slots=True)
class Pong(Frame):
    """Answer to a `Ping`."""

    TYPE: ClassVar[str] = "pong"
    nonce: int


@dataclass(frozen=True, slots=True)
class ErrorFrame(Frame):
    """Why the sender is closing the session; the last frame it sends."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class UnknownFrame(Frame):
    """A frame of a type this version does not know; sessions ignore it."""

    type: str


# --- field checks (shared by encode and decode) -------------------------------------------------


def _uint(value: Any, field: str, maximum: int = MAX_UINT, minimum: int = 0) -> int:
    if type(value) is not int or not minimum <= value <= maximum:
        raise MalformedError(f"must be an integer {minimum}-{maximum}", field)
    return value


def _id(value: Any, field: str) -> bytes:
    if type(value) is not bytes or len(value) != ID_SIZE:
        raise MalformedError(f"must be {ID_SIZE} bytes", field)
    return value


def _list(value: Any, field: str, maximum: int) -> list[Any]:
    if type(value) is not list:
        raise MalformedError("must be an array", field)
    if len(value) > maximum:
        raise MalformedError(f"has {len(value)} items, the limit is {maximum}", field)
    return value


def _code(value: Any, field: str) -> str:
    if (
        type(value) is not str
        or not 1 <= len(value) <= MAX_CODE_LENGTH
        or not _CODE_CHARS.issuperset(value)
    ):
        raise MalformedError(f"must be 1-{MAX_CODE_LENGTH} characters of a-z, 0-9, _", field)
    return value


def _text(value: Any, field: str) -> str:
    if type(value) is not str or len(value) > MAX_MESSAGE_LENGTH:
        raise MalformedError(f"must be a string of at most {MAX_MESSAGE_LENGTH} characters", field)
    return value


def _shape(items: list[Any], count: int) -> None:
    if len(items) != count:
        raise MalformedError(
            f"a {items[0]} frame is an array of {count} items, got {len(items)}", "frame"
        )


def _pairs(value: Any, field: str, maximum: int, min_seq: int) -> tuple[tuple[bytes, int], ...]:
    pairs = _list(value, field, maximum)
    out = []
    for i, pair in enumerate(pairs):
        if type(pair) is not list or len(pair) != 2:
            raise MalformedError("must be an array [author, seq]", f"{field}[{i}]")
        author, seq = pair
        if type(author) is not bytes or len(author) != ID_SIZE:
            raise MalformedError(f"must be {ID_SIZE} bytes", f"{field}[{i}].author")
        if type(seq) is not int or not min_seq <= seq <= MAX_UINT:
            raise MalformedError(f"must be an integer {min_seq}-{MAX_UINT}", f"{field}[{i}].seq")
        out.append((author, seq))
    return tuple(out)


# --- decoders: the whole unpacked array in, a frame out -----------------------------------------


def _decode_clock(items: list[Any]) -> Clock:
    _shape(items, 3)
    pairs = _pairs(items[1], "frame.clock", MAX_CLOCK_PAIRS, 0)
    if type(items[2]) is not bool:
        raise MalformedError("must be true or false", "frame.final")
    return Clock(pairs, items[2])


def _decode_entries(items: list[Any]) -> Entries:
    _shape(items, 2)
    wire = _list(items[1], "frame.entries", MAX_ENTRIES)
    entries = []
    for i, parts in enumerate(wire):
        try:
            entries.append(entry_from_parts(parts))
        except MalformedError as exc:
            field = f"frame.entries[{i}]" + (f".{exc.field}" if exc.field else "")
            raise MalformedError(exc.reason, field) from None
    return Entries(tuple(entries))


def _decode_want(items: list[Any]) -> Want:
    _shape(items, 2)
    return Want(_pairs(items[1], "frame.want", MAX_WANT_PAIRS, 1))


def _decode_want_bodies(items: list[Any]) -> WantBodies:
    _shape(items, 2)
    ids = _list(items[1], "frame.entry_ids", MAX_BODY_IDS)
    for i, entry_id in enumerate(ids):
        _id(entry_id, f"frame.entry_ids[{i}]")
    return WantBodies(tuple(ids))


def _decode_replication(items: list[Any]) -> ReplicationHello:
    _shape(items, 2)
    return ReplicationHello(_uint(items[1], "frame.version", MAX_UINT32, 1))


def _decode_notes(items: list[Any]) -> Notes:
    _shape(items, 2)
    notes = _list(items[1], "frame.notes", MAX_NOTES)
    out = []
    for i, note in enumerate(notes):
        if type(note) is not list or len(note) != 3:
            raise MalformedError("must be an array [author, seq, eager]", f"frame.notes[{i}]")
        author, seq, eager = note
        _id(author, f"frame.notes[{i}].author")
        _uint(seq, f"frame.notes[{i}].seq")
        if type(eager) is not bool:
            raise MalformedError("must be true or false", f"frame.notes[{i}].eager")
        out.append((author, seq, eager))
    return Notes(tuple(out))


def _decode_have_blobs(items: list[Any]) -> HaveBlobs:
    _shape(items, 2)
    ids = _list(items[1], "frame.blob_ids", MAX_BLOB_IDS)
    for i, blob_id in enumerate(ids):
        _id(blob_id, f"frame.blob_ids[{i}]")
    return HaveBlobs(tuple(ids))


def _decode_blob_get(items: list[Any]) -> BlobGet:
    _shape(items, 5)
    _, req_id, blob_id, part, index = items
    if type(part) is not str or part not in BLOB_PARTS:
        raise MalformedError('must be "manifest" or "chunk"', "frame.part")
    return BlobGet(
        _uint(req_id, "frame.req_id", MAX_UINT32),
        _id(blob_id, "frame.blob_id"),
        part,
        _uint(index, "frame.index"),
    )


def _decode_blob_data(items: list[Any]) -> BlobData:
    _shape(items, 5)
    _, req_id, offset, data, total = items
    _uint(req_id, "frame.req_id", MAX_UINT32)
    _uint(offset, "frame.offset")
    if type(data) is not bytes or len(data) > MAX_BLOB_DATA:
        raise MalformedError(f"must be at most {MAX_BLOB_DATA} bytes", "frame.data")
    _uint(total, "frame.total")
    if offset + len(data) > total:
        raise MalformedError("offset + len(data) exceeds total", "frame.total")
    return BlobData(req_id, offset, data, total)


def _decode_blob_error(items: list[Any]) -> BlobError:
    _shape(items, 4)
    return BlobError(
        _uint(items[1], "frame.req_id", MAX_UINT32),
        _code(items[2], "frame.code"),
        _text(items[3], "frame.message"),
    )


def _decode_blob_cancel(items: list[Any]) -> BlobCancel:
    _shape(items, 2)
    return BlobCancel(_uint(items[1], "frame.req_id", MAX_UINT32))


def _decode_ping(items: list[Any]) -> Ping:
    _shape(items, 2)
    return Ping(_uint(items[1], "frame.nonce", MAX_UINT32))


def _decode_pong(items: list[Any]) -> Pong:
    _shape(items, 2)
    return Pong(_uint(items[1], "frame.nonce", MAX_UINT32))


def _decode_error(items: list[Any]) -> ErrorFrame:
    _shape(items, 3)
    return ErrorFrame(_code(items[1], "frame.code"), _text(items[2], "frame.message"))


_DECODERS: dict[str, Callable[[list[Any]], Frame]] = {
    Clock.TYPE: _decode_clock,
    Entries.TYPE: _decode_entries,
    Want.TYPE: _decode_want,
    WantBodies.TYPE: _decode_want_bodies,
    ReplicationHello.TYPE: _decode_replication,
    Notes.TYPE: _decode_notes,
    HaveBlobs.TYPE: _decode_have_blobs,
    BlobGet.TYPE: _decode_blob_get,
    BlobData.TYPE: _decode_blob_data,
    BlobError.TYPE: _decode_blob_error,
    BlobCancel.TYPE: _decode_blob_cancel,
    Ping.TYPE: _decode_ping,
    Pong.TYPE: _decode_pong,
    ErrorFrame.TYPE: _decode_error,
}

#: Frame types this version knows.
FRAME_TYPES = frozenset(_DECODERS)


def decode_frame(data: bytes) -> Frame:
    """Decode one frame's plaintext.

    Returns:
        The frame, or `UnknownFrame` for a well-formed array whose type string is not known.

    Raises:
        MalformedError: naming the field (``frame``, ``frame.type``, ``frame.entries[3]`` ...).
    """
    if type(data) is bytes:
        frame = _decode_blob_data_fast(data)
        if frame is not None:
            return frame
    return _decode_generic(data)


def _decode_generic(data: bytes) -> Frame:
    items = unpack_strict(data, "frame", max_size=MAX_FRAME_SIZE)
    if type(items) is not list or not items:
        raise MalformedError("must be a non-empty array [type, ...]", "frame")
    kind = items[0]
    if type(kind) is not str or not 1 <= len(kind) <= MAX_TYPE_LENGTH:
        raise MalformedError(f"must be a string of 1-{MAX_TYPE_LENGTH} characters", "frame.type")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return UnknownFrame(kind)
    return decoder(items)


# --- blob_data fast paths -----------------------------------------------------------------------
#
# ``blob_data`` is nearly all of the traffic of a transfer (a 256 MiB file is ~5 000 frames), and
# the generic paths cost more Python per frame than encrypting it. The fast paths handle the
# canonical msgpack encoding (what `pack` produces) by hand. They never decide anything the
# generic paths would not: a frame they do not recognise, or one that breaks a rule, is handed
# to the generic path, which accepts or rejects it (naming the field) exactly as before.

#: ``fixarray(5)``, ``fixstr(9) "blob_data"``: how every ``blob_data`` frame we send starts.
_BLOB_DATA_PREFIX = b"\x95\xa9blob_data"
_HEAD = len(_BLOB_DATA_PREFIX)
_B16 = struct.Struct(">BH").pack
_B32 = struct.Struct(">BI").pack
_B64 = struct.Struct(">BQ").pack


def _pack_uint(value: int) -> bytes:
    """msgpack's (and `pack`'s) encoding of a non-negative integer below 2**64."""
    if value < 0x80:
        return _FIXINT[value]
    if value <= 0xFF:
        return b"\xcc" + _FIXINT_BYTES[value]
    if value <= 0xFFFF:
        return _B16(0xCD, value)
    if value <= 0xFFFFFFFF:
        return _B32(0xCE, value)
    return _B64(0xCF, value)


_FIXINT_BYTES = [bytes((i,)) for i in range(256)]
_FIXINT = _FIXINT_BYTES[:0x80]


def _encode_blob_data(frame: BlobData) -> bytes | None:
    """`pack(_wire(frame))` for a valid frame; None when a rule is broken (the generic path
    then names it)."""
    req_id, offset, data, total = frame.req_id, frame.offset, frame.data, frame.total
    if (
        type(req_id) is not int
        or type(offset) is not int
        or type(total) is not int
        or type(data) is not bytes
        or not 0 <= req_id <= MAX_UINT32
        or offset < 0
        or total > MAX_UINT
        or len(data) > MAX_BLOB_DATA
        or offset + len(data) > total
    ):
        return None
    size = len(data)
    # MAX_BLOB_DATA < 2**16: bin8 or bin16; the frame is at most 11 + 5 + 9 + 3 + 61440 + 9
    # bytes, well under MAX_FRAME_SIZE.
    binary = b"\xc4" + _FIXINT_BYTES[size] if size <= 0xFF else _B16(0xC5, size)
    return b"".join(
        (_BLOB_DATA_PREFIX, _pack_uint(req_id), _pack_uint(offset), binary, data,
         _pack_uint(total))
    )


def _decode_blob_data_fast(data: bytes) -> BlobData | None:
    """The `BlobData` in `data` when it is a canonically encoded, valid ``blob_data`` frame;
    None for anything else (the generic path then accepts or rejects it)."""
    end = len(data)
    if end > MAX_FRAME_SIZE or not data.startswith(_BLOB_DATA_PREFIX):
        return None
    try:
        req_id, pos = _read_uint(data, _HEAD)
        offset, pos = _read_uint(data, pos)
        marker = data[pos]
        if marker == 0xC5:
            size = _U16(data, pos + 1)[0]
            pos += 3
        elif marker == 0xC4:
            size = data[pos + 1]
            pos += 2
        elif marker == 0xC6:
            size = _U32(data, pos + 1)[0]
            pos += 5
        else:
            return None
        start = pos
        pos += size
        total, pos = _read_uint(data, pos)
    except (IndexError, struct.error, _NotCanonical):
        return None
    if (
        pos != end  # trailing bytes (a short read raised above)
        or req_id > MAX_UINT32
        or size > MAX_BLOB_DATA
        or total > MAX_UINT
        or offset + size > total
    ):
        return None
    return BlobData(req_id, offset, data[start : start + size], total)


class _NotCanonical(Exception):
    pass


_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_U64 = struct.Struct(">Q").unpack_from


def _read_uint(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned integer at `pos` in its canonical msgpack forms, and where it ends."""
    marker = data[pos]
    if marker < 0x80:
        return marker, pos + 1
    if marker == 0xCE:
        return _U32(data, pos + 1)[0], pos + 5
    if marker == 0xCD:
        return _U16(data, pos + 1)[0], pos + 3
    if marker == 0xCC:
        return data[pos + 1], pos + 2
    if marker == 0xCF:
        return _U64(data, pos + 1)[0], pos + 9
    raise _NotCanonical


# --- encoding -----------------------------------------------------------------------------------


def _wire(frame: Frame) -> list[Any]:
    """The frame as a msgpack-ready array, checked against the rules its decoder applies."""
    if isinstance(frame, Entries):
        if len(frame.entries) > MAX_ENTRIES:
            raise MalformedError(
                f"has {len(frame.entries)} items, the limit is {MAX_ENTRIES}", "frame.entries"
            )
        wire = []
        for i, entry in enumerate(frame.entries):
            if not isinstance(entry, Entry):
                raise MalformedError("must be an Entry", f"frame.entries[{i}]")
            wire.append(entry.wire())
        # Entries were checked when they were made or decoded; re-checking each would double the
        # cost of replication for nothing.
        return ["entries", wire]
    if isinstance(frame, Clock):
        items: list[Any] = ["clock", [list(pair) for pair in frame.pairs], frame.final]
    elif isinstance(frame, Want):
        items = ["want", [list(pair) for pair in frame.pairs]]
    elif isinstance(frame, WantBodies):
        items = ["want_bodies", list(frame.entry_ids)]
    elif isinstance(frame, ReplicationHello):
        items = ["replication", frame.version]
    elif isinstance(frame, Notes):
        items = ["notes", [list(note) for note in frame.notes]]
    elif isinstance(frame, HaveBlobs):
        items = ["have_blobs", list(frame.blob_ids)]
    elif isinstance(frame, BlobGet):
        items = ["blob_get", frame.req_id, frame.blob_id, frame.part, frame.index]
    elif isinstance(frame, BlobData):
        items = ["blob_data", frame.req_id, frame.offset, frame.data, frame.total]
    elif isinstance(frame, BlobError):
        items = ["blob_error", frame.req_id, frame.code, frame.message]
    elif isinstance(frame, BlobCancel):
        items = ["blob_cancel", frame.req_id]
    elif isinstance(frame, Ping | Pong):
        items = [frame.TYPE, frame.nonce]
    elif isinstance(frame, ErrorFrame):
        items = ["error", frame.code, frame.message]
    elif isinstance(frame, UnknownFrame):
        kind = frame.type
        if type(kind) is not str or not 1 <= len(kind) <= MAX_TYPE_LENGTH or kind in _DECODERS:
            raise MalformedError(
                "must be a string of 1-32 characters, not a known type", "frame.type"
            )
        return [kind]
    else:
        raise MalformedError(f"{type(frame).__name__} is not a frame", "frame")
    _DECODERS[items[0]](items)  # the receiver's rules, applied before we send
    return items


def encode_frame(frame: Frame) -> bytes:
    """Encode a frame to the plaintext of one Noise transport message.

    Raises:
        LocalProtocolError: a field breaks the frame's rules (naming it), or the encoding is
            larger than `MAX_FRAME_SIZE`.
    """
    if type(frame) is BlobData:
        fast = _encode_blob_data(frame)
        if fast is not None:
            return fast
    try:
        data = pack(_wire(frame))
    except MalformedError as exc:
        raise LocalProtocolError(exc.reason, exc.field) from None
    if len(data) > MAX_FRAME_SIZE:
        raise LocalProtocolError(
            f"{len(data)} bytes exceeds the frame limit of {MAX_FRAME_SIZE}", "frame"
        )
    return data


def split_pairs(
    pairs: Iterable[tuple[bytes, int]], per_frame: int = MAX_CLOCK_PAIRS
) -> list[tuple[tuple[bytes, int], ...]]:
    """Cut a clock (or want list) into frame-sized groups, in order; at least one (maybe empty).

    A clock is sent as ``[Clock(group, final=False) for all but the last] + [Clock(last)]``.
    """
    items = list(pairs)
    groups = [tuple(items[i : i + per_frame]) for i in range(0, len(items), per_frame)]
    return groups or [()]


def note_frames(notes: Iterable[tuple[bytes, int, bool]]) -> list[Notes]:
    """`Notes` frames of at most `MAX_NOTES` notes each (none for no notes)."""
    items = list(notes)
    return [Notes(tuple(items[i : i + MAX_NOTES])) for i in range(0, len(items), MAX_NOTES)]


def clock_frames(clock: Iterable[tuple[bytes, int]]) -> list[Clock]:
    """The `Clock` frames that carry a whole clock, the last one marked final."""
    groups = split_pairs(clock, MAX_CLOCK_PAIRS)
    return [Clock(group, i == len(groups) - 1) for i, group in enumerate(groups)]
