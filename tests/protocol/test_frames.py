"""Frame encoding and strict decoding (protocol/frames.py, PROTOCOL.md "3. Frames")."""

from __future__ import annotations

import msgpack
import pytest
from builders import identity_from_seed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import frames as frames_module
from protocol.codec import pack
from protocol.entry import Entry, create_entry
from protocol.errors import LocalProtocolError, MalformedError
from protocol.frames import (
    ENTRIES_FRAME_OVERHEAD,
    FRAME_TYPES,
    MAX_BLOB_DATA,
    MAX_BLOB_IDS,
    MAX_CLOCK_PAIRS,
    MAX_ENTRIES,
    MAX_FRAME_SIZE,
    MAX_NOTES,
    MAX_UINT,
    MAX_UINT32,
    MAX_WANT_PAIRS,
    BlobCancel,
    BlobData,
    BlobError,
    BlobGet,
    Clock,
    Entries,
    ErrorFrame,
    Frame,
    HaveBlobs,
    Notes,
    Ping,
    Pong,
    ReplicationHello,
    UnknownFrame,
    Want,
    WantBodies,
    clock_frames,
    decode_frame,
    encode_frame,
    split_pairs,
)
from protocol.identity import Identity

ALICE = identity_from_seed("frames test alice")
BOB = identity_from_seed("frames test bob")


def _feed(identity: Identity, count: int, body_chars: int = 20) -> list[Entry]:
    entries: list[Entry] = []
    prev = None
    for seq in range(1, count + 1):
        entry = create_entry(
            identity,
            seq=seq,
            prev=prev,
            timestamp_ms=1_790_000_000_000 + seq,
            kind="meeting.note",
            body={"recap": "x" * body_chars, "n": seq},
        )
        entries.append(entry)
        prev = entry.id
    return entries


POOL = _feed(ALICE, 6) + _feed(BOB, 4, 200)
POOL += [entry.without_body() for entry in POOL[:3]]
ID_A = b"\x01" * 32
ID_B = b"\xfe" * 32

EXAMPLES: list[Frame] = [
    Clock(((ID_A, 0), (ID_B, 12)), final=False),
    Clock((), final=True),
    Entries(tuple(POOL)),
    Entries(()),
    Want(((ID_A, 1), (ID_B, 7))),
    HaveBlobs((ID_A, ID_B)),
    WantBodies((ID_A, ID_B)),
    ReplicationHello(2),
    Notes(((ID_A, 0, True), (ID_B, MAX_UINT, False))),
    Notes(()),
    BlobGet(7, ID_A, "manifest", 0),
    BlobGet(MAX_UINT32, ID_B, "chunk", 16383),
    BlobData(7, 0, b"abc", 3),
    BlobData(8, 61440, b"\x00" * 10, 262144),
    BlobError(9, "not_found", "no such blob"),
    BlobCancel(9),
    Ping(0),
    Pong(MAX_UINT32),
    ErrorFrame("flood", "too many frames"),
    UnknownFrame("future_thing"),
]


@pytest.mark.parametrize("frame", EXAMPLES, ids=lambda f: type(f).__name__)
def test_every_frame_type_round_trips(frame: Frame) -> None:
    """encode_frame then decode_frame gives back an equal frame for every frame type."""
    data = encode_frame(frame)
    assert len(data) <= MAX_FRAME_SIZE
    assert decode_frame(data) == frame


def test_examples_cover_every_known_type() -> None:
    """The examples above exercise every frame type the module knows."""
    assert {type(f).TYPE for f in EXAMPLES if not isinstance(f, UnknownFrame)} == FRAME_TYPES


def test_wire_layout_is_a_type_tagged_array() -> None:
    """The wire form is the documented msgpack array, type string first."""
    assert msgpack.unpackb(encode_frame(Ping(5))) == ["ping", 5]
    assert msgpack.unpackb(encode_frame(Clock(((ID_A, 3),), True))) == ["clock", [[ID_A, 3]], True]
    assert msgpack.unpackb(encode_frame(BlobGet(1, ID_A, "chunk", 2))) == [
        "blob_get",
        1,
        ID_A,
        "chunk",
        2,
    ]
    entry = POOL[0]
    assert msgpack.unpackb(encode_frame(Entries((entry,)))) == ["entries", [entry.wire()]]


