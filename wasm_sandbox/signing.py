"""Signed modules, in the WebAssembly tool-conventions signature format (``Signatures.md``),
the format the ``wasmsign2`` tool reads and writes, for modules and components alike.

A signed binary starts with a custom section named ``signature``; it signs everything after
itself. Its payload, every count and length a LEB128 ``varuint32``::

    spec_version 0x01, content_type 0x01, hash_fn 0x01 (SHA-256), count, count x
      len-prefixed signed_hashes: count, count x 32-byte hash, count, count x
        len-prefixed signature: len-prefixed key_id, alg 0x01 (Ed25519), len-prefixed bytes

Each signature is Ed25519 over ``"wasmsig" || 0x01 || 0x01 || 0x01 || hash_1 || ... ||
hash_n``; for a whole-module signature (the only kind made or accepted here: partial
signatures must be ignored unless asked for) one of the hashes is SHA-256 of every byte
after the signature section. So a section appended, removed or changed after signing breaks
it. `sign` writes no key id (the format's example does the same); `signer` tries every
signature against every key it is given.

Example::

    signed = sign(wasm, ed25519_private_key)
    signer(signed, [parse_verifier_key(vkey)])   # the VerifierKey, or PolicyError saying why
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import leb128
from .checkpoint import VerifierKey, verifier_key
from .errors import PolicyError

SECTION = "signature"
_DOMAIN = b"wasmsig"
_VERSION = _CONTENT_TYPE = _SHA256 = _ED25519 = 0x01
_HEADER = _DOMAIN + bytes([_VERSION, _CONTENT_TYPE, _SHA256])
_PREAMBLE = 8  # b"\0asm" and a 4-byte version (modules) or version and layer (components)
_MAX_HASHES, _MAX_SIGNATURES = 64, 256  # wasmsign2's bounds


@dataclass(frozen=True)
class SignedHashes:
    """One set of hashes and the Ed25519 signatures over them (key id, signature)."""

    hashes: tuple[bytes, ...]
    signatures: tuple[tuple[bytes, bytes], ...]

    def message(self) -> bytes:
        return _HEADER + b"".join(self.hashes)


def sign(wasm: bytes, key: Ed25519PrivateKey) -> bytes:
    """``wasm`` signed by ``key`` as a whole; a signature it had is replaced."""
    _, signed = split(wasm)
    digest = hashlib.sha256(signed).digest()
    signature = key.sign(_HEADER + digest)
    entry = leb128.encode(0) + bytes([_ED25519]) + _slice(signature)  # no key id
    hashes = leb128.encode(1) + digest + leb128.encode(1) + _slice(entry)
    data = bytes([_VERSION, _CONTENT_TYPE, _SHA256]) + leb128.encode(1) + _slice(hashes)
    name = SECTION.encode()
    section = b"\0" + _slice(_slice(name) + data)
    return wasm[:_PREAMBLE] + section + signed


def signer(wasm: bytes, keys: Sequence[VerifierKey]) -> VerifierKey:
    """The first of ``keys`` whose valid signature covers the whole of ``wasm``; raises
    `PolicyError` naming why there is none: unsigned, altered after signing, or signed
    by another key."""
    data, signed = split(wasm)
    if data is None:
        raise PolicyError("the module is not signed (no signature section comes first)")
    sets = _parse(data)
    digest = hashlib.sha256(signed).digest()
    altered = False
    for key in keys:
        for entry in sets:
            message = entry.message()
            if any(key.signed(sig, message) for _, sig in entry.signatures):
                if digest in entry.hashes:
                    return key
                altered = True
    if altered:
        raise PolicyError("the module was altered after signing (its sections changed)")
    names = ", ".join(k.name for k in keys) or "no key"
    raise PolicyError(f"the module is signed, but not by a required key ({names})")


def verifier_key_of(key: VerifierKey) -> str:
    """The verifier key string of ``key`` (what the record notes as the signer)."""
    return verifier_key(key.name, key.public_key)


def split(wasm: bytes) -> tuple[bytes | None, bytes]:
    """``(payload of a leading signature section or None, the bytes after it)``."""
    if len(wasm) < _PREAMBLE or wasm[:4] != b"\0asm":
        raise PolicyError("not a WebAssembly binary: only binaries can be signed")
    pos = _PREAMBLE
    if pos < len(wasm) and wasm[pos] == 0:
        try:
            size, start = leb128.decode(wasm, pos + 1)
            name_len, name_at = leb128.decode(wasm, start)
        except ValueError:  # truncated
            raise PolicyError("the module's first section is truncated") from None
        end = start + size
        if end <= len(wasm) and wasm[name_at : name_at + name_len] == SECTION.encode():
            return wasm[name_at + name_len : end], wasm[end:]
    return None, wasm[_PREAMBLE:]


def _parse(data: bytes) -> list[SignedHashes]:
    """The signed hash sets of a signature section's payload."""
    try:
        return _Reader(data).signature_data()
    except (ValueError, IndexError) as exc:
        raise PolicyError(f"the module's signature section is malformed ({exc})") from None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def signature_data(self) -> list[SignedHashes]:
        version, content, hash_fn = self.byte(), self.byte(), self.byte()
        if (version, content, hash_fn) != (_VERSION, _CONTENT_TYPE, _SHA256):
            raise ValueError(f"version {version}, content type {content}, hash {hash_fn}")
        sets = [_Reader(self.slice()).signed_hashes() for _ in range(self.count(_MAX_HASHES))]
        if self.pos != len(self.data):
            raise ValueError("bytes after the last signature")
        return sets

    def signed_hashes(self) -> SignedHashes:
        hashes = tuple(self.take(32) for _ in range(self.count(_MAX_HASHES)))
        entries = [_Reader(self.slice()) for _ in range(self.count(_MAX_SIGNATURES))]
        return SignedHashes(hashes, tuple(e.signature() for e in entries))

    def signature(self) -> tuple[bytes, bytes]:
        key_id, alg = self.slice(), self.byte()
        return key_id, self.slice() if alg == _ED25519 else b""  # other algorithms: skipped

    def count(self, most: int) -> int:
        n = self.leb()
        if n > most:
            raise ValueError(f"{n} entries, more than {most}")
        return n

    def slice(self) -> bytes:
        return self.take(self.leb())

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def leb(self) -> int:
        value, self.pos = leb128.decode(self.data, self.pos)
        return value


def _slice(data: bytes) -> bytes:
    return leb128.encode(len(data)) + data
