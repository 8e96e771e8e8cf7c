"""Record version 3: programs and sources sealed by content, with real crypto."""

from __future__ import annotations

import copy
import hashlib
import os
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wasm_sandbox import envelope
from wasm_sandbox import record as rec
from wasm_sandbox.envelope import canonical, key_id
from wasm_sandbox.errors import CommitmentMismatch, DecryptionError, EnvelopeError

# (module (func (export "f") (result i32) i32.const 42)) and a custom section of 4000 bytes
WASM = bytes.fromhex("0061736d010000000105016000017f03020100070501016600000a06010400412a0b")
BIG = WASM + b"\x00\xa5\x1f\x03pad" + os.urandom(4000)
SOURCE = {"lang": "wat", "text": "(module) ;; " + "x" * 2000}
INPUT = {"invoke": "f", "args": []}
RESULT = {"returns": [42], "stdout": "", "stderr": ""}
OUTCOME = {
    "status": "ok",
    "trap": None,
    "exit_code": None,
    "fuel_used": 3,
    "memory_bytes": 0,
    "duration_us": 120,
}
SECRET = os.urandom(32)


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sealed(key, program=BIG, *, source=None, secret=SECRET):
    rid = rec.new_id()
    public = key.public_key()
    parts = rec.seal_run(rid, program, INPUT, RESULT, public, source, b"", secret)
    record = rec.build(rid, 1, key_id(public), parts, len(program), {}, OUTCOME, True)
    return record, rec.blobs(parts)


@pytest.fixture(scope="module")
def run(key):
    return sealed(key)


@pytest.fixture(scope="module")
def other_run(key):
    return sealed(key)


