"""Tests for protocol.blobs: manifests, chunk checks, bitmaps and the swarm download plan."""

from __future__ import annotations

import hashlib
import itertools
import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.blobs import (
    CHUNK_SIZE,
    MAX_BLOB_SIZE,
    MAX_MANIFEST_SIZE,
    MAX_STRIKES,
    Bitmap,
    DownloadPlan,
    Manifest,
    ManifestBuilder,
    decode_manifest,
    manifest_for,
    max_manifest_size,
    verify_chunk,
    verify_chunk_pieces,
)
from protocol.errors import LocalProtocolError, MalformedError


def reference_manifest_bytes(data: bytes) -> bytes:
    """The manifest as DESIGN.md spells it, built with hashlib and msgpack directly."""
    hashes = [
        hashlib.sha256(data[i : i + CHUNK_SIZE]).digest() for i in range(0, len(data), CHUNK_SIZE)
    ]
    return msgpack.packb([len(data), CHUNK_SIZE, hashes], use_bin_type=True)


def blob(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def encoded_with_id(obj: object) -> tuple[bytes, bytes]:
    data = msgpack.packb(obj, use_bin_type=True)
    return data, hashlib.sha256(data).digest()


# -- manifests ---------------------------------------------------------------------------------


def test_manifest_round_trip() -> None:
    """A manifest decodes back to an equal manifest with the same id."""
    manifest = manifest_for(blob(3 * CHUNK_SIZE + 17))
    decoded = decode_manifest(manifest.encode(), manifest.blob_id)
    assert decoded == manifest
    assert decoded.blob_id == manifest.blob_id
    assert decoded.chunk_count == 4


@pytest.mark.parametrize("size", [0, 1, 1000, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 5])
def test_blob_id_matches_reference_encoding(size: int) -> None:
    """The blob id is SHA-256 of msgpack [size, chunk_size, [sha256(chunk)...]]."""
    data = blob(size, seed=size)
    expected = reference_manifest_bytes(data)
    manifest = manifest_for(data)
    assert manifest.encode() == expected
    assert manifest.blob_id == hashlib.sha256(expected).digest()


def test_blob_id_known_answers() -> None:
    """Ids of fixed content never change (these pin the encoding across releases)."""
    empty = manifest_for(b"")
    assert empty.encode() == bytes.fromhex("9300ce0004000090")
    assert empty.blob_id == hashlib.sha256(bytes.fromhex("9300ce0004000090")).digest()
    assert empty.blob_id.hex() == (
        "9732955acd25b216cc108828309c299ef262ec9e48d3cd0b886ad21106c82396"
    )
    abc = manifest_for(b"abc")
    abc_hash = hashlib.sha256(b"abc").digest()
    assert abc.encode() == bytes.fromhex("9303ce0004000091c420") + abc_hash
    assert abc.blob_id == hashlib.sha256(abc.encode()).digest()
    assert abc.blob_id.hex() == "78a90b93bc1a09dd7f4d802ef00e0ef2793e3840dbe1ab62ffc312582094e53d"


def test_zero_byte_blob_has_no_chunks() -> None:
    """An empty file has zero chunks and still a valid, decodable manifest."""
    manifest = manifest_for(b"")
    assert manifest.size == 0
    assert manifest.chunk_count == 0
    assert decode_manifest(manifest.encode(), manifest.blob_id) == manifest
    with pytest.raises(IndexError):
        manifest.chunk_length(0)


def test_one_byte_blob() -> None:
    """A 1-byte file is one 1-byte chunk at offset 0."""
    manifest = manifest_for(b"x")
    assert manifest.chunk_count == 1
    assert manifest.chunk_length(0) == 1
    assert manifest.chunk_offset(0) == 0
    assert verify_chunk(manifest, 0, b"x")


def test_exactly_one_chunk_boundary() -> None:
    """CHUNK_SIZE bytes make exactly one full chunk."""
    manifest = manifest_for(blob(CHUNK_SIZE))
    assert manifest.chunk_count == 1
    assert manifest.chunk_length(0) == CHUNK_SIZE


def test_one_byte_over_chunk_boundary() -> None:
    """CHUNK_SIZE + 1 bytes make a full chunk and a 1-byte chunk at offset CHUNK_SIZE."""
    data = blob(CHUNK_SIZE + 1)
    manifest = manifest_for(data)
    assert manifest.chunk_count == 2
    assert manifest.chunk_length(0) == CHUNK_SIZE
    assert manifest.chunk_length(1) == 1
    assert manifest.chunk_offset(1) == CHUNK_SIZE
    assert verify_chunk(manifest, 1, data[CHUNK_SIZE:])
    with pytest.raises(IndexError):
        manifest.chunk_offset(2)


def test_max_manifest_size_fits_the_largest_blob() -> None:
    """4 GiB means 16384 hashes of 34 bytes plus framing, and the real encoding fits in it."""
    assert MAX_MANIFEST_SIZE == max_manifest_size(MAX_BLOB_SIZE) == 16384 * 34 + 20
    biggest = Manifest(MAX_BLOB_SIZE, CHUNK_SIZE, (b"\xff" * 32,) * 16384)
    assert len(biggest.encode()) <= MAX_MANIFEST_SIZE
    assert decode_manifest(biggest.encode(), biggest.blob_id) == biggest


def test_decode_rejects_wrong_id() -> None:
    """Manifest bytes that do not hash to the requested id are rejected."""
    manifest = manifest_for(b"hello")
    other = manifest_for(b"hellO")
    with pytest.raises(MalformedError) as exc:
        decode_manifest(manifest.encode(), other.blob_id)
    assert exc.value.field == "manifest"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"size": 1}, "manifest"),
        ([1, CHUNK_SIZE], "manifest"),
        ([1, CHUNK_SIZE, [b"\0" * 32], 4], "manifest"),
        ([-1, CHUNK_SIZE, []], "manifest.size"),
        ([True, CHUNK_SIZE, [b"\0" * 32]], "manifest.size"),
        (["1", CHUNK_SIZE, [b"\0" * 32]], "manifest.size"),
        ([MAX_BLOB_SIZE + 1, CHUNK_SIZE, []], "manifest.size"),
        ([1, 65536, [b"\0" * 32]], "manifest.chunk_size"),
        ([1, CHUNK_SIZE, b"\0" * 32], "manifest.chunk_hashes"),
        ([1, CHUNK_SIZE, [b"\0" * 31]], "manifest.chunk_hashes[0]"),
        ([1, CHUNK_SIZE, ["\0" * 32]], "manifest.chunk_hashes[0]"),
        ([1, CHUNK_SIZE, [[b"\0" * 32]]], "manifest"),  # nested too deep
    ],
)
def test_decode_rejects_bad_shape(obj: object, field: str) -> None:
    """Wrong shapes and types are rejected, naming the field, even when the id matches."""
    data, blob_id = encoded_with_id(obj)
    with pytest.raises(MalformedError) as exc:
        decode_manifest(data, blob_id)
    assert exc.value.field == field


