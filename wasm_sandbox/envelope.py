"""Sealing: HPKE (RFC 9180) encryption of the parts of a run, and salted commitments.

A run makes one HPKE key agreement (`new_run_key`): a fresh ephemeral key pair seals a fresh
32-byte secret to the recipient's P-256 public key, with an ``info`` binding the version and the
record id. Each part (``program``, ``input``, ``result`` or the optional ``source``) is then
AES-256-GCM encrypted (`seal_with`), a fresh 32-byte salt prepended to the payload, under its
own key HKDF-SHA256(secret, info) whose ``info`` binds the version, the purpose and the record
id, so a ciphertext moved to another record or purpose does not open. Records before version 2
sealed each part with its own HPKE message (`seal`, `open_part`); they still open.

Since version 3 a large program or source is sealed by content (`seal_by_content`): its bytes
are encrypted once under a content key derived from the sealing home's secret, the recipient
and the payload's SHA-256 (`content_key`), so every run of the same program to the same
recipient has the same ciphertext, which the log stores once; the run's own part key seals only
the commitment's salt and that content key (``wrapped``). The commitment
``SHA-256(lp(tag) || lp(record_id) || lp(payload) || salt)`` hides the payload from everyone
but the key holder, who learns the salt by opening the ciphertext.

Example::

    key = new_run_key(public_key, record_id)
    part = seal_with("result", b'{"ok":true}', key, record_id)
    secret = open_run_key(key.enc, key.wrapped, private_key, record_id)
    opened = open_with("result", record_id, secret, part.ciphertext, part.commitment)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from wasm_sandbox.errors import CommitmentMismatch, DecryptionError, EnvelopeError

SUITE = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
SUITE_NAME = "DHKEM(P-256,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM"
PURPOSES = ("program", "input", "result")
#: Parts a record may also have: ``source``, the text the program was compiled from.
OPTIONAL_PURPOSES = ("source",)
SALT_LEN = 32
ENC_LEN = 65  # an uncompressed P-256 point
SECRET_LEN = 32
WRAPPED_LEN = SECRET_LEN + 16  # the run secret and its AES-GCM tag
CONTENT_KEY_LEN = 32
WRAPPED_CONTENT_LEN = SALT_LEN + CONTENT_KEY_LEN + 16  # salt, content key, AES-GCM tag
_VERSION = "wasm-sandbox/v1"
_NONCE = bytes(12)  # every part key encrypts exactly one message


@dataclass(frozen=True)
class RunKey:
    """A run's one key agreement: the HPKE ``enc`` and the sealed (``wrapped``) secret."""

    enc: bytes
    wrapped: bytes
    secret: bytes = field(repr=False)

    def summary(self) -> dict[str, str]:
        """The key as it appears in the execution record (field ``key``, hex strings)."""
        return {"enc": self.enc.hex(), "wrapped": self.wrapped.hex()}


@dataclass(frozen=True)
class SealedPart:
    """One sealed part: the ciphertext (tag included), the commitment, and either the run's
    shared `RunKey` (version 2) or the part's own HPKE ``enc`` (version 1). A part sealed
    by content (version 3) also has ``wrapped``: its salt and content key, sealed for the run."""

    purpose: str
    enc: bytes
    ciphertext: bytes
    commitment: bytes
    salt: bytes = field(default=b"", repr=False)  # the commitment's salt, for a disclosure
    run_key: RunKey | None = field(default=None, repr=False)
    wrapped: bytes = b""

    def summary(self) -> dict[str, str | int]:
        """The part as it appears in the execution record (hex strings, integer length)."""
        enc = {} if self.run_key is not None else {"enc": self.enc.hex()}
        wrapped = {"wrapped": self.wrapped.hex()} if self.wrapped else {}
        return {
            "commitment": self.commitment.hex(),
            **enc,
            **wrapped,
            "ct_sha256": hashlib.sha256(self.ciphertext).hexdigest(),
            "ct_len": len(self.ciphertext),
        }


@dataclass(frozen=True)
class Opened:
    """An opened part: the payload and the salt its commitment was made with."""

    payload: bytes
    salt: bytes


def canonical(obj: Any) -> bytes:
    """Encode ``obj`` as RFC 8785 canonical JSON; raises ``ValueError`` if it cannot be.

    Records and payloads hold only ASCII keys, strings, safe integers, booleans and null;
    for those, ``json.dumps`` with sorted keys and no spaces produces exactly the RFC 8785
    bytes (same escapes, same key order) about ten times faster. Anything else (a float,
    a non-ASCII key) goes through the ``rfc8785`` package.
    """
    if not _plain(obj):
        return rfc8785.dumps(obj)
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"cannot encode {exc.object[exc.start : exc.end]!r} as UTF-8") from None


