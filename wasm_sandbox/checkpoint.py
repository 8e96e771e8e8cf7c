"""C2SP tlog-checkpoints in C2SP signed notes, signed with Ed25519.

A checkpoint body is ``"<origin>\\n<size>\\n<base64 root>\\n"``; the signed note appends a blank
line and one line per signature, ``"— <name> <base64(key id || signature)>\\n"``. A verifier key
string is ``"<name>+<hex key id>+<base64(0x01 || public key)>"``::

    note = sign_note(format_checkpoint("example.com/log", 3, root), "example.com/log", sk)
    cp = open_note(note, verifier_key("example.com/log", sk.public_key()))  # or VerificationError
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import VerificationError

__all__ = [
    "ED25519",
    "MAX_SIGNATURES",
    "PREVIOUS",
    "SIGNATURE_PREFIX",
    "Checkpoint",
    "VerifierKey",
    "b64decode",
    "format_checkpoint",
    "key_id",
    "open_note",
    "parse_verifier_key",
    "previous_size",
    "sign_note",
    "split_note",
    "verifier_key",
]

ED25519 = 0x01  # signature type byte of Ed25519 note signatures
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 64
PREVIOUS = "previous"  # extension line "previous <size>": the checkpoint before this one
_SIZE = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class VerifierKey:
    """A parsed verifier key: who signs (name), the 4-byte key id, and the Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def signed(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the log's origin, tree size and root, and the signed note text."""

    origin: str
    size: int
    root: bytes
    note: str


def b64decode(text: str) -> bytes:
    """Decode strict standard base64 (RFC 4648 section 4); only the canonical form is accepted.

    Raises ValueError for anything else, including unused bits that are not zero.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("not base64") from exc
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not canonical base64")
    return raw


def _is_text(text: object) -> bool:
    """Whether ``text`` is a UTF-8 encodable str with no control character but newline."""
    if not isinstance(text, str) or _CONTROL.search(text):
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or "+" in name or any(c.isspace() for c in name):
        raise ValueError(f"key name {name!r} must be non-empty text without spaces or '+'")


def key_id(name: str, public_key: Ed25519PublicKey, kind: int = ED25519) -> bytes:
    """The 4-byte key id: ``SHA-256(name || 0x0A || kind || public key)[:4]``.

    ``kind`` is the signature type byte: 0x01 for note signatures, 0x04 for cosignatures.
    """
    _check_name(name)
    data = name.encode() + b"\n" + bytes([kind]) + _raw(public_key)
    return hashlib.sha256(data).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey, kind: int = ED25519) -> str:
    """The verifier key string ``name+hexkeyid+base64(kind || public key)``."""
    key = base64.b64encode(bytes([kind]) + _raw(public_key)).decode()
    return f"{name}+{key_id(name, public_key, kind).hex()}+{key}"


def parse_verifier_key(text: str, kind: int = ED25519) -> VerifierKey:
    """Parse a verifier key string of type ``kind``; raises VerificationError naming what is
    wrong."""
    parts = text.split("+", 2) if isinstance(text, str) else []
    try:
        if len(parts) != 3 or not _KEY_ID.fullmatch(parts[1]):
            raise ValueError(f"expected name+<8 hex digits>+base64(0x{kind:02x} || Ed25519 key)")
        name, hex_id, b64 = parts
        raw = b64decode(b64)
        if len(raw) != 33 or raw[0] != kind:
            raise ValueError(f"the key is not 0x{kind:02x} followed by a 32-byte Ed25519 key")
        public_key = Ed25519PublicKey.from_public_bytes(raw[1:])
        if key_id(name, public_key, kind) != bytes.fromhex(hex_id):
            raise ValueError("the key id does not match the name and key")
    except ValueError as exc:
        raise VerificationError(f"malformed verifier key: {exc}") from None
    return VerifierKey(name, bytes.fromhex(hex_id), public_key)


def format_checkpoint(origin: str, size: int, root: bytes) -> str:
    """The checkpoint body ``"<origin>\\n<size>\\n<base64 root>\\n"``.

    Requires a non-empty one-line origin, ``size >= 0`` and a 32-byte root; raises ValueError.
    """
    if not _is_text(origin) or not origin or "\n" in origin:
        raise ValueError(f"origin {origin!r} must be one non-empty line of text")
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"tree size {size!r} must be an integer >= 0")
    if not isinstance(root, bytes) or len(root) != 32:
        raise ValueError("root must be 32 bytes")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def previous_size(note: str) -> int | None:
    """The size named by a checkpoint's `PREVIOUS` extension line, if it has one."""
    for line in note[: note.find("\n\n")].split("\n")[3:]:
        name, _, digits = line.partition(" ")
        if name == PREVIOUS and digits.isascii() and digits.isdigit():
            return int(digits)
    return None


def sign_note(
    body: str, name: str, private_key: Ed25519PrivateKey, signer_id: bytes | None = None
) -> str:
    """Sign ``body`` (text ending in a newline) as ``name``; return the signed note.
    ``signer_id`` is the key's `key_id` when the caller keeps it (a log signing every
    append), else it is computed."""
    if not _is_text(body) or not body.endswith("\n"):
        raise ValueError("note text must end in a newline and hold no control characters")
    signer_id = signer_id or key_id(name, private_key.public_key())
    sig = signer_id + private_key.sign(body.encode())
    return f"{body}\n{SIGNATURE_PREFIX}{name} {base64.b64encode(sig).decode()}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """The note text and its signatures as ``(name, key id || signature)``; raises
    VerificationError for a malformed note."""
    if not _is_text(note) or not note.endswith("\n"):
        raise VerificationError("malformed note: not text ending in a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise VerificationError("malformed note: no blank line before the signatures")
    lines = note[cut + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    sigs = []
    for line in lines:
        name, _, b64 = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
        try:
            if not line.startswith(SIGNATURE_PREFIX):
                raise ValueError
            _check_name(name)
            sig = b64decode(b64)
        except ValueError:
            raise VerificationError(f"malformed signature line {line[:40]!r}") from None
        if len(sig) < 5:
            raise VerificationError(f"malformed signature line {line[:40]!r}")
        sigs.append((name, sig))
    return note[: cut + 1], sigs


def _parse_body(body: str, note: str) -> Checkpoint:
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise VerificationError("malformed checkpoint: needs origin, size and root lines")
    origin, size, root_b64 = lines[:3]
    if not _SIZE.fullmatch(size):
        raise VerificationError(f"malformed checkpoint: bad tree size {size[:20]!r}")
    try:
        root = b64decode(root_b64)
    except ValueError:
        root = b""
    if len(root) != 32:
        raise VerificationError("malformed checkpoint: root is not a base64 32-byte hash")
    return Checkpoint(origin, int(size), root, note)


def open_note(note: str, verifier: str | VerifierKey) -> Checkpoint:
    """Verify a signed checkpoint note with a verifier key and parse it.

    Signatures by other keys are ignored; at least one by ``verifier`` is required and every one
    by it must verify. Raises VerificationError with a one-line reason.
    """
    vkey = parse_verifier_key(verifier) if isinstance(verifier, str) else verifier
    body, sigs = split_note(note)
    mine = [sig[4:] for name, sig in sigs if name == vkey.name and sig[:4] == vkey.key_id]
    if not mine:
        raise VerificationError(f"note has no signature by {vkey.name}")
    for sig in mine:
        if not vkey.signed(sig, body.encode()):
            raise VerificationError(f"bad signature by {vkey.name}")
    return _parse_body(body, note)
