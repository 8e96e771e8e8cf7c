"""The fingerprint of the log's first leaves: what lets an audit skip a prefix it checked before.

A clean audit of ``size`` leaves (`wasm_sandbox.audit`) returns a `VerifiedTree`: the size, the
root and a SHA-256 over the stored rows of those leaves. Given it back, the next audit re-reads
those rows in SQLite aggregates (C speed, no Python per row), and when they hash the same and
the stored frontier still folds to the root it checks in full only what follows them.

Covered, for the first ``size`` leaves: every entry (index, record id, leaf), every stored
subtree hash inside them, every checkpoint of size ``<= size`` (its note), and the number of
blob rows, rows at negative indices included. Not covered: the names and contents of blobs
(ciphertexts grow with the programs logged, and re-reading them would make the pass as slow as
they are large; a full audit and `Sandbox.verify` check them) and cosignatures (witnesses add
them to old checkpoints). The log's verifier key is hashed in, so a log under another key never
matches. Each table is read in chunks of `CHUNK` keys, aggregated by SQLite
(`LogView.summary`), so the fingerprint of ``size`` leaves is defined chunk by chunk. The
aggregates are unambiguous for the rows of a complete log (every index present, 32-byte subtree
hashes): the only kind a fingerprint is taken of and compared with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import VerificationError
from .logview import LOWEST, LogView

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["CHUNK", "Fingerprint", "VerifiedTree", "unchanged"]

CHUNK = 1024  # keys (leaf indices, sizes, subtree indices) per query
_VERSION = b"wasm-sandbox log fingerprint v1\n"


@dataclass(frozen=True)
class VerifiedTree:
    """A tree a clean audit checked: ``size``, ``root`` and the `Fingerprint` of its rows."""

    size: int
    root: bytes
    fingerprint: bytes


class Fingerprint:
    """SHA-256 over the rows of a view's first leaves, read in chunks of `CHUNK` keys.

    ``digest(size)`` may be asked for growing sizes; each call re-reads at most one chunk of
    each table (and of each level of subtree hashes).
    """

    def __init__(self, view: LogView, verifier_key: str) -> None:
        self.view, self._key = view, verifier_key.encode()
        self._streams: dict[tuple[str, int], _Stream] = {}

    def digest(self, size: int) -> bytes:
        """The fingerprint of the first ``size`` leaves."""
        out = hashlib.sha256(_VERSION + self._key + b"\n%d\n" % size)
        tables = [("entries", 0, size), ("blobs", 0, size), ("checkpoints", 0, size + 1)]
        levels = [("subtrees", level, size >> level) for level in range(size.bit_length())]
        for table, level, end in tables + levels:  # rows with keys below ``end``
            stream = self._streams.setdefault((table, level), _Stream(self.view, table, level))
            out.update(stream.digest(end))
        return out.digest()


class _Stream:
    """The rows of one table (one level of ``subtrees``) in chunks of keys: ``[lowest, CHUNK)``,
    ``[CHUNK, 2 CHUNK)``, ... (the first also takes keys below 0, which are never written)."""

    def __init__(self, view: LogView, table: str, level: int) -> None:
        self.view, self.table, self.level = view, table, level
        self.hash, self.done = hashlib.sha256(), 0  # whole chunks hashed: keys below ``done``

    def digest(self, end: int) -> bytes:
        """The hash of the rows whose keys are below ``end`` (at least ``done``)."""
        while self.done + CHUNK <= end:
            self._feed(self.hash, self.done + CHUNK)
            self.done += CHUNK
        partial = self.hash.copy()
        if end > self.done:
            self._feed(partial, end)
        return partial.digest()

    def _feed(self, h: _Hash, end: int) -> None:
        key = (self.level,) if self.table == "subtrees" else ()
        start = self.done or LOWEST  # the first chunk takes rows at negative keys too
        for value in self.view.summary(self.table, *key, start, end):
            raw = b"%d" % value if isinstance(value, int) else value
            h.update(b"-" if raw is None else b"%d:" % len(raw))
            h.update(raw or b"")


def unchanged(view: LogView, since: VerifiedTree, fingerprint: Fingerprint) -> bool:
    """Whether the view's first ``since.size`` leaves are still the ones checked: the stored
    frontier folds to ``since.root`` and the rows have its fingerprint (``fingerprint`` is
    the view's)."""
    if not 0 < since.size <= view.size():
        return False
    try:
        if view.hashes([(0, since.size)])[0] != since.root:
            return False
    except VerificationError:  # a frontier hash is gone
        return False
    return fingerprint.digest(since.size) == since.fingerprint