def test_unknown_type_with_extra_items_decodes_to_unknown_frame() -> None:
    """A newer peer's frame type is UnknownFrame, whatever follows the type."""
    assert decode_frame(pack(["ask_nicely", 1, [b"x"], {"k": "v"}])) == UnknownFrame("ask_nicely")


def test_blob_data_final_flag() -> None:
    """A blob_data piece is final exactly when it reaches total."""
    assert BlobData(1, 0, b"abc", 3).final
    assert not BlobData(1, 0, b"ab", 3).final
    assert BlobData(1, 0, b"", 0).final


GOOD = POOL[0].wire()
BAD_ENTRY = [GOOD[0], GOOD[1], b"not the body"]
MALFORMED = [
    (pack({"type": "clock"}), "frame"),
    (pack([]), "frame"),
    (pack([7, 1]), "frame.type"),
    (pack(["x" * 33]), "frame.type"),
    (pack(["clock", []]), "frame"),
    (pack(["clock", "no", True]), "frame.clock"),
    (pack(["clock", [[ID_A[:31], 1]], True]), "frame.clock[0].author"),
    (pack(["clock", [[ID_A, 1], [ID_B, -1]], True]), "frame.clock[1].seq"),
    (pack(["clock", [[ID_A, 1.0]], True]), "frame.clock[0].seq"),
    (pack(["clock", [[ID_A, MAX_UINT + 1]], True]), "frame.clock[0].seq"),
    (pack(["clock", [[ID_A]], True]), "frame.clock[0]"),
    (pack(["clock", [], 1]), "frame.final"),
    (pack(["clock", [[ID_A, 1]] * (MAX_CLOCK_PAIRS + 1), True]), "frame.clock"),
    (pack(["entries", [GOOD, GOOD, GOOD, BAD_ENTRY]]), "frame.entries[3].body"),
    (pack(["entries", [GOOD, "x"]]), "frame.entries[1].entry"),
    (pack(["entries", [GOOD] * (MAX_ENTRIES + 1)]), "frame.entries"),
    (pack(["want", [[ID_A, 0]]]), "frame.want[0].seq"),
    (pack(["want", [[ID_A, 1]] * (MAX_WANT_PAIRS + 1)]), "frame.want"),
    (pack(["have_blobs", [ID_A, "x" * 32]]), "frame.blob_ids[1]"),
    (pack(["have_blobs", [ID_A] * (MAX_BLOB_IDS + 1)]), "frame.blob_ids"),
    (pack(["blob_get", MAX_UINT32 + 1, ID_A, "chunk", 0]), "frame.req_id"),
    (pack(["blob_get", 1, ID_A, "body", 0]), "frame.part"),
    (pack(["blob_get", 1, ID_A, b"chunk", 0]), "frame.part"),
    (pack(["blob_get", 1, ID_A[:4], "chunk", 0]), "frame.blob_id"),
    (pack(["blob_get", 1, ID_A, "chunk", -1]), "frame.index"),
    (pack(["blob_data", 1, 0, b"x" * (MAX_BLOB_DATA + 1), 10**6]), "frame.data"),
    (pack(["blob_data", 1, 0, "text", 4]), "frame.data"),
    (pack(["blob_data", 1, 10, b"abc", 12]), "frame.total"),
    (pack(["blob_data", 1, -1, b"", 12]), "frame.offset"),
    (pack(["blob_error", 1, "Not Found", ""]), "frame.code"),
    (pack(["blob_error", 1, "x" * 33, ""]), "frame.code"),
    (pack(["blob_error", 1, "busy", "m" * 257]), "frame.message"),
    (pack(["blob_cancel", "1"]), "frame.req_id"),
    (pack(["ping", True]), "frame.nonce"),
    (pack(["pong", -1]), "frame.nonce"),
    (pack(["error", "", "bye"]), "frame.code"),
    (pack(["error", "bye", None]), "frame.message"),
    (pack(["ping", 1]) + b"\x00", "frame"),
    (msgpack.packb(["ping", msgpack.ExtType(1, b"x")]), "frame"),
    (b"\xc1", "frame"),
    (b"", "frame"),
]


@pytest.mark.parametrize(
    ("data", "field"), MALFORMED, ids=lambda v: v if isinstance(v, str) else ""
)
def test_malformed_frames_name_the_field(data: bytes, field: str) -> None:
    """Each malformed frame raises MalformedError naming the offending field."""
    with pytest.raises(MalformedError) as info:
        decode_frame(data)
    assert info.value.field == field


