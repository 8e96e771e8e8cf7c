"""A witness: cosigns a log's checkpoints once it has checked the log only grew.

It follows C2SP tlog-witness (the add-checkpoint rules) and tlog-cosignature (the format). A
witness home holds its own Ed25519 key (``keys/``, as a sandbox home's signing key) and its state
in ``witness.sqlite``: per log origin, the log's verifier key (trusted on first use) and the
largest checkpoint it cosigned. Each cosign is one ``BEGIN IMMEDIATE`` transaction: a refusal
changes nothing, and of two concurrent calls from the same size one wins and the other is told
the new size (a conflict, as the protocol's 409)::

    with Witness(home) as w:
        line = w.add_checkpoint(note, log_key, old_size=w.size_of(origin), proof=proof)
    cosigned = note + line + "\\n"
    verify_cosignature(cosigned, w.verifier_key)  # -> the cosignature's timestamp

A cosignature line is ``"— <name> base64(key id || u64 timestamp || Ed25519 signature)"`` over
``"cosignature/v1\\ntime <timestamp>\\n" || checkpoint body``; its key id uses type byte 0x04.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import struct
import time
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from . import merkle, sqlite_files
from .checkpoint import (
    SIGNATURE_PREFIX,
    Checkpoint,
    VerifierKey,
    open_note,
    parse_verifier_key,
    split_note,
    verifier_key,
)
from .errors import HomeError, Refused, VerificationError
from .home import private_dir
from .keys import SIGNING, KeyStore

__all__ = [
    "COSIGNATURE",
    "Witness",
    "Witnessed",
    "check_cosigners",
    "consistency",
    "cosignature_message",
    "open_log_note",
    "verify_cosignature",
]

COSIGNATURE = 0x04  # key id type byte of Ed25519 cosignatures (cosignature/v1)
_HEADER = "cosignature/v1"
_SIG_BYTES = 4 + 8 + 64  # key id, big-endian u64 timestamp, Ed25519 signature
_STATE = "witness.sqlite"
_SCHEMA = """CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY, log_key TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL,
    note TEXT NOT NULL, first_seen INTEGER NOT NULL, updated INTEGER NOT NULL) STRICT"""


@dataclass(frozen=True)
class Witnessed:
    """What a witness holds for one log: its key and the largest checkpoint it cosigned."""

    origin: str
    log_key: str
    size: int
    root: bytes
    note: str
    first_seen: int
    updated: int


def cosignature_message(body: str, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs: header line, time line, then the checkpoint body."""
    return f"{_HEADER}\ntime {timestamp}\n{body}".encode()


def _body(note: str) -> str:
    return split_note(note)[0]


def consistency(
    witnessed: Witnessed | None, cp: Checkpoint, log_key: str, proof: list[bytes]
) -> str | None:
    """Why ``cp`` (already verified under ``log_key``) cannot follow what was witnessed, or
    None when it can: a changed key, a smaller tree, another root at the same size, or a
    consistency proof that does not verify."""
    if witnessed is None:
        return None
    if log_key != witnessed.log_key:
        return f"the log's key changed from {witnessed.log_key}"
    if cp.size < witnessed.size:
        return f"rolled back: tree size {cp.size} is smaller than the witnessed {witnessed.size}"
    if cp.size == witnessed.size:
        if cp.root != witnessed.root:
            return f"forked: another root at the witnessed size {cp.size}"
        return "a checkpoint of the witnessed size takes no proof" if proof else None
    if not merkle.verify_consistency(witnessed.size, cp.size, witnessed.root, cp.root, proof):
        return f"inconsistent: tree {cp.size} does not extend the witnessed tree {witnessed.size}"
    return None


def open_log_note(note: str, log_key: str) -> Checkpoint:
    """``note`` verified under ``log_key`` and parsed; Refused when it is not the log's."""
    try:
        vkey = parse_verifier_key(log_key)
        cp = open_note(note, vkey)
    except VerificationError as exc:
        raise Refused(f"bad log checkpoint: {exc}") from None
    if cp.origin != vkey.name:
        raise Refused(f"checkpoint names origin {cp.origin!r}, the key is for {vkey.name!r}")
    return cp


