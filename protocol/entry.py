"""The signed entry: header, signature, detachable body, entry id (DESIGN.md "Entries").

- ``header`` = msgpack ``[1, author(32), seq(>=1), prev(32 or nil), timestamp_ms, kind,
  body_hash(32), body_size]``, canonical (the smallest msgpack encoding of each value);
- ``signature`` = Ed25519 by ``author`` over the raw header bytes;
- ``body`` = msgpack map of the record, or absent (deleted / not fetched);
- wire form = msgpack ``[header_bytes, signature, body_bytes or nil]``;
- entry id = SHA-256(header_bytes + signature).

Decoding checks shapes, sizes and the body hash but not the signature: verification is a separate,
costlier step (`Entry.verify`, or chain-anchored in `feed.authenticate_run`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack

from .codec import pack, unpack_strict
from .errors import MalformedError, SignatureError
from .identity import NODE_ID_SIZE, SIGNATURE_SIZE, Identity, verify_signature

VERSION = 1
MAX_HEADER_SIZE = 256
MAX_BODY_SIZE = 16 * 1024
MAX_KIND_LENGTH = 32
MAX_WIRE_SIZE = MAX_HEADER_SIZE + SIGNATURE_SIZE + MAX_BODY_SIZE + 16
HASH_SIZE = 32
_HEADER_FIELDS = 8
_MAX_SEQ = 2**53 - 1
_MAX_TIMESTAMP_MS = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Header:
    """The decoded fields of a header; `Entry.header_bytes` stays the signed original."""

    author: bytes
    seq: int
    prev: bytes | None
    timestamp_ms: int
    kind: str
    body_hash: bytes
    body_size: int

    def encode(self) -> bytes:
        return pack(
            [
                VERSION,
                self.author,
                self.seq,
                self.prev,
                self.timestamp_ms,
                self.kind,
                self.body_hash,
                self.body_size,
            ]
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """One signed entry. Build with `create_entry` or `decode_entry`, never by hand."""

    header: Header
    header_bytes: bytes
    signature: bytes
    body_bytes: bytes | None
    id: bytes

    @property
    def author(self) -> bytes:
        return self.header.author

    @property
    def seq(self) -> int:
        return self.header.seq

    @property
    def kind(self) -> str:
        return self.header.kind

    def verify(self) -> None:
        """Check the author's signature over the header bytes.

        Raises:
            SignatureError: the signature does not verify.
        """
        if not verify_signature(self.header.author, self.signature, self.header_bytes):
            raise SignatureError("does not verify against the author's key", "signature")

    def signature_valid(self) -> bool:
        return verify_signature(self.header.author, self.signature, self.header_bytes)

    def body(self) -> dict[str, Any] | None:
        """The decoded record map, or None when the body is absent."""
        if self.body_bytes is None:
            return None
        return decode_body(self.body_bytes)

    def wire(self) -> list[Any]:
        """The wire form as a msgpack-ready list."""
        return [self.header_bytes, self.signature, self.body_bytes]

    def encode(self) -> bytes:
        return pack(self.wire())

    def without_body(self) -> Entry:
        return Entry(self.header, self.header_bytes, self.signature, None, self.id)


def entry_id(header_bytes: bytes, signature: bytes) -> bytes:
    return hashlib.sha256(header_bytes + signature).digest()


def decode_body(body_bytes: bytes) -> dict[str, Any]:
    """Decode a body to its record map (string keys, depth and size capped)."""
    body = unpack_strict(body_bytes, "body", max_size=MAX_BODY_SIZE)
    if not isinstance(body, dict):
        raise MalformedError(f"must be a map, got {type(body).__name__}", "body")
    return body


def decode_header(header_bytes: bytes) -> Header:
    """Decode and check a header's exact shape.

    Raises:
        MalformedError: naming the header field that is wrong.
    """
    fields = unpack_strict(header_bytes, "header", max_size=MAX_HEADER_SIZE, max_depth=1)
    if not isinstance(fields, list) or len(fields) != _HEADER_FIELDS:
        raise MalformedError(f"must be an array of {_HEADER_FIELDS} items", "header")
    version, author, seq, prev, timestamp_ms, kind, body_hash, body_size = fields
    if type(version) is not int or version != VERSION:
        raise MalformedError(f"unsupported version {version!r}", "header.version")
    if not isinstance(author, bytes) or len(author) != NODE_ID_SIZE:
        raise MalformedError("must be 32 bytes", "header.author")
    if type(seq) is not int or not 1 <= seq <= _MAX_SEQ:
        raise MalformedError("must be an integer >= 1", "header.seq")
    if seq == 1:
        if prev is not None:
            raise MalformedError("must be nil for seq 1", "header.prev")
    elif not isinstance(prev, bytes) or len(prev) != HASH_SIZE:
        raise MalformedError("must be a 32-byte entry id after seq 1", "header.prev")
    if type(timestamp_ms) is not int or not 0 <= timestamp_ms <= _MAX_TIMESTAMP_MS:
        raise MalformedError("must be a non-negative integer", "header.timestamp_ms")
    if not isinstance(kind, str) or not 1 <= len(kind) <= MAX_KIND_LENGTH:
        raise MalformedError(f"must be a string of 1-{MAX_KIND_LENGTH} characters", "header.kind")
    if not isinstance(body_hash, bytes) or len(body_hash) != HASH_SIZE:
        raise MalformedError("must be 32 bytes", "header.body_hash")
    if type(body_size) is not int or not 0 <= body_size <= MAX_BODY_SIZE:
        raise MalformedError(f"must be 0-{MAX_BODY_SIZE}", "header.body_size")
    header = Header(author, seq, prev, timestamp_ms, kind, body_hash, body_size)
    if header.encode() != bytes(header_bytes):
        # One header, one encoding: ids and signatures never depend on an encoder's whims.
        raise MalformedError("is not canonically encoded", "header")
    return header


def entry_from_parts(parts: Any) -> Entry:
    """Build an entry from an already-unpacked wire array ``[header, signature, body|nil]``.

    Raises:
        MalformedError: wrong shape, sizes, or a body that does not match ``body_hash``.
    """
    if not isinstance(parts, list) or len(parts) != 3:
        raise MalformedError("must be an array [header, signature, body]", "entry")
    header_bytes, signature, body_bytes = parts
    if not isinstance(header_bytes, bytes):
        raise MalformedError("must be bytes", "header")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise MalformedError(f"must be {SIGNATURE_SIZE} bytes", "signature")
    header = decode_header(header_bytes)
    if body_bytes is not None:
        if not isinstance(body_bytes, bytes):
            raise MalformedError("must be bytes or nil", "body")
        if len(body_bytes) != header.body_size:
            raise MalformedError(
                f"is {len(body_bytes)} bytes, the header says {header.body_size}", "body"
            )
        if hashlib.sha256(body_bytes).digest() != header.body_hash:
            raise MalformedError("does not hash to header.body_hash", "body")
    return Entry(header, header_bytes, signature, body_bytes, entry_id(header_bytes, signature))


def stored_entry(
    header_bytes: bytes, signature: bytes, body_bytes: bytes | None, entry_id: bytes
) -> Entry:
    """Rebuild an entry that this node decoded, checked and stored earlier, from those bytes.

    Skips what `entry_from_parts` checked when the entry first arrived (shape, canonical
    encoding, body hash, id): the bytes are the same, and every receiver checks them again.
    Only for bytes from our own database, never for bytes from elsewhere.
    """
    fields = msgpack.unpackb(header_bytes, raw=False)
    return Entry(Header(*fields[1:]), header_bytes, signature, body_bytes, entry_id)


def decode_entry(wire: bytes) -> Entry:
    """Decode an entry from its wire bytes (see `entry_from_parts`)."""
    parts = unpack_strict(wire, "entry", max_size=MAX_WIRE_SIZE, max_depth=1)
    return entry_from_parts(parts)


def create_entry(
    identity: Identity,
    *,
    seq: int,
    prev: bytes | None,
    timestamp_ms: int,
    kind: str,
    body: dict[str, Any],
) -> Entry:
    """Encode and sign a new entry. Record validation is the caller's job (`records.validate`).

    Raises:
        MalformedError: the result would break a size or shape limit.
    """
    body_bytes = pack(body)
    if len(body_bytes) > MAX_BODY_SIZE:
        raise MalformedError(f"{len(body_bytes)} bytes exceeds {MAX_BODY_SIZE}", "body")
    header = Header(
        identity.node_id,
        seq,
        prev,
        timestamp_ms,
        kind,
        hashlib.sha256(body_bytes).digest(),
        len(body_bytes),
    )
    header_bytes = header.encode()
    decode_header(header_bytes)  # the same checks a receiver makes
    signature = identity.sign(header_bytes)
    if not verify_signature(identity.node_id, signature, header_bytes):
        raise SignatureError("freshly made signature does not verify", "signature")
    return Entry(header, header_bytes, signature, body_bytes, entry_id(header_bytes, signature))
