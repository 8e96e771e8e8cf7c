"""The log's high-water mark: the largest tree this home's clients have seen, kept outside
the SQLite database (``<home>/keys/log-high-water``, 0600 in the 0700 key directory).

`wasm_sandbox.ledger.Ledger.verify_all` compares the log with it, so a ledger that was
emptied, replaced by an older copy (rolled back) or rewritten below the mark fails
``verify --all``. An attacker who can also rewrite this file (the same user, or root) is
not caught here: only a witness outside the machine can catch that.

The mark only rises: after each append and after a clean ``verify --all``. A `HighWater`
reads the file once and then compares with what it last wrote, so another process's higher
mark may be lowered again by a racing append: what stays is still a tree the log really had.
The file is one fixed-length line with a checksum, rewritten in place (a rename per append
cost ~2 ms on ext4, the in-place write ~5 us); a torn write shows as a corrupt file.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from .errors import HomeError
from .home import read_private, write_new

NAME = "log-high-water"


class HighWater:
    """``(size, root)`` of the largest tree seen, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / NAME
        self._lock = threading.Lock()
        self._known: tuple[int, bytes] | None = None
        self._read_once = False

    def known(self) -> tuple[int, bytes] | None:
        """The mark as this object last read or wrote it (read from disk the first time)."""
        with self._lock:
            if not self._read_once:
                self._known, self._read_once = self.read(), True
            return self._known

    def read(self) -> tuple[int, bytes] | None:
        """The mark, or None before the first append; `HomeError` when it is corrupt."""
        if not os.path.lexists(self.path):
            return None
        text = read_private(self.path, "high-water file").decode("ascii", "replace")
        body, _, check = text.strip().rpartition(" ")
        size, _, root = body.partition(" ")
        if not (check == _checksum(body) and size.isdigit() and len(root) == 64):
            raise HomeError(f"high-water file {self.path} is corrupt; remove it")
        return int(size), bytes.fromhex(root)

    def raise_to(self, size: int, root: bytes) -> None:
        """Record ``(size, root)`` unless the mark is already at least ``size``."""
        self.known()
        with self._lock:
            mark = self._known
            if mark is not None and size <= mark[0]:
                return
            body = f"{size:020d} {root.hex()}"
            line = f"{body} {_checksum(body)}\n".encode()
            try:
                self._write(line)
            except OSError as exc:
                raise HomeError(f"high-water file {self.path}: cannot write it ({exc})") from None
            self._known = (size, root)

    def _write(self, line: bytes) -> None:
        """Overwrite the line in place (same length), or create the file atomically."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if write_new(self.path, line):
                return
            fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.pwrite(fd, line, 0)
        finally:
            os.close(fd)


def _checksum(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]