@pytest.mark.parametrize(("size", "count"), [(0, 1), (1, 0), (1, 2), (CHUNK_SIZE + 1, 1)])
def test_decode_rejects_wrong_chunk_count(size: int, count: int) -> None:
    """The number of hashes must be ceil(size / chunk_size)."""
    data, blob_id = encoded_with_id([size, CHUNK_SIZE, [b"\0" * 32] * count])
    with pytest.raises(MalformedError) as exc:
        decode_manifest(data, blob_id)
    assert exc.value.field == "manifest.chunk_hashes"


def test_decode_rejects_size_over_the_given_max() -> None:
    """A blob over the caller's limit is rejected before anything is fetched for it."""
    manifest = manifest_for(blob(CHUNK_SIZE * 2))
    decode_manifest(manifest.encode(), manifest.blob_id, max_blob_size=CHUNK_SIZE * 2)
    with pytest.raises(MalformedError) as exc:
        decode_manifest(manifest.encode(), manifest.blob_id, max_blob_size=CHUNK_SIZE * 2 - 1)
    assert exc.value.field == "manifest.size"


def test_decode_rejects_oversized_bytes() -> None:
    """Bytes longer than the largest possible manifest are refused before decoding."""
    data = b"\x00" * (max_manifest_size(CHUNK_SIZE) + 1)
    with pytest.raises(MalformedError, match="exceeds the limit"):
        decode_manifest(data, hashlib.sha256(data).digest(), max_blob_size=CHUNK_SIZE)


