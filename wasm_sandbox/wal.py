"""The ledger's write-ahead log copied back into the database off the append path.

SQLite's automatic WAL checkpoint (every 1000 pages, with an fsync of the database file)
runs inside the COMMIT of whichever append crosses the threshold: about 0.1 ms per append
on average, all of it on the appender's thread. The ledger turns it off on its own
connection and a `WalCopier` thread runs a PASSIVE checkpoint on a connection of its own
every `EVERY` appends instead; SQLite releases the GIL meanwhile, so runs go on.

Nothing about durability changes: a commit is complete once it is in the WAL (and synced
there in ``durable`` mode); a checkpoint only moves committed pages into the database file.
PASSIVE never blocks a writer or reader; one that cannot finish is retried next time.
(Not to be confused with the log's signed checkpoints, `wasm_sandbox.checkpoint`.)
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

#: Appends between two WAL checkpoints (a trivial run's append writes about six pages).
EVERY = 150


class WalCopier:
    """A daemon thread that checkpoints the WAL of the database at ``path`` when nudged."""

    def __init__(self, path: str, timeout: float) -> None:
        self._path, self._timeout = path, timeout
        self._appends = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def appended(self, count: int = 1) -> None:
        """Count appends; every `EVERY` of them, wake the thread (started on first need)."""
        with self._lock:
            self._appends += count
            if self._appends < EVERY or self._closed:
                return
            self._appends = 0
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="wasm-sandbox-wal", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        try:
            db = sqlite3.connect(self._path, timeout=self._timeout, check_same_thread=False)
        except sqlite3.Error:
            return  # the ledger's own connection reports problems with the file
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closed:
                    return
                with contextlib.suppress(sqlite3.Error):  # busy or gone: next time, then
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            db.close()

    def close(self) -> None:
        """Stop the thread after the checkpoint it may be running; idempotent."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()
