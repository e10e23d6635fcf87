"""One exception family for everything the protocol rejects.

Every message names the offending field and, where there is one, the limit it broke, so that a
CLI can print it as one line and a peer's score can be lowered with a reason.

- `ProtocolError` is the base; catch it to catch everything below.
- `MalformedError`: bytes that are not a well-formed entry or frame (shape, type, size, depth).
- `InvalidRecordError`: a well-formed body whose fields break the record schema.
- `SignatureError`: an Ed25519 signature that does not verify.
- `FeedError`: an entry that does not extend its author's feed (seq gap, wrong prev, future time).
- `RemoteProtocolError` / `LocalProtocolError`: session misuse by the peer or by us (h11's split).
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by `protocol/`.

    Attributes:
        field: dotted path of the offending field (``"body.venue.city"``), or ``None``.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class MalformedError(ProtocolError):
    """Bytes that do not decode to the exact shape, types and sizes the format requires."""


class InvalidRecordError(ProtocolError):
    """A record body whose fields break the schema of its kind."""


class SignatureError(ProtocolError):
    """A signature that does not verify against the claimed author."""


class FeedError(ProtocolError):
    """An entry that cannot extend its author's feed."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the session protocol (bad handshake, frame or sequence)."""


class LocalProtocolError(ProtocolError):
    """We tried something the session state does not allow; a bug on our side."""