def test_decode_rejects_non_canonical_encoding() -> None:
    """The same fields in a longer msgpack encoding are a different blob id: rejected."""
    digest = hashlib.sha256(b"x").digest()
    # size 1 as uint64 (0xcf) instead of a positive fixint
    data = b"\x93\xcf" + (1).to_bytes(8, "big") + b"\xce\x00\x04\x00\x00\x91\xc4\x20" + digest
    with pytest.raises(MalformedError, match="canonical"):
        decode_manifest(data, hashlib.sha256(data).digest())


def test_decode_rejects_a_bad_expected_id() -> None:
    """A blob id of the wrong length is our own bug, not the peer's."""
    manifest = manifest_for(b"x")
    with pytest.raises(LocalProtocolError):
        decode_manifest(manifest.encode(), b"short")


def test_verify_chunk() -> None:
    """verify_chunk accepts the exact chunk and rejects other bytes, lengths and indices."""
    data = blob(CHUNK_SIZE + 10)
    manifest = manifest_for(data)
    assert verify_chunk(manifest, 0, data[:CHUNK_SIZE])
    assert verify_chunk(manifest, 1, memoryview(data)[CHUNK_SIZE:])
    assert not verify_chunk(manifest, 1, data[:10])
    assert not verify_chunk(manifest, 0, data[: CHUNK_SIZE - 1])
    assert not verify_chunk(manifest, 1, data[CHUNK_SIZE:] + b"!")
    assert not verify_chunk(manifest, 2, b"")
    assert not verify_chunk(manifest, -1, data[CHUNK_SIZE:])


def test_verify_chunk_pieces_matches_verify_chunk() -> None:
    """Pieces verify exactly when their concatenation does, however the chunk is cut."""
    data = blob(CHUNK_SIZE + 10)
    manifest = manifest_for(data)
    first = data[:CHUNK_SIZE]
    for cuts in ([], [1], [61440, 122880, 184320, 245760], [0, 0, 100], [CHUNK_SIZE - 1]):
        bounds = [0, *cuts, CHUNK_SIZE]
        pieces = [first[a:b] for a, b in itertools.pairwise(bounds)]
        assert verify_chunk_pieces(manifest, 0, pieces)
        assert verify_chunk_pieces(manifest, 0, [memoryview(p) for p in pieces])
        assert not verify_chunk_pieces(manifest, 1, pieces)
        assert not verify_chunk_pieces(manifest, 0, [*pieces, b"!"])
        rotated = [*pieces[1:], pieces[0]]
        assert verify_chunk_pieces(manifest, 0, rotated) == (b"".join(rotated) == first)
    assert verify_chunk_pieces(manifest, 1, [data[CHUNK_SIZE:CHUNK_SIZE + 3],
                                             data[CHUNK_SIZE + 3:]])
    assert not verify_chunk_pieces(manifest, 0, [])
    assert not verify_chunk_pieces(manifest, 2, [])
    assert not verify_chunk_pieces(manifest, -1, [data[CHUNK_SIZE:]])


_SPLIT_DATA = blob(3 * CHUNK_SIZE + 1234, seed=7)


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(0, len(_SPLIT_DATA)),
    cuts=st.lists(st.integers(0, len(_SPLIT_DATA)), max_size=12),
)
def test_builder_is_independent_of_how_data_is_split(length: int, cuts: list[int]) -> None:
    """Feeding the same bytes in any pieces yields the same manifest as the reference."""
    data = _SPLIT_DATA[:length]
    points = sorted({0, length, *(c for c in cuts if c <= length)})
    builder = ManifestBuilder()
    for start, end in itertools.pairwise(points):
        builder.update(data[start:end])
    builder.update(b"")
    manifest = builder.finish()
    assert manifest.encode() == reference_manifest_bytes(data)
    assert manifest == manifest_for(data)


def test_builder_refuses_use_after_finish_and_oversize() -> None:
    """update() after finish() and past max_size raise LocalProtocolError."""
    builder = ManifestBuilder(max_size=10)
    builder.update(b"0123456789")
    with pytest.raises(LocalProtocolError):
        builder.update(b"!")
    assert builder.finish().size == 10
    with pytest.raises(LocalProtocolError):
        builder.update(b"")


# -- bitmaps -----------------------------------------------------------------------------------


