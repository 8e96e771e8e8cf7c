"""The offline receipt of one logged record: a C2SP tlog-proof, made and checked.

::

    c2sp.org/tlog-proof@v1
    extra <base64 leaf: the canonical record>
    index <leaf index>
    <base64 inclusion proof hash, one a line>

    <the signed checkpoint note the proof leads to>

`verify_receipt` needs only the text and the log's verifier key (so does docs/verify_receipt.py).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from . import merkle
from .checkpoint import b64decode, open_note, parse_verifier_key
from .errors import VerificationError

__all__ = ["PROOF_HEADER", "format_proof", "verify_receipt"]

PROOF_HEADER = "c2sp.org/tlog-proof@v1"


def format_proof(leaf: bytes, index: int, proof: Sequence[bytes], note: str) -> str:
    """The tlog-proof of leaf ``index`` whose inclusion ``proof`` leads to checkpoint ``note``."""
    lines = [PROOF_HEADER, f"extra {base64.b64encode(leaf).decode()}", f"index {index}"]
    lines += [base64.b64encode(h).decode() for h in proof]
    return "\n".join(lines) + "\n\n" + note


def verify_receipt(text: str, verifier_key: str) -> bool:
    """Whether a receipt from ``Ledger.receipt`` proves its leaf is in the log of this key."""
    try:
        head, _, note = text.partition("\n\n")
        header, extra, index, *hashes = head.split("\n")
        digits = index.removeprefix("index ")
        if (
            header != PROOF_HEADER
            or not extra.startswith("extra ")
            or not index.startswith("index ")
        ):
            return False
        if not (digits.isascii() and digits.isdigit() and digits == str(int(digits))):
            return False
        leaf = b64decode(extra.removeprefix("extra "))
        proof = [b64decode(h) for h in hashes]
        vkey = parse_verifier_key(verifier_key)
        cp = open_note(note, vkey)
    except (ValueError, AttributeError, VerificationError):
        return False
    leaf_hash = merkle.leaf_hash(leaf)
    return cp.origin == vkey.name and merkle.verify_inclusion(
        leaf_hash, int(digits), cp.size, proof, cp.root
    )
