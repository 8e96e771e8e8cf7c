"""Opening the small SQLite files of a home (the witness's state, the key-value store)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: str | Path, schema: str, timeout: float) -> sqlite3.Connection:
    """An autocommit connection in WAL mode with ``schema`` created; callers map
    `sqlite3.Error` to their own error (`wasm_sandbox.errors`)."""
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(schema)
    return db
