"""Tests for protocol/entry.py and protocol/codec.py: the signed entry, its known-answer vectors,
and the strictness of decoding (every malformed input is a `ProtocolError` naming its field)."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import msgpack
import pytest
from builders import identity_from_seed, sealing_key_from_seed
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.codec import MAX_DEPTH, pack, unpack_strict
from protocol.entry import (
    MAX_BODY_SIZE,
    MAX_HEADER_SIZE,
    Entry,
    Header,
    create_entry,
    decode_body,
    decode_entry,
    decode_header,
    entry_from_parts,
    entry_id,
    stored_entry,
)
from protocol.errors import MalformedError, ProtocolError, SignatureError
from protocol.identity import verify_signature

AUTHOR = identity_from_seed("p2pnode test vector author 1")
OTHER = identity_from_seed("someone else")
TS = 1_790_000_000_000
_RAW = serialization.Encoding.Raw


def fields(**overrides: Any) -> list[Any]:
    """A header's eight fields for a 3-byte body, with some replaced."""
    body = pack({"n": 1})
    values = {
        "version": 1,
        "author": AUTHOR.node_id,
        "seq": 1,
        "prev": None,
        "timestamp_ms": TS,
        "kind": "note.test",
        "body_hash": hashlib.sha256(body).digest(),
        "body_size": len(body),
    }
    values.update(overrides)
    return list(values.values())


def signed_wire(header_bytes: bytes, body: bytes | None = None) -> bytes:
    """Wire bytes whose signature is genuine, so the only defect is the one under test."""
    return pack([header_bytes, AUTHOR.sign(header_bytes), body])


def reject(wire: bytes, field: str | None = None) -> MalformedError:
    with pytest.raises(MalformedError) as caught:
        decode_entry(wire)
    if field is not None:
        assert caught.value.field == field, caught.value
    return caught.value


def vector_entry(vectors: dict[str, Any], index: int) -> dict[str, Any]:
    return vectors["entries"][index]


# -- known-answer vectors ----------------------------------------------------------------------


def test_vector_keys_derive_from_their_seed_strings(vectors):
    """The Ed25519 private key is SHA-256 of the seed string and yields the listed public key."""
    author = vectors["author"]
    seed = hashlib.sha256(author["seed_string"].encode()).digest()
    assert seed.hex() == author["ed25519_private_seed"]
    assert AUTHOR.private_bytes() == seed
    assert AUTHOR.node_id.hex() == author["public_key"]
    enc = vectors["enc_key"]
    sealing = sealing_key_from_seed(enc["seed_string"])
    assert sealing.private_bytes().hex() == enc["x25519_private"]
    assert sealing.public_bytes.hex() == enc["public_key"]


@pytest.mark.parametrize("index", range(4))
def test_vector_wire_decodes_verifies_and_rederives_every_byte(vectors, index):
    """Each vector's wire bytes decode to its header, signature and body, verify, and hash to
    its entry id; re-encoding gives the wire bytes back."""
    v = vector_entry(vectors, index)
    entry = decode_entry(bytes.fromhex(v["wire"]))
    entry.verify()
    assert entry.signature_valid()
    assert entry.header_bytes.hex() == v["header"]
    assert entry.signature.hex() == v["signature"]
    assert entry.body_bytes.hex() == v["body"]
    assert entry.id.hex() == v["entry_id"]
    assert entry_id(entry.header_bytes, entry.signature).hex() == v["entry_id"]
    assert hashlib.sha256(entry.header_bytes + entry.signature).hexdigest() == v["entry_id"]
    assert entry.encode().hex() == v["wire"]
    assert entry.header.encode() == entry.header_bytes
    assert (entry.seq, entry.kind) == (v["seq"], v["kind"])
    assert entry.author.hex() == vectors["author"]["public_key"]
    assert entry.header.body_hash == hashlib.sha256(entry.body_bytes).digest()
    assert entry.header.body_size == len(entry.body_bytes)
    expected_prev = None if index == 0 else bytes.fromhex(vectors["entries"][index - 1]["entry_id"])
    assert entry.header.prev == expected_prev


