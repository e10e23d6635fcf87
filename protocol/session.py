"""The peer session: Noise handshake, then encrypted frames, as a sans-IO state machine.

One `Session` per WebSocket (PROTOCOL.md sections 1-4). The caller moves bytes; the session never
touches a socket or a clock:

- ``receive_message(data, now)`` with each binary WebSocket message received;
- ``data_to_send()`` for the binary WebSocket messages to send, in order;
- ``next_event()`` / ``events()`` for what happened (`HandshakeComplete`, `FrameReceived`,
  `FrameRejected`, `SessionClosed`);
- ``send_frame(frame, now)`` once OPEN; ``get_timer()`` / ``handle_timer(now)`` for keep-alive and
  timeouts; ``close(reason)`` to end it (then send what `data_to_send` holds and close the socket).

Rules it keeps:

- Handshake ``Noise_XXpsk0_25519_ChaChaPoly_SHA256``, prologue ``b"p2pu/1"``, psk = network key.
  Message 1 carries nothing; messages 2 and 3 carry the identity binding ``[node_id, signature]``
  (`binding_payload`), checked against the static key Noise authenticated (`verify_binding`).
  A responder that cannot read message 1 (wrong network key) sends nothing at all, so an outsider
  learns nothing about it; an initiator that dislikes message 2 never sends message 3, so it
  reveals its own id only to a peer it has verified.
- After the handshake a peer's misbehaviour is reported, not fatal, when it is one bad frame
  (`FrameRejected`: the node lowers the peer's score); it is fatal when the stream itself can no
  longer be trusted or afforded (undecryptable or oversized message, sustained flooding).
- `SessionClosed` is emitted exactly once. ``remote_error`` is True when the peer broke the
  protocol (the node should lower its score), False for timeouts, our own close, a self-connection
  and the peer's own orderly ``error`` frame.
"""

from __future__ import annotations

import enum
import hashlib
from collections import deque
from dataclasses import dataclass
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from noise.connection import Keypair, NoiseConnection
from noise.exceptions import (
    NoiseHandshakeError,
    NoiseInvalidMessage,
    NoiseMaxNonceError,
    NoiseValueError,
)

from .codec import pack, unpack_strict
from .errors import LocalProtocolError, MalformedError, RemoteProtocolError
from .frames import (
    MAX_FRAME_SIZE,
    MAX_MESSAGE_LENGTH,
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
    WantBodies,
    decode_frame,
    encode_frame,
)
from .identity import NODE_ID_SIZE, SIGNATURE_SIZE, Identity, verify_signature

NOISE_PROTOCOL_NAME = b"Noise_XXpsk0_25519_ChaChaPoly_SHA256"
PROLOGUE = b"p2pu/1"
BINDING_PREFIX = b"p2pu-noise-static-key:"
#: The network key of the open network; a private community picks its own 32 bytes.
OPEN_NETWORK_KEY = hashlib.sha256(b"p2pu-open-network-v1").digest()
NETWORK_KEY_SIZE = 32
STATIC_KEY_SIZE = 32
WEBSOCKET_PATH = "/p2pu/v1"

#: Largest WebSocket message accepted (the Noise message limit); larger closes the session.
MAX_MESSAGE_SIZE = 65535
#: Blob requests one side may have open at the other at once.
MAX_OPEN_REQUESTS = 64
#: Frames per second a peer may send on average, and the burst it may save up.
FRAME_RATE = 500.0
FRAME_BURST = 1000.0
#: Over-rate frames tolerated: each dropped frame adds 1, the count drains at FLOOD_DRAIN/s;
#: above FLOOD_LIMIT the session closes with reason "flood".
FLOOD_LIMIT = 500.0
FLOOD_DRAIN = 50.0

_PING_INTERVAL = 15.0
_IDLE_TIMEOUT = 45.0
_HANDSHAKE_TIMEOUT = 10.0

