"""The sans-IO peer session: handshake, frames, limits, timers (protocol/session.py).

Two sessions are wired back to back in memory (h11's ConnectionPair, wsproto's
test_connection); where it makes sense each test runs in both directions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from builders import identity_from_seed
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair, NoiseConnection

from protocol.codec import pack
from protocol.entry import create_entry
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.frames import (
    BlobCancel,
    BlobData,
    BlobError,
    BlobGet,
    Clock,
    Entries,
    ErrorFrame,
    Frame,
    HaveBlobs,
    Ping,
    Pong,
    UnknownFrame,
    Want,
    encode_frame,
)
from protocol.identity import Identity
from protocol.session import (
    BINDING_PREFIX,
    NOISE_PROTOCOL_NAME,
    OPEN_NETWORK_KEY,
    PROLOGUE,
    FrameReceived,
    FrameRejected,
    HandshakeComplete,
    HandshakeError,
    Session,
    SessionClosed,
    SessionState,
    binding_payload,
    network_id,
    verify_binding,
)

ALICE = identity_from_seed("session test alice")
BOB = identity_from_seed("session test bob")
MALLORY = identity_from_seed("session test mallory")
PRIVATE_KEY = hashlib.sha256(b"a private community").digest()
BLOB = b"\xb1" * 32

Transcript = list[tuple[str, bytes]]


def make(identity: Identity, initiator: bool, now: float = 0.0, **kwargs: object) -> Session:
    kwargs.setdefault("network_key", OPEN_NETWORK_KEY)
    return Session(identity, initiator=initiator, now=now, **kwargs)  # type: ignore[arg-type]


def pump(a: Session, b: Session, now: float = 0.0) -> Transcript:
    """Move data_to_send between a and b until both are quiet; return what went where."""
    transcript: Transcript = []
    moved = True
    while moved:
        moved = False
        for src, dst, label in ((a, b, "a>b"), (b, a, "b>a")):
            for message in src.data_to_send():
                transcript.append((label, message))
                dst.receive_message(message, now)
                moved = True
    return transcript


def connected(**kwargs: object) -> tuple[Session, Session]:
    """An initiator (ALICE) and responder (BOB) after a completed handshake, events drained."""
    a = make(ALICE, True, **kwargs)
    b = make(BOB, False, **kwargs)
    a.initiate()
    pump(a, b)
    assert a.state is SessionState.OPEN and b.state is SessionState.OPEN
    a.events()
    b.events()
    return a, b


def oriented(direction: str, **kwargs: object) -> tuple[Session, Session]:
    """(sender, receiver) of a connected pair: the initiator sends, or the responder does."""
    a, b = connected(**kwargs)
    return (a, b) if direction == "initiator" else (b, a)


DIRECTIONS = pytest.mark.parametrize("direction", ["initiator", "responder"])


def closed_event(session: Session) -> SessionClosed:
    events = [e for e in session.events() if isinstance(e, SessionClosed)]
    assert len(events) == 1
    return events[0]


class RawPeer:
    """A hand-driven Noise endpoint, to play a peer that lies in its handshake payload."""

    def __init__(self, initiator: bool, psk: bytes = OPEN_NETWORK_KEY) -> None:
        key = X25519PrivateKey.generate()
        raw = serialization.Encoding.Raw
        self.static_public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
        self.noise = NoiseConnection.from_name(NOISE_PROTOCOL_NAME)
        self.noise.set_psks(psk)
        self.noise.set_prologue(PROLOGUE)
        if initiator:
            self.noise.set_as_initiator()
        else:
            self.noise.set_as_responder()
        self.noise.set_keypair_from_private_bytes(
            Keypair.STATIC,
            key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
        )
        self.noise.start_handshake()

    def write(self, payload: bytes = b"") -> bytes:
        return bytes(self.noise.write_message(payload))

    def read(self, message: bytes) -> bytes:
        return bytes(self.noise.read_message(message))


def forged_payload(claimed: Identity, signer: Identity, static_public: bytes) -> bytes:
    """A binding that claims `claimed`'s id but is signed by `signer`."""
    return pack([claimed.node_id, signer.sign(BINDING_PREFIX + static_public)])


