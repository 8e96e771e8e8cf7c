"""HPKE sealing and commitments, with real keys and real ciphertexts."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wasm_sandbox.envelope import (
    ENC_LEN,
    PURPOSES,
    SALT_LEN,
    SUITE,
    SUITE_NAME,
    canonical,
    commit,
    key_id,
    open_part,
    seal,
)
from wasm_sandbox.errors import CommitmentMismatch, DecryptionError, EnvelopeError

RID = "0123456789abcdef0123456789abcdef"
OTHER_RID = "fedcba9876543210fedcba9876543210"
PAYLOAD = b'{"returns":[42]}'


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def part(key):
    return seal("result", PAYLOAD, key.public_key(), RID)


def flips(data: bytes):
    """Every single-bit variant of ``data``."""
    for i in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[i // 8] ^= 1 << (i % 8)
        yield bytes(flipped)


def reference_commit(purpose: str, record_id: str, payload: bytes, salt: bytes) -> bytes:
    def lp(b: bytes) -> bytes:
        return len(b).to_bytes(8, "big") + b

    tag = f"wasm-sandbox/v1/{purpose}".encode()
    return hashlib.sha256(lp(tag) + lp(record_id.encode()) + lp(payload) + salt).digest()


def test_round_trip(key, part):
    opened = open_part("result", RID, part.enc, part.ciphertext, key, part.commitment)
    assert opened.payload == PAYLOAD
    assert len(opened.salt) == SALT_LEN
    assert len(part.enc) == ENC_LEN
    assert len(part.ciphertext) == SALT_LEN + len(PAYLOAD) + 16  # AES-GCM tag


def test_every_purpose_round_trips(key):
    for purpose in PURPOSES:
        p = seal(purpose, b"", key.public_key(), RID)
        assert open_part(purpose, RID, p.enc, p.ciphertext, key, p.commitment).payload == b""


def test_hiding_two_seals_of_one_payload_share_nothing(key, part):
    again = seal("result", PAYLOAD, key.public_key(), RID)
    assert again.enc != part.enc
    assert again.ciphertext != part.ciphertext
    assert again.commitment != part.commitment


def test_binding_commitment_is_the_documented_hash(key, part):
    opened = open_part("result", RID, part.enc, part.ciphertext, key, part.commitment)
    assert part.commitment == reference_commit("result", RID, PAYLOAD, opened.salt)
    assert commit("result", RID, PAYLOAD, opened.salt) == part.commitment


def test_commitment_separates_purposes_ids_and_field_boundaries():
    salt = bytes(SALT_LEN)
    seen = {
        commit("program", RID, b"x", salt),
        commit("result", RID, b"x", salt),
        commit("result", OTHER_RID, b"x", salt),
        commit("result", RID + "a", b"x", salt),
        commit("result", RID, b"ax", salt),
    }
    assert len(seen) == 5


def test_summary_is_hex_and_digest(part):
    s = part.summary()
    assert s == {
        "commitment": part.commitment.hex(),
        "enc": part.enc.hex(),
        "ct_sha256": hashlib.sha256(part.ciphertext).hexdigest(),
        "ct_len": len(part.ciphertext),
    }


def test_every_bit_of_enc_is_detected(key, part):
    for enc in flips(part.enc):
        with pytest.raises(DecryptionError, match=r"^result: ciphertext does not open"):
            open_part("result", RID, enc, part.ciphertext, key, part.commitment)


def test_every_bit_of_ciphertext_and_tag_is_detected(key, part):
    for ct in flips(part.ciphertext):
        with pytest.raises(DecryptionError, match=r"^result: ciphertext does not open"):
            open_part("result", RID, part.enc, ct, key, part.commitment)


def test_truncated_ciphertext_and_enc_are_detected(key, part):
    with pytest.raises(DecryptionError, match=r"result"):
        open_part("result", RID, part.enc, part.ciphertext[:-1], key, part.commitment)
    with pytest.raises(DecryptionError, match=r"enc is 64 bytes, expected 65"):
        open_part("result", RID, part.enc[:-1], part.ciphertext, key, part.commitment)


def test_every_bit_of_commitment_is_detected(key, part):
    for c in flips(part.commitment):
        with pytest.raises(CommitmentMismatch, match=r"^result: opened plaintext does not match"):
            open_part("result", RID, part.enc, part.ciphertext, key, c)


def test_every_bit_of_salt_changes_the_commitment(key, part):
    salt = open_part("result", RID, part.enc, part.ciphertext, key, part.commitment).salt
    assert all(commit("result", RID, PAYLOAD, s) != part.commitment for s in flips(salt))


def test_ciphertext_moved_to_another_record_does_not_open(key, part):
    with pytest.raises(DecryptionError, match=r"^result"):
        open_part("result", OTHER_RID, part.enc, part.ciphertext, key, part.commitment)


def test_ciphertext_moved_to_another_purpose_does_not_open(key, part):
    with pytest.raises(DecryptionError, match=r"^input"):
        open_part("input", RID, part.enc, part.ciphertext, key, part.commitment)


def test_wrong_private_key_does_not_open(part):
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(DecryptionError, match=r"wrong key"):
        open_part("result", RID, part.enc, part.ciphertext, other, part.commitment)


def test_envelope_errors_share_the_base_class():
    assert issubclass(DecryptionError, EnvelopeError)
    assert issubclass(CommitmentMismatch, EnvelopeError)


def test_unknown_purpose_and_bad_salt_are_refused(key):
    with pytest.raises(ValueError, match=r"unknown purpose 'stdout'"):
        seal("stdout", b"", key.public_key(), RID)
    with pytest.raises(ValueError, match=r"salt must be 32 bytes"):
        commit("result", RID, b"", b"short")


def test_sealing_to_another_curve_is_refused():
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(TypeError):
        seal("result", b"", p384, RID)


def test_key_id_is_sha256_of_der_spki(key):
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key_id(key.public_key()) == hashlib.sha256(der).hexdigest()


def test_suite_name_names_the_rfc9180_suite():
    assert SUITE_NAME == "DHKEM(P-256,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM"


def test_canonical_is_rfc8785():
    assert canonical({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    assert canonical({"a": 1, "b": 2}) == canonical({"b": 2, "a": 1})
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})


def documented_info(purpose: str, record_id: str) -> bytes:
    def lp(b: bytes) -> bytes:
        return len(b).to_bytes(8, "big") + b

    return (
        lp(b"wasm-sandbox/v1/hpke-info")
        + lp(f"wasm-sandbox/v1/{purpose}".encode())
        + lp(record_id.encode())
    )


def test_plaintext_without_a_salt_is_refused(key):
    """Anyone holding the public key can seal; a foreign sealer's short plaintext is caught."""
    sealed = SUITE.encrypt(b"short", key.public_key(), info=documented_info("input", RID))
    with pytest.raises(EnvelopeError, match=r"^input: plaintext is shorter than its 32-byte salt"):
        open_part("input", RID, sealed[:ENC_LEN], sealed[ENC_LEN:], key, bytes(32))
