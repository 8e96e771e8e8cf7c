"""Verify a wasm-sandbox receipt with nothing but hashlib and cryptography.

A receipt is a C2SP tlog-proof: the leaf (the canonical record) in the ``extra`` line, its index,
its RFC 6962 inclusion proof, and the log's checkpoint as a C2SP signed note (Ed25519).

    python verify_receipt.py RECEIPT_FILE VERIFIER_KEY    # exit 0: verified, 1: not verified
"""

from __future__ import annotations

import base64
import hashlib
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def b64(text: str) -> bytes:
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("non-canonical base64")
    return raw


def sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Check the log's signature on the checkpoint; return its origin, tree size and root."""
    name, key_id, key = vkey.split("+", 2)
    key = b64(key)
    if len(key) != 33 or key[0] != 1 or sha256(name.encode(), b"\n", key)[:4].hex() != key_id:
        raise ValueError("malformed verifier key")
    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    for line in signatures.splitlines():
        signer, sig = line.removeprefix("\u2014 ").split(" ")
        sig = b64(sig)
        if line.startswith("\u2014 ") and signer == name and sig[:4].hex() == key_id:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(sig[4:], text.encode())
            origin, size, root = text.splitlines()[:3]
            return origin, int(size), b64(root)
    raise ValueError(f"the checkpoint is not signed by {name}")


def root_from_proof(leaf_hash: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """The root implied by an RFC 6962 inclusion proof (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        raise ValueError("index outside the tree")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01", p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01", r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("proof too short")
    return r


def verify(receipt: str, vkey: str) -> str:
    """Return a one-line summary of a valid receipt; raise ValueError (or InvalidSignature)."""
    head, _, note = receipt.partition("\n\n")
    header, extra, index, *hashes = head.split("\n")
    if header != "c2sp.org/tlog-proof@v1" or not extra.startswith("extra "):
        raise ValueError("not a wasm-sandbox receipt")
    leaf, i = b64(extra[len("extra ") :]), int(index.removeprefix("index "))
    origin, size, root = open_checkpoint(note, vkey)
    if origin != vkey.split("+")[0] or index != f"index {i}":
        raise ValueError("the checkpoint is for another log, or the index is malformed")
    if root_from_proof(sha256(b"\x00", leaf), i, size, [b64(h) for h in hashes]) != root:
        raise ValueError("the inclusion proof does not lead to the signed root")
    return f"record {i} of {origin} (tree size {size}): {leaf.decode(errors='replace')}"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} RECEIPT_FILE VERIFIER_KEY", file=sys.stderr)
        sys.exit(2)
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            print("verified:", verify(f.read(), sys.argv[2]))
    except Exception as exc:  # any failure at all means "not verified"
        print(f"NOT verified: {exc or type(exc).__name__}")
        sys.exit(1)
