"""The fingerprint of the log's first leaves: what lets an audit skip a prefix it checked before.

A clean audit of ``size`` leaves (`wasm_sandbox.audit`) returns a `VerifiedTree`: the size, the
root and a SHA-256 over the stored rows of those leaves. Given it back, the next audit re-reads
those rows in SQLite aggregates (C speed, no Python per row), and when they hash the same and
the stored frontier still folds to the root it checks in full only what follows them.

Covered, for the first ``size`` leaves: every entry (index, record id, leaf), every blob stored
beside them (index, name, ciphertext) and every blob stored by content (index, name, SHA-256)
with the object it refers to (its SHA-256 and stored bytes, each object once: in the chunk of
the first index that refers to it), rows at negative indices included; every stored subtree hash
inside them and every checkpoint of size ``<= size`` (its note). So every stored byte of the
prefix is re-read, but cosignatures (witnesses add them to old checkpoints) and objects no blob
refers to (the audit flags those). The log's verifier key is hashed in, so a log under another
key never matches. Each table is read in chunks of `CHUNK` keys, aggregated by SQLite
(`LogView.summary`; objects one by one), so the fingerprint of ``size`` leaves is defined chunk
by chunk. The aggregates are unambiguous for the rows of a complete log (every index present,
32-byte subtree hashes): the only kind a fingerprint is taken of and compared with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import VerificationError
from .logview import LOWEST, LogView

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["CHUNK", "Fingerprint", "VerifiedTree", "unchanged"]

CHUNK = 1024  # keys (leaf indices, sizes, subtree indices) per query
_VERSION = b"wasm-sandbox log fingerprint v2\n"  # v1 left blob contents out


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
        tables = [("entries", 0, size), ("blobs", 0, size), ("object_refs", 0, size)]
        tables += [("objects", 0, size), ("checkpoints", 0, size + 1)]
        levels = [("subtrees", level, size >> level) for level in range(size.bit_length())]
        for table, level, end in tables + levels:  # rows with keys below ``end``
            if (table, level) not in self._streams:
                kind = _Objects if table == "objects" else _Stream
                self._streams[table, level] = kind(self.view, table, level)
            out.update(self._streams[table, level].digest(end))
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
            self._feed(self.hash, self.done + CHUNK, keep=True)
            self.done += CHUNK
        partial = self.hash.copy()
        if end > self.done:
            self._feed(partial, end, keep=False)
        return partial.digest()

    def start(self) -> int:
        """The first key of the chunk being hashed (the first takes negative keys too)."""
        return self.done or LOWEST

    def _feed(self, h: _Hash, end: int, keep: bool) -> None:
        """Hash the rows of keys ``[start(), end)``; ``keep``: the chunk is whole."""
        key = (self.level,) if self.table == "subtrees" else ()
        _update(h, self.view.summary(self.table, *key, self.start(), end))


class _Objects(_Stream):
    """The objects the blobs of those indices refer to, each once: in the chunk of the first
    index that refers to it, by SHA-256."""

    def __init__(self, view: LogView, table: str, level: int) -> None:
        super().__init__(view, table, level)
        self.hashed: set[bytes] = set()  # the objects of the whole chunks hashed

    def _feed(self, h: _Hash, end: int, keep: bool) -> None:
        new = [key for key in self.view.referred(self.start(), end) if key not in self.hashed]
        _update(h, [value for key in new for value in (key, self.view.object(key))])
        if keep:
            self.hashed.update(new)


def _update(h: _Hash, values: Iterable[int | bytes | None]) -> None:
    """Hash values, each framed by its length (None: "-")."""
    for value in values:
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