def test_frame_larger_than_the_limit_is_malformed() -> None:
    """A plaintext larger than MAX_FRAME_SIZE is rejected before it is parsed."""
    data = pack(["blob_data", 1, 0, b"x" * MAX_FRAME_SIZE, MAX_FRAME_SIZE])
    with pytest.raises(MalformedError) as info:
        decode_frame(data)
    assert info.value.field == "frame"


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (Clock(((ID_A[:31], 1),), True), "frame.clock[0].author"),
        (Want(((ID_A, 0),)), "frame.want[0].seq"),
        (HaveBlobs((b"short",)), "frame.blob_ids[0]"),
        (WantBodies((b"short",)), "frame.entry_ids[0]"),
        (WantBodies(tuple(bytes([i % 256]) * 32 for i in range(257))), "frame.entry_ids"),
        (BlobGet(-1, ID_A, "chunk", 0), "frame.req_id"),
        (BlobData(1, 5, b"abc", 7), "frame.total"),
        (BlobData(1, 0, bytearray(b"abc"), 3), "frame.data"),
        (BlobError(1, "busy", "m" * 257), "frame.message"),
        (Ping(2**32), "frame.nonce"),
        (ErrorFrame("Bad Code"), "frame.code"),
        (UnknownFrame("clock"), "frame.type"),
        (Entries(("not an entry",)), "frame.entries[0]"),  # type: ignore[arg-type]
        (Entries(tuple(POOL[:1]) * (MAX_ENTRIES + 1)), "frame.entries"),
        (Frame(), "frame"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_encode_refuses_what_a_peer_would_reject(frame: Frame, field: str) -> None:
    """encode_frame raises LocalProtocolError naming the field a receiver would reject."""
    with pytest.raises(LocalProtocolError) as info:
        encode_frame(frame)
    assert info.value.field == field


def test_encode_refuses_a_frame_that_does_not_fit() -> None:
    """A frame over 65519 bytes raises LocalProtocolError instead of being sent."""
    big = _feed(BOB, 5, 15_000)
    with pytest.raises(LocalProtocolError) as info:
        encode_frame(Entries(tuple(big)))
    assert info.value.field == "frame"
    assert "65519" in str(info.value)


def test_largest_frames_of_each_bounded_type_fit() -> None:
    """Frames at their count and length limits, with the largest integers, fit in one message."""
    top = MAX_UINT
    frames: list[Frame] = [
        Clock(tuple((bytes([i % 256]) * 32, top) for i in range(MAX_CLOCK_PAIRS)), False),
        Want(tuple((bytes([i % 256]) * 32, top) for i in range(MAX_WANT_PAIRS))),
        HaveBlobs(tuple(bytes([i % 256]) * 32 for i in range(MAX_BLOB_IDS))),
        WantBodies(tuple(bytes([i % 256]) * 32 for i in range(256))),
        BlobData(MAX_UINT32, top - MAX_BLOB_DATA, b"\xff" * MAX_BLOB_DATA, top),
        BlobError(MAX_UINT32, "x" * 32, "\U0001f600" * 256),
        ErrorFrame("x" * 32, "\U0001f600" * 256),
    ]
    for frame in frames:
        assert decode_frame(encode_frame(frame)) == frame


def test_entries_frame_overhead_bounds_the_encoding() -> None:
    """An entries frame is at most the sum of its entries' wire sizes plus the overhead."""
    for count in (0, 1, 15, 16, len(POOL)):
        entries = tuple(POOL[:count])
        size = len(encode_frame(Entries(entries)))
        assert size <= sum(len(e.encode()) for e in entries) + ENTRIES_FRAME_OVERHEAD
    many = tuple(POOL[:6] * 43)[:MAX_ENTRIES]
    assert len(encode_frame(Entries(many))) == (
        sum(len(e.encode()) for e in many) + ENTRIES_FRAME_OVERHEAD
    )


def test_clock_frames_split_a_large_clock() -> None:
    """A clock larger than one frame is cut into frames, only the last one final."""
    clock = [(i.to_bytes(32, "big"), i) for i in range(2500)]
    frames = clock_frames(clock)
    assert [len(f.pairs) for f in frames] == [1024, 1024, 452]
    assert [f.final for f in frames] == [False, False, True]
    assert [pair for f in frames for pair in f.pairs] == clock
    assert clock_frames([]) == [Clock((), True)]
    assert split_pairs([(ID_A, 1)] * 3, 2) == [((ID_A, 1), (ID_A, 1)), ((ID_A, 1),)]
    for frame in frames:
        encode_frame(frame)


# --- properties -----------------------------------------------------------------------------------

ids = st.binary(min_size=32, max_size=32)
uint32 = st.integers(0, MAX_UINT32)
uint = st.integers(0, MAX_UINT)
codes = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=32)
messages = st.text(max_size=256)


