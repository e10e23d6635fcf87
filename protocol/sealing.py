"""Sealing join details to a circle's facilitators with HPKE (RFC 9180).

A `join` record's contact, goals and signup answer never travel in clear: they are msgpack-encoded
and encrypted once per facilitator to the X25519 `enc_key` of their `profile`, with
`Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)` and ``info=b"p2pu-join/1"``.
The record's `sealed` field is the list ``[[facilitator node id, ciphertext], ...]``.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .codec import pack, unpack_strict
from .errors import InvalidRecordError, MalformedError

INFO = b"p2pu-join/1"
MAX_SEALED_TOTAL = 4096
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def seal(details: dict[str, str], recipients: list[tuple[bytes, bytes]]) -> list[list[bytes]]:
    """Encrypt `details` to each (node id, X25519 enc_key) in `recipients`.

    Raises:
        InvalidRecordError: no recipients, or the result exceeds MAX_SEALED_TOTAL bytes.
    """
    if not recipients:
        raise InvalidRecordError("no facilitator has published a sealing key yet", "sealed")
    plaintext = pack(details)
    sealed = [
        [node_id, _SUITE.encrypt(plaintext, X25519PublicKey.from_public_bytes(key), info=INFO)]
        for node_id, key in recipients
    ]
    total = sum(len(ct) for _, ct in sealed)
    if total > MAX_SEALED_TOTAL:
        raise InvalidRecordError(
            f"{total} bytes once sealed to {len(sealed)} facilitators exceeds {MAX_SEALED_TOTAL};"
            " shorten the contact, goal or answer",
            "sealed",
        )
    return sealed


def unseal(
    sealed: list[list[bytes]], node_id: bytes, private_key: X25519PrivateKey
) -> dict[str, Any] | None:
    """Open the ciphertext addressed to `node_id`; None when there is none for us.

    Raises:
        MalformedError: there is one for us but it does not decrypt or decode.
    """
    for recipient, ciphertext in sealed:
        if recipient != node_id:
            continue
        try:
            plaintext = _SUITE.decrypt(ciphertext, private_key, info=INFO)
        except (InvalidTag, ValueError):
            raise MalformedError("does not decrypt with our sealing key", "sealed") from None
        details = unpack_strict(plaintext, "sealed", max_size=MAX_SEALED_TOTAL)
        if not isinstance(details, dict):
            raise MalformedError("sealed details must be a map", "sealed")
        return details
    return None
