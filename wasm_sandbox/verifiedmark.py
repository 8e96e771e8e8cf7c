"""The last clean audit of the log: ``<home>/keys/log-verified`` (0600, beside the high-water mark).

`wasm_sandbox.verification.verify_log` writes it after a clean ``verify --all`` and gives it to
the next one, which then checks in full only what was appended since (`Ledger.verify_all`'s
``since``). One line: the tree's size, root and fingerprint (`wasm_sandbox.fingerprint`), the
ledger file it was made on (device and inode), this package's version, and a checksum.

It records work done, never evidence: a missing, torn or edited mark, one made on another ledger
file (a home copied elsewhere or restored from a backup) or by another version of wasm-sandbox
is not used, and the audit is full. Unlike the high-water mark it only rises with audits, not
with appends. Whoever can rewrite the log can rewrite this file too: only a witness catches that.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from . import __version__
from .errors import HomeError
from .fingerprint import VerifiedTree
from .home import read_private, replace_file

NAME = "log-verified"


class VerifiedMark:
    """The `VerifiedTree` of the last clean audit of the ledger at ``ledger_path``."""

    def __init__(self, directory: Path, ledger_path: str) -> None:
        self.path, self.ledger_path = directory / NAME, ledger_path

    def read(self) -> VerifiedTree | None:
        """The mark, or None when there is none this ledger file and version can use."""
        try:
            text = read_private(self.path, "verified mark").decode("ascii")
        except (HomeError, UnicodeDecodeError):
            return None
        body, _, check = text.strip().rpartition(" ")
        fields = body.split(" ")
        if check != _checksum(body) or fields[3:] != [self._ledger_file(), __version__]:
            return None
        size, root, fingerprint = fields[:3]
        try:
            return VerifiedTree(int(size), bytes.fromhex(root), bytes.fromhex(fingerprint))
        except ValueError:
            return None

    def write(self, tree: VerifiedTree) -> None:
        """Replace the mark with ``tree``; HomeError when it cannot be written."""
        body = f"{tree.size} {tree.root.hex()} {tree.fingerprint.hex()} "
        body += f"{self._ledger_file()} {__version__}"
        try:
            replace_file(self.path, f"{body} {_checksum(body)}\n".encode())
        except OSError as exc:
            raise HomeError(f"verified mark {self.path}: cannot write it ({exc})") from None

    def _ledger_file(self) -> str:
        """``device:inode`` of the ledger file ("-" when it cannot be read)."""
        try:
            info = os.stat(self.ledger_path)
        except OSError:
            return "-"
        return f"{info.st_dev}:{info.st_ino}"


def _checksum(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]
