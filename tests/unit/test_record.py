"""The execution record: shape, strict decoding, and tamper detection with real crypto."""

from __future__ import annotations

import copy
import hashlib
import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from wasm_sandbox import envelope
from wasm_sandbox import record as rec
from wasm_sandbox.envelope import PURPOSES, SUITE_NAME, canonical, key_id
from wasm_sandbox.errors import CommitmentMismatch, DecryptionError, EnvelopeError

# (module (func (export "f") (result i32) i32.const 42))
WASM = bytes.fromhex("0061736d010000000105016000017f03020100070501016600000a06010400412a0b")
INPUT = {"invoke": "f", "args": []}
RESULT = {"returns": [42], "stdout": "", "stderr": ""}
LIMITS = {"fuel": 1_000_000, "memory_bytes": 16 << 20, "timeout_us": 500_000}
OUTCOME = {
    "status": "ok",
    "trap": None,
    "exit_code": None,
    "fuel_used": 3,
    "memory_bytes": 0,
    "duration_us": 120,
}


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sealed_run(key, *, result=RESULT):
    rid = rec.new_id()
    parts = rec.seal_run(rid, WASM, INPUT, result, key.public_key())
    record = rec.build(
        rid, 1_700_000_000_000, key_id(key.public_key()), parts, len(WASM), LIMITS, OUTCOME, True
    )
    return record, rec.blobs(parts)


@pytest.fixture(scope="module")
def run(key):
    return sealed_run(key)


@pytest.fixture(scope="module")
def other_run(key):
    return sealed_run(key)