@pytest.mark.parametrize("index", range(4))
def test_vector_recreated_from_seed_is_byte_identical(vectors, index):
    """create_entry with the vector's key and fields reproduces the header, the (deterministic
    Ed25519) signature, the body bytes and the id exactly."""
    v = vector_entry(vectors, index)
    decoded = decode_entry(bytes.fromhex(v["wire"]))
    again = create_entry(
        AUTHOR,
        seq=v["seq"],
        prev=decoded.header.prev,
        timestamp_ms=decoded.header.timestamp_ms,
        kind=v["kind"],
        body=decode_body(bytes.fromhex(v["body"])),
    )
    assert again.header_bytes.hex() == v["header"]
    assert again.signature.hex() == v["signature"]
    assert again.body_bytes.hex() == v["body"]
    assert again.id.hex() == v["entry_id"]
    assert again == decoded


def test_vector_profile_carries_the_vector_sealing_key(vectors):
    """The profile vector publishes the enc_key vector's X25519 public key."""
    profile = decode_entry(bytes.fromhex(vector_entry(vectors, 0)["wire"])).body()
    assert profile["enc_key"].hex() == vectors["enc_key"]["public_key"]


def test_vector_identity_binding(vectors):
    """The Noise identity binding signs b"p2pu-noise-static-key:" + the static key; the payload
    is msgpack [node id, signature]."""
    b = vectors["identity_binding"]
    static_private = X25519PrivateKey.from_private_bytes(bytes.fromhex(b["noise_static_private"]))
    static_public = static_private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    assert static_public.hex() == b["noise_static_public"]
    message = b"p2pu-noise-static-key:" + static_public
    assert message.hex() == b["signed_message"]
    signature = AUTHOR.sign(message)
    assert signature.hex() == b["signature"]
    assert verify_signature(AUTHOR.node_id, signature, message)
    assert pack([AUTHOR.node_id, signature]).hex() == b["payload"]


def test_vector_open_network_key(vectors):
    """The open network's key is SHA-256 of b"p2pu-open-network-v1", and the node uses it."""
    from p2pnode.config import OPEN_NETWORK_KEY

    expected = hashlib.sha256(b"p2pu-open-network-v1").digest()
    assert vectors["open_network_key"] == expected.hex()
    assert expected == OPEN_NETWORK_KEY


def test_every_single_byte_change_to_a_vector_is_rejected_or_unverifiable(vectors):
    """Flipping any byte of an encoded entry (every position, several XOR masks) raises a
    ProtocolError or decodes to an entry whose signature fails."""
    wire = bytes.fromhex(vector_entry(vectors, 2)["wire"])
    original = decode_entry(wire)
    outcomes = {"raised": 0, "unverifiable": 0}
    for position in range(len(wire)):
        for mask in (0x01, 0x04, 0x80, 0xFF):
            mutated = bytearray(wire)
            mutated[position] ^= mask
            try:
                entry = decode_entry(bytes(mutated))
            except ProtocolError:
                outcomes["raised"] += 1
                continue
            assert entry.id != original.id or entry.body_bytes != original.body_bytes
            assert not entry.signature_valid(), (position, mask)
            with pytest.raises(SignatureError):
                entry.verify()
            outcomes["unverifiable"] += 1
    # both paths are exercised: header/framing damage raises, signature damage decodes
    assert outcomes["raised"] > 0 and outcomes["unverifiable"] >= 64


# -- property tests ----------------------------------------------------------------------------

_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
_value = (
    _leaf | st.lists(_leaf, max_size=4) | st.dictionaries(st.text(max_size=8), _leaf, max_size=4)
)
_bodies = st.dictionaries(st.text(max_size=12), _value, max_size=6)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    seq = draw(st.integers(min_value=1, max_value=2**53 - 1))
    prev = None if seq == 1 else draw(st.binary(min_size=32, max_size=32))
    return create_entry(
        AUTHOR,
        seq=seq,
        prev=prev,
        timestamp_ms=draw(st.integers(min_value=0, max_value=2**53 - 1)),
        kind=draw(st.text(min_size=1, max_size=32)),
        body=draw(_bodies),
    )


