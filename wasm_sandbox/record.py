"""The execution record: the canonical JSON object that is committed and logged for every run.

Shape (integers only; hashes and ``enc`` as lowercase hex)::

    {"v": 3, "id", "time", "recipient", "suite",
     "key": {"enc", "wrapped"},             # the run's one HPKE key agreement
     "program": {"commitment", "ct_sha256", "ct_len", "size", ["wrapped"]},
     "input": {"commitment", "ct_sha256", "ct_len", "v"}, "result": {...the same three...},
     "source": {...the same three..., ["wrapped"]},  # optional: a program compiled from text
     "limits": {str: int},
     "outcome": {"status", "trap", "exit_code", "fuel_used", "memory_bytes", "duration_us",
                 ["fuel_lower_bound": true]},
     "deterministic": bool,
     "grants": {"dirs": [{"guest", "mode": "ro" | "rw"}], "env": [name], "argv": int,
                "stdin_bytes": int},     # optional: records before grants were public lack it
     "signer": str,                      # optional: the verifier key that signed the binary
     "face": {"name", "authenticated": bool, ["client"], ["user"]}}  # optional: who ran it

Since version 2 a run makes one HPKE key agreement: ``key`` holds its ``enc`` and the sealed
32-byte secret from which each part's AES-256-GCM key is derived (`wasm_sandbox.envelope`).
Version 1 records have no ``key`` and an ``enc`` in every part (one HPKE message per part);
they still open and verify. The commitments mean the same in all versions.

Since version 3 a program or source of at least `BY_CONTENT_MIN` bytes is sealed by content
(docs/records.md): its ciphertext is the payload encrypted under a content key that the sealing
home derives from its secret, the recipient and the payload (`seal_run`), the same for
every run, so the log stores it once; the part's ``wrapped`` (hex) is the commitment's salt
and that content key, sealed under the part's key from the run's secret. A record is version 3
when some part is sealed so, else version 2.

The sealed input is, since ``input.v`` 2, the canonical JSON of the call (invoke, args, grants
without stdin), one NUL byte (canonical JSON never contains one) and stdin's raw bytes. Records
without ``input.v`` (version 1) carried stdin as hex inside the JSON; they still open and verify.

The ciphertexts ("blobs") are stored beside the record; the record holds their digests. The
``source`` part is the canonical JSON ``{"lang": "wat" | "c", "text": str}`` of the text the
program bytes were compiled from; for Python ``{"lang": "python", "text", "interpreter": sha256
hex}``, and the program part is then the code (docs/python-guests.md); records of binary
programs (and older records) have none. Only
the sealed parts are bound cryptographically (HPKE info and commitments); the other fields are
protected by the log, whose leaf is the record's canonical bytes. ``grants`` says what the guest
could touch without saying what may be secret: guest paths and modes, environment variable
*names*, how many argv entries and stdin bytes; host paths and values stay in the sealed
input, and ``verify`` checks the two agree (`wasm_sandbox.verification`). ``face`` is written
by a face that records itself (the MCP server: ``{"name": "mcp", "client": <the name the
client declared>, "authenticated": false}``); ``client`` is a claim, not an identity.

Example::

    rid = new_id()
    parts = seal_run(rid, wasm, {"args": []}, {"returns": [42]}, public_key, content_secret=secret)
    record = build(rid, time_ms, key_id, parts, len(wasm), limits, outcome, True)
    opened = open_record(decode(encode(record)), blobs(parts), private_key)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from wasm_sandbox.envelope import (
    OPTIONAL_PURPOSES,
    PURPOSES,
    SUITE_NAME,
    WRAPPED_CONTENT_LEN,
    Opened,
    RunKey,
    SealedPart,
    canonical,
    commit,
    content_key,
    key_id,
    new_run_key,
    open_by_content,
    open_part,
    open_run_key,
    open_with,
    seal_by_content,
    seal_with,
)
from wasm_sandbox.errors import DecryptionError, EnvelopeError

VERSION = 3
INPUT_VERSION = 2
#: Parts that may be sealed by content, and the least payload size that is.
BY_CONTENT = ("program", "source")
BY_CONTENT_MIN = 1024
_HEX = re.compile(r"[0-9a-f]*")
_MAX_INT = 2**53 - 1  # RFC 8785 (I-JSON) represents integers exactly only up to here

_Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class OpenedRecord:
    """The opened parts of a record and the salt of each commitment."""

    program: bytes
    input: dict[str, Any]
    result: dict[str, Any]
    salts: dict[str, bytes]
    source: dict[str, Any] | None = None
    stdin: bytes = b""


def new_id() -> str:
    """A fresh record id: 32 lowercase hex characters (128 random bits)."""
    return os.urandom(16).hex()


def seal_run(
    record_id: str,
    program: bytes,
    input_payload: dict[str, Any],
    result_payload: dict[str, Any],
    recipient_public_key: ec.EllipticCurvePublicKey,
    source: Mapping[str, Any] | None = None,
    stdin: bytes = b"",
    content_secret: bytes | None = None,
    *,
    content_keys: Mapping[str, bytes] | None = None,
) -> dict[str, SealedPart]:
    """Seal the program bytes, the input (JSON, NUL, raw ``stdin``), the result's JSON and
    (when given) the source ``{"lang", "text"}``. With the sealing home's ``content_secret``
    (`wasm_sandbox.keys.KeyStore.content_secret`) the program and the source of at least
    `BY_CONTENT_MIN` bytes are sealed by content (a version 3 record); ``content_keys``
    (`shared_content_keys`) stands for the secret where only those keys were handed over."""
    payloads = {
        "program": program,
        "input": encode_input(input_payload, stdin),
        "result": canonical(result_payload),
    }
    if source is not None:
        payloads["source"] = canonical(dict(source))
    key = new_run_key(recipient_public_key, record_id)
    by_content = (
        dict(content_keys)
        if content_keys is not None
        else _content_keys(content_secret, recipient_public_key, payloads)
    )
    return {
        p: seal_by_content(p, data, by_content[p], key, record_id)
        if p in by_content
        else seal_with(p, data, key, record_id)
        for p, data in payloads.items()
    }


def shared_content_keys(
    secret: bytes,
    recipient_public_key: ec.EllipticCurvePublicKey,
    program: bytes,
    source: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    """The content keys `seal_run` derives from ``secret`` for this program and source:
    the same for every run of them to one recipient, so a batch derives them once and hands
    them, never the secret, to the processes that seal (each key opens only the shared
    ciphertext of a payload they hold anyway)."""
    payloads = {"program": program}
    if source is not None:
        payloads["source"] = canonical(dict(source))
    return _content_keys(secret, recipient_public_key, payloads)


def _content_keys(
    secret: bytes | None,
    recipient_public_key: ec.EllipticCurvePublicKey,
    payloads: Mapping[str, bytes],
) -> dict[str, bytes]:
    """The content key of each payload to seal by content (`BY_CONTENT`, at least
    `BY_CONTENT_MIN` bytes); none without a ``secret``."""
    large = [p for p in BY_CONTENT if p in payloads and len(payloads[p]) >= BY_CONTENT_MIN]
    if secret is None or not large:
        return {}
    recipient = key_id(recipient_public_key)
    return {p: content_key(secret, p, recipient, payloads[p]) for p in large}


def encode_input(call: dict[str, Any], stdin: bytes) -> bytes:
    """The sealed input (version `INPUT_VERSION`): the call's canonical JSON, NUL, stdin."""
    return canonical(call) + b"\0" + stdin