#: Frames that pass straight through to the node (no bookkeeping here).
_PLAIN_FRAMES = frozenset({Clock, Entries, Want, WantBodies, HaveBlobs})
_BINDING_PAYLOAD_SIZE = 2 + (2 + NODE_ID_SIZE) + (2 + SIGNATURE_SIZE)
_NOISE_ERRORS = (
    InvalidTag,
    ValueError,
    TypeError,
    NoiseHandshakeError,
    NoiseInvalidMessage,
    NoiseMaxNonceError,
    NoiseValueError,
)


class HandshakeError(RemoteProtocolError):
    """The peer's handshake cannot be accepted (unreadable, bad binding, wrong or own id).

    Attributes:
        code: the `SessionClosed.reason` it leads to (``handshake``, ``wrong_peer``,
            ``self_connection``).
    """

    def __init__(self, message: str, field: str | None = None, code: str = "handshake") -> None:
        super().__init__(message, field)
        self.code = code


def network_id(key: bytes) -> str:
    """The short public name of a network key: the first 8 hex digits of its SHA-256.

    Advertised in discovery (``net=``) so nodes dial only peers of their own network.
    """
    return hashlib.sha256(key).hexdigest()[:8]


def binding_payload(identity: Identity, static_public: bytes) -> bytes:
    """The handshake payload binding our Noise static key to our node id.

    ``msgpack [node_id, Ed25519 signature over b"p2pu-noise-static-key:" + static_public]``.
    """
    return pack([identity.node_id, identity.sign(BINDING_PREFIX + static_public)])


def verify_binding(payload: bytes, static_public: bytes) -> bytes:
    """Check a peer's handshake payload against the static key Noise authenticated.

    Returns:
        The peer's node id.

    Raises:
        HandshakeError: the payload is malformed or its signature does not bind `static_public`.
    """
    try:
        items = unpack_strict(
            payload, "handshake.payload", max_size=_BINDING_PAYLOAD_SIZE, max_depth=1
        )
    except MalformedError as exc:
        raise HandshakeError(exc.reason, exc.field) from None
    if type(items) is not list or len(items) != 2:
        raise HandshakeError("must be an array [node_id, signature]", "handshake.payload")
    node_id, signature = items
    if type(node_id) is not bytes or len(node_id) != NODE_ID_SIZE:
        raise HandshakeError(f"must be {NODE_ID_SIZE} bytes", "handshake.node_id")
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
        raise HandshakeError(f"must be {SIGNATURE_SIZE} bytes", "handshake.signature")
    if not verify_signature(node_id, signature, BINDING_PREFIX + static_public):
        raise HandshakeError(
            "does not bind the peer's Noise static key to its node id", "handshake.signature"
        )
    return node_id


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Base of everything `Session.next_event` returns."""


@dataclass(frozen=True, slots=True)
class HandshakeComplete(Event):
    """The handshake succeeded; the session is OPEN and `peer_id` is verified."""

    peer_id: bytes


@dataclass(frozen=True, slots=True)
class FrameReceived(Event):
    """An application frame from the peer (never ping, pong, error or unknown frames)."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class FrameRejected(Event):
    """A frame was dropped: malformed, over the rate limit (``flooding``), or over a request cap.

    The session stays open; the node lowers the peer's score.
    """

    reason: str
    field: str | None = None
    flooding: bool = False


@dataclass(frozen=True, slots=True)
class SessionClosed(Event):
    """The session ended; the last event it emits.

    Attributes:
        reason: a short code: ``handshake``, ``wrong_peer``, ``self_connection``, ``decrypt``,
            ``too_large``, ``flood``, ``timeout``, ``peer_closed``, or the code given to `close`.
        remote_error: True when the peer broke the protocol.
        detail: human-readable explanation (for ``peer_closed``: the peer's ``code: message``).
    """

    reason: str
    remote_error: bool
    detail: str = ""


# --- the state machine --------------------------------------------------------------------------


class SessionState(enum.Enum):
    #: Noise handshake in progress: no frames may be sent or received yet.
    HANDSHAKING = "handshaking"
    #: Handshake done and the peer's id verified: frames flow both ways.
    OPEN = "open"
    #: Ended, for whatever reason. Terminal: later input is ignored.
    CLOSED = "closed"