def run_raw_handshake(
    session_initiates: bool, payload_for: Callable[[RawPeer], bytes]
) -> tuple[Session, RawPeer, bool]:
    """Handshake a Session against a RawPeer whose payload is `payload_for(raw)`.

    Returns the session, the raw peer, and whether the session sent its own binding message.
    """
    if session_initiates:
        session = make(ALICE, True)
        raw = RawPeer(initiator=False)
        session.initiate()
        (message_1,) = session.data_to_send()
        raw.read(message_1)
        session.receive_message(raw.write(payload_for(raw)), 0.0)
        return session, raw, bool(session.data_to_send())
    session = make(BOB, False)
    raw = RawPeer(initiator=True)
    session.receive_message(raw.write(), 0.0)
    (message_2,) = session.data_to_send()
    raw.read(message_2)
    session.receive_message(raw.write(payload_for(raw)), 0.0)
    return session, raw, True


# --- identity binding and network key -------------------------------------------------------------


def test_binding_payload_matches_the_vector(vectors: dict[str, Any]) -> None:
    """binding_payload reproduces the vector's bytes; verify_binding returns the author's id."""
    author = identity_from_seed(vectors["author"]["seed_string"])
    assert author.node_id.hex() == vectors["author"]["public_key"]
    binding = vectors["identity_binding"]
    static_private = bytes.fromhex(binding["noise_static_private"])
    static_public = (
        X25519PrivateKey.from_private_bytes(static_private)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    assert static_public.hex() == binding["noise_static_public"]
    assert (BINDING_PREFIX + static_public).hex() == binding["signed_message"]
    payload = binding_payload(author, static_public)
    assert payload.hex() == binding["payload"]
    assert payload == pack([author.node_id, bytes.fromhex(binding["signature"])])
    assert verify_binding(payload, static_public) == author.node_id


def test_session_uses_the_given_static_key(vectors: dict[str, Any]) -> None:
    """A Session built with the vector's static key presents the vector's static public key."""
    binding = vectors["identity_binding"]
    session = make(ALICE, True, static_private=bytes.fromhex(binding["noise_static_private"]))
    assert session.static_public.hex() == binding["noise_static_public"]


def test_verify_binding_rejects_another_static_key(vectors: dict[str, Any]) -> None:
    """A binding made for one Noise static key does not verify for another."""
    static_public = bytes.fromhex(vectors["identity_binding"]["noise_static_public"])
    payload = bytes.fromhex(vectors["identity_binding"]["payload"])
    with pytest.raises(HandshakeError) as info:
        verify_binding(payload, b"\x00" * 32)
    assert info.value.field == "handshake.signature"
    assert isinstance(info.value, RemoteProtocolError)
    with pytest.raises(HandshakeError):
        verify_binding(payload[:-1] + bytes([payload[-1] ^ 1]), static_public)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"", "handshake.payload"),
        (pack([b"x" * 32]), "handshake.payload"),
        (pack({"id": b"x"}), "handshake.payload"),
        (pack([b"x" * 31, b"s" * 64]), "handshake.node_id"),
        (pack([b"x" * 32, b"s" * 63]), "handshake.signature"),
        (pack(["x" * 32, b"s" * 64]), "handshake.node_id"),
        (pack([b"x" * 32, b"s" * 64]) + b"\x00", "handshake.payload"),
    ],
)
def test_verify_binding_rejects_malformed_payloads(payload: bytes, field: str) -> None:
    """Malformed handshake payloads raise HandshakeError naming the field."""
    with pytest.raises(HandshakeError) as info:
        verify_binding(payload, b"\x01" * 32)
    assert info.value.field == field


def test_open_network_key_and_network_id(vectors: dict[str, Any]) -> None:
    """OPEN_NETWORK_KEY is SHA-256 of the open network's name; network_id is 8 hex digits."""
    assert OPEN_NETWORK_KEY.hex() == vectors["open_network_key"]
    assert hashlib.sha256(b"p2pu-open-network-v1").digest() == OPEN_NETWORK_KEY
    assert network_id(OPEN_NETWORK_KEY) == hashlib.sha256(OPEN_NETWORK_KEY).hexdigest()[:8]
    assert len(network_id(PRIVATE_KEY)) == 8
    assert network_id(PRIVATE_KEY) != network_id(OPEN_NETWORK_KEY)


# --- handshake ------------------------------------------------------------------------------------