@settings(max_examples=150, deadline=None)
@given(entries())
def test_encode_decode_round_trip(entry):
    """Any entry create_entry makes decodes back to an equal, verifying entry with the same body."""
    decoded = decode_entry(entry.encode())
    assert decoded == entry
    decoded.verify()
    assert decoded.body() == msgpack.unpackb(entry.body_bytes, raw=False)
    assert decode_header(entry.header_bytes) == entry.header
    bodiless = decode_entry(entry.without_body().encode())
    assert bodiless.body_bytes is None and bodiless.id == entry.id


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(), st.data())
def test_any_single_byte_change_is_rejected_or_unverifiable(entry, data):
    """Changing one byte anywhere in an arbitrary entry's wire form never yields an entry that
    still verifies."""
    wire = entry.encode()
    position = data.draw(st.integers(min_value=0, max_value=len(wire) - 1), label="position")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
    mutated = bytearray(wire)
    mutated[position] ^= mask
    try:
        changed = decode_entry(bytes(mutated))
    except ProtocolError:
        return
    assert not changed.signature_valid()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_decoding_arbitrary_bytes_raises_only_protocol_errors(data):
    """Random bytes never crash a decoder: they decode or raise a ProtocolError."""
    for decode in (decode_entry, decode_header, decode_body):
        with contextlib.suppress(ProtocolError):
            decode(data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_value | st.binary(min_size=32, max_size=32) | st.binary(min_size=64, max_size=64),
             min_size=0, max_size=4),
)
def test_decoding_arbitrary_msgpack_arrays_raises_only_protocol_errors(parts):
    """Well-formed msgpack of the wrong shape or types is a ProtocolError, never another error."""
    for wire in (pack(parts), pack([pack(parts), AUTHOR.sign(b"x"), None])):
        with contextlib.suppress(ProtocolError):
            decode_entry(wire)


# -- strictness ---------------------------------------------------------------------------------


def test_a_well_formed_header_is_accepted():
    """The helper's baseline header decodes and verifies: the cases below differ in one way."""
    header = pack(fields())
    entry = decode_entry(signed_wire(header, pack({"n": 1})))
    entry.verify()
    assert entry.header == Header(*fields()[1:])


@pytest.mark.parametrize(
    "header",
    [
        # seq 1 as uint8 instead of a positive fixint
        b"\x98\x01\xc4\x20" + AUTHOR.node_id + b"\xcc\x01" + pack(fields())[37:],
        # the array as array16
        b"\xdc\x00\x08" + pack(fields())[1:],
        # the kind as str8 rather than fixstr
        pack(fields())[: pack(fields()).index(b"\xa9note.test")]
        + b"\xd9\x09note.test"
        + pack(fields())[pack(fields()).index(b"\xa9note.test") + 10 :],
        # the author as bin16
        b"\x98\x01\xc5\x00\x20" + pack(fields())[4:],
    ],
    ids=["uint8-seq", "array16", "str8-kind", "bin16-author"],
)
def test_non_canonical_header_is_rejected_even_when_signed(header):
    """A header must be the one canonical encoding of its values, or ids could be forged."""
    assert msgpack.unpackb(header) == msgpack.unpackb(pack(fields()))
    error = reject(signed_wire(header, pack({"n": 1})), "header")
    assert "canonical" in str(error)


def test_trailing_bytes_after_the_entry_are_rejected():
    """Anything after the wire array is refused."""
    wire = signed_wire(pack(fields()), pack({"n": 1}))
    reject(wire + b"\xc0", "entry")


def test_trailing_bytes_inside_the_header_are_rejected():
    """A signed header with an extra object after its array is refused."""
    reject(signed_wire(pack(fields()) + b"\x00", pack({"n": 1})), "header")


def test_trailing_bytes_inside_the_body_are_rejected():
    """A body followed by more bytes (hash and size adjusted) does not decode."""
    body = pack({"n": 1}) + b"\xc0"
    header = pack(fields(body_hash=hashlib.sha256(body).digest(), body_size=len(body)))
    entry = decode_entry(signed_wire(header, body))
    with pytest.raises(MalformedError) as caught:
        entry.body()
    assert caught.value.field == "body"