@st.composite
def blob_data(draw: st.DrawFn) -> BlobData:
    data = draw(st.binary(max_size=2048))
    offset = draw(st.integers(0, MAX_UINT - len(data)))
    total = draw(st.integers(offset + len(data), MAX_UINT))
    return BlobData(draw(uint32), offset, data, total)


frames = st.one_of(
    st.builds(
        Clock,
        st.lists(st.tuples(ids, uint), max_size=40).map(tuple),
        st.booleans(),
    ),
    st.builds(Entries, st.lists(st.sampled_from(POOL), max_size=12).map(tuple)),
    st.builds(Want, st.lists(st.tuples(ids, st.integers(1, MAX_UINT)), max_size=40).map(tuple)),
    st.builds(HaveBlobs, st.lists(ids, max_size=40).map(tuple)),
    st.builds(WantBodies, st.lists(ids, max_size=40).map(tuple)),
    st.builds(BlobGet, uint32, ids, st.sampled_from(["manifest", "chunk"]), uint),
    blob_data(),
    st.builds(BlobError, uint32, codes, messages),
    st.builds(BlobCancel, uint32),
    st.builds(Ping, uint32),
    st.builds(Pong, uint32),
    st.builds(ErrorFrame, codes, messages),
    st.builds(
        UnknownFrame,
        st.text(min_size=1, max_size=32).filter(lambda t: t not in FRAME_TYPES),
    ),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(frames)
def test_round_trip_property(frame: Frame) -> None:
    """Any valid frame of any type survives encode_frame/decode_frame unchanged."""
    assert decode_frame(encode_frame(frame)) == frame


def _check_decode(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except MalformedError:
        return
    assert isinstance(frame, Frame)


@settings(max_examples=500)
@given(st.binary(max_size=512))
def test_decode_arbitrary_bytes(data: bytes) -> None:
    """decode_frame on arbitrary bytes returns a Frame or raises MalformedError, nothing else."""
    _check_decode(data)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=70)
    | st.sampled_from([ID_A, "manifest", "chunk", "busy", *GOOD]),
    lambda kids: st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=5), kids),
    max_leaves=30,
)


@settings(max_examples=500)
@given(st.sampled_from(sorted(FRAME_TYPES)), st.lists(msgpack_values, max_size=6))
def test_decode_structured_junk(kind: str, rest: list[object]) -> None:
    """Known type tags followed by arbitrary msgpack values never escape MalformedError."""
    try:
        data = msgpack.packb([kind, *rest], use_bin_type=True)
    except (OverflowError, ValueError):
        return
    _check_decode(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(frames, st.data())
def test_decode_mutated_frames(frame: Frame, data: st.DataObject) -> None:
    """Valid frames with flipped bytes or cut short decode or raise MalformedError only."""
    encoded = bytearray(encode_frame(frame))
    if data.draw(st.booleans()):
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(encoded) - 1))
            encoded[i] ^= data.draw(st.integers(1, 255))
    else:
        del encoded[data.draw(st.integers(0, len(encoded) - 1)) :]
    _check_decode(bytes(encoded))


# -- blob_data fast paths: the same bytes and the same verdicts as the generic paths -------------

def _generic_encode(frame: Frame) -> bytes:
    """encode_frame without its blob_data fast path."""
    try:
        return pack(frames_module._wire(frame))
    except MalformedError as exc:
        raise LocalProtocolError(exc.reason, exc.field) from None


def _outcome(fn: object, *args: object) -> tuple[str, object]:
    try:
        return "ok", fn(*args)  # type: ignore[operator]
    except (MalformedError, LocalProtocolError) as exc:
        return type(exc).__name__, (exc.reason, exc.field)