def test_handshake_completes_and_both_learn_each_others_id() -> None:
    """Three messages (48, 197, 165 bytes) and both sides are OPEN knowing the other's id."""
    a = make(ALICE, True)
    b = make(BOB, False)
    a.initiate()
    transcript = pump(a, b)
    assert [(label, len(m)) for label, m in transcript] == [("a>b", 48), ("b>a", 197), ("a>b", 165)]
    assert a.events() == [HandshakeComplete(BOB.node_id)]
    assert b.events() == [HandshakeComplete(ALICE.node_id)]
    assert a.peer_id == BOB.node_id and b.peer_id == ALICE.node_id


def test_private_network_key_handshake_completes() -> None:
    """Two peers with the same private network key complete the handshake."""
    a, _ = connected(network_key=PRIVATE_KEY)
    assert a.peer_id == BOB.node_id


def test_node_ids_never_travel_in_clear() -> None:
    """Neither node id nor binding signature appears in the handshake bytes."""
    a = make(ALICE, True)
    b = make(BOB, False)
    a.initiate()
    wire = b"".join(m for _, m in pump(a, b))
    assert ALICE.node_id not in wire and BOB.node_id not in wire
    assert a.static_public not in wire and b.static_public not in wire


def test_wrong_network_key_reveals_nothing() -> None:
    """With different keys the responder sends nothing after message 1 and neither completes."""
    a = make(ALICE, True, network_key=OPEN_NETWORK_KEY)
    b = make(BOB, False, network_key=PRIVATE_KEY)
    a.initiate()
    transcript = pump(a, b)
    assert [label for label, _ in transcript] == ["a>b"]
    sent_by_responder = b"".join(m for label, m in transcript if label == "b>a")
    assert sent_by_responder == b""
    assert BOB.node_id not in b"".join(m for _, m in transcript)
    assert ALICE.node_id not in b"".join(m for _, m in transcript)
    closed = closed_event(b)
    assert (closed.reason, closed.remote_error) == ("handshake", True)
    assert "wrong network key" in closed.detail
    assert b.state is SessionState.CLOSED and b.peer_id is None
    assert a.state is SessionState.HANDSHAKING and a.events() == []
    a.handle_timer(10.0)
    assert closed_event(a).reason == "timeout"
    assert a.data_to_send() == []


@pytest.mark.parametrize("forger_initiates", [True, False])
def test_binding_signed_by_another_key_is_refused(forger_initiates: bool) -> None:
    """A peer claiming BOB's id with a binding signed by MALLORY's key is refused."""
    session, _, _ = run_raw_handshake(
        not forger_initiates, lambda raw: forged_payload(BOB, MALLORY, raw.static_public)
    )
    closed = closed_event(session)
    assert (closed.reason, closed.remote_error) == ("handshake", True)
    assert session.state is SessionState.CLOSED and session.peer_id is None


@pytest.mark.parametrize("forger_initiates", [True, False])
def test_binding_replayed_from_another_static_key_is_refused(forger_initiates: bool) -> None:
    """A genuine binding of BOB's for some other Noise static key does not transfer."""
    session, _, _ = run_raw_handshake(
        not forger_initiates, lambda raw: binding_payload(BOB, b"\x07" * 32)
    )
    assert closed_event(session).reason == "handshake"


def test_refused_responder_binding_means_initiator_never_sends_its_id() -> None:
    """An initiator that rejects message 2 does not send message 3 (its id stays hidden)."""
    _, _, sent_message_3 = run_raw_handshake(
        True, lambda raw: forged_payload(BOB, MALLORY, raw.static_public)
    )
    assert not sent_message_3


def test_honest_raw_peer_is_accepted() -> None:
    """The RawPeer helper with an honest binding completes (the forgery tests are meaningful)."""
    for session_initiates in (True, False):
        session, _, _ = run_raw_handshake(
            session_initiates, lambda raw: binding_payload(MALLORY, raw.static_public)
        )
        assert session.events() == [HandshakeComplete(MALLORY.node_id)]


@DIRECTIONS
def test_expected_peer_id_mismatch_is_refused(direction: str) -> None:
    """A side expecting another id than the peer presents refuses the handshake."""
    initiator_expects = direction == "initiator"
    a = make(ALICE, True, expected_peer_id=MALLORY.node_id if initiator_expects else None)
    b = make(BOB, False, expected_peer_id=None if initiator_expects else MALLORY.node_id)
    a.initiate()
    transcript = pump(a, b)
    checker = a if initiator_expects else b
    closed = closed_event(checker)
    assert (closed.reason, closed.remote_error) == ("wrong_peer", True)
    assert checker.peer_id is None
    if initiator_expects:
        assert [label for label, _ in transcript] == ["a>b", "b>a"]  # no message 3
        assert b.state is SessionState.HANDSHAKING


