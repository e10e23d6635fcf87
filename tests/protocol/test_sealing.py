"""Tests for protocol/sealing.py: join details sealed with HPKE to each facilitator's enc_key."""

from __future__ import annotations

import pytest
from builders import join_body, sealing_key_from_seed
from cryptography.hazmat.primitives import hpke

from protocol.codec import pack
from protocol.errors import InvalidRecordError, MalformedError
from protocol.records import validate_record
from protocol.sealing import INFO, MAX_SEALED_TOTAL, seal, unseal

ANA_ID, BEN_ID, EVE_ID = b"\xaa" * 32, b"\xbb" * 32, b"\xee" * 32
ANA = sealing_key_from_seed("sealing ana")
BEN = sealing_key_from_seed("sealing ben")
EVE = sealing_key_from_seed("sealing eve")
DETAILS = {"contact": "ben@example.org", "goal": "learn Python", "answer": "Tuesdays suit me"}


def sealed_to_both() -> list[list[bytes]]:
    return seal(DETAILS, [(ANA_ID, ANA.public_bytes), (BEN_ID, BEN.public_bytes)])


def test_each_facilitator_opens_their_own_copy():
    """Details sealed to two facilitators open to exactly the same map for each of them."""
    sealed = sealed_to_both()
    assert [pair[0] for pair in sealed] == [ANA_ID, BEN_ID]
    assert unseal(sealed, ANA_ID, ANA.private_key) == DETAILS
    assert unseal(sealed, BEN_ID, BEN.private_key) == DETAILS


def test_a_third_party_has_nothing_to_open():
    """Someone not among the recipients finds no ciphertext addressed to them."""
    assert unseal(sealed_to_both(), EVE_ID, EVE.private_key) is None


def test_a_third_party_cannot_open_a_copy_addressed_to_someone_else():
    """Claiming a facilitator's node id does not help without their private key."""
    with pytest.raises(MalformedError) as caught:
        unseal(sealed_to_both(), ANA_ID, EVE.private_key)
    assert caught.value.field == "sealed"


def test_nothing_travels_in_clear():
    """Neither the details nor any of their values appear in the ciphertexts."""
    sealed = sealed_to_both()
    blob = b"".join(ct for _, ct in sealed)
    for value in DETAILS.values():
        assert value.encode() not in blob
    assert pack(DETAILS) not in blob
    assert sealed[0][1] != sealed[1][1]


def test_sealing_is_randomised():
    """Sealing the same details twice gives different ciphertexts (fresh HPKE encapsulation)."""
    assert sealed_to_both()[0][1] != sealed_to_both()[0][1]


def test_ciphertext_is_bound_to_the_join_info_string():
    """A ciphertext made with another HPKE info string does not open as a join."""
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    other = suite.encrypt(pack(DETAILS), ANA.private_key.public_key(), info=b"something-else")
    assert INFO == b"p2pu-join/1"
    with pytest.raises(MalformedError):
        unseal([[ANA_ID, other]], ANA_ID, ANA.private_key)


def test_a_tampered_ciphertext_does_not_open():
    """Flipping one byte of a ciphertext makes it fail authentication."""
    sealed = sealed_to_both()
    damaged = bytearray(sealed[0][1])
    damaged[-1] ^= 1
    with pytest.raises(MalformedError):
        unseal([[ANA_ID, bytes(damaged)]], ANA_ID, ANA.private_key)


def test_sealed_details_fit_a_valid_join_record():
    """The sealed list is what a join's `sealed` field accepts."""
    validate_record("join", join_body(b"\xcc" * 32, sealed=sealed_to_both()))


def test_sealing_needs_a_recipient():
    """With no facilitator key known there is nobody to seal to: a clear refusal."""
    with pytest.raises(InvalidRecordError) as caught:
        seal(DETAILS, [])
    assert caught.value.field == "sealed"


def test_sealing_refuses_to_exceed_the_size_limit():
    """Details too large once sealed to every facilitator are refused, naming the limit."""
    big = {"goal": "x" * (MAX_SEALED_TOTAL // 2)}
    with pytest.raises(InvalidRecordError, match=str(MAX_SEALED_TOTAL)):
        seal(big, [(ANA_ID, ANA.public_bytes), (BEN_ID, BEN.public_bytes)])
    seal(big, [(ANA_ID, ANA.public_bytes)])  # one copy fits