HANDSHAKING = SessionState.HANDSHAKING
OPEN = SessionState.OPEN
CLOSED = SessionState.CLOSED

# Transitions, the only place the state changes. Rules:
# - Each public method (and each internal outcome) is one input; a state accepts exactly the
#   inputs listed under it, and the input leads to the state given.
# - An input a state does not list raises LocalProtocolError before anything changes.
# - Only "handshake_done" leads from HANDSHAKING to OPEN; "fail" (the peer or a timeout ended it)
#   and "close" (we ended it) lead to CLOSED from any live state.
# - CLOSED is terminal and accepts only what may harmlessly arrive late (a message in flight, a
#   timer, a second close); those are no-ops there.
_TRANSITIONS: dict[SessionState, dict[str, SessionState]] = {
    HANDSHAKING: {
        "initiate": HANDSHAKING,
        "receive": HANDSHAKING,
        "timer": HANDSHAKING,
        "handshake_done": OPEN,
        "fail": CLOSED,
        "close": CLOSED,
    },
    OPEN: {
        "send": OPEN,
        "receive": OPEN,
        "timer": OPEN,
        "fail": CLOSED,
        "close": CLOSED,
    },
    CLOSED: {
        "receive": CLOSED,
        "timer": CLOSED,
        "close": CLOSED,
    },
}