def build(
    record_id: str,
    time_ms: int,
    recipient_key_id: str,
    parts: Mapping[str, SealedPart],
    program_size: int,
    limits: Mapping[str, int],
    outcome: Mapping[str, Any],
    deterministic: bool,
    *,
    grants: Mapping[str, Any] | None = None,
    signer: str | None = None,
    policy: Mapping[str, Any] | None = None,
    face: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a record; raises ``EnvelopeError`` naming the first field that does not fit.
    ``grants`` is `Grants.public`; ``signer`` the verifier key that signed the program;
    ``policy`` the trust decisions (`wasm_sandbox.policy`); ``face`` is
    `wasm_sandbox.run_options.Face.to_record`. Parts sealed with one `RunKey` make a
    version 3 record when some are sealed by content, else version 2; parts with their own
    ``enc`` (`wasm_sandbox.envelope.seal`) a version 1 record."""
    key = _run_key(parts)
    by_content = any(part.wrapped for part in parts.values())
    record: dict[str, Any] = {
        "v": 1 if key is None else VERSION if by_content else 2,
        "id": record_id,
        "time": time_ms,
        "recipient": recipient_key_id,
        "suite": SUITE_NAME,
        **({} if key is None else {"key": key.summary()}),
        **{p: part.summary() for p, part in parts.items()},
        "limits": dict(limits),
        "outcome": dict(outcome),
        "deterministic": deterministic,
    }
    record["program"]["size"] = program_size
    record["input"]["v"] = INPUT_VERSION
    if grants is not None:
        record["grants"] = dict(grants)
    if signer is not None:
        record["signer"] = signer
    if policy is not None:
        record["policy"] = dict(policy)
    if face is not None:
        record["face"] = dict(face)
    _check_given(record)
    return record


def _run_key(parts: Mapping[str, SealedPart]) -> RunKey | None:
    """The one key all parts were sealed with, or None for parts with their own ``enc``."""
    keys = {id(part.run_key): part.run_key for part in parts.values()}
    if len(keys) != 1:
        raise EnvelopeError("record: parts were sealed with different keys")
    return next(iter(keys.values()))


def encode(record: Mapping[str, Any]) -> bytes:
    """The record's canonical bytes (RFC 8785): the same record always gives the same bytes."""
    return canonical(record)


def decode(data: bytes) -> dict[str, Any]:
    """Parse canonical record bytes; raises ``EnvelopeError`` naming what is wrong."""
    try:
        obj: dict[str, Any] = json.loads(data.decode("utf-8"))  # checked by _check below
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"record: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        raise EnvelopeError(f"record: not valid JSON ({exc})") from exc
    _check_record(obj)
    if canonical(obj) != data:
        raise EnvelopeError("record: bytes are not in canonical form (RFC 8785)")
    return obj


def blobs(parts: Mapping[str, SealedPart]) -> dict[str, bytes]:
    """The ciphertexts to store beside the record: ``{"program": ct, "input": ct, ...}``."""
    return {p: part.ciphertext for p, part in parts.items()}


def sealed_parts(record: Mapping[str, Any]) -> tuple[str, ...]:
    """The parts this record has: the three of every record, and ``source`` if sealed."""
    return (*PURPOSES, *(p for p in OPTIONAL_PURPOSES if p in record))


def check_blobs(
    record: Mapping[str, Any],
    blobs: Mapping[str, bytes],
    digests: Mapping[str, str] | None = None,
) -> str | None:
    """None when every ciphertext matches the record's length and digest, else the problem.

    ``digests`` holds SHA-256 (hex) of blobs already checked against their bytes (the log's
    audit checks each blob it stores by content once), which are then not hashed again.
    """
    for p in sealed_parts(record):
        ct, want = blobs.get(p), record[p]
        if ct is None:
            return f"{p}: no ciphertext stored"
        if len(ct) != want["ct_len"]:
            return f"{p}: ciphertext is {len(ct)} bytes, record field ct_len says {want['ct_len']}"
        digest = (digests or {}).get(p) or hashlib.sha256(ct).hexdigest()
        if digest != want["ct_sha256"]:
            return f"{p}: ciphertext does not match record field ct_sha256"
    return None


def open_record(
    record: Mapping[str, Any],
    blobs: Mapping[str, bytes],
    private_key: ec.EllipticCurvePrivateKey,
) -> OpenedRecord:
    """Check the blobs, open every part and re-check every commitment.

    Raises ``EnvelopeError`` (blob or record problem), ``DecryptionError`` (wrong key, or an
    altered enc, ciphertext or id) or ``CommitmentMismatch``, each naming the part.
    """
    _check_record(record)
    problem = check_blobs(record, blobs)
    if problem:
        raise EnvelopeError(problem)
    mine = key_id(private_key.public_key())
    if mine != record["recipient"]:
        raise DecryptionError(
            f"record is sealed to recipient {record['recipient'][:16]}..., "
            f"not to this key ({mine[:16]}...)"
        )
    opened = _open_parts(record, blobs, private_key)
    program = opened["program"].payload
    if len(program) != record["program"]["size"]:
        raise EnvelopeError(f"program: opened {len(program)} bytes, record field size disagrees")
    call, stdin = _open_input(opened["input"].payload, record["input"].get("v", 1))
    return OpenedRecord(
        program=program,
        input=call,
        result=_json_object("result", opened["result"].payload),
        salts={p: o.salt for p, o in opened.items()},
        source=_json_object("source", opened["source"].payload) if "source" in opened else None,
        stdin=stdin,
    )


def _open_parts(
    record: Mapping[str, Any],
    blobs: Mapping[str, bytes],
    private_key: ec.EllipticCurvePrivateKey,
) -> dict[str, Opened]:
    """Every part opened: with the run's one secret (versions 2 and 3; a part with ``wrapped``
    by content) or one HPKE message each (version 1)."""
    rid = record["id"]
    commitments = {p: bytes.fromhex(record[p]["commitment"]) for p in sealed_parts(record)}
    if record["v"] == 1:
        return {
            p: open_part(p, rid, bytes.fromhex(record[p]["enc"]), blobs[p], private_key, c)
            for p, c in commitments.items()
        }
    key = record["key"]
    secret = open_run_key(
        bytes.fromhex(key["enc"]), bytes.fromhex(key["wrapped"]), private_key, rid
    )
    return {
        p: open_by_content(p, rid, secret, bytes.fromhex(record[p]["wrapped"]), blobs[p], c)
        if "wrapped" in record[p]
        else open_with(p, rid, secret, blobs[p], c)
        for p, c in commitments.items()
    }


def _open_input(payload: bytes, version: int) -> tuple[dict[str, Any], bytes]:
    """The call (JSON object, grants without stdin) and stdin of an opened input part."""
    if version == 1:
        call = _json_object("input", payload)
        grants = call.get("grants")
        text = grants.pop("stdin", "") if isinstance(grants, dict) else ""
        try:
            return call, bytes.fromhex(text)
        except (TypeError, ValueError):
            raise EnvelopeError("input: stdin is not hex (version 1 input)") from None
    head, sep, stdin = payload.partition(b"\0")
    if not sep:
        raise EnvelopeError("input: no NUL byte between the call and stdin")
    return _json_object("input", head), stdin


def recommit(purpose: str, record_id: str, payload: dict[str, Any] | bytes, salt: bytes) -> bytes:
    """The commitment a replayed payload would have, to compare with the record's."""
    data = payload if isinstance(payload, bytes) else canonical(payload)
    return commit(purpose, record_id, data, salt)


def _json_object(purpose: str, payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise EnvelopeError(f"{purpose}: opened payload is not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise EnvelopeError(f"{purpose}: opened payload is not a JSON object")
    return obj


def _check(
    obj: Any, schema: Mapping[str, Any], prefix: str = "", optional: Mapping[str, Any] | None = None
) -> None:
    """Raise ``EnvelopeError`` for the first missing, ill-typed or unknown field; the fields
    of ``optional`` may be absent."""
    if not isinstance(obj, dict):
        raise EnvelopeError(
            f"record field {prefix[:-1]!r}: expected an object"
            if prefix
            else "record: expected a JSON object"
        )
    present = {k: v for k, v in (optional or {}).items() if k in obj}
    for name, rule in {**schema, **present}.items():
        if name not in obj:
            if isinstance(rule, _Absent):
                continue
            raise EnvelopeError(f"record field {prefix + name!r}: missing")
        if isinstance(rule, _Absent):
            rule = rule.check
        if isinstance(rule, dict):
            _check(obj[name], rule, f"{prefix}{name}.")
        elif problem := rule(obj[name]):
            raise EnvelopeError(f"record field {prefix + name!r}: {problem}")
    unknown = next((k for k in obj if k not in schema and k not in present), None)
    if unknown is not None:
        raise EnvelopeError(f"record field {f'{prefix}{unknown}'!r}: unknown field")


@dataclass(frozen=True)
class _Absent:
    """A field that older records lack: absent is fine, present must pass ``check``."""

    check: _Check


def _hex(n: int) -> _Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, str) and len(v) == n and _HEX.fullmatch(v)
        return None if ok else f"expected {n} lowercase hex characters"

    return check


def _int(v: Any) -> str | None:
    ok = type(v) is int and -_MAX_INT <= v <= _MAX_INT
    return None if ok else "expected an integer (no floats) within +-(2**53 - 1)"


def _uint(v: Any) -> str | None:
    return _int(v) or (None if v >= 0 else "expected a non-negative integer")


def _true(v: Any) -> str | None:
    return None if v is True else "expected true (or the field left out)"


def _optional(check: _Check) -> _Check:
    return lambda v: None if v is None else check(v)


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else "expected a string"


def _bool(v: Any) -> str | None:
    return None if type(v) is bool else "expected true or false"


def _version(v: Any) -> str | None:
    return None if type(v) is int and v in _SCHEMAS else f"unsupported version {v!r}"


def _input_version(v: Any) -> str | None:
    ok = type(v) is int and v in (1, INPUT_VERSION)
    return None if ok else f"unsupported input version {v!r}"


def _suite(v: Any) -> str | None:
    return None if v == SUITE_NAME else f"unsupported suite {v!r}"


def _int_map(v: Any) -> str | None:
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        return "expected an object mapping names to integers"
    bad = next((k for k, x in v.items() if _int(x)), None)
    return None if bad is None else f"value of {bad!r}: {_int(v[bad])}"


_PART = {"commitment": _hex(64), "ct_sha256": _hex(64), "ct_len": _uint}
_PART_V1 = {**_PART, "enc": _hex(130)}
_PART_V3 = {**_PART, "wrapped": _Absent(_hex(2 * WRAPPED_CONTENT_LEN))}  # by content, or not


def _common(part: Mapping[str, Any], program: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fields every record version has, its parts of shape ``part`` (the program's of
    shape ``program`` when given)."""
    return {
        "v": _version,
        "id": _hex(32),
        "time": _uint,
        "recipient": _hex(64),
        "suite": _suite,
        "program": {**(program or part), "size": _uint},
        "input": {**part, "v": _Absent(_input_version)},
        "result": part,
        "limits": _int_map,
        "outcome": {
            "status": _str,
            "trap": _optional(_str),
            "exit_code": _optional(_int),
            "fuel_used": _uint,
            "fuel_lower_bound": _Absent(_true),
            "memory_bytes": _uint,
            "duration_us": _uint,
        },
        "deterministic": _bool,
    }


def _names(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, str) for x in v)
    return None if ok else "expected a list of strings"


def _dirs(v: Any) -> str | None:
    def ok(d: Any) -> bool:
        return (
            isinstance(d, dict)
            and set(d) == {"guest", "mode"}
            and isinstance(d["guest"], str)
            and d["mode"] in ("ro", "rw")
        )

    good = isinstance(v, list) and all(ok(d) for d in v)
    return None if good else 'expected a list of {"guest": str, "mode": "ro" | "rw"}'


def _kv(v: Any) -> str | None:
    ok = (
        isinstance(v, dict)
        and set(v) == {"namespace", "mode"}
        and isinstance(v["namespace"], str)
        and v["mode"] in ("ro", "rw")
    )
    return None if ok else 'expected {"namespace": str, "mode": "ro" | "rw"}'


def _level(v: Any) -> str | None:
    return None if v in ("trusted", "unknown", "dev") else "expected trusted, unknown or dev"


def _decisions(v: Any) -> str | None:
    def ok(d: Any) -> bool:
        return (
            isinstance(d, dict)
            and set(d) == {"capability", "decision", "reason"}
            and all(isinstance(x, str) for x in d.values())
            and d["decision"] in ("granted", "narrowed", "refused")
        )

    good = isinstance(v, list) and all(ok(d) for d in v)
    return None if good else "expected a list of {capability, decision, reason}"


_GRANTS = {
    "dirs": _dirs,
    "env": _names,
    "argv": _uint,
    "stdin_bytes": _uint,
    "kv": _Absent(_kv),
    "host_log": _Absent(_true),
}


_FACE = {"name": _str, "authenticated": _bool, "client": _Absent(_str), "user": _Absent(_str)}


def _optional_fields(part: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a record may lack, its optional parts (the source) of shape ``part``."""
    return {
        **{p: part for p in OPTIONAL_PURPOSES},
        "grants": _GRANTS,
        "signer": _str,
        "policy": {"level": _level, "decisions": _decisions},
        "face": _FACE,
    }


#: ``(required, optional)`` fields per record version.
_RUN_KEY = {"enc": _hex(130), "wrapped": _hex(96)}
_SCHEMAS: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {
    1: (_common(_PART_V1), _optional_fields(_PART_V1)),
    2: ({**_common(_PART), "key": _RUN_KEY}, _optional_fields(_PART)),
    VERSION: ({**_common(_PART, _PART_V3), "key": _RUN_KEY}, _optional_fields(_PART_V3)),
}


#: The fields of a record that `build` takes from its caller; the rest it makes itself from
#: the sealed parts, so it checks only these.
_GIVEN = (
    "id",
    "time",
    "recipient",
    "program",
    "limits",
    "outcome",
    "deterministic",
    "grants",
    "signer",
    "policy",
    "face",
)


def _check_given(record: dict[str, Any]) -> None:
    """Check the `_GIVEN` fields ``record`` has against its version's schema."""
    schema, optional = _SCHEMAS[record["v"]]
    for name in _GIVEN:
        if name in record:
            _check({name: record[name]}, {name: schema.get(name) or optional[name]})


def _check_record(obj: Any) -> None:
    """Check a record against the schema of its version; raises ``EnvelopeError``."""
    version = obj.get("v") if isinstance(obj, dict) else None
    schema, optional = _SCHEMAS.get(version if type(version) is int else 1, _SCHEMAS[1])
    _check(obj, schema, optional=optional)
    if version == VERSION and not any("wrapped" in obj[p] for p in sealed_parts(obj)):
        raise EnvelopeError("record field 'v': a version 3 record seals some part by content")