@pytest.mark.parametrize("place", ["wire", "header", "body"])
def test_msgpack_extension_types_are_rejected(place):
    """Extension types are refused wherever they appear."""
    ext = msgpack.packb(msgpack.ExtType(5, b"abc"))
    if place == "wire":
        wire = b"\x93" + pack(pack(fields())) + pack(AUTHOR.sign(pack(fields()))) + ext
        reject(wire, "entry")
    elif place == "header":
        header = b"\x98" + b"".join(pack(v) for v in fields()[:5]) + ext + b"".join(
            pack(v) for v in fields()[6:]
        )
        reject(signed_wire(header, pack({"n": 1})), "header")
    else:
        body = b"\x81\xa1n" + ext
        with pytest.raises(MalformedError) as caught:
            decode_body(body)
        assert caught.value.field == "body"


@pytest.mark.parametrize("key", [1, b"bytes-key", None, 1.5])
def test_body_map_keys_must_be_strings(key):
    """A body map with a non-string key is refused (msgpack itself would accept bytes keys)."""
    body = msgpack.packb({key: 1, "ok": 2}, use_bin_type=True, strict_types=False)
    with pytest.raises(MalformedError) as caught:
        decode_body(body)
    assert caught.value.field == "body"


def test_nested_map_keys_must_be_strings_too():
    """The string-key rule holds at every depth."""
    body = msgpack.packb({"a": [{"b": {b"k": "x"}}]}, use_bin_type=True)
    with pytest.raises(MalformedError, match="map keys"):
        decode_body(body)


def nest(depth: int) -> Any:
    value: Any = 1
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return {"top": value}


def test_body_nesting_is_capped():
    """A body nested MAX_DEPTH deep decodes; one level more is refused."""
    assert decode_body(pack(nest(MAX_DEPTH))) == nest(MAX_DEPTH)
    with pytest.raises(MalformedError, match="nested deeper"):
        decode_body(pack(nest(MAX_DEPTH + 1)))


def test_depth_bomb_is_refused_quickly():
    """Thousands of nested one-element arrays are a MalformedError, not a crash or a hang."""
    bomb = b"\x91" * (MAX_BODY_SIZE - 1) + b"\xc0"
    with pytest.raises(MalformedError):
        decode_body(bomb)
    map_bomb = b"\x81\xa1k" * 4000 + b"\xc0"
    with pytest.raises(MalformedError):
        decode_body(map_bomb)
    with pytest.raises(MalformedError):
        unpack_strict(bomb, "frame", max_size=len(bomb))


def test_oversize_header_is_refused():
    """A header over MAX_HEADER_SIZE bytes is refused before anything else is looked at."""
    header = pack(fields(kind="k" * 300))
    assert len(header) > MAX_HEADER_SIZE
    error = reject(signed_wire(header), "header")
    assert str(MAX_HEADER_SIZE) in str(error)


def test_kind_longer_than_its_limit_is_refused():
    """A kind of 33 characters fits the size limit but breaks the kind rule."""
    reject(signed_wire(pack(fields(kind="k" * 33))), "header.kind")
    reject(signed_wire(pack(fields(kind=""))), "header.kind")


def test_oversize_body_is_refused_everywhere():
    """Bodies over 16 KiB cannot be created, declared in a header, or decoded."""
    with pytest.raises(MalformedError):
        create_entry(AUTHOR, seq=1, prev=None, timestamp_ms=TS, kind="x",
                     body={"big": "a" * MAX_BODY_SIZE})
    reject(signed_wire(pack(fields(body_size=MAX_BODY_SIZE + 1))), "header.body_size")
    big = pack({"big": b"a" * MAX_BODY_SIZE})
    with pytest.raises(MalformedError):
        decode_body(big)
    header = pack(fields(body_hash=hashlib.sha256(big).digest(), body_size=MAX_BODY_SIZE))
    with pytest.raises(MalformedError):
        decode_entry(signed_wire(header, big))


def test_body_that_does_not_match_its_hash_is_refused():
    """Swapping the body for another of the same size is caught by body_hash."""
    reject(signed_wire(pack(fields()), pack({"n": 2})), "body")


