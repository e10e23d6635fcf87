"""Node identities: Ed25519 key pairs, node ids, fingerprints, and X25519 sealing keys.

A node id is the raw 32-byte Ed25519 public key. People see it as lowercase base32 without
padding (52 characters); a fingerprint is its first 8 characters, shown next to display names.
Key material here is bytes in, bytes out: reading and writing key files is `p2pnode/`'s job.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .errors import MalformedError

NODE_ID_SIZE = 32
SIGNATURE_SIZE = 64
FINGERPRINT_CHARS = 8

_RAW = serialization.Encoding.Raw
_RAW_PRIVATE = serialization.PrivateFormat.Raw
_RAW_PUBLIC = serialization.PublicFormat.Raw
_NO_ENCRYPTION = serialization.NoEncryption()


def node_id_text(node_id: bytes) -> str:
    """Render a 32-byte node id (or entry id) as lowercase unpadded base32."""
    return base64.b32encode(node_id).decode("ascii").rstrip("=").lower()


def fingerprint(node_id: bytes) -> str:
    """The short form people compare: the first 8 base32 characters of the id."""
    return node_id_text(node_id)[:FINGERPRINT_CHARS]


def parse_id(text: str, what: str = "id") -> bytes:
    """Parse a 32-byte id given as base32 (any case, padding optional) or as 64 hex digits.

    Raises:
        MalformedError: the text is neither form, or does not hold exactly 32 bytes.
    """
    cleaned = text.strip()
    if len(cleaned) == 64:
        try:
            return bytes.fromhex(cleaned)
        except ValueError:
            pass
    padded = cleaned.upper() + "=" * (-len(cleaned) % 8)
    try:
        raw = base64.b32decode(padded)
    except (binascii.Error, ValueError):
        raise MalformedError(f"not a base32 or hex id: {text!r}", what) from None
    if len(raw) != NODE_ID_SIZE:
        raise MalformedError(f"an id is {NODE_ID_SIZE} bytes, this one is {len(raw)}", what)
    return raw


@lru_cache(maxsize=4096)
def _public_key(node_id: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(node_id)


def verify_signature(node_id: bytes, signature: bytes, message: bytes) -> bool:
    """True when `signature` is `node_id`'s Ed25519 signature of `message`."""
    if len(node_id) != NODE_ID_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        _public_key(node_id).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """An Ed25519 signing key and the node id it defines."""

    private_key: Ed25519PrivateKey = field(repr=False)
    node_id: bytes

    @classmethod
    def generate(cls) -> Identity:
        return cls.from_private_bytes(
            Ed25519PrivateKey.generate().private_bytes(_RAW, _RAW_PRIVATE, _NO_ENCRYPTION)
        )

    @classmethod
    def from_private_bytes(cls, seed: bytes) -> Identity:
        """Load from the 32-byte Ed25519 private seed.

        Raises:
            MalformedError: the seed is not 32 bytes.
        """
        if len(seed) != 32:
            raise MalformedError(f"an Ed25519 seed is 32 bytes, got {len(seed)}", "identity")
        key = Ed25519PrivateKey.from_private_bytes(seed)
        return cls(key, key.public_key().public_bytes(_RAW, _RAW_PUBLIC))

    def private_bytes(self) -> bytes:
        return self.private_key.private_bytes(_RAW, _RAW_PRIVATE, _NO_ENCRYPTION)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    @property
    def text(self) -> str:
        return node_id_text(self.node_id)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.node_id)


@dataclass(frozen=True)
class SealingKey:
    """The X25519 key pair that join details are sealed to (published as `profile.enc_key`)."""

    private_key: X25519PrivateKey = field(repr=False)
    public_bytes: bytes

    @classmethod
    def generate(cls) -> SealingKey:
        return cls.from_private_bytes(
            X25519PrivateKey.generate().private_bytes(_RAW, _RAW_PRIVATE, _NO_ENCRYPTION)
        )

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> SealingKey:
        if len(raw) != 32:
            raise MalformedError(f"an X25519 key is 32 bytes, got {len(raw)}", "enc_key")
        key = X25519PrivateKey.from_private_bytes(raw)
        return cls(key, key.public_key().public_bytes(_RAW, _RAW_PUBLIC))

    def private_bytes(self) -> bytes:
        return self.private_key.private_bytes(_RAW, _RAW_PRIVATE, _NO_ENCRYPTION)