#: Integers around every msgpack width boundary and the frame limits.
edge_ints = st.sampled_from(
    [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, MAX_UINT32, MAX_UINT32 + 1, MAX_UINT,
     MAX_UINT + 1, 2**63, 2**64 - 1, -1, -(2**31)]
) | st.integers(-(2**64) + 1, 2**64 - 1)
edge_sizes = st.sampled_from([0, 1, 0xFF, 0x100, MAX_BLOB_DATA - 1, MAX_BLOB_DATA,
                              MAX_BLOB_DATA + 1]) | st.integers(0, 300)


@st.composite
def any_blob_data(draw: st.DrawFn) -> BlobData:
    """BlobData with fields anywhere near (and beyond) the rules, valid or not."""
    size = draw(edge_sizes)
    data: object = b"\xab" * size
    if draw(st.integers(0, 9)) == 0:
        data = draw(st.sampled_from([bytearray(size), memoryview(bytes(size)), "x" * size, None]))
    if draw(st.booleans()):
        offset = draw(st.integers(0, 2 * MAX_BLOB_DATA))
        total = offset + size + draw(st.integers(-2, 2 * MAX_BLOB_DATA))
    else:
        offset, total = draw(edge_ints), draw(edge_ints)
    req_id = draw(edge_ints | st.sampled_from([True, False, 1.0]))
    return BlobData(req_id, offset, data, total)


@settings(max_examples=1500)
@given(any_blob_data())
def test_blob_data_encode_fast_path_matches_generic(frame: BlobData) -> None:
    """encode_frame(BlobData) gives the generic encoder's bytes, or raises what it raises."""
    assert _outcome(encode_frame, frame) == _outcome(_generic_encode, frame)


@settings(max_examples=500)
@given(blob_data())
def test_blob_data_fast_paths_engage(frame: BlobData) -> None:
    """Valid frames take both fast paths (they are not just falling back)."""
    encoded = frames_module._encode_blob_data(frame)
    assert encoded == pack(["blob_data", frame.req_id, frame.offset, frame.data, frame.total])
    assert frames_module._decode_blob_data_fast(encoded) == frame
    assert type(frames_module._decode_blob_data_fast(encoded).data) is bytes


def _encode_int(value: int, form: int) -> bytes:
    """`value` in one of msgpack's integer forms, canonical or not (form 0: canonical)."""
    forms = [(0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8), (0xD0, 1), (0xD1, 2), (0xD2, 4),
             (0xD3, 8)]
    if form == 0:
        return pack(value)
    marker, width = forms[(form - 1) % len(forms)]
    signed = marker >= 0xD0
    try:
        return bytes((marker,)) + value.to_bytes(width, "big", signed=signed)
    except OverflowError:
        return pack(value)


@st.composite
def blob_data_bytes(draw: st.DrawFn) -> bytes:
    """blob_data frames encoded canonically or not, then perhaps damaged."""
    kind = draw(st.sampled_from(["blob_data"] * 8 + ["blob_dat", "blob_datb"]))
    size = draw(edge_sizes)
    if draw(st.booleans()):
        offset = draw(st.integers(0, 3 * MAX_BLOB_DATA))
        total = offset + size + draw(st.integers(-2, 3 * MAX_BLOB_DATA))
    else:
        offset, total = draw(edge_ints), draw(edge_ints)
    req_id = draw(edge_ints)
    values = [req_id, offset, total]
    if any(not -(2**63) <= v < 2**64 for v in values):
        values = [0, 0, 0]
    req_id, offset, total = values
    forms = st.sampled_from([0] * 24 + list(range(1, 9)))  # mostly canonical
    payload = b"\x5a" * size
    bin_form = draw(st.sampled_from([0] * 6 + [1, 2, 3]))
    if bin_form == 0 or size > 0xFFFF:
        binary = pack(payload)
    else:
        width = (1, 2, 4)[bin_form - 1]
        if size >= 256**width:
            width = 4
        binary = bytes(({1: 0xC4, 2: 0xC5, 4: 0xC6}[width],)) + size.to_bytes(width, "big")
        binary += payload
    items = [pack(kind), _encode_int(req_id, draw(forms)), _encode_int(offset, draw(forms)),
             binary, _encode_int(total, draw(forms))]
    if draw(st.integers(0, 5)) == 0:
        try:
            extra = pack(draw(msgpack_values))
        except (OverflowError, ValueError):
            extra = b"\xc0"
        items.insert(draw(st.integers(1, 5)), extra)  # a sixth item
        head = b"\x96"
    elif draw(st.integers(0, 5)) == 0:
        del items[draw(st.integers(1, 4))]
        head = b"\x94"
    else:
        head = b"\x95"
    encoded = bytearray(head + b"".join(items))
    damage = draw(st.sampled_from([0] * 3 + [1, 2, 3]))
    if damage == 1 and encoded:
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(encoded) - 1))
            encoded[i] ^= draw(st.integers(1, 255))
    elif damage == 2:
        del encoded[draw(st.integers(0, len(encoded))) :]
    elif damage == 3:
        encoded += draw(st.binary(min_size=1, max_size=12))
    return bytes(encoded)


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(blob_data_bytes())
def test_blob_data_decode_fast_path_matches_generic(data: bytes) -> None:
    """decode_frame accepts exactly what the generic decoder accepts, with the same frame, and
    rejects the rest with the same error."""
    fast = _outcome(decode_frame, data)
    assert fast == _outcome(frames_module._decode_generic, data)
    if fast[0] == "ok" and isinstance(fast[1], BlobData):
        assert type(fast[1].data) is bytes


