"""The body of ``POST checkpoint/cosignatures``: a witness hands its cosignature to the log.

Plain Python (no tornado). The body is::

    {"tree_size": 5, "cosignature": "— witness.example/... <base64>",
     "verifier_key": "witness.example/...+<hex key id>+<base64(0x04 || key)>"}

The cosignature line must verify as a C2SP cosignature/v1 by ``verifier_key`` on the stored
checkpoint of ``tree_size``; then it is stored beside that checkpoint (`Ledger.add_cosignature`).
Any key may cosign: the log does not choose its witnesses, its readers do (``verify --all
--witness VKEY``), and a cosignature by a key nobody trusts proves nothing to anyone. What the
log refuses is a line that does not verify, so every stored line is one its key really signed.
"""

from __future__ import annotations

from typing import Any

from wasm_sandbox.checkpoint import VerifierKey, parse_verifier_key, split_note
from wasm_sandbox.errors import BadField, LedgerError, RecordNotFound, VerificationError
from wasm_sandbox.ledger import Ledger
from wasm_sandbox.witness import COSIGNATURE, verify_cosignature

from .server_request import json_object

FIELDS = ("tree_size", "cosignature", "verifier_key")


def add_cosignature(ledger: Ledger, raw: bytes) -> dict[str, Any]:
    """Verify and store the cosignature of a request body; answer the `CosignatureAdded`.

    Raises `BadField` for a malformed body or a cosignature that does not verify, and
    `RecordNotFound` when no checkpoint of that size is stored.
    """
    size, line, vkey = _read(json_object(raw))
    try:
        body = split_note(ledger.cosigned_note(size))[0]
    except LedgerError:
        raise RecordNotFound(f"no checkpoint of size {size} in this log") from None
    try:
        stamp = verify_cosignature(f"{body}\n{line}\n", vkey)
    except VerificationError as exc:
        raise BadField("cosignature", f"does not verify on checkpoint {size}: {exc}") from None
    try:
        ledger.add_cosignature(size, line)
    except LedgerError as exc:
        raise BadField("cosignature", str(exc)) from None
    return {
        "tree_size": size,
        "witness": vkey.name,
        "time": stamp,
        "checkpoint": ledger.cosigned_note(size),
    }


def _read(body: dict[str, Any]) -> tuple[int, str, VerifierKey]:
    unknown = [k for k in body if k not in FIELDS]
    if unknown:
        raise BadField(unknown[0], f"unknown field (expected: {', '.join(FIELDS)})")
    missing = [k for k in FIELDS if k not in body]
    if missing:
        raise BadField(missing[0], "required")
    size, line, text = (body[k] for k in FIELDS)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size < 2**53:
        raise BadField("tree_size", "expected a tree size >= 1")
    if not isinstance(line, str) or "\n" in line:
        raise BadField("cosignature", "expected one note signature line")
    try:
        vkey = parse_verifier_key(text, COSIGNATURE)
    except VerificationError as exc:
        raise BadField("verifier_key", str(exc)) from None
    return size, line, vkey