def flips(data: bytes):
    for i in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[i // 8] ^= 1 << (i % 8)
        yield bytes(flipped)


def with_field(record, path: str, value):
    out = copy.deepcopy(record)
    *parents, last = path.split(".")
    node = out
    for name in parents:
        node = node[name]
    node[last] = value
    return out


def raw(obj) -> bytes:
    """Sorted, compact JSON without RFC 8785's range checks: bytes a forger could write."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaves(obj, prefix=""):
    """Every (dotted path, value) of a nested record."""
    for name, value in obj.items():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict):
            yield from leaves(value, path)
        else:
            yield path, value


# -- shape and encoding ------------------------------------------------------


def test_new_id_is_32_lowercase_hex_and_fresh():
    ids = {rec.new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_record_has_the_contract_shape(run, key):
    record, blobs = run
    assert set(record) == {
        "v", "id", "time", "recipient", "suite", "key", "program", "input", "result",
        "limits", "outcome", "deterministic",
    }  # fmt: skip
    assert record["v"] == 2  # a program under BY_CONTENT_MIN bytes: nothing sealed by content
    assert set(record["key"]) == {"enc", "wrapped"}
    assert record["suite"] == SUITE_NAME
    assert record["recipient"] == key_id(key.public_key())
    assert set(record["program"]) == {"commitment", "ct_sha256", "ct_len", "size"}
    assert record["program"]["size"] == len(WASM)
    assert set(record["input"]) == {"commitment", "ct_sha256", "ct_len", "v"}
    assert record["input"]["v"] == rec.INPUT_VERSION == 2
    assert set(record["result"]) == {"commitment", "ct_sha256", "ct_len"}
    assert record["limits"] == LIMITS and record["outcome"] == OUTCOME
    assert not any(isinstance(v, float) for _, v in leaves(record))
    assert set(blobs) == set(PURPOSES)


def test_record_holds_no_plaintext(run):
    record, _ = run
    text = rec.encode(record)
    assert WASM.hex().encode() not in text
    assert b"returns" not in text and b"invoke" not in text


def test_encode_is_canonical_and_deterministic(run):
    record, _ = run
    data = rec.encode(record)
    reordered = dict(reversed(list(copy.deepcopy(record).items())))
    assert rec.encode(reordered) == data
    assert data == json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    assert rec.decode(data) == record


def test_round_trip_opens_every_part(run, key):
    record, blobs = run
    opened = rec.open_record(rec.decode(rec.encode(record)), blobs, key)
    assert opened.program == WASM
    assert opened.input == INPUT
    assert opened.result == RESULT
    assert set(opened.salts) == set(PURPOSES)
    assert all(len(s) == 32 for s in opened.salts.values())


def test_binding_recommit_reproduces_every_commitment(run, key):
    record, blobs = run
    salts = rec.open_record(record, blobs, key).salts
    payloads = {"program": WASM, "input": rec.encode_input(INPUT, b""), "result": RESULT}
    for p in PURPOSES:
        again = rec.recommit(p, record["id"], payloads[p], salts[p])
        assert again.hex() == record[p]["commitment"]


def test_replay_with_a_different_result_does_not_recommit(run, key):
    record, blobs = run
    salt = rec.open_record(record, blobs, key).salts["result"]
    changed = {**RESULT, "returns": [43]}
    assert (
        rec.recommit("result", record["id"], changed, salt).hex() != record["result"]["commitment"]
    )


def test_hiding_two_runs_of_the_same_program_share_nothing(run, other_run):
    (a, blobs_a), (b, blobs_b) = run, other_run
    assert a["key"]["enc"] != b["key"]["enc"] and a["key"]["wrapped"] != b["key"]["wrapped"]
    for p in PURPOSES:
        for field in ("commitment", "ct_sha256"):
            assert a[p][field] != b[p][field]
        assert blobs_a[p] != blobs_b[p]


def test_check_blobs(run):
    record, blobs = run
    assert rec.check_blobs(record, blobs) is None
    assert rec.check_blobs(record, {**blobs, "input": None}) == "input: no ciphertext stored"
    short = {**blobs, "result": blobs["result"][:-1]}
    assert rec.check_blobs(record, short).startswith("result: ciphertext is ")


# -- build and decode are strict ----------------------------------------------


def test_build_refuses_plaintext_leaking_into_the_outcome(key):
    rid = rec.new_id()
    parts = rec.seal_run(rid, WASM, INPUT, RESULT, key.public_key())
    with pytest.raises(EnvelopeError, match=r"record field 'outcome.stdout': unknown field"):
        rec.build(rid, 0, "0" * 64, parts, 1, {}, {**OUTCOME, "stdout": "secret"}, False)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("outcome.fuel_used", 3.0, "expected an integer"),
        ("outcome.duration_us", True, "expected an integer"),
        ("time", -1, "non-negative"),
        ("limits", {"fuel": 1.5}, "value of 'fuel'"),
        ("deterministic", 1, "expected true or false"),
        ("id", "ABCDEF" * 5 + "00", "32 lowercase hex"),
    ],
)
def test_build_names_the_bad_field(key, field, value, problem):
    rid = rec.new_id()
    parts = rec.seal_run(rid, WASM, INPUT, RESULT, key.public_key())
    args = {
        "record_id": rid,
        "time_ms": 0,
        "recipient_key_id": "0" * 64,
        "parts": parts,
        "program_size": 1,
        "limits": {},
        "outcome": OUTCOME,
        "deterministic": False,
    }
    if field == "id":
        args["record_id"] = value
    elif field.startswith("outcome."):
        args["outcome"] = {**OUTCOME, field.split(".")[1]: value}
    else:
        args[{"time": "time_ms"}.get(field, field)] = value
    with pytest.raises(EnvelopeError, match=f"record field '{field}'.*{problem}"):
        rec.build(**args)


def test_decode_rejects_non_canonical_bytes(run):
    record, _ = run
    data = rec.encode(record)
    variants = [
        json.dumps(record).encode(),  # spaces
        json.dumps(record, separators=(",", ":")).encode(),  # key order
        data + b"\n",
        data.replace(b'"v":2', b'"v":2.0'),
        data.replace(b'"v":2', b'"v":2e0'),
        data.replace(b'"deterministic":true', b'"deterministic":true,"deterministic":true'),
        data.replace(b'"status":"ok"', b'"status":"\\u006fk"'),
    ]
    for bad in variants:
        with pytest.raises(EnvelopeError, match=r"canonical|record field"):
            rec.decode(bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("time", 1.5),
        ("outcome.fuel_used", 3.25),
        ("program.ct_len", 56.5),
        ("limits", {"fuel": 0.5}),
        ("outcome.exit_code", 1.5),
        ("time", 2**53),
        ("v", 3),  # version 3 seals some part by content
        ("v", 4),
        ("v", "2"),
        ("suite", "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/ChaCha20Poly1305"),
        ("deterministic", 0),
        ("outcome.trap", 7),
        ("key.enc", "04" * 64),
        ("key.wrapped", "00" * 47),
        ("input.commitment", "AB" * 32),
        ("result", []),
    ],
)
def test_decode_names_the_ill_typed_field(run, field, value):
    record, _ = run
    data = raw(with_field(record, field, value))
    with pytest.raises(EnvelopeError, match=f"record field '{re.escape(field)}'"):
        rec.decode(data)


def test_decode_names_every_missing_field(run):
    record, _ = run
    for path, _value in leaves(record):
        if path.startswith("limits.") or path == "input.v":
            continue  # limits is an open map; records before input version 2 have no input.v
        out = copy.deepcopy(record)
        *parents, last = path.split(".")
        node = out
        for name in parents:
            node = node[name]
        del node[last]
        with pytest.raises(EnvelopeError, match=f"record field '{re.escape(path)}': missing"):
            rec.decode(canonical(out))


def test_a_lower_bound_fuel_figure_is_a_field_present_only_as_true(key):
    rid = rec.new_id()
    parts = rec.seal_run(rid, WASM, INPUT, RESULT, key.public_key())
    outcome = {**OUTCOME, "fuel_lower_bound": True}
    record = rec.build(rid, 1, key_id(key.public_key()), parts, len(WASM), LIMITS, outcome, True)
    assert rec.decode(rec.encode(record))["outcome"]["fuel_lower_bound"] is True
    problem = re.escape("'outcome.fuel_lower_bound': expected true")
    for value in (False, 1, "true"):
        data = canonical(with_field(record, "outcome.fuel_lower_bound", value))
        with pytest.raises(EnvelopeError, match=problem):
            rec.decode(data)


def test_decode_rejects_unknown_fields(run):
    record, _ = run
    for path in ("extra", "program.plaintext", "outcome.stdout"):
        data = canonical(with_field(record, path, "x"))
        with pytest.raises(EnvelopeError, match=f"record field '{re.escape(path)}': unknown"):
            rec.decode(data)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xff{}", "not valid UTF-8"),
        (b'{"v":1', "not valid JSON"),
        (b"[1]", "expected a JSON object"),
        (b"[" * 100_000, "not valid JSON"),
        (b"{}", "record field 'v': missing"),
        (b'{"v":4}', "record field 'v': unsupported version 4"),
    ],
)
def test_decode_rejects_what_is_not_a_record(data, problem):
    with pytest.raises(EnvelopeError, match=re.escape(problem)):
        rec.decode(data)


# -- tamper detection ----------------------------------------------------------


def part_with(record, blobs, purpose, part_summary, blob):
    return with_field(record, purpose, part_summary), {**blobs, purpose: blob}


@pytest.mark.parametrize("field", ["enc", "wrapped"])
def test_every_bit_of_the_run_key_is_detected(run, key, field):
    record, blobs = run
    for value in flips(bytes.fromhex(record["key"][field])):
        bad = with_field(record, f"key.{field}", value.hex())
        with pytest.raises(DecryptionError, match=r"^key: the run's secret does not open"):
            rec.open_record(bad, blobs, key)


def version_1_run(key):
    """A record as version 1 sealed it: one HPKE message per part, each with its ``enc``."""
    rid = rec.new_id()
    payloads = {
        "program": WASM,
        "input": rec.encode_input(INPUT, b"stdin"),
        "result": canonical(RESULT),
    }
    parts = {p: envelope.seal(p, data, key.public_key(), rid) for p, data in payloads.items()}
    record = rec.build(rid, 1, key_id(key.public_key()), parts, len(WASM), LIMITS, OUTCOME, True)
    return record, rec.blobs(parts)


def test_a_version_1_record_still_decodes_and_opens(key):
    record, blobs = version_1_run(key)
    assert record["v"] == 1 and "key" not in record
    assert set(record["result"]) == {"commitment", "enc", "ct_sha256", "ct_len"}
    opened = rec.open_record(rec.decode(rec.encode(record)), blobs, key)
    assert (opened.program, opened.input, opened.stdin) == (WASM, INPUT, b"stdin")
    assert opened.result == RESULT and set(opened.salts) == set(PURPOSES)
    with pytest.raises(EnvelopeError, match=r"record field 'key': unknown field"):
        rec.decode(canonical({**record, "key": {"enc": "00", "wrapped": "00"}}))


@pytest.mark.parametrize("purpose", PURPOSES)
def test_every_bit_of_a_version_1_enc_is_detected(key, purpose):
    record, blobs = version_1_run(key)
    for enc in flips(bytes.fromhex(record[purpose]["enc"])):
        bad = with_field(record, f"{purpose}.enc", enc.hex())
        with pytest.raises(DecryptionError, match=f"^{purpose}: ciphertext does not open"):
            rec.open_record(bad, blobs, key)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_every_bit_of_ciphertext_is_caught_by_the_digest(run, key, purpose):
    record, blobs = run
    for ct in flips(blobs[purpose]):
        with pytest.raises(EnvelopeError, match=f"^{purpose}: .*ct_sha256"):
            rec.open_record(record, {**blobs, purpose: ct}, key)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_every_bit_of_ciphertext_and_tag_fails_to_open_even_with_a_forged_digest(run, key, purpose):
    """An attacker who also rewrites ct_sha256 in the record still cannot pass AES-GCM."""
    record, blobs = run
    for ct in flips(blobs[purpose]):
        summary = {**record[purpose], "ct_sha256": hashlib.sha256(ct).hexdigest()}
        bad, bad_blobs = part_with(record, blobs, purpose, summary, ct)
        with pytest.raises(DecryptionError, match=f"^{purpose}: ciphertext does not open"):
            rec.open_record(bad, bad_blobs, key)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_every_bit_of_commitment_is_detected(run, key, purpose):
    record, blobs = run
    for c in flips(bytes.fromhex(record[purpose]["commitment"])):
        bad = with_field(record, f"{purpose}.commitment", c.hex())
        with pytest.raises(CommitmentMismatch, match=f"^{purpose}: opened plaintext does not"):
            rec.open_record(bad, blobs, key)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_every_bit_of_ct_sha256_and_ct_len_is_detected(run, key, purpose):
    record, blobs = run
    for d in flips(bytes.fromhex(record[purpose]["ct_sha256"])):
        bad = with_field(record, f"{purpose}.ct_sha256", d.hex())
        with pytest.raises(EnvelopeError, match=f"^{purpose}: .*ct_sha256"):
            rec.open_record(bad, blobs, key)
    n = record[purpose]["ct_len"]
    for bit in range(53):
        bad = with_field(record, f"{purpose}.ct_len", n ^ (1 << bit))
        with pytest.raises(EnvelopeError, match=f"^{purpose}: ciphertext is .*ct_len"):
            rec.open_record(bad, blobs, key)


def test_every_bit_of_id_is_detected(run, key):
    record, blobs = run
    for rid in flips(bytes.fromhex(record["id"])):
        bad = with_field(record, "id", rid.hex())
        with pytest.raises(DecryptionError, match=r"^key: the run's secret does not open"):
            rec.open_record(bad, blobs, key)


def test_every_bit_of_recipient_is_detected(run, key):
    record, blobs = run
    for kid in flips(bytes.fromhex(record["recipient"])):
        bad = with_field(record, "recipient", kid.hex())
        with pytest.raises(DecryptionError, match=r"^record is sealed to recipient"):
            rec.open_record(bad, blobs, key)


def test_every_bit_of_program_size_is_detected(run, key):
    record, blobs = run
    for bit in range(53):
        bad = with_field(record, "program.size", len(WASM) ^ (1 << bit))
        with pytest.raises(EnvelopeError, match=r"^program: opened .*size"):
            rec.open_record(bad, blobs, key)


def test_every_bit_flipped_in_any_hex_character_is_refused_by_decode(run):
    """Flips that leave lowercase hex are covered above; the rest never decode."""
    record, _ = run
    for path, value in leaves(record):
        if not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]+", value)):
            continue
        for text in flips(value.encode()):
            if re.fullmatch(rb"[0-9a-f]+", text):
                continue
            bad = canonical(with_field(record, path, text.decode("latin-1")))
            with pytest.raises(EnvelopeError, match=f"record field '{re.escape(path)}'"):
                rec.decode(bad)


def test_summary_fields_are_bound_by_the_log_not_the_envelope(run, key):
    """time, limits, outcome and deterministic are not inside any ciphertext or commitment.

    The log protects them (the Merkle leaf is the canonical record), so a change must at
    least change the canonical bytes; open_record alone does not notice it.
    """
    record, blobs = run
    data = rec.encode(record)
    for path, value in leaves(record):
        if path.split(".")[0] not in ("time", "limits", "outcome", "deterministic"):
            continue
        changed = with_field(record, path, _altered(path, value))
        assert rec.encode(changed) != data
        rec.open_record(changed, blobs, key)


def _altered(path, value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value ^ 1
    if value is None:
        return 1 if path == "outcome.exit_code" else "unreachable"
    return value + "x"


@pytest.mark.parametrize("purpose", PURPOSES)
def test_every_bit_of_salt_breaks_the_commitment(run, key, purpose):
    record, blobs = run
    salt = rec.open_record(record, blobs, key).salts[purpose]
    payload = {"program": WASM, "input": INPUT, "result": RESULT}[purpose]
    for s in flips(salt):
        assert (
            rec.recommit(purpose, record["id"], payload, s).hex() != record[purpose]["commitment"]
        )


@pytest.mark.parametrize("purpose", PURPOSES)
def test_ciphertext_moved_from_another_record_does_not_open(run, other_run, key, purpose):
    (record, blobs), (other, other_blobs) = run, other_run
    # enc, digest and commitment all come from the other record
    bad, bad_blobs = part_with(record, blobs, purpose, other[purpose], other_blobs[purpose])
    with pytest.raises(DecryptionError, match=f"^{purpose}: ciphertext does not open"):
        rec.open_record(bad, bad_blobs, key)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_commitment_pasted_from_another_record_is_detected(run, other_run, key, purpose):
    (record, blobs), (other, _) = run, other_run
    bad = with_field(record, f"{purpose}.commitment", other[purpose]["commitment"])
    with pytest.raises(CommitmentMismatch, match=f"^{purpose}: "):
        rec.open_record(bad, blobs, key)


def test_ciphertext_moved_between_purposes_does_not_open(key):
    record, blobs = sealed_run(key, result=INPUT)  # same plaintext, so only the purpose differs
    bad = copy.deepcopy(record)
    four = {k: v for k, v in record["input"].items() if k != "v"}
    bad["input"], bad["result"] = {**record["result"], "v": 2}, four
    swapped = {**blobs, "input": blobs["result"], "result": blobs["input"]}
    with pytest.raises(DecryptionError, match=r"^input: ciphertext does not open"):
        rec.open_record(bad, swapped, key)


def test_wrong_private_key_is_refused(run):
    record, blobs = run
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(DecryptionError, match=r"^record is sealed to recipient"):
        rec.open_record(record, blobs, other)
    forged = with_field(record, "recipient", key_id(other.public_key()))
    with pytest.raises(DecryptionError, match=r"^key: the run's secret does not open"):
        rec.open_record(forged, blobs, other)


def test_missing_blob_is_refused(run, key):
    record, blobs = run
    with pytest.raises(EnvelopeError, match=r"^result: no ciphertext stored"):
        rec.open_record(record, {"program": blobs["program"], "input": blobs["input"]}, key)


SOURCE = {"lang": "wat", "text": '(module (func (export "f")))\n;; é ✓'}


def sealed_with_source(key):
    rid = rec.new_id()
    parts = rec.seal_run(rid, WASM, INPUT, RESULT, key.public_key(), SOURCE)
    record = rec.build(
        rid, 1_700_000_000_000, key_id(key.public_key()), parts, len(WASM), LIMITS, OUTCOME, True
    )
    return record, rec.blobs(parts)


def test_the_source_is_sealed_as_its_own_committed_part(key):
    record, blobs = sealed_with_source(key)
    assert set(record["source"]) == {"commitment", "ct_sha256", "ct_len"}
    assert set(blobs) == {*PURPOSES, "source"}
    opened = rec.open_record(rec.decode(rec.encode(record)), blobs, key)
    assert opened.source == SOURCE and set(opened.salts) == {*PURPOSES, "source"}


def test_a_record_without_source_still_opens(run, key):
    record, blobs = run
    assert "source" not in record
    assert rec.open_record(rec.decode(rec.encode(record)), blobs, key).source is None


def test_a_tampered_or_missing_source_is_caught(key):
    record, blobs = sealed_with_source(key)
    assert rec.check_blobs(record, {**blobs, "source": None}) == "source: no ciphertext stored"
    flipped = bytes([blobs["source"][0] ^ 1]) + blobs["source"][1:]
    assert rec.check_blobs(record, {**blobs, "source": flipped}).startswith("source: ")
    with pytest.raises(EnvelopeError, match=r"record field 'source\.commitment': missing"):
        rec.decode(rec.encode({**record, "source": {"ct_len": 1, "ct_sha256": "0" * 64}}))


def test_a_face_round_trips_and_a_bad_one_is_named(key):
    from wasm_sandbox.run_options import Face

    rid = rec.new_id()
    parts = rec.seal_run(rid, WASM, INPUT, RESULT, key.public_key())
    face = Face("mcp", client="agent", authenticated=False).to_record()
    args = (rid, 0, "0" * 64, parts, len(WASM), LIMITS, OUTCOME, True)
    record = rec.build(*args, face=face)
    assert rec.decode(rec.encode(record))["face"] == {
        "name": "mcp",
        "client": "agent",
        "authenticated": False,
    }
    assert "face" not in rec.build(*args)
    with pytest.raises(EnvelopeError, match=r"record field 'face\.authenticated': expected true"):
        rec.build(*args, face={"name": "mcp", "authenticated": "no"})
    with pytest.raises(EnvelopeError, match=r"record field 'face\.ip': unknown field"):
        rec.build(*args, face={**face, "ip": "10.0.0.1"})