def test_expected_peer_id_match_is_accepted() -> None:
    """Expected ids that match on both sides let the handshake complete."""
    a = make(ALICE, True, expected_peer_id=BOB.node_id)
    b = make(BOB, False, expected_peer_id=ALICE.node_id)
    a.initiate()
    pump(a, b)
    assert a.state is SessionState.OPEN and b.state is SessionState.OPEN


def test_self_connection_is_refused_by_the_initiator() -> None:
    """Dialling ourselves ends at message 2: the initiator sees its own id and stops."""
    a = make(ALICE, True)
    b = make(ALICE, False)
    a.initiate()
    transcript = pump(a, b)
    assert [label for label, _ in transcript] == ["a>b", "b>a"]
    closed = closed_event(a)
    assert (closed.reason, closed.remote_error) == ("self_connection", False)


def test_self_connection_is_refused_by_the_responder() -> None:
    """A responder whose initiator presents the responder's own id refuses it."""
    session, _, _ = run_raw_handshake(False, lambda raw: binding_payload(BOB, raw.static_public))
    closed = closed_event(session)
    assert (closed.reason, closed.remote_error) == ("self_connection", False)


def test_message_1_with_a_payload_is_refused() -> None:
    """Message 1 must carry an empty payload."""
    b = make(BOB, False)
    raw = RawPeer(initiator=True)
    b.receive_message(raw.write(b"hello"), 0.0)
    assert closed_event(b).reason == "handshake"
    assert b.data_to_send() == []


@pytest.mark.parametrize("index", [0, 1, 2])
def test_tampered_handshake_message_ends_the_handshake(index: int) -> None:
    """Flipping a bit in any handshake message makes its reader close with "handshake"."""
    a = make(ALICE, True)
    b = make(BOB, False)
    a.initiate()
    parties = [(a, b), (b, a), (a, b)]
    for step, (src, dst) in enumerate(parties):
        (message,) = src.data_to_send()
        if step == index:
            message = message[:-1] + bytes([message[-1] ^ 0x80])
        dst.receive_message(message, 0.0)
        if step == index:
            closed = closed_event(dst)
            assert (closed.reason, closed.remote_error) == ("handshake", True)
            assert dst.data_to_send() == []
            return


def test_initiator_receiving_before_initiating_fails() -> None:
    """An initiator that gets a message before sending message 1 refuses it."""
    a = make(ALICE, True)
    a.receive_message(b"\x00" * 48, 0.0)
    assert closed_event(a).reason == "handshake"


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2), st.binary(max_size=300))
def test_garbage_at_any_handshake_step_never_raises(step: int, garbage: bytes) -> None:
    """Arbitrary bytes in place of any handshake message close the reader; nothing is raised."""
    a = make(ALICE, True)
    b = make(BOB, False)
    a.initiate()
    parties = [(a, b), (b, a), (a, b)]
    for current, (src, dst) in enumerate(parties):
        (message,) = src.data_to_send()
        if current == step:
            dst.receive_message(garbage, 0.0)
            assert dst.state is SessionState.CLOSED
            assert closed_event(dst).remote_error
            return
        dst.receive_message(message, 0.0)


# --- frames over an open session ------------------------------------------------------------------

ENTRY = create_entry(
    ALICE, seq=1, prev=None, timestamp_ms=1_790_000_000_000, kind="profile", body={"name": "Ana"}
)
APPLICATION_FRAMES: list[Frame] = [
    Clock(((ALICE.node_id, 4), (BOB.node_id, 0)), False),
    Entries((ENTRY, ENTRY.without_body())),
    Want(((ALICE.node_id, 1),)),
    HaveBlobs((BLOB,)),
    BlobGet(1, BLOB, "manifest", 0),
    BlobData(2, 0, b"piece", 10),
    BlobError(3, "not_found", "gone"),
    BlobCancel(4),
]