def test_bitmap_round_trip_and_bit_order() -> None:
    """Bit 0 is the high bit of byte 0; bytes round-trip and count what is set."""
    bitmap = Bitmap(10)
    assert bitmap.set(0) and bitmap.set(9)
    assert not bitmap.set(9)
    assert bitmap.to_bytes() == bytes([0x80, 0x40])
    again = Bitmap.from_bytes(10, bitmap.to_bytes())
    assert again == bitmap
    assert again.count_set == 2
    assert again.missing() == [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x00\x00", b"\x00\x20"])
def test_bitmap_rejects_wrong_length_and_padding(data: bytes) -> None:
    """A stored bitmap of the wrong length or with padding bits set is malformed."""
    with pytest.raises(MalformedError):
        Bitmap.from_bytes(10, data)


# -- download plan -----------------------------------------------------------------------------


def plan_for(chunks: int, held: Bitmap | None = None) -> DownloadPlan:
    return DownloadPlan(manifest_for(blob(chunks * CHUNK_SIZE - 100)), held)


def test_two_peers_split_the_work() -> None:
    """Two peers get different chunks and both serve part of the blob."""
    plan = plan_for(20)
    plan.add_peer("a")
    plan.add_peer("b")
    first_a = plan.next_requests("a", 4)
    first_b = plan.next_requests("b", 4)
    assert len(first_a) == len(first_b) == 4
    assert not set(first_a) & set(first_b)
    rounds = 0
    while not plan.complete:
        rounds += 1
        for peer in ("a", "b"):
            for index in plan.outstanding(peer)[:2]:
                plan.chunk_received(peer, index, ok=True)
            plan.next_requests(peer, 4)
    assert plan.held_count == 20
    assert plan.served_by["a"] > 0 and plan.served_by["b"] > 0
    assert plan.served_by["a"] + plan.served_by["b"] == 20
    assert plan.missing() == []
    assert plan.held_bytes == plan.manifest.size


def test_window_caps_outstanding_requests() -> None:
    """A peer never has more than `window` chunks outstanding."""
    plan = plan_for(10)
    plan.add_peer("a")
    assert plan.next_requests("a", 3) == [0, 1, 2]
    assert plan.next_requests("a", 3) == []
    plan.chunk_received("a", 1, ok=True)
    assert plan.next_requests("a", 3) == [3]
    assert plan.outstanding("a") == [0, 2, 3]


def test_bad_chunk_is_replanned_to_another_peer() -> None:
    """A chunk that failed verification goes to another peer, never back to the liar."""
    plan = plan_for(4)
    plan.add_peer("liar")
    plan.add_peer("honest")
    assert plan.next_requests("liar", 1) == [0]
    plan.chunk_received("liar", 0, ok=False)
    assert plan.strikes("liar") == 1
    assert 0 not in plan.next_requests("liar", 3)
    assert plan.next_requests("honest", 1) == [0]
    plan.chunk_received("honest", 0, ok=True)
    assert plan.is_held(0)


def test_liar_is_marked_bad_after_max_strikes() -> None:
    """After MAX_STRIKES bad chunks a peer is dropped, its work returned, and it stays bad."""
    plan = plan_for(MAX_STRIKES + 5)
    plan.add_peer("liar")
    plan.add_peer("honest")
    for strike in range(1, MAX_STRIKES + 1):
        requested = plan.next_requests("liar", 2)
        assert requested
        plan.chunk_received("liar", requested[0], ok=False)
        assert plan.strikes("liar") == strike
    assert plan.bad_peers == {"liar"}
    assert plan.peers == ["honest"]
    assert plan.outstanding("liar") == []
    assert plan.next_requests("liar", 4) == []
    assert plan.add_peer("liar") is False
    while not plan.complete:
        for index in plan.next_requests("honest", 4):
            plan.chunk_received("honest", index, ok=True)
    assert plan.served_by["honest"] == plan.manifest.chunk_count
    assert plan.served_by["liar"] == 0


def test_strikes_survive_reconnect() -> None:
    """Removing and re-adding a peer keeps its strikes and the chunks it lied about."""
    plan = plan_for(5)
    plan.add_peer("p")
    plan.next_requests("p", 1)
    plan.chunk_received("p", 0, ok=False)
    plan.remove_peer("p")
    plan.add_peer("p")
    assert plan.strikes("p") == 1
    assert 0 not in plan.next_requests("p", 5)


def test_endgame_duplicates_outstanding_chunks() -> None:
    """With nothing unrequested left, an idle peer duplicates what another will send last;
    the first copy wins and the other's request becomes redundant."""
    plan = plan_for(3)
    plan.add_peer("slow")
    plan.add_peer("fast")
    assert plan.next_requests("slow", 3) == [0, 1, 2]
    assert plan.in_endgame
    assert plan.next_requests("fast", 2) == [2, 1]  # the tail of slow's queue
    redundant = plan.chunk_received("fast", 2, ok=True)
    assert redundant == ["slow"]
    assert plan.outstanding("slow") == [0, 1]
    # the late duplicate is ignored and not counted
    assert plan.chunk_received("slow", 2, ok=True) == []
    assert plan.served_by == {"slow": 0, "fast": 1}
    assert plan.next_requests("fast", 2) == []  # still busy with 1: no more duplicates
    plan.chunk_received("fast", 1, ok=True)
    assert plan.next_requests("fast", 2) == [0]
    plan.chunk_received("slow", 0, ok=True)
    assert plan.complete
    assert plan.outstanding("fast") == []


def test_a_busy_peer_never_duplicates() -> None:
    """Equally slow holders each keep to their own chunks until they run dry: no copies are
    asked for while a peer still has requests of its own out."""
    plan = plan_for(8)
    for peer in ("a", "b"):
        plan.add_peer(peer)
    assert plan.next_requests("a", 4) == [0, 1, 2, 3]
    assert plan.next_requests("b", 4) == [4, 5, 6, 7]
    plan.chunk_received("a", 0, ok=True)
    assert plan.next_requests("a", 4) == []  # in the end-game, but a still has 1, 2, 3 out


def test_remove_peer_returns_its_outstanding_chunks() -> None:
    """A disconnected peer's outstanding chunks are returned and handed to another peer."""
    plan = plan_for(6)
    plan.add_peer("gone")
    plan.add_peer("stays")
    assert plan.next_requests("gone", 3) == [0, 1, 2]
    assert plan.next_requests("stays", 2) == [3, 4]
    assert plan.remove_peer("gone") == [0, 1, 2]
    assert plan.remove_peer("gone") == []
    assert plan.next_requests("stays", 5) == [0, 1, 2]
    with pytest.raises(LocalProtocolError):
        plan.next_requests("gone", 1)


def test_request_failed_returns_chunk_without_strike() -> None:
    """A busy/not-found answer puts the chunk back in the pool and costs no strike."""
    plan = plan_for(3)
    plan.add_peer("a")
    assert plan.next_requests("a", 1) == [0]
    plan.request_failed("a", 0)
    assert plan.strikes("a") == 0
    assert plan.outstanding("a") == []
    assert plan.next_requests("a", 1) == [0]


def test_plan_resumes_from_held_bitmap() -> None:
    """Chunks already held are never requested; a full bitmap is complete at once."""
    held = Bitmap(5)
    for index in (0, 2, 3):
        held.set(index)
    plan = plan_for(5, held)
    plan.add_peer("a")
    assert plan.held_count == 3
    assert plan.missing() == [1, 4]
    assert plan.next_requests("a", 10) == [1, 4]
    assert DownloadPlan(manifest_for(b""), Bitmap(0)).complete
    assert plan_for(2, Bitmap.full(2)).complete


def test_stalled_when_only_the_liar_remains() -> None:
    """The plan reports it cannot progress when no peer in use may be asked for a chunk."""
    plan = plan_for(1)
    assert plan.stalled  # no peers at all
    plan.add_peer("liar")
    assert plan.next_requests("liar", 1) == [0]
    assert not plan.stalled
    plan.chunk_received("liar", 0, ok=False)
    assert plan.next_requests("liar", 1) == []
    assert plan.stalled
    plan.add_peer("honest")
    assert not plan.stalled


def test_plan_rejects_misuse() -> None:
    """Unknown peers, out-of-range indices and a bitmap of the wrong size raise."""
    plan = plan_for(2)
    with pytest.raises(LocalProtocolError):
        plan.next_requests("nobody", 1)
    plan.add_peer("a")
    with pytest.raises(LocalProtocolError):
        plan.chunk_received("a", 2, ok=True)
    with pytest.raises(LocalProtocolError):
        plan.request_failed("a", -1)
    with pytest.raises(LocalProtocolError):
        DownloadPlan(plan.manifest, Bitmap(3))