def test_body_of_the_wrong_size_is_refused():
    """A body whose length differs from body_size is refused, even if it hashes right."""
    body = pack({"n": 1})
    header = pack(fields(body_size=len(body) + 1))
    error = reject(signed_wire(header, body), "body")
    assert "header says" in str(error)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"seq": 0}, "header.seq"),
        ({"seq": -1}, "header.seq"),
        ({"seq": True}, "header.seq"),
        ({"seq": 2**53}, "header.seq"),
        ({"seq": 1.0}, "header.seq"),
        ({"prev": b"\x00" * 32}, "header.prev"),
        ({"seq": 2, "prev": None}, "header.prev"),
        ({"seq": 2, "prev": b"\x00" * 31}, "header.prev"),
        ({"version": 2}, "header.version"),
        ({"version": True}, "header.version"),
        ({"author": b"\x00" * 31}, "header.author"),
        ({"author": "a" * 32}, "header.author"),
        ({"timestamp_ms": True}, "header.timestamp_ms"),
        ({"timestamp_ms": -1}, "header.timestamp_ms"),
        ({"timestamp_ms": 2**53}, "header.timestamp_ms"),
        ({"kind": b"profile"}, "header.kind"),
        ({"body_hash": b"\x00" * 31}, "header.body_hash"),
        ({"body_size": False}, "header.body_size"),
        ({"body_size": -1}, "header.body_size"),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else value,
)
def test_header_fields_are_strictly_typed(overrides, field):
    """Each header field must have its exact type and range (a bool is not an int); the error
    names the field."""
    reject(signed_wire(pack(fields(**overrides))), field)


def test_header_must_be_an_array_of_eight():
    """Too few or too many header items, or a map, are refused."""
    reject(signed_wire(pack(fields()[:7])), "header")
    reject(signed_wire(pack([*fields(), 0])), "header")
    reject(signed_wire(pack({"version": 1})), "header")


@pytest.mark.parametrize(
    "parts",
    [
        [],
        ["header", b"s" * 64, None],
        [pack(fields()), b"s" * 63, None],
        [pack(fields()), "s" * 64, None],
        [pack(fields()), b"s" * 64, "body"],
        [pack(fields()), b"s" * 64],
        [pack(fields()), b"s" * 64, None, None],
        {"header": pack(fields())},
    ],
    ids=["empty", "str-header", "short-sig", "str-sig", "str-body", "two", "four", "map"],
)
def test_wire_shape_is_strict(parts):
    """The wire form is exactly [header bytes, 64-byte signature, body bytes or nil]."""
    reject(pack(parts))


def test_wire_entries_nesting_inside_the_array_are_refused():
    """The wire array holds byte strings only: nothing nests inside it."""
    reject(pack([[pack(fields())], AUTHOR.sign(pack(fields())), None]), "entry")


def test_wrong_author_signature_decodes_but_does_not_verify():
    """Decoding does not check signatures; verify() does, and names the field."""
    header = pack(fields())
    entry = decode_entry(pack([header, OTHER.sign(header), None]))
    assert not entry.signature_valid()
    with pytest.raises(SignatureError) as caught:
        entry.verify()
    assert caught.value.field == "signature"


def test_body_less_entry_keeps_its_id_and_verifies():
    """Dropping the body changes neither the id nor the signature check (Bamboo's point)."""
    entry = create_entry(AUTHOR, seq=1, prev=None, timestamp_ms=TS, kind="x", body={"a": 1})
    bare = decode_entry(entry.without_body().encode())
    assert bare.id == entry.id and bare.body() is None
    bare.verify()


def test_entry_from_parts_accepts_what_decode_entry_accepts():
    """Unpacked parts (as export files and frames carry them) give the same entry."""
    entry = create_entry(AUTHOR, seq=1, prev=None, timestamp_ms=TS, kind="x", body={"a": 1})
    assert entry_from_parts(entry.wire()) == decode_entry(entry.encode()) == entry


def test_decode_rejects_non_bytes_input():
    """Passing something that is not bytes is a MalformedError, not a TypeError."""
    with pytest.raises(MalformedError):
        decode_entry("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("prev", [None, bytes(32)])
@pytest.mark.parametrize("body", [{"a": 1}, None])
def test_stored_entry_rebuilds_the_entry_that_was_decoded(prev, body):
    """An entry rebuilt from its stored bytes (no re-checks) equals the one first decoded."""
    made = create_entry(AUTHOR, seq=1 if prev is None else 2, prev=prev, timestamp_ms=TS,
                        kind="x", body={"a": 1})
    if body is None:
        made = made.without_body()
    decoded = entry_from_parts(made.wire())
    rebuilt = stored_entry(decoded.header_bytes, decoded.signature, decoded.body_bytes,
                           decoded.id)
    assert rebuilt == decoded