@DIRECTIONS
@pytest.mark.parametrize("frame", APPLICATION_FRAMES, ids=lambda f: type(f).__name__)
def test_application_frames_are_delivered(direction: str, frame: Frame) -> None:
    """Every application frame type arrives as FrameReceived, in either direction."""
    sender, receiver = oriented(direction)
    sender.send_frame(frame, 1.0)
    pump(sender, receiver, 1.0)
    assert receiver.events() == [FrameReceived(frame)]
    assert sender.events() == []


@DIRECTIONS
def test_many_frames_keep_their_order(direction: str) -> None:
    """A run of frames arrives complete and in order (nonces stay in step)."""
    sender, receiver = oriented(direction)
    frames = [Clock(((ALICE.node_id, n),), n == 99) for n in range(100)]
    for frame in frames:
        sender.send_frame(frame, 1.0)
    pump(sender, receiver, 1.0)
    assert receiver.events() == [FrameReceived(f) for f in frames]


@DIRECTIONS
def test_tampered_ciphertext_closes(direction: str) -> None:
    """A transport message that fails authentication closes the session and tells the peer."""
    sender, receiver = oriented(direction)
    sender.send_frame(Ping(1), 1.0)
    (message,) = sender.data_to_send()
    receiver.receive_message(bytes([message[0] ^ 1]) + message[1:], 1.0)
    closed = closed_event(receiver)
    assert (closed.reason, closed.remote_error) == ("decrypt", True)
    pump(receiver, sender, 1.0)
    told = closed_event(sender)
    assert (told.reason, told.remote_error) == ("peer_closed", False)
    assert told.detail.startswith("decrypt")


@DIRECTIONS
def test_replayed_message_closes(direction: str) -> None:
    """Delivering the same transport message twice fails the second time (nonce moved on)."""
    sender, receiver = oriented(direction)
    sender.send_frame(HaveBlobs((BLOB,)), 1.0)
    (message,) = sender.data_to_send()
    receiver.receive_message(message, 1.0)
    receiver.receive_message(message, 1.0)
    assert receiver.state is SessionState.CLOSED
    assert closed_event(receiver).reason == "decrypt"


@pytest.mark.parametrize("open_", [True, False], ids=["open", "handshaking"])
def test_oversized_message_closes(open_: bool) -> None:
    """A WebSocket message over 65535 bytes closes the session, open or not."""
    if open_:
        _, b = connected()
    else:
        b = make(BOB, False)
    b.receive_message(b"\x00" * 65536, 1.0)
    closed = closed_event(b)
    assert (closed.reason, closed.remote_error) == ("too_large", True)


@DIRECTIONS
def test_malformed_frame_is_rejected_but_session_stays_open(direction: str) -> None:
    """A frame that decrypts but does not decode is reported and dropped; the session goes on."""
    sender, receiver = oriented(direction)
    sender._send_encoded(pack(["want", [[ALICE.node_id, 0]]]), 1.0)
    sender.send_frame(Want(((ALICE.node_id, 1),)), 1.0)
    pump(sender, receiver, 1.0)
    rejected, received = receiver.events()
    assert isinstance(rejected, FrameRejected)
    assert rejected.field == "frame.want[0].seq" and not rejected.flooding
    assert received == FrameReceived(Want(((ALICE.node_id, 1),)))
    assert receiver.state is SessionState.OPEN


@DIRECTIONS
def test_unknown_frame_type_is_ignored(direction: str) -> None:
    """A frame of an unknown type produces no event and no reply."""
    sender, receiver = oriented(direction)
    sender.send_frame(UnknownFrame("from_the_future"), 1.0)
    sender._send_encoded(pack(["also_future", {"x": [1, 2]}]), 1.0)
    transcript = pump(sender, receiver, 1.0)
    assert len(transcript) == 2
    assert receiver.events() == [] and sender.events() == []
    assert receiver.state is SessionState.OPEN


@DIRECTIONS
def test_flood_is_rejected_then_closed(direction: str) -> None:
    """Over-rate frames are rejected with flooding=True, and sustained excess closes "flood"."""
    limits = {"frame_rate": 10.0, "frame_burst": 20.0, "flood_limit": 30.0, "flood_drain": 1.0}
    sender, receiver = oriented(direction, **limits)
    for n in range(60):
        sender.send_frame(Clock(((ALICE.node_id, n),), True), 1.0)
    pump(sender, receiver, 1.0)
    events = receiver.events()
    received = [e for e in events if isinstance(e, FrameReceived)]
    rejected = [e for e in events if isinstance(e, FrameRejected)]
    assert len(received) == 20
    assert len(rejected) == 30 and all(e.flooding for e in rejected)
    assert events[-1] == SessionClosed("flood", True, "sustained frame rate above 10/s")
    assert receiver.state is SessionState.CLOSED
    told = closed_event(sender)
    assert (told.reason, told.detail.split(":")[0]) == ("peer_closed", "flood")