def flips(data: bytes, step: int = 1):
    for i in range(0, len(data) * 8, step):
        flipped = bytearray(data)
        flipped[i // 8] ^= 1 << (i % 8)
        yield bytes(flipped)


def with_part(record, purpose, **fields):
    out = copy.deepcopy(record)
    out[purpose].update(fields)
    return out


def test_a_large_program_is_sealed_by_content_in_a_version_3_record(run, key):
    record, blobs = run
    assert record["v"] == rec.VERSION == 3
    assert set(record["program"]) == {"commitment", "ct_sha256", "ct_len", "size", "wrapped"}
    assert len(record["program"]["wrapped"]) == 2 * envelope.WRAPPED_CONTENT_LEN
    assert "wrapped" not in record["input"] and "wrapped" not in record["result"]
    assert len(blobs["program"]) == len(BIG) + 16  # no salt inside: the payload and its tag
    assert rec.decode(rec.encode(record)) == record
    opened = rec.open_record(record, blobs, key)
    assert (opened.program, opened.input, opened.result) == (BIG, INPUT, RESULT)
    again = rec.recommit("program", record["id"], BIG, opened.salts["program"])
    assert again.hex() == record["program"]["commitment"]


def test_two_runs_share_the_program_ciphertext_and_nothing_else(run, other_run):
    (a, blobs_a), (b, blobs_b) = run, other_run
    assert blobs_a["program"] == blobs_b["program"]
    assert a["program"]["ct_sha256"] == b["program"]["ct_sha256"]
    assert a["program"]["commitment"] != b["program"]["commitment"]  # fresh salts
    assert a["program"]["wrapped"] != b["program"]["wrapped"]
    assert a["key"] != b["key"]  # a fresh key agreement per run
    for p in ("input", "result"):
        assert blobs_a[p] != blobs_b[p] and a[p]["commitment"] != b[p]["commitment"]


def test_the_ciphertext_differs_per_recipient_per_home_and_per_program(run, key):
    shared = run[1]["program"]
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert sealed(other_key)[1]["program"] != shared
    assert sealed(key, secret=os.urandom(32))[1]["program"] != shared
    assert sealed(key, BIG + b"!")[1]["program"] != shared


def test_small_payloads_and_runs_without_a_secret_stay_version_2(key):
    small, _ = sealed(key, WASM)
    assert small["v"] == 2 and "wrapped" not in small["program"]
    unshared, _ = sealed(key, secret=None)
    assert unshared["v"] == 2 and "wrapped" not in unshared["program"]


def test_a_large_source_is_sealed_by_content_too(key):
    record, blobs = sealed(key, WASM, source=SOURCE)
    assert record["v"] == 3 and "wrapped" in record["source"]
    assert "wrapped" not in record["program"]  # under BY_CONTENT_MIN bytes
    assert sealed(key, WASM, source=SOURCE)[1]["source"] == blobs["source"]
    assert rec.open_record(record, blobs, key).source == SOURCE


def test_only_the_recipient_opens_a_run_sealed_by_content(run):
    record, blobs = run
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(DecryptionError, match=r"^record is sealed to recipient"):
        rec.open_record(record, blobs, other)
    forged = {**record, "recipient": key_id(other.public_key())}
    with pytest.raises(DecryptionError, match=r"^key: the run's secret does not open"):
        rec.open_record(forged, blobs, other)


def test_every_bit_of_wrapped_is_detected(run, key):
    record, blobs = run
    for value in flips(bytes.fromhex(record["program"]["wrapped"])):
        bad = with_part(record, "program", wrapped=value.hex())
        with pytest.raises(DecryptionError, match=r"^program: its content key does not open"):
            rec.open_record(bad, blobs, key)


def test_the_shared_ciphertext_is_checked_by_digest_and_by_aes_gcm(run, key):
    record, blobs = run
    for ct in flips(blobs["program"], step=97):
        with pytest.raises(EnvelopeError, match=r"^program: .*ct_sha256"):
            rec.open_record(record, {**blobs, "program": ct}, key)
        forged = with_part(record, "program", ct_sha256=hashlib.sha256(ct).hexdigest())
        with pytest.raises(DecryptionError, match=r"^program: ciphertext does not open with"):
            rec.open_record(forged, {**blobs, "program": ct}, key)


def test_wrapped_moved_from_another_record_does_not_open(run, other_run, key):
    (record, blobs), (other, _) = run, other_run
    bad = with_part(record, "program", wrapped=other["program"]["wrapped"])
    with pytest.raises(DecryptionError, match=r"^program: its content key does not open"):
        rec.open_record(bad, blobs, key)


def test_a_ciphertext_of_other_bytes_under_the_same_key_fails_the_commitment(run, key):
    """Every recipient of a run of this program learns its content key: a ciphertext of
    other bytes made with it opens, but not to the bytes the commitment was made over."""
    record, blobs = run
    content_key = envelope.content_key(SECRET, "program", record["recipient"], BIG)
    forged = AESGCM(content_key).encrypt(bytes(12), BIG[:-1] + b"?", None)
    digest = hashlib.sha256(forged).hexdigest()
    bad = with_part(record, "program", ct_sha256=digest, ct_len=len(forged))
    with pytest.raises(CommitmentMismatch, match=r"^program: opened plaintext does not match"):
        rec.open_record(bad, {**blobs, "program": forged}, key)


def test_decode_is_strict_about_wrapped(run):
    record, _ = run
    for value in ("00" * 79, "AB" * 80, 7):
        bad = canonical(with_part(record, "program", wrapped=value))
        with pytest.raises(EnvelopeError, match=re.escape("record field 'program.wrapped'")):
            rec.decode(bad)
    for part in ("input", "result"):
        bad = canonical(with_part(record, part, wrapped=record["program"]["wrapped"]))
        with pytest.raises(EnvelopeError, match=f"record field '{part}.wrapped': unknown"):
            rec.decode(bad)
    as_v2 = canonical({**record, "v": 2})
    with pytest.raises(EnvelopeError, match=r"record field 'program.wrapped': unknown"):
        rec.decode(as_v2)
    plain = copy.deepcopy(record)
    del plain["program"]["wrapped"]
    with pytest.raises(EnvelopeError, match=r"record field 'v': a version 3 record seals"):
        rec.decode(canonical(plain))


def test_content_keys_are_unique_per_purpose_recipient_and_payload():
    keys = {
        envelope.content_key(SECRET, purpose, recipient, payload)
        for purpose in ("program", "source")
        for recipient in ("a" * 64, "b" * 64)
        for payload in (b"one", b"two")
    }
    assert len(keys) == 8 and all(len(k) == 32 for k in keys)
    assert envelope.content_key(SECRET, "program", "a" * 64, b"one") in keys  # deterministic
