"""A hostile test peer that speaks the real protocol, then misbehaves on purpose.

`HostilePeer` dials a node's ``/p2pu/v1`` WebSocket with aiohttp (loopback only), runs a real
`protocol.session.Session` handshake with its own `Identity` (or a wrong network key), and can then
send anything: raw bytes as a WebSocket message (garbage, oversized), text messages, correctly
encrypted but malformed frames, `entries` frames holding forged entries, floods of frames. With
`impersonate` it drives the Noise handshake by hand instead, binding its static key with its own
signature while claiming another node's id.

Everything it encrypts goes through one outgoing list in encryption order and is written by one
`flush` at a time, so the Noise nonces the node sees stay in order: a test's misbehaviour is
exactly what it asked for, never an accident of the harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from noise.connection import Keypair, NoiseConnection

from protocol.codec import pack
from protocol.entry import Entry
from protocol.frames import Entries, Frame, encode_frame
from protocol.identity import Identity
from protocol.session import (
    BINDING_PREFIX,
    NOISE_PROTOCOL_NAME,
    OPEN_NETWORK_KEY,
    PROLOGUE,
    WEBSOCKET_PATH,
    FrameReceived,
    FrameRejected,
    HandshakeComplete,
    Session,
    SessionClosed,
    SessionState,
    verify_binding,
)

#: The hostile side never rate-limits what the node sends it (a flood makes the node answer).
_GENEROUS_LIMITS: dict[str, Any] = {"frame_rate": 1e6, "frame_burst": 1e6, "flood_limit": 1e9}


class HandshakeRefused(Exception):
    """The node ended the connection before the handshake completed."""


class HostilePeer:
    """One connection to a node, under a test's full control. Use ``async with``."""

    def __init__(
        self,
        identity: Identity | None = None,
        *,
        network_key: bytes = OPEN_NETWORK_KEY,
        expected_peer_id: bytes | None = None,
        source: str | None = None,
    ) -> None:
        self.identity = identity or Identity.generate()
        #: the local address to connect from (another 127.x address poses as another host)
        self.source = source
        self.network_key = network_key
        self.expected_peer_id = expected_peer_id
        self.session: Session | None = None
        #: every binary WebSocket message the node sent us, raw
        self.received: list[bytes] = []
        #: application frames the node sent us (decrypted, once the session is open)
        self.frames: list[Frame] = []
        #: frames from the node that our session rejected (an honest node sends none)
        self.rejected: list[FrameRejected] = []
        #: how our session ended (for ``peer_closed``, ``detail`` holds the node's error code)
        self.session_closed: SessionClosed | None = None
        #: the WebSocket close code the node sent (1000 normal, 1009 message too big...)
        self.close_code: int | None = None
        self._client: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: list[bytes] = []
        self._send_lock = asyncio.Lock()
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._handshake_done = asyncio.Event()
        self._ws_closed = asyncio.Event()

    async def __aenter__(self) -> HostilePeer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    # -- connecting ------------------------------------------------------------------------
    async def connect(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        """Open the WebSocket (no handshake yet)."""
        connector = aiohttp.TCPConnector(local_addr=(self.source, 0) if self.source else None)
        self._client = aiohttp.ClientSession(connector=connector)
        self._ws = await asyncio.wait_for(
            self._client.ws_connect(
                f"http://{host}:{port}{WEBSOCKET_PATH}",
                max_msg_size=0,
                compress=0,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0),
            ),
            timeout,
        )
        self._reader = asyncio.create_task(self._read(), name="hostile-reader")

    async def handshake(self, timeout: float = 5.0) -> bytes:
        """Run a real `Session` handshake as the initiator; returns the node's verified id.

        Raises:
            HandshakeRefused: the node closed the connection (or our session failed) first.
        """
        self.session = Session(
            self.identity,
            initiator=True,
            network_key=self.network_key,
            expected_peer_id=self.expected_peer_id,
            now=time.monotonic(),
            **_GENEROUS_LIMITS,
        )
        self.session.initiate()
        self._take_session_output()
        await self.flush()
        waiters = [asyncio.ensure_future(e.wait()) for e in (self._handshake_done,
                                                              self._ws_closed)]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self.session.state is not SessionState.OPEN or self.session.peer_id is None:
            raise HandshakeRefused(
                f"handshake did not complete: {self.session_closed or 'connection closed'}"
            )
        return self.session.peer_id

    async def half_open(self) -> None:
        """Send a valid handshake message 1, then nothing: the node waits for message 3."""
        opener = Session(self.identity, initiator=True, network_key=self.network_key,
                         now=time.monotonic())
        opener.initiate()
        for data in opener.data_to_send():
            await self.send_raw(data)

    async def impersonate(self, claimed_id: bytes, timeout: float = 5.0) -> bytes:
        """Drive the Noise handshake by hand and claim `claimed_id` in message 3, signing the
        binding with our own key (so the signature cannot verify under the claimed id).

        Returns:
            The node's id, as its message 2 proved it.
        """
        key = X25519PrivateKey.generate()
        raw = serialization.Encoding.Raw
        static_public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
        noise = NoiseConnection.from_name(NOISE_PROTOCOL_NAME)
        noise.set_psks(self.network_key)
        noise.set_prologue(PROLOGUE)
        noise.set_as_initiator()
        noise.set_keypair_from_private_bytes(
            Keypair.STATIC,
            key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
        )
        noise.start_handshake()
        handshake_state = noise.noise_protocol.handshake_state  # holds ``rs`` after message 2
        await self.send_raw(bytes(noise.write_message(b"")))
        message_2 = await asyncio.wait_for(self._inbox.get(), timeout)
        node_id = verify_binding(bytes(noise.read_message(message_2)),
                                 handshake_state.rs.public_bytes)
        forged = pack([claimed_id, self.identity.sign(BINDING_PREFIX + static_public)])
        await self.send_raw(bytes(noise.write_message(forged)))
        return node_id

    # -- sending ---------------------------------------------------------------------------
    async def send_raw(self, data: bytes) -> None:
        """Send bytes as one binary WebSocket message, unencrypted (garbage, oversized...)."""
        self._pending.append(data)
        await self.flush()

    async def send_text(self, text: str) -> None:
        """Send a text WebSocket message (peers must send binary only)."""
        assert self._ws is not None
        async with self._send_lock:
            await self._ws.send_str(text)

    async def send_frame(self, frame: Frame) -> None:
        """Encrypt and send one well-formed frame through the session."""
        self.queue_frame(frame)
        await self.flush()

    def queue_frame(self, frame: Frame) -> None:
        """Encrypt one frame now; `flush` sends it (a flood queues many, then flushes once)."""
        session = self._open_session()
        session.send_frame(frame, time.monotonic())
        self._take_session_output()

    async def send_plaintext(self, plaintext: bytes) -> None:
        """Encrypt any bytes as a frame (correct Noise message, possibly malformed frame)."""
        self.queue_plaintext(plaintext)
        await self.flush()

    def queue_plaintext(self, plaintext: bytes) -> None:
        session = self._open_session()
        self._take_session_output()  # keep encryption order
        # The session only encrypts frames it can encode; reach its cipher for anything else.
        self._pending.append(session._noise.encrypt(plaintext))

    async def send_entries(self, entries: list[Entry]) -> None:
        """An `entries` frame holding these entries as they are (valid signatures or not)."""
        await self.send_plaintext(encode_frame(Entries(tuple(entries))))

    async def flood(self, frame: Frame, count: int) -> None:
        """Send `count` copies of `frame` back to back."""
        for _ in range(count):
            self.queue_frame(frame)
        await self.flush()

    async def flush(self) -> None:
        """Write every queued message, in the order it was encrypted."""
        assert self._ws is not None
        async with self._send_lock:
            while self._pending:
                data = self._pending.pop(0)
                if self._ws.closed:
                    self._pending.clear()
                    return
                with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                    await self._ws.send_bytes(data)

    # -- watching --------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._ws_closed.is_set()

    @property
    def node_error(self) -> str | None:
        """The error code the node gave when it ended the session (``banned``, ``decrypt``...)."""
        closed = self.session_closed
        if closed is None or closed.reason != "peer_closed":
            return None
        return closed.detail.split(":", 1)[0]

    async def wait_closed(self, timeout: float = 5.0) -> str | None:
        """Wait until the node closes the connection; returns `node_error`.

        Raises:
            TimeoutError: the connection is still open after `timeout` seconds.
        """
        await asyncio.wait_for(self._ws_closed.wait(), timeout)
        return self.node_error

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._client is not None:
            await self._client.close()
        self._ws_closed.set()

    # -- internals -------------------------------------------------------------------------
    def _open_session(self) -> Session:
        if self.session is None or self.session.state is not SessionState.OPEN:
            raise RuntimeError("the session is not open (call handshake() first)")
        return self.session

    def _take_session_output(self) -> None:
        if self.session is not None:
            self._pending.extend(self.session.data_to_send())

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            while True:
                msg = await self._ws.receive()
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    if msg.type is aiohttp.WSMsgType.CLOSE:
                        self.close_code = msg.data
                    return  # CLOSE, CLOSING, CLOSED, ERROR (we never expect text)
                self.received.append(msg.data)
                if self.session is None:
                    self._inbox.put_nowait(msg.data)
                    continue
                self.session.receive_message(msg.data, time.monotonic())
                self._take_session_output()  # message 3, pongs
                for event in self.session.events():
                    if isinstance(event, HandshakeComplete):
                        self._handshake_done.set()
                    elif isinstance(event, FrameReceived):
                        self.frames.append(event.frame)
                    elif isinstance(event, FrameRejected):
                        self.rejected.append(event)
                    elif isinstance(event, SessionClosed):
                        self.session_closed = event
                if self._pending:
                    await self.flush()
        finally:
            self._ws_closed.set()
