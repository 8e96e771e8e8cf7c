"""The fingerprint of the log's first leaves: what lets an audit skip a prefix it checked before.

A clean audit of ``size`` leaves (`wasm_sandbox.audit`) returns a `VerifiedTree`: the size, the
root and a SHA-256 over the stored rows of those leaves. Given it back, the next audit re-reads
those rows in SQLite aggregates (C speed, no Python per row), and when they hash the same and
the stored frontier still folds to the root it checks in full only what follows them.

Covered, for the first ``size`` leaves: every entry (index, record id, leaf), every stored
subtree hash inside them, every checkpoint of size ``<= size`` (its note), and the index and
name of every blob, rows at negative indices included. Not covered: blob contents (their volume
grows with the programs logged, so re-reading them would make the pass as slow as the data is
large) and cosignatures (witnesses add them to old checkpoints). The log's verifier key is
hashed in, so a log under another key never matches. Rows are read in chunks of `CHUNK` leaves,
so a fingerprint holds one chunk in memory, and each chunk is hashed as aggregated (see
`LogView.summary`): the fingerprint of ``size`` leaves is defined chunk by chunk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import VerificationError
from .logview import LogView

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["CHUNK", "Fingerprint", "VerifiedTree", "resume"]

CHUNK = 4096
_VERSION = b"wasm-sandbox log fingerprint v1\n"
_LOWEST = -(2**63)  # the first chunk also takes rows at negative indices (never written)


@dataclass(frozen=True)
class VerifiedTree:
    """A tree a clean audit checked: ``size``, ``root`` and the `Fingerprint` of its rows."""

    size: int
    root: bytes
    fingerprint: bytes


class Fingerprint:
    """SHA-256 over the rows of a view's first leaves, read one chunk at a time.

    ``digest(size)`` may be asked for growing sizes; each call re-reads at most one chunk.
    """

    def __init__(self, view: LogView, verifier_key: str) -> None:
        self.view, self._key = view, verifier_key.encode()
        self._tables = {name: hashlib.sha256() for name in ("entries", "blobs", "checkpoints")}
        self._levels: list[_Hash] = []  # one hash per level of the subtree hashes
        self._done = 0  # leaves hashed so far: whole chunks only

    def digest(self, size: int) -> bytes:
        """The fingerprint of the first ``size`` leaves (at least those already hashed)."""
        while self._done + CHUNK <= size:
            self._feed(self._tables, self._levels, self._done, self._done + CHUNK)
            self._done += CHUNK
        tables = {name: h.copy() for name, h in self._tables.items()}
        levels = [h.copy() for h in self._levels]
        if size > self._done:
            self._feed(tables, levels, self._done, size)
        out = hashlib.sha256(_VERSION + self._key + b"\n%d\n" % size)
        for h in [*tables.values(), *levels]:
            out.update(h.digest())
        return out.digest()

    def _feed(self, tables: dict[str, _Hash], levels: list[_Hash], lo: int, hi: int) -> None:
        """Hash the rows of leaves ``[lo, hi)``: entries and blobs of those indices, the
        checkpoints of sizes ``(lo, hi]`` and the subtrees that end in that range."""
        first = _LOWEST if lo == 0 else lo
        _update(tables["entries"], self.view.summary("entries", first, hi))
        _update(tables["blobs"], self.view.summary("blobs", first, hi))
        _update(
            tables["checkpoints"],
            self.view.summary("checkpoints", _LOWEST if lo == 0 else lo + 1, hi + 1),
        )
        for level in range(hi.bit_length()):
            if level == len(levels):  # a level's first chunk takes its rows from the lowest
                levels.append(hashlib.sha256())
                start = _LOWEST
            else:
                start = lo >> level
            _update(levels[level], self.view.summary("subtrees", level, start, hi >> level))


def _update(h: _Hash, values: tuple[int | bytes | None, ...]) -> None:
    for value in values:
        raw = b"%d" % value if isinstance(value, int) else value
        h.update(b"-" if raw is None else b"%d:%s" % (len(raw), raw))


def resume(view: LogView, since: VerifiedTree | None, verifier_key: str) -> Fingerprint | None:
    """A fingerprint past ``since`` when the view's first ``since.size`` leaves are still the
    ones checked (same fingerprint, and the stored frontier folds to ``since.root``), else None."""
    if since is None or not 0 < since.size <= view.size():
        return None
    try:
        if view.hashes([(0, since.size)])[0] != since.root:
            return None
    except VerificationError:  # a frontier hash is gone
        return None
    fingerprint = Fingerprint(view, verifier_key)
    return fingerprint if fingerprint.digest(since.size) == since.fingerprint else None