@DIRECTIONS
def test_answers_to_our_own_blob_requests_are_exempt_from_the_rate_limit(direction: str) -> None:
    """blob_data answering an open request of ours is never rate-limited; unsolicited is."""
    limits = {"frame_rate": 10.0, "frame_burst": 20.0, "flood_limit": 1000.0}
    requester, server = oriented(direction, **limits)
    requester.send_frame(BlobGet(7, b"\x01" * 32, "chunk", 0), 1.0)
    pump(requester, server, 1.0)
    assert isinstance(server.events()[0], FrameReceived)
    pieces = 100
    for n in range(pieces):
        server.send_frame(BlobData(7, n * 10, b"x" * 10, pieces * 10), 1.0)
    assert server.send_credit(1.0) == 10  # serving solicited data spends no credit
    pump(server, requester, 1.0)
    events = requester.events()
    assert all(isinstance(e, FrameReceived) for e in events) and len(events) == pieces
    for _ in range(30):  # the request is complete: more data for it is unsolicited
        server._send_encoded(encode_frame(BlobData(7, 0, b"y", 1)), 1.0)
    pump(server, requester, 1.0)
    assert any(isinstance(e, FrameRejected) and e.flooding for e in requester.events())


@DIRECTIONS
def test_blob_requests_within_the_cap_are_exempt_from_the_rate_limit(direction: str) -> None:
    """New blob_get frames within the open-request cap are never rate-limited or charged."""
    limits = {"frame_rate": 10.0, "frame_burst": 20.0, "flood_limit": 1000.0}
    requester, server = oriented(direction, **limits)
    for round_ in range(5):  # 5 x 60 requests, each round answered before the next
        ids = range(round_ * 60, round_ * 60 + 60)
        for req_id in ids:
            requester.send_frame(BlobGet(req_id, b"\x01" * 32, "chunk", 0), 1.0)
        pump(requester, server, 1.0)
        events = server.events()
        assert len(events) == 60 and all(isinstance(e, FrameReceived) for e in events)
        for req_id in ids:
            server.send_frame(BlobError(req_id, "not_found"), 1.0)
        pump(server, requester, 1.0)
        requester.events()
    assert requester.send_credit(1.0) == 10  # opening requests spent no credit


def test_rate_limit_refills_over_time() -> None:
    """Frames at or under the rate are never rejected, however long it goes on."""
    sender, receiver = oriented("initiator", frame_rate=10.0, frame_burst=5.0, flood_limit=3.0)
    for tick in range(200):
        sender.send_frame(Ping(tick), tick / 10)
        pump(sender, receiver, tick / 10)
    assert receiver.events() == [] and receiver.state is SessionState.OPEN


def test_send_credit_mirrors_half_the_peers_burst() -> None:
    """send_credit starts at half the burst, falls with each frame sent, and refills with time."""
    a, _ = connected(frame_rate=10.0, frame_burst=20.0)
    assert a.send_credit(1.0) == 10
    for n in range(10):
        a.send_frame(Ping(n), 1.0)
    assert a.send_credit(1.0) == 0
    a.send_frame(Ping(99), 1.0)  # never refused on rate
    assert a.send_credit(1.0) == 0
    assert a.send_credit(1.5) == 4
    assert a.send_credit(100.0) == 10


# --- blob request bookkeeping ---------------------------------------------------------------------


@DIRECTIONS
def test_excess_blob_requests_are_rejected_and_answered_busy(direction: str) -> None:
    """A peer over the open-request cap gets FrameRejected on our side and blob_error busy."""
    requester, server = oriented(direction)
    server._max_open_requests = 2
    for req_id in (1, 2, 3):
        requester.send_frame(BlobGet(req_id, BLOB, "chunk", req_id), 1.0)
    pump(requester, server, 1.0)
    events = server.events()
    assert [type(e) for e in events] == [FrameReceived, FrameReceived, FrameRejected]
    assert events[2].field == "frame.req_id"
    assert requester.events() == [FrameReceived(BlobError(3, "busy", "too many open requests"))]
    assert server.requests_serving == 2 and requester.requests_in_flight == 2