class Witness:
    """A witness home: its key and what it has cosigned. Use as a context manager."""

    def __init__(self, home: str | PathLike[str], *, create: bool = False) -> None:
        """Open the witness in ``home``; ``create=True`` makes the home and key if missing.

        Raises SandboxError when ``home`` is not a witness home and ``create`` is False.
        """
        self.home = Path(home).expanduser()
        state = self.home / _STATE
        if not create and not state.is_file():
            raise HomeError(f"{self.home} is not a witness home: run 'wasm-sandbox witness init'")
        private_dir(self.home, "witness home", forbidden=0o077)
        keys = KeyStore(self.home)
        if not create and not (keys.dir / SIGNING).exists():  # never a new identity by accident
            raise HomeError(f"{self.home}: the witness's key {SIGNING} is missing")
        self._key = keys.signing_key()
        public = self._key.public_key()
        digest = hashlib.sha256(public.public_bytes_raw()).hexdigest()[:16]
        self.name = f"witness.wasm-sandbox.local/{digest}"
        self.verifier_key = verifier_key(self.name, public, COSIGNATURE)
        try:
            self._db = sqlite_files.connect(state, _SCHEMA, timeout=60.0)
        except sqlite3.Error as exc:
            raise HomeError(f"cannot open witness state {state}: {exc}") from None

    def __enter__(self) -> Witness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the state database; idempotent."""
        self._db.close()

    def state(self, origin: str) -> Witnessed | None:
        """What this witness holds for ``origin``, or None before first contact."""
        row = self._db.execute("SELECT * FROM logs WHERE origin = ?", (origin,)).fetchone()
        return Witnessed(*row) if row else None

    def size_of(self, origin: str) -> int:
        """The size of the last checkpoint cosigned for ``origin`` (0 before first contact)."""
        witnessed = self.state(origin)
        return witnessed.size if witnessed else 0

    def add_checkpoint(
        self, note: str, log_key: str, *, old_size: int, proof: list[bytes], now: int | None = None
    ) -> str:
        """Cosign ``note`` (signed by ``log_key``) and return the cosignature line.

        ``old_size`` is the size the caller believes the witness holds and ``proof`` the
        consistency proof from it to the note's size (empty from 0: trust on first use).
        Raises Refused, and then records nothing.
        """
        cp = open_log_note(note, log_key)
        stamp = int(time.time()) if now is None else now
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                line = self._cosign(cp, note, log_key, old_size, proof, stamp)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise HomeError(f"witness state {self.home / _STATE}: {exc}") from None
        return line

    def _cosign(
        self, cp: Checkpoint, note: str, log_key: str, old: int, proof: list[bytes], stamp: int
    ) -> str:
        witnessed = self.state(cp.origin)
        held = witnessed.size if witnessed else 0
        if old != held:
            raise Refused(f"the witness holds size {held} of {cp.origin}, not {old}", held)
        if witnessed is None and proof:
            raise Refused("first contact takes no consistency proof")
        problem = consistency(witnessed, cp, log_key, proof)
        if problem:
            raise Refused(problem)
        first = witnessed.first_seen if witnessed else stamp
        self._db.execute(
            "INSERT OR REPLACE INTO logs VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cp.origin, log_key, cp.size, cp.root, note, first, stamp),
        )
        signature = self._key.sign(cosignature_message(_body(note), stamp))
        key_id = parse_verifier_key(self.verifier_key, COSIGNATURE).key_id
        raw = key_id + struct.pack(">Q", stamp) + signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(raw).decode()}"

    def check(self, note: str, log_key: str, proof: list[bytes]) -> dict[str, Any]:
        """Whether ``note`` is consistent with what this witness cosigned; changes nothing.

        ``proof`` is the consistency proof from the witnessed size to the note's size.
        """
        try:
            cp = open_log_note(note, log_key)
        except Refused as exc:
            return {"consistent": False, "reason": str(exc)}
        witnessed = self.state(cp.origin)
        problem = consistency(witnessed, cp, log_key, proof)
        if witnessed is None:
            problem = f"this witness has never cosigned {cp.origin}"
        return {
            "consistent": problem is None,
            "reason": problem,
            "origin": cp.origin,
            "witnessed_size": witnessed.size if witnessed else None,
            "witnessed_root": witnessed.root.hex() if witnessed else None,
            "tree_size": cp.size,
            "root": cp.root.hex(),
        }


def verify_cosignature(note: str, cosigner: str | VerifierKey) -> int:
    """The timestamp of a valid cosignature on ``note`` by ``cosigner`` (a verifier key with
    type byte 0x04); raises VerificationError when there is none."""
    vkey = parse_verifier_key(cosigner, COSIGNATURE) if isinstance(cosigner, str) else cosigner
    body, sigs = split_note(note)
    for name, sig in sigs:
        if name != vkey.name or sig[:4] != vkey.key_id or len(sig) != _SIG_BYTES:
            continue
        stamp: int = struct.unpack(">Q", sig[4:12])[0]
        if stamp >= 2**63:
            continue
        if vkey.signed(sig[12:], cosignature_message(body, stamp)):
            return stamp
    raise VerificationError(f"no valid cosignature by {vkey.name}")


def check_cosigners(note: str, cosigners: list[str]) -> list[dict[str, Any]]:
    """One ``{"verifier_key", "cosigned", "time", "problem"}`` per named cosigner."""
    out = []
    for text in cosigners:
        try:
            stamp, problem = verify_cosignature(note, text), None
        except VerificationError as exc:
            stamp, problem = None, str(exc)
        out.append(
            {"verifier_key": text, "cosigned": problem is None, "time": stamp, "problem": problem}
        )
    return out
