"""checkpoint.py: C2SP signed notes and tlog-checkpoints, including interop and tampering."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wasm_sandbox import checkpoint as cp
from wasm_sandbox.errors import VerificationError

# The example of golang.org/x/mod/sumdb/note (Ed25519 is deterministic, so we must match it).
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

ORIGIN = "example.com/log"
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def note(key) -> str:
    return cp.sign_note(cp.format_checkpoint(ORIGIN, 42, ROOT), ORIGIN, key)


def vkey(key: Ed25519PrivateKey, name: str = ORIGIN) -> str:
    return cp.verifier_key(name, key.public_key())


def test_matches_the_go_sumdb_note_example():
    sk = Ed25519PrivateKey.from_private_bytes(GO_SEED)
    assert cp.key_id("PeterNeumann", sk.public_key()).hex() == "c74f20a3"
    assert cp.verifier_key("PeterNeumann", sk.public_key()) == GO_VKEY
    assert cp.sign_note(GO_TEXT, "PeterNeumann", sk) == GO_NOTE
    with pytest.raises(VerificationError, match="malformed checkpoint"):
        cp.open_note(GO_NOTE, GO_VKEY)  # a valid signature, but the text is not a checkpoint
    with pytest.raises(VerificationError, match="bad signature"):
        cp.open_note(GO_NOTE.replace("cryptography", "cryptographY"), GO_VKEY)


def test_format_checkpoint():
    body = cp.format_checkpoint(ORIGIN, 42, ROOT)
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"


def test_sign_and_open_round_trip(key, note):
    lines = note.split("\n")
    assert lines[3] == "" and lines[4].startswith(f"\u2014 {ORIGIN} ") and lines[5] == ""
    assert len(base64.b64decode(lines[4].split(" ")[2])) == 4 + 64
    assert cp.open_note(note, vkey(key)) == cp.Checkpoint(ORIGIN, 42, ROOT, note)
    assert cp.open_note(note, cp.parse_verifier_key(vkey(key))).size == 42


def test_verifier_key_with_a_plus_in_its_base64():
    # From the tests of transparency-dev/formats: the key's base64 holds a '+'.
    plus_key = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    parsed = cp.parse_verifier_key(plus_key)
    assert parsed.name == "TEST" and parsed.key_id.hex() == "7997405c"
    assert cp.verifier_key(parsed.name, parsed.public_key) == plus_key


def test_verifier_key_round_trip(key):
    parsed = cp.parse_verifier_key(vkey(key))
    assert parsed.name == ORIGIN
    assert parsed.key_id == cp.key_id(ORIGIN, key.public_key())
    assert cp.verifier_key(parsed.name, parsed.public_key) == vkey(key)


def test_every_changed_byte_fails(key, note):
    raw = note.encode()
    for i in range(len(raw)):
        for bit in (0x01, 0x20, 0x80):
            bad = bytearray(raw)
            bad[i] ^= bit
            text = bad.decode("utf-8", "surrogateescape")
            with pytest.raises(VerificationError):
                cp.open_note(text, vkey(key))


def test_truncated_or_extended_notes_fail(key, note):
    for bad in (note[:-1], note + "\n", note + "x", note.split("\n\n")[0] + "\n\n", "\n\n" + note):
        with pytest.raises(VerificationError):
            cp.open_note(bad, vkey(key))


def test_wrong_key_fails(key, note):
    other = Ed25519PrivateKey.generate()
    with pytest.raises(VerificationError, match=r"no signature by example\.com/log"):
        cp.open_note(note, vkey(other))
    with pytest.raises(VerificationError, match=r"no signature by other\.example"):
        cp.open_note(note, vkey(key, "other.example"))


def test_unknown_signatures_are_ignored_but_a_bad_known_one_is_not(key, note):
    witness = Ed25519PrivateKey.generate()
    body = note.split("\n\n")[0] + "\n"
    cosigned = note + cp.sign_note(body, "witness", witness).split("\n\n")[1]
    assert cp.open_note(cosigned, vkey(key)).size == 42
    assert cp.open_note(cosigned, vkey(witness, "witness")).size == 42
    dash, name, b64 = note.split("\n\n")[1].split(" ")
    sig = bytearray(base64.b64decode(b64))
    sig[10] ^= 1  # same key id, wrong signature
    forged = f"{dash} {name} {base64.b64encode(sig).decode()}\n"
    with pytest.raises(VerificationError, match="bad signature"):
        cp.open_note(note + forged, vkey(key))


def test_too_many_signatures_fail(key, note):
    line = note.split("\n\n")[1]
    with pytest.raises(VerificationError, match="more than"):
        cp.open_note(note + line * cp.MAX_SIGNATURES, vkey(key))


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n042\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n\u0664\u0662\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode().rstrip('=')}\n",
        f"{ORIGIN}\n42\n",
        f"\n42\n{base64.b64encode(ROOT).decode()}\n",
    ],
)
def test_signed_but_malformed_checkpoints_fail(key, body):
    with pytest.raises(VerificationError, match="malformed checkpoint"):
        cp.open_note(cp.sign_note(body, ORIGIN, key), vkey(key))


def test_extension_lines_are_allowed(key):
    body = cp.format_checkpoint(ORIGIN, 7, ROOT) + "extension\n"
    assert cp.open_note(cp.sign_note(body, ORIGIN, key), vkey(key)).root == ROOT


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name",
        "name+c74f20a3",
        GO_VKEY.replace("+c74f20a3+", "+c74f20a4+"),
        GO_VKEY.replace("+c74f20a3+", "+C74F20A3+"),
        GO_VKEY.replace("+ARpc", "+AhPc"),
        GO_VKEY[:-1],
        GO_VKEY + "=",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        None,
    ],
)
def test_malformed_verifier_keys_fail(text):
    with pytest.raises(VerificationError, match="malformed verifier key"):
        cp.parse_verifier_key(text)


def test_bad_inputs_to_signing_raise_value_error(key):
    with pytest.raises(ValueError, match="origin"):
        cp.format_checkpoint("two\nlines", 1, ROOT)
    with pytest.raises(ValueError, match="tree size"):
        cp.format_checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(ValueError, match="root"):
        cp.format_checkpoint(ORIGIN, 1, ROOT[:5])
    with pytest.raises(ValueError, match="newline"):
        cp.sign_note("no newline", ORIGIN, key)
    with pytest.raises(ValueError, match="key name"):
        cp.sign_note("text\n", "has space", key)


def test_b64decode_is_strict():
    assert cp.b64decode("AA==") == b"\0"
    for bad in ("AB==", "AA", "AA=", "A A=", "AA==\n", "-_==", "\u00e9"):
        with pytest.raises(ValueError):
            cp.b64decode(bad)