@DIRECTIONS
def test_finished_and_cancelled_requests_free_their_slots(direction: str) -> None:
    """Final blob_data, blob_error and blob_cancel each close one open request on both sides."""
    requester, server = oriented(direction)
    for req_id in (1, 2, 3):
        requester.send_frame(BlobGet(req_id, BLOB, "chunk", 0), 1.0)
    pump(requester, server, 1.0)
    assert server.requests_serving == 3 and requester.requests_in_flight == 3
    server.send_frame(BlobData(1, 0, b"ab", 4), 1.0)  # not final
    pump(requester, server, 1.0)
    assert server.requests_serving == 3 and requester.requests_in_flight == 3
    server.send_frame(BlobData(1, 2, b"cd", 4), 1.0)  # final
    server.send_frame(BlobError(2, "not_found", ""), 1.0)
    requester.send_frame(BlobCancel(3), 1.0)
    pump(requester, server, 1.0)
    assert server.requests_serving == 0 and requester.requests_in_flight == 0


def test_own_blob_request_cap_and_duplicate_ids_raise() -> None:
    """Our own blob_get over the cap, or reusing an open id, raises and changes nothing."""
    a, _ = connected(max_open_requests=2)
    a.send_frame(BlobGet(1, BLOB, "chunk", 0), 1.0)
    with pytest.raises(LocalProtocolError):
        a.send_frame(BlobGet(1, BLOB, "chunk", 1), 1.0)
    a.send_frame(BlobGet(2, BLOB, "chunk", 1), 1.0)
    a.data_to_send()
    with pytest.raises(LocalProtocolError):
        a.send_frame(BlobGet(3, BLOB, "chunk", 2), 1.0)
    assert a.requests_in_flight == 2 and a.data_to_send() == []


def test_duplicate_incoming_request_id_is_rejected() -> None:
    """A peer reusing an open request id gets FrameRejected, without a busy answer."""
    a, b = connected()
    a._send_encoded(encode_frame(BlobGet(5, BLOB, "chunk", 0)), 1.0)
    a._send_encoded(encode_frame(BlobGet(5, BLOB, "chunk", 1)), 1.0)
    pump(a, b, 1.0)
    first, second = b.events()
    assert isinstance(first, FrameReceived) and isinstance(second, FrameRejected)
    assert a.events() == []


# --- keep-alive and timeouts ----------------------------------------------------------------------


@DIRECTIONS
def test_ping_pong_keep_alive(direction: str) -> None:
    """After 15 s without data a ping goes out; the pong comes back unseen and resets the clock."""
    pinger, peer = oriented(direction)
    assert pinger.get_timer() == 15.0
    pinger.handle_timer(14.9)
    assert pinger.data_to_send() == []
    pinger.handle_timer(15.0)
    transcript = pump(pinger, peer, 15.0)
    assert len(transcript) == 2  # ping, pong
    assert pinger.events() == [] and peer.events() == []
    assert pinger.get_timer() == 30.0
    assert pinger.state is SessionState.OPEN


def test_pings_repeat_then_idle_timeout_closes() -> None:
    """With no data at all, pings go out at 15 and 30 s and the session closes at 45 s."""
    a, _ = connected()
    sent = []
    now = 0.0
    while a.state is SessionState.OPEN:
        now = a.get_timer()
        a.handle_timer(now)
        sent.append((now, len(a.data_to_send())))
    assert sent == [(15.0, 1), (30.0, 1), (45.0, 1)]  # the last message is the error frame
    closed = closed_event(a)
    assert (closed.reason, closed.remote_error) == ("timeout", False)
    assert a.get_timer() is None


def test_any_received_frame_postpones_the_ping() -> None:
    """Receiving data counts as liveness; the ping timer restarts from it."""
    a, b = connected()
    b.send_frame(HaveBlobs(()), 10.0)
    pump(a, b, 10.0)
    assert a.get_timer() == 25.0


def test_handshake_timeout() -> None:
    """A handshake not finished within 10 s closes with "timeout"."""
    a = make(ALICE, True, now=100.0)
    a.initiate()
    assert a.get_timer() == 110.0
    a.handle_timer(109.0)
    assert a.state is SessionState.HANDSHAKING
    a.handle_timer(110.0)
    closed = closed_event(a)
    assert (closed.reason, closed.remote_error) == ("timeout", False)