class Session:
    """One peer session, bytes in and bytes/events out (see the module docstring).

    Args:
        identity: our node identity (signs the handshake binding).
        initiator: True on the side that dialled; it must call `initiate` first.
        network_key: the 32-byte psk; peers with another key cannot complete the handshake.
        expected_peer_id: the id discovery or a manual peer entry announced, if any; a peer
            presenting another id is refused.
        now: the current time in seconds (any monotonic clock, the same for every call).
        static_private: our X25519 Noise static key (32 bytes); fresh when omitted.
        max_message_size, max_open_requests, frame_rate, frame_burst, flood_limit, flood_drain,
        ping_interval, idle_timeout, handshake_timeout: override the module's limits (tests).

    Raises:
        LocalProtocolError: a key or id of the wrong size.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        initiator: bool,
        network_key: bytes,
        expected_peer_id: bytes | None = None,
        now: float,
        static_private: bytes | None = None,
        max_message_size: int | None = None,
        max_open_requests: int | None = None,
        frame_rate: float | None = None,
        frame_burst: float | None = None,
        flood_limit: float | None = None,
        flood_drain: float | None = None,
        ping_interval: float | None = None,
        idle_timeout: float | None = None,
        handshake_timeout: float | None = None,
    ) -> None:
        if type(network_key) is not bytes or len(network_key) != NETWORK_KEY_SIZE:
            raise LocalProtocolError(f"must be {NETWORK_KEY_SIZE} bytes", "network_key")
        if expected_peer_id is not None and len(expected_peer_id) != NODE_ID_SIZE:
            raise LocalProtocolError(f"must be {NODE_ID_SIZE} bytes", "expected_peer_id")
        if static_private is None:
            static_key = X25519PrivateKey.generate()
        elif type(static_private) is bytes and len(static_private) == STATIC_KEY_SIZE:
            static_key = X25519PrivateKey.from_private_bytes(static_private)
        else:
            raise LocalProtocolError(f"must be {STATIC_KEY_SIZE} bytes", "static_private")
        raw = serialization.Encoding.Raw
        private_raw = static_key.private_bytes(
            raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        self._static_public = static_key.public_key().public_bytes(
            raw, serialization.PublicFormat.Raw
        )

        self._identity = identity
        self._initiator = initiator
        self._expected_peer_id = expected_peer_id
        self._max_message_size = _pick(max_message_size, MAX_MESSAGE_SIZE)
        self._max_open_requests = _pick(max_open_requests, MAX_OPEN_REQUESTS)
        self._rate = float(_pick(frame_rate, FRAME_RATE))
        self._burst = float(_pick(frame_burst, FRAME_BURST))
        self._flood_limit = float(_pick(flood_limit, FLOOD_LIMIT))
        self._flood_drain = float(_pick(flood_drain, FLOOD_DRAIN))
        self._ping_interval = float(_pick(ping_interval, _PING_INTERVAL))
        self._idle_timeout = float(_pick(idle_timeout, _IDLE_TIMEOUT))
        self._handshake_deadline = now + float(_pick(handshake_timeout, _HANDSHAKE_TIMEOUT))

        noise = NoiseConnection.from_name(NOISE_PROTOCOL_NAME)
        noise.set_psks(network_key)
        noise.set_prologue(PROLOGUE)
        if initiator:
            noise.set_as_initiator()
        else:
            noise.set_as_responder()
        noise.set_keypair_from_private_bytes(Keypair.STATIC, private_raw)
        noise.start_handshake()
        self._noise = noise
        # noiseprotocol 0.3 has no getter for the remote static key and drops its handshake state
        # when the handshake ends; keep a reference to read ``rs`` from it.
        self._handshake_state = noise.noise_protocol.handshake_state
        self._messages_sent = 0

        self._state = HANDSHAKING
        self._peer_id: bytes | None = None
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()

        self._last_rx = now
        self._last_ping = now
        self._ping_nonce = 0
        self._rx_tokens = self._burst
        self._rx_time = now
        self._flood = 0.0
        self._flood_time = now
        self._tx_tokens = self._burst / 2
        self._tx_time = now
        self._serving: set[int] = set()  # the peer's open requests to us
        self._requesting: set[int] = set()  # our open requests to the peer

    # --- public state ---------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def initiator(self) -> bool:
        return self._initiator

    @property
    def peer_id(self) -> bytes | None:
        """The peer's verified node id once the handshake is done, else None."""
        return self._peer_id

    @property
    def static_public(self) -> bytes:
        """Our Noise static public key for this session."""
        return self._static_public

    @property
    def requests_in_flight(self) -> int:
        """Our blob requests the peer has not finished (final data, error) nor we cancelled."""
        return len(self._requesting)

    @property
    def requests_serving(self) -> int:
        """The peer's blob requests we have not finished nor the peer cancelled."""
        return len(self._serving)

    @property
    def max_open_requests(self) -> int:
        return self._max_open_requests

    # --- driving --------------------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue handshake message 1 (initiator only, once).

        Raises:
            LocalProtocolError: we are the responder, already initiated, or not HANDSHAKING.
        """
        self._require("initiate")
        if not self._initiator:
            raise LocalProtocolError("only the initiator sends the first message", "initiate")
        if self._messages_sent:
            raise LocalProtocolError("the handshake was already initiated", "initiate")
        self._out.append(bytes(self._noise.write_message(b"")))
        self._messages_sent = 1

    def receive_message(self, data: bytes, now: float) -> None:
        """Feed one binary WebSocket message from the peer. Ignored once CLOSED."""
        state = self._state
        if state is CLOSED:
            return
        self._last_rx = now
        if len(data) > self._max_message_size:
            self._fail(
                "too_large", f"a {len(data)}-byte message exceeds {self._max_message_size}", True
            )
            return
        if type(data) is not bytes:
            data = bytes(data)
        if state is HANDSHAKING:
            self._receive_handshake(data)
            return
        try:
            plaintext = self._noise.decrypt(data)
        except _NOISE_ERRORS:
            self._fail("decrypt", "a message failed authentication", True)
            return
        try:
            frame = decode_frame(plaintext)
        except MalformedError as exc:
            if not self._take_token(now):
                self._flooded(now)
                return
            self._events.append(FrameRejected(exc.reason, exc.field))
            return
        # Blob traffic is paced by the open-request cap, not by the frame rate: answers (data
        # or error) to our own open requests, and new requests within the cap (a new one can
        # only open when an old one ended), do not count against the peer's rate (256 MiB is
        # ~1 000 requests and ~4 400 answers).
        kind = type(frame)
        exempt = (
            (kind is BlobData or kind is BlobError) and frame.req_id in self._requesting
        ) or (
            kind is BlobGet
            and frame.req_id not in self._serving
            and len(self._serving) < self._max_open_requests
        )
        if not exempt and not self._take_token(now):
            self._flooded(now)
            return
        self._dispatch(frame, now)

    def send_frame(self, frame: Frame, now: float) -> None:
        """Encrypt and queue one frame.

        Raises:
            LocalProtocolError: not OPEN; the frame breaks its rules or does not fit; an
                `ErrorFrame` (use `close`); a `BlobGet` over `max_open_requests` or reusing an
                open request id. Nothing changes when it raises.
        """
        self._require("send")
        if isinstance(frame, ErrorFrame):
            raise LocalProtocolError("end the session with close() instead", "frame")
        data = encode_frame(frame)
        if type(frame) in _PLAIN_FRAMES:
            pass
        elif isinstance(frame, BlobGet):
            if frame.req_id in self._requesting:
                raise LocalProtocolError(f"request {frame.req_id} is already open", "frame.req_id")
            if len(self._requesting) >= self._max_open_requests:
                raise LocalProtocolError(
                    f"already {self._max_open_requests} open blob requests", "frame.req_id"
                )
            self._requesting.add(frame.req_id)
            self._send_encoded(data, now, paced=False)  # within the cap: exempt (see above)
            return
        elif isinstance(frame, BlobData):
            if frame.req_id in self._serving:
                # solicited by the peer: exempt from its rate limit (see receive_message)
                if frame.offset + len(frame.data) == frame.total:
                    self._serving.discard(frame.req_id)
                self._send_encoded(data, now, paced=False)
                return
        elif isinstance(frame, BlobError):
            if frame.req_id in self._serving:
                self._serving.discard(frame.req_id)
                self._send_encoded(data, now, paced=False)  # answers an exempt request
                return
        elif isinstance(frame, BlobCancel):
            self._requesting.discard(frame.req_id)
        self._send_encoded(data, now)

    def send_credit(self, now: float) -> int:
        """How many frames we may send now without risking the peer's rate limit.

        Mirrors the peer's token bucket with half its burst (network jitter bunches frames up on
        arrival). Senders of bulk data (replication, blob pieces) should wait when it is 0;
        `send_frame` itself never refuses on rate.
        """
        self._refill_tx(now)
        return max(0, int(self._tx_tokens))

    def close(self, reason: str = "closed", detail: str = "") -> None:
        """End the session. When OPEN, first queue an ``error`` frame telling the peer why.

        A no-op when already CLOSED. After the transport is gone, call it and drop
        `data_to_send`.

        Args:
            reason: a code of 1-32 characters from a-z, 0-9 and ``_``.
            detail: a human-readable explanation (the wire keeps its first 256 characters).

        Raises:
            LocalProtocolError: `reason` is not a valid code (nothing changes).
        """
        if self._state is CLOSED:
            return
        if type(detail) is not str:
            raise LocalProtocolError("must be a string", "detail")
        encode_frame(ErrorFrame(reason, ""))  # raises LocalProtocolError for a bad code
        self._end("close", reason, detail, False, notify=True)

    def data_to_send(self) -> list[bytes]:
        """The WebSocket binary messages to send, in order; the queue is emptied."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        """The oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    def events(self) -> list[Event]:
        """All pending events, oldest first; the queue is emptied."""
        out = list(self._events)
        self._events.clear()
        return out

    def get_timer(self) -> float | None:
        """When `handle_timer` should next be called, or None once CLOSED."""
        if self._state is OPEN:
            return min(
                max(self._last_rx, self._last_ping) + self._ping_interval,
                self._last_rx + self._idle_timeout,
            )
        if self._state is HANDSHAKING:
            return self._handshake_deadline
        return None

    def handle_timer(self, now: float) -> None:
        """Run what is due: the handshake timeout, the idle timeout, a keep-alive ping."""
        self._require("timer")
        if self._state is HANDSHAKING:
            if now >= self._handshake_deadline:
                self._fail("timeout", "the handshake did not finish in time", False)
        elif self._state is OPEN:
            if now >= self._last_rx + self._idle_timeout:
                self._end(
                    "fail",
                    "timeout",
                    f"nothing received for {self._idle_timeout:g} s",
                    False,
                    notify=True,
                )
            elif now >= max(self._last_rx, self._last_ping) + self._ping_interval:
                self._ping_nonce = (self._ping_nonce + 1) & 0xFFFFFFFF
                self._last_ping = now
                self._send_encoded(encode_frame(Ping(self._ping_nonce)), now)

    # --- internals ------------------------------------------------------------------------------

    def _require(self, action: str) -> None:
        if action not in _TRANSITIONS[self._state]:
            raise LocalProtocolError(
                f"not allowed in state {self._state.name}", f"session.{action}"
            )

    def _transition(self, action: str) -> None:
        self._require(action)
        self._state = _TRANSITIONS[self._state][action]

    def _send_encoded(self, data: bytes, now: float, *, paced: bool = True) -> None:
        self._out.append(self._noise.encrypt(data))
        if paced:
            self._refill_tx(now)
            self._tx_tokens -= 1.0

    def _refill_tx(self, now: float) -> None:
        elapsed = now - self._tx_time
        if elapsed > 0:
            self._tx_tokens = min(self._burst / 2, self._tx_tokens + elapsed * self._rate)
            self._tx_time = now

    def _take_token(self, now: float) -> bool:
        elapsed = now - self._rx_time
        if elapsed > 0:
            self._rx_tokens = min(self._burst, self._rx_tokens + elapsed * self._rate)
            self._rx_time = now
        if self._rx_tokens >= 1.0:
            self._rx_tokens -= 1.0
            return True
        return False

    def _flooded(self, now: float) -> None:
        elapsed = now - self._flood_time
        if elapsed > 0:
            self._flood = max(0.0, self._flood - elapsed * self._flood_drain)
            self._flood_time = now
        self._flood += 1.0
        if self._flood > self._flood_limit:
            self._end(
                "fail", "flood", f"sustained frame rate above {self._rate:g}/s", True, notify=True
            )
        else:
            self._events.append(
                FrameRejected(f"frame rate above {self._rate:g}/s", None, flooding=True)
            )

    def _dispatch(self, frame: Frame, now: float) -> None:
        if type(frame) in _PLAIN_FRAMES:  # the bulk of the traffic: straight through
            self._events.append(FrameReceived(frame))
            return
        if isinstance(frame, Ping):
            self._send_encoded(encode_frame(Pong(frame.nonce)), now)
            return
        if isinstance(frame, Pong | UnknownFrame):
            return
        if isinstance(frame, ErrorFrame):
            detail = f"{frame.code}: {frame.message}" if frame.message else frame.code
            self._end("fail", "peer_closed", detail, False, notify=False)
            return
        if isinstance(frame, BlobGet):
            req_id = frame.req_id
            if req_id in self._serving:
                self._events.append(
                    FrameRejected(f"request {req_id} is already open", "frame.req_id")
                )
                return
            if len(self._serving) >= self._max_open_requests:
                self._events.append(
                    FrameRejected(
                        f"more than {self._max_open_requests} open blob requests", "frame.req_id"
                    )
                )
                # Tell the requester, so that it does not wait for an answer that never comes.
                self._send_encoded(
                    encode_frame(BlobError(req_id, "busy", "too many open requests")), now
                )
                return
            self._serving.add(req_id)
        elif isinstance(frame, BlobCancel):
            self._serving.discard(frame.req_id)
        elif isinstance(frame, BlobData):
            if frame.offset + len(frame.data) == frame.total:
                self._requesting.discard(frame.req_id)
        elif isinstance(frame, BlobError):
            self._requesting.discard(frame.req_id)
        self._events.append(FrameReceived(frame))

    def _receive_handshake(self, data: bytes) -> None:
        try:
            if self._initiator:
                self._read_message_2(data)
            elif self._messages_sent == 0:
                self._read_message_1(data)
            else:
                self._read_message_3(data)
        except HandshakeError as exc:
            self._fail(exc.code, str(exc), exc.code != "self_connection")

    def _read_noise(self, data: bytes, which: str) -> bytes:
        try:
            return bytes(self._noise.read_message(data))
        except _NOISE_ERRORS:
            raise HandshakeError(
                "cannot be read: wrong network key, or not a p2pu peer", f"handshake.{which}"
            ) from None

    def _read_message_1(self, data: bytes) -> None:
        if self._read_noise(data, "message1"):
            raise HandshakeError("must have an empty payload", "handshake.message1")
        message_2 = self._noise.write_message(binding_payload(self._identity, self._static_public))
        self._out.append(bytes(message_2))
        self._messages_sent = 1

    def _read_message_2(self, data: bytes) -> None:
        if self._messages_sent != 1:
            raise HandshakeError("the responder spoke first", "handshake.message2")
        peer_id = self._check_peer(self._read_noise(data, "message2"))
        message_3 = self._noise.write_message(binding_payload(self._identity, self._static_public))
        self._out.append(bytes(message_3))
        self._messages_sent = 2
        self._opened(peer_id)

    def _read_message_3(self, data: bytes) -> None:
        self._opened(self._check_peer(self._read_noise(data, "message3")))

    def _check_peer(self, payload: bytes) -> bytes:
        peer_id = verify_binding(payload, self._handshake_state.rs.public_bytes)
        if peer_id == self._identity.node_id:
            raise HandshakeError(
                "is our own: this is a connection to ourselves",
                "handshake.node_id",
                "self_connection",
            )
        if self._expected_peer_id is not None and peer_id != self._expected_peer_id:
            raise HandshakeError(
                "differs from the id the peer announced", "handshake.node_id", "wrong_peer"
            )
        return peer_id

    def _opened(self, peer_id: bytes) -> None:
        if not self._noise.handshake_finished:  # pragma: no cover - XX ends after message 3
            raise HandshakeError("did not finish after message 3", "handshake")
        self._transition("handshake_done")
        self._peer_id = peer_id
        self._events.append(HandshakeComplete(peer_id))

    def _fail(self, reason: str, detail: str, remote_error: bool) -> None:
        """End because of the peer or a timeout; tell the peer why when we still can."""
        self._end("fail", reason, detail, remote_error, notify=True)

    def _end(
        self, action: str, reason: str, detail: str, remote_error: bool, *, notify: bool
    ) -> None:
        was_open = self._state is OPEN
        self._transition(action)
        if notify and was_open:
            goodbye = ErrorFrame(reason, detail[:MAX_MESSAGE_LENGTH])
            self._out.append(self._noise.encrypt(encode_frame(goodbye)))
        self._serving.clear()
        self._requesting.clear()
        self._events.append(SessionClosed(reason, remote_error, detail))


_N = TypeVar("_N", int, float)


def _pick(value: _N | None, default: _N) -> _N:
    return default if value is None else value


__all__ = [
    "BINDING_PREFIX",
    "FLOOD_DRAIN",
    "FLOOD_LIMIT",
    "FRAME_BURST",
    "FRAME_RATE",
    "MAX_FRAME_SIZE",
    "MAX_MESSAGE_SIZE",
    "MAX_OPEN_REQUESTS",
    "NOISE_PROTOCOL_NAME",
    "OPEN_NETWORK_KEY",
    "PROLOGUE",
    "WEBSOCKET_PATH",
    "Event",
    "FrameReceived",
    "FrameRejected",
    "HandshakeComplete",
    "HandshakeError",
    "Session",
    "SessionClosed",
    "SessionState",
    "binding_payload",
    "network_id",
    "verify_binding",
]
