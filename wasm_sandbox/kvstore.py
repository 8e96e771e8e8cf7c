"""The key-value store host function: one SQLite file in the home, one namespace per grant,
with a byte and a key quota per namespace.

Runs that are granted the same namespace share it, also across processes (each write is
one ``BEGIN IMMEDIATE`` transaction that checks the quota before it writes). The store
never raises into a guest: every problem is a return code or, for a quota, `Overrun`.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

from . import sqlite_files
from .errors import GrantError

FILE = "kv.sqlite"
_SCHEMA = """CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key)
) WITHOUT ROWID, STRICT"""


@dataclass(frozen=True)
class Overrun:
    """A write the quota refused: what the namespace would have held."""

    message: str


class KvStore:
    """One namespace of the store at ``path``; ``writable`` False refuses writes."""

    def __init__(
        self, path: str, namespace: str, writable: bool, max_bytes: int, max_keys: int
    ) -> None:
        self.namespace, self.writable = namespace, writable
        self.max_bytes, self.max_keys = max_bytes, max_keys
        self._lock = threading.Lock()
        try:
            self._db = sqlite_files.connect(path, _SCHEMA, timeout=30.0)
        except sqlite3.Error as exc:
            raise GrantError(f"--kv: cannot open the store {path} ({exc})") from None

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM kv WHERE ns = ? AND key = ?", (self.namespace, key)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def set(self, key: bytes, value: bytes) -> Overrun | None:
        """Store ``value`` under ``key``, or `Overrun` (and nothing written) past a quota."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                overrun = self._check(key, value)
                if overrun is None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                        (self.namespace, key, value),
                    )
            finally:
                self._db.execute("COMMIT")
        return overrun

    def delete(self, key: bytes) -> bool:
        with self._lock:
            gone = self._db.execute(
                "DELETE FROM kv WHERE ns = ? AND key = ?", (self.namespace, key)
            ).rowcount
        return bool(gone)

    def _check(self, key: bytes, value: bytes) -> Overrun | None:
        keys, used = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(key) + LENGTH(value)), 0) FROM kv "
            "WHERE ns = ? AND key != ?",
            (self.namespace, key),
        ).fetchone()
        size = used + len(key) + len(value)
        if size > self.max_bytes:
            return Overrun(
                f"the KV namespace {self.namespace!r} would hold {size} bytes, past its "
                f"{self.max_bytes} byte quota"
            )
        if keys + 1 > self.max_keys:
            return Overrun(
                f"the KV namespace {self.namespace!r} would hold {keys + 1} keys, past its "
                f"{self.max_keys} key quota"
            )
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()