# --- misuse and closing ---------------------------------------------------------------------------


def test_send_frame_before_open_raises_and_changes_nothing() -> None:
    """send_frame while HANDSHAKING raises LocalProtocolError; state, output, events unchanged."""
    a = make(ALICE, True)
    a.initiate()
    queued = a.data_to_send()
    with pytest.raises(LocalProtocolError):
        a.send_frame(Ping(1), 0.0)
    assert a.state is SessionState.HANDSHAKING
    assert a.data_to_send() == [] and a.events() == []
    b = make(BOB, False)
    for message in queued:
        b.receive_message(message, 0.0)
    pump(a, b)
    assert a.state is SessionState.OPEN  # the refused call did not disturb the handshake


def test_initiate_misuse_raises() -> None:
    """initiate() on a responder, twice, or after the handshake raises LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        make(BOB, False).initiate()
    a = make(ALICE, True)
    a.initiate()
    with pytest.raises(LocalProtocolError):
        a.initiate()
    assert len(a.data_to_send()) == 1
    opened, _ = connected()
    with pytest.raises(LocalProtocolError):
        opened.initiate()


def test_send_frame_after_close_raises() -> None:
    """A CLOSED session refuses to send and ignores late messages."""
    a, b = connected()
    b.send_frame(Ping(1), 1.0)
    late = b.data_to_send()
    a.close()
    a.events()
    with pytest.raises(LocalProtocolError):
        a.send_frame(Ping(2), 1.0)
    for message in late:
        a.receive_message(message, 1.0)
    assert a.events() == [] and a.state is SessionState.CLOSED


@DIRECTIONS
def test_close_tells_the_peer_and_is_idempotent(direction: str) -> None:
    """close() sends one error frame and one SessionClosed; a second close is a no-op."""
    closer, peer = oriented(direction)
    closer.close("shutdown", "node stopping")
    closer.close("shutdown")
    assert closer.events() == [SessionClosed("shutdown", False, "node stopping")]
    pump(closer, peer, 1.0)
    assert peer.events() == [SessionClosed("peer_closed", False, "shutdown: node stopping")]
    assert closer.data_to_send() == [] and peer.data_to_send() == []


def test_close_with_a_bad_code_raises_and_changes_nothing() -> None:
    """close() with an invalid code raises LocalProtocolError and leaves the session open."""
    a, _ = connected()
    with pytest.raises(LocalProtocolError):
        a.close("Not A Code")
    assert a.state is SessionState.OPEN and a.data_to_send() == [] and a.events() == []


def test_close_during_handshake_sends_nothing() -> None:
    """Closing before the handshake ends queues no bytes (there is no key to send with)."""
    b = make(BOB, False)
    b.close("shutdown")
    assert b.data_to_send() == []
    assert b.events() == [SessionClosed("shutdown", False, "")]


def test_error_frames_are_sent_only_by_close() -> None:
    """send_frame refuses an ErrorFrame; close() is the way to end a session."""
    a, _ = connected()
    with pytest.raises(LocalProtocolError):
        a.send_frame(ErrorFrame("bye"), 1.0)
    assert a.state is SessionState.OPEN


def test_oversized_frame_is_refused_locally() -> None:
    """send_frame raises for a frame that would not fit and queues nothing."""
    a, _ = connected()
    with pytest.raises(LocalProtocolError):
        a.send_frame(HaveBlobs((BLOB,) * 2000), 1.0)
    assert a.data_to_send() == []


def test_constructor_validates_keys() -> None:
    """A network key, static key or expected id of the wrong size raises LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        make(ALICE, True, network_key=b"short")
    with pytest.raises(LocalProtocolError):
        make(ALICE, True, static_private=b"short")
    with pytest.raises(LocalProtocolError):
        make(ALICE, True, expected_peer_id=b"short")


def test_pong_is_not_surfaced() -> None:
    """An unsolicited pong is consumed silently."""
    a, b = connected()
    a.send_frame(Pong(3), 1.0)
    pump(a, b, 1.0)
    assert b.events() == [] and a.events() == []


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_after_the_handshake_closes_without_raising(garbage: bytes) -> None:
    """Arbitrary bytes on an open session close it with "decrypt"; nothing is raised."""
    _, b = connected()
    b.receive_message(garbage, 1.0)
    assert closed_event(b).reason == "decrypt"