def test_blob_data_decode_fast_path_edges() -> None:
    """Hand-picked near misses: each decodes (or fails) exactly as the generic path says."""
    good = encode_frame(BlobData(7, 0, b"abc", 3))
    cases = [
        good,
        good + b"\x00",                       # trailing byte
        good[:-1],                            # total cut off
        good[:-1] + b"\x02",                  # total smaller than offset + len(data)
        good[:-1] + b"\xcc\x03",              # total in a non-canonical form
        good.replace(b"\xc4\x03", b"\xc4\x04"),  # bin longer than what follows
        good.replace(b"\xc4\x03", b"\xc4\x02"),  # bin shorter: the rest is junk
        good.replace(b"\xc4\x03", b"\xa3"),   # data as a str
        b"\x95\xa9blob_data\xd0\x07\x00\xc4\x03abc\x03",  # req_id as int8
        b"\x95\xa9blob_data\xff\x00\xc4\x03abc\x03",  # negative fixint req_id
        b"\x95\xa9blob_data\xce\xff\xff\xff\xff\x00\xc4\x00\x00",
        b"\x95\xa9blob_data\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x00\xc4\x00\x00",
        b"\x95\xa9blob_data\x00\xcf\x00\x20\x00\x00\x00\x00\x00\x00\xc4\x00"
        b"\xcf\x00\x20\x00\x00\x00\x00\x00\x00",  # offset and total 2**53: over MAX_UINT
        b"\x95\xa9blob_data",
        b"\x95\xa9blob_data\x00",
        b"\x95\xa9blob_data\x00\x00\xc5\xf0\x01" + b"x" * 0xF001 + b"\xcd\xf0\x01",  # too long
        b"\x95\xa9blob_data\x00\x00\xc6\x00\x00\x00\x01x\x01",  # bin32 form of 1 byte
    ]
    for data in cases:
        assert _outcome(decode_frame, data) == _outcome(frames_module._decode_generic, data), data
    assert frames_module._decode_blob_data_fast(cases[0]) is not None
    for data in cases[1:]:
        if _outcome(frames_module._decode_generic, data)[0] != "ok":
            assert frames_module._decode_blob_data_fast(data) is None, data


def test_replication_v2_frames_are_strict() -> None:
    """`replication` takes one uint32 >= 1; `notes` takes at most 1024 [bin32, uint, bool]."""
    assert msgpack.unpackb(encode_frame(ReplicationHello(2))) == ["replication", 2]
    assert msgpack.unpackb(encode_frame(Notes(((ID_A, 3, True),)))) == ["notes", [[ID_A, 3, True]]]
    full = Notes(tuple((bytes([i % 256]) * 32, MAX_UINT, True) for i in range(MAX_NOTES)))
    assert len(encode_frame(full)) <= MAX_FRAME_SIZE
    for bad in (["replication", 0], ["replication", True], ["replication", 2, 3],
                ["notes", [[ID_A, 3, 1]]], ["notes", [[ID_A[:31], 3, True]]],
                ["notes", [[ID_A, -1, False]]], ["notes", [[ID_A, 3]]],
                ["notes", [[ID_A, 1, True]] * (MAX_NOTES + 1)]):
        with pytest.raises(MalformedError):
            decode_frame(pack(bad))
