"""The log's high-water mark: the largest tree this home's clients have seen, kept outside
the SQLite database (``<home>/keys/log-high-water``, 0600 in the 0700 key directory).

`wasm_sandbox.ledger.Ledger.verify_all` compares the log with it, so a ledger that was
emptied, replaced by an older copy (rolled back) or rewritten below the mark fails
``verify --all``. An attacker who can also rewrite this file (the same user, or root) is
not caught here: only a witness outside the machine can catch that.

The mark only rises: after each append and after a clean ``verify --all``. Two processes
racing may leave the lower of their two sizes, which is still a tree the log really had.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .errors import HomeError
from .home import read_private, replace_file

NAME = "log-high-water"


class HighWater:
    """``(size, root)`` of the largest tree seen, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / NAME
        self._lock = threading.Lock()

    def read(self) -> tuple[int, bytes] | None:
        """The mark, or None before the first append; `HomeError` when it is corrupt."""
        if not self.path.exists():
            return None
        text = read_private(self.path, "high-water file").decode("ascii", "replace")
        try:
            size, root = text.split()
            mark = int(size), bytes.fromhex(root)
        except ValueError:
            raise HomeError(f"high-water file {self.path} is corrupt; remove it") from None
        if mark[0] < 0 or len(mark[1]) != 32:
            raise HomeError(f"high-water file {self.path} is corrupt; remove it")
        return mark

    def raise_to(self, size: int, root: bytes) -> None:
        """Record ``(size, root)`` unless the mark is already at least ``size``."""
        with self._lock:
            mark = self.read()
            if mark is None or size > mark[0]:
                replace_file(self.path, f"{size} {root.hex()}\n".encode())