_SAFE_INT = 2**53 - 1


def _plain(obj: Any) -> bool:
    """True for JSON made of ASCII-keyed objects, lists, strings, safe ints, bools, null.

    Exact types of values only (a subclass takes the ``rfc8785`` path); iterative, as
    records are encoded on every run.
    """
    stack = [obj]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is int:
            if not -_SAFE_INT <= value <= _SAFE_INT:
                return False
        elif kind is dict:
            try:
                if not "".join(value).isascii():  # a key that is not a string: TypeError
                    return False
            except TypeError:
                return False
            stack.extend(value.values())
        elif kind is list or kind is tuple:
            stack.extend(value)
        else:
            return False
    return True


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """Hex SHA-256 of the key's DER SubjectPublicKeyInfo. The last key's is remembered
    (by identity: key objects do not hash), as every run asks for its recipient's."""
    global _last_key_id
    last = _last_key_id
    if last is not None and last[0] is public_key:
        return last[1]
    digest = hashlib.sha256(public_der(public_key)).hexdigest()
    _last_key_id = (public_key, digest)
    return digest


_last_key_id: tuple[ec.EllipticCurvePublicKey, str] | None = None


def public_der(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The key's DER SubjectPublicKeyInfo: how a public key travels to a worker process
    (key objects do not pickle)."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_der(der: bytes) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of `public_der`'s bytes; raises ``EnvelopeError`` for others."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise EnvelopeError(f"recipient key: not a DER public key ({exc})") from None
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
        raise EnvelopeError("recipient key: not a P-256 public key")
    return key


def commit(purpose: str, record_id: str, payload: bytes, salt: bytes) -> bytes:
    """``SHA-256(lp(tag) || lp(record_id) || lp(payload) || salt)``, tag per purpose."""
    if len(salt) != SALT_LEN:
        raise ValueError(f"salt must be {SALT_LEN} bytes, got {len(salt)}")
    return hashlib.sha256(_tag(purpose) + _lp(record_id.encode(), payload) + salt).digest()


def seal(
    purpose: str, payload: bytes, recipient_public_key: ec.EllipticCurvePublicKey, record_id: str
) -> SealedPart:
    """Encrypt ``salt || payload`` to the recipient and commit to ``payload``."""
    salt = os.urandom(SALT_LEN)
    sealed = SUITE.encrypt(salt + payload, recipient_public_key, info=_info(purpose, record_id))
    return SealedPart(
        purpose=purpose,
        enc=sealed[:ENC_LEN],
        ciphertext=sealed[ENC_LEN:],
        commitment=commit(purpose, record_id, payload, salt),
        salt=salt,
    )


def new_run_key(recipient_public_key: ec.EllipticCurvePublicKey, record_id: str) -> RunKey:
    """A fresh secret for one run, sealed to the recipient (a fresh ephemeral key pair)."""
    secret = os.urandom(SECRET_LEN)
    sealed = SUITE.encrypt(secret, recipient_public_key, info=_key_info(record_id))
    return RunKey(enc=sealed[:ENC_LEN], wrapped=sealed[ENC_LEN:], secret=secret)


def open_run_key(
    enc: bytes, wrapped: bytes, private_key: ec.EllipticCurvePrivateKey, record_id: str
) -> bytes:
    """The run's secret; raises ``DecryptionError`` when it does not open (wrong key, or an
    altered enc, wrapped secret or record id)."""
    if len(enc) != ENC_LEN or len(wrapped) != WRAPPED_LEN:
        raise DecryptionError(
            f"key: enc or wrapped secret has the wrong length ({len(enc)}, "
            f"{len(wrapped)}; expected {ENC_LEN}, {WRAPPED_LEN})"
        )
    try:
        return SUITE.decrypt(enc + wrapped, private_key, info=_key_info(record_id))
    except InvalidTag as exc:
        raise DecryptionError(
            "key: the run's secret does not open (wrong key, or enc, wrapped secret or record "
            "id altered)"
        ) from exc


def seal_with(purpose: str, payload: bytes, run_key: RunKey, record_id: str) -> SealedPart:
    """Encrypt ``salt || payload`` under the part's key from ``run_key``; commit to it."""
    salt = os.urandom(SALT_LEN)
    ct = AESGCM(_part_key(run_key.secret, purpose, record_id)).encrypt(_NONCE, salt + payload, None)
    commitment = commit(purpose, record_id, payload, salt)
    return SealedPart(purpose, b"", ct, commitment, salt, run_key)


def open_with(
    purpose: str, record_id: str, secret: bytes, ciphertext: bytes, commitment: bytes
) -> Opened:
    """Decrypt a part sealed with `seal_with` and re-check its commitment; raises as
    `open_part` does."""
    plain = _decrypt_part(purpose, record_id, secret, ciphertext, ("ciphertext", "ciphertext"))
    return _checked(purpose, record_id, plain, commitment)


def content_key(secret: bytes, purpose: str, recipient_key_id: str, payload: bytes) -> bytes:
    """The key ``payload`` is encrypted under by every run that seals it as ``purpose`` to
    this recipient: HKDF-Expand-SHA256(secret, ``lp(version tag) || lp(content-key tag) ||
    lp(purpose tag) || lp(recipient key id) || lp(payload)``), 32 bytes.

    ``secret`` is the sealing home's 32-byte content secret (`wasm_sandbox.keys`). The key is
    unique per payload, so it only ever encrypts one plaintext, and deriving it takes the
    payload itself, not only its digest.
    """
    info = _INFO + _CONTENT_TAG + _tag(purpose) + _lp(recipient_key_id.encode(), payload)
    return HKDFExpand(hashes.SHA256(), CONTENT_KEY_LEN, info).derive(secret)


def seal_by_content(
    purpose: str, payload: bytes, key: bytes, run_key: RunKey, record_id: str
) -> SealedPart:
    """Encrypt ``payload`` under its content ``key`` (`content_key`; zero nonce: the key only
    ever encrypts this payload, so the ciphertext is the same for every run) and seal a fresh
    salt and ``key`` under the part's key from ``run_key``; commit to ``payload``."""
    salt = os.urandom(SALT_LEN)
    ciphertext = AESGCM(key).encrypt(_NONCE, payload, None)
    part_key = _part_key(run_key.secret, purpose, record_id)
    wrapped = AESGCM(part_key).encrypt(_NONCE, salt + key, None)
    commitment = commit(purpose, record_id, payload, salt)
    return SealedPart(purpose, b"", ciphertext, commitment, salt, run_key, wrapped)


def open_by_content(
    purpose: str,
    record_id: str,
    secret: bytes,
    wrapped: bytes,
    ciphertext: bytes,
    commitment: bytes,
) -> Opened:
    """Open a part sealed with `seal_by_content`: its salt and content key with the run's
    ``secret``, then the shared ``ciphertext``; re-check the commitment. Raises as
    `open_part` does."""
    plain = _decrypt_part(purpose, record_id, secret, wrapped, ("its content key", "wrapped key"))
    if len(plain) != SALT_LEN + CONTENT_KEY_LEN:
        raise EnvelopeError(f"{purpose}: wrapped content key is {len(plain)} bytes opened")
    salt, key = plain[:SALT_LEN], plain[SALT_LEN:]
    try:
        payload = AESGCM(key).decrypt(_NONCE, ciphertext, None)
    except InvalidTag as exc:
        raise DecryptionError(
            f"{purpose}: ciphertext does not open with its content key (ciphertext altered)"
        ) from exc
    return _recommitted(purpose, record_id, Opened(payload, salt), commitment)


def open_part(
    purpose: str,
    record_id: str,
    enc: bytes,
    ciphertext: bytes,
    private_key: ec.EllipticCurvePrivateKey,
    commitment: bytes,
) -> Opened:
    """Decrypt one part and re-check its commitment.

    Raises ``DecryptionError`` when HPKE does not open (wrong key; altered enc, ciphertext,
    purpose or record id) and ``CommitmentMismatch`` when the plaintext does not match.
    """
    if len(enc) != ENC_LEN:
        raise DecryptionError(f"{purpose}: enc is {len(enc)} bytes, expected {ENC_LEN}")
    try:
        plain = SUITE.decrypt(enc + ciphertext, private_key, info=_info(purpose, record_id))
    except InvalidTag as exc:
        raise DecryptionError(
            f"{purpose}: ciphertext does not open (wrong key, or enc, ciphertext, purpose "
            "or record id altered)"
        ) from exc
    return _checked(purpose, record_id, plain, commitment)


def _checked(purpose: str, record_id: str, plain: bytes, commitment: bytes) -> Opened:
    """The opened ``salt || payload``, its commitment re-checked."""
    if len(plain) < SALT_LEN:
        raise EnvelopeError(f"{purpose}: plaintext is shorter than its {SALT_LEN}-byte salt")
    return _recommitted(purpose, record_id, Opened(plain[SALT_LEN:], plain[:SALT_LEN]), commitment)


def _recommitted(purpose: str, record_id: str, opened: Opened, commitment: bytes) -> Opened:
    """``opened``, its commitment re-checked (raises ``CommitmentMismatch``)."""
    expected = commit(purpose, record_id, opened.payload, opened.salt)
    if not hmac.compare_digest(expected, commitment):
        raise CommitmentMismatch(
            f"{purpose}: opened plaintext does not match the commitment "
            f"(recorded {commitment.hex()[:16]}..., recomputed {expected.hex()[:16]}...)"
        )
    return opened


#: The HPKE purpose of a program sealed to a server (``POST executions`` with
#: ``sealed_program``): not a record part, so it has no commitment and no salt.
SEALED_PROGRAM_PURPOSE = "wasm-sandbox/v1/rest/sealed-program"


def sealed_program_info(server_key: ec.EllipticCurvePublicKey) -> bytes:
    """The HPKE ``info`` of a program sealed to ``server_key``:
    ``lp(purpose) || lp(hex key id of server_key)``."""
    return _lp(SEALED_PROGRAM_PURPOSE.encode(), key_id(server_key).encode())


def seal_program(program: bytes, server_key: ec.EllipticCurvePublicKey) -> tuple[bytes, bytes]:
    """``(enc, ciphertext)`` of ``program`` sealed to a server's key."""
    sealed = SUITE.encrypt(program, server_key, info=sealed_program_info(server_key))
    return sealed[:ENC_LEN], sealed[ENC_LEN:]


def open_program(enc: bytes, ciphertext: bytes, private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """Open a program sealed with `seal_program`; raises `DecryptionError` when it does not
    open with this key (sealed to another key, or altered)."""
    if len(enc) != ENC_LEN:
        raise DecryptionError(f"enc is {len(enc)} bytes, expected {ENC_LEN}")
    try:
        return SUITE.decrypt(
            enc + ciphertext, private_key, info=sealed_program_info(private_key.public_key())
        )
    except (InvalidTag, ValueError):
        raise DecryptionError(
            "does not open with this server's key (sealed to another key, or altered)"
        ) from None


def _lp(*fields: bytes) -> bytes:
    """Each field prefixed with its length as 8 bytes big-endian, concatenated."""
    return b"".join(len(f).to_bytes(8, "big") + f for f in fields)


_TAGS = {p: _lp(f"{_VERSION}/{p}".encode()) for p in (*PURPOSES, *OPTIONAL_PURPOSES)}
_INFO = _lp(f"{_VERSION}/hpke-info".encode())


def _tag(purpose: str) -> bytes:
    """``lp(b"wasm-sandbox/v1/<purpose>")``; raises ``ValueError`` for an unknown purpose."""
    try:
        return _TAGS[purpose]
    except KeyError:
        raise ValueError(
            f"unknown purpose {purpose!r}; expected one of {', '.join(_TAGS)}"
        ) from None


def _info(purpose: str, record_id: str) -> bytes:
    """HPKE (and part key) info: ``lp(version tag) || lp(purpose tag) || lp(record_id)``."""
    return _INFO + _tag(purpose) + _lp(record_id.encode())


_KEY_TAG = _lp(b"wasm-sandbox/v2/run-key")
_CONTENT_TAG = _lp(b"wasm-sandbox/v3/content-key")


def _key_info(record_id: str) -> bytes:
    """HPKE info of a run's secret: ``lp(version tag) || lp(run-key tag) || lp(record_id)``."""
    return _INFO + _KEY_TAG + _lp(record_id.encode())


def _decrypt_part(
    purpose: str, record_id: str, secret: bytes, data: bytes, names: tuple[str, str]
) -> bytes:
    """AES-GCM-open ``data`` under the part's key; ``names`` are what failed to open and
    what may have been altered, for the `DecryptionError`."""
    try:
        return AESGCM(_part_key(secret, purpose, record_id)).decrypt(_NONCE, data, None)
    except InvalidTag as exc:
        raise DecryptionError(
            f"{purpose}: {names[0]} does not open (wrong key, or {names[1]}, purpose or record "
            "id altered)"
        ) from exc


def _part_key(secret: bytes, purpose: str, record_id: str) -> bytes:
    """The AES-256 key of one part: HKDF-Expand-SHA256(secret, `_info`), 32 bytes."""
    return HKDFExpand(hashes.SHA256(), 32, _info(purpose, record_id)).derive(secret)
