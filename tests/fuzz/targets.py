"""Fuzz targets (issue 12, item 6): entry decoding, frame decoding, record validation and the
session state machine. Each takes arbitrary bytes and fails (raises) only on a real defect:

- an exception other than the protocol's own (`ProtocolError` and its subclasses) escapes;
- something invalid is accepted: an entry whose header is not canonical or whose body does not
  hash to the header, a frame that does not survive encode -> decode, a record that passed
  validation but breaks the rules re-checked here;
- the session raises, or emits an event of an unknown kind.

Run them with atheris (`python tests/fuzz/run.py NAME`) or over fixed inputs (the tests in
`test_fuzz.py` do both: a short coverage-guided run, and the seed corpus).
"""

from __future__ import annotations

import hashlib
from typing import Any

from protocol.codec import pack
from protocol.entry import decode_body, decode_entry
from protocol.errors import ProtocolError
from protocol.frames import Entries, UnknownFrame, decode_frame, encode_frame
from protocol.identity import Identity
from protocol.records import KNOWN_KINDS, validate_record
from protocol.session import (
    OPEN_NETWORK_KEY,
    FrameReceived,
    FrameRejected,
    HandshakeComplete,
    Session,
    SessionClosed,
    SessionState,
)

_KINDS = sorted(KNOWN_KINDS)
_EVENTS = (FrameReceived, FrameRejected, HandshakeComplete, SessionClosed)
_IDENTITIES = tuple(Identity.from_private_bytes(bytes([i]) * 32) for i in (1, 2))


def fuzz_entry(data: bytes) -> None:
    """Entry wire bytes: refused with a ProtocolError, or accepted only if really well-formed."""
    try:
        entry = decode_entry(data)
    except ProtocolError:
        return
    assert entry.header.encode() == entry.header_bytes, "a non-canonical header was accepted"
    if entry.body_bytes is not None:
        assert hashlib.sha256(entry.body_bytes).digest() == entry.header.body_hash
        assert len(entry.body_bytes) == entry.header.body_size
    assert entry.header.seq >= 1 and (entry.header.prev is None) == (entry.header.seq == 1)


def fuzz_frame(data: bytes) -> None:
    """Frame plaintext: refused with a ProtocolError, or decoded to a frame that re-encodes to
    something that decodes to the same frame."""
    try:
        frame = decode_frame(data)
    except ProtocolError:
        return
    if isinstance(frame, UnknownFrame):
        return
    again = decode_frame(encode_frame(frame))
    if isinstance(frame, Entries):
        assert [e.id for e in again.entries] == [e.id for e in frame.entries]
    else:
        assert again == frame, f"{frame!r} does not survive a round trip"


def fuzz_record(data: bytes) -> None:
    """A record body for each kind (the first byte picks it): refused or valid, nothing else."""
    if not data:
        return
    kind = _KINDS[data[0] % len(_KINDS)]
    try:
        body = decode_body(data[1:])
        validate_record(kind, body)
    except ProtocolError:
        return
    assert isinstance(body, dict) and all(isinstance(k, str) for k in body)
    assert decode_body(pack(body)) == body


def _open_pair() -> tuple[Session, Session]:
    initiator = Session(_IDENTITIES[0], initiator=True, network_key=OPEN_NETWORK_KEY, now=0.0,
                        static_private=b"\x03" * 32)
    responder = Session(_IDENTITIES[1], initiator=False, network_key=OPEN_NETWORK_KEY, now=0.0,
                        static_private=b"\x04" * 32)
    initiator.initiate()
    for _ in range(3):
        for message in initiator.data_to_send():
            responder.receive_message(message, 0.0)
        for message in responder.data_to_send():
            initiator.receive_message(message, 0.0)
    assert initiator.state is SessionState.OPEN and responder.state is SessionState.OPEN
    initiator.events()
    responder.events()
    return initiator, responder


def fuzz_session(data: bytes) -> None:
    """A script of operations on an open session: frames the peer encrypts (any plaintext), raw
    messages, clock jumps, timers and closes. The session never raises."""
    initiator, responder = _open_pair()
    now, pos = 0.0, 0
    while pos < len(data) and responder.state is not SessionState.CLOSED:
        op, size = data[pos] % 5, data[pos + 1] if pos + 1 < len(data) else 0
        chunk = data[pos + 2:pos + 2 + size]
        pos += 2 + size
        if op == 0:  # a frame from the peer, correctly encrypted
            responder.receive_message(initiator._noise.encrypt(chunk), now)
        elif op == 1:  # a raw message (garbage, replay or tampering)
            responder.receive_message(chunk, now)
        elif op == 2:
            now += size / 10
            if responder.get_timer() is not None:
                responder.handle_timer(now)
        elif op == 3:
            responder.data_to_send()
        else:
            responder.close("closed", chunk.decode("utf-8", "replace"))
        for event in responder.events():
            assert isinstance(event, _EVENTS), f"unknown event {event!r}"
    responder.data_to_send()


TARGETS: dict[str, Any] = {
    "entry": fuzz_entry,
    "frame": fuzz_frame,
    "record": fuzz_record,
    "session": fuzz_session,
}
