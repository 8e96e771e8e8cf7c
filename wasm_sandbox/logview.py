"""A read-only view of the log's tables in one transaction: the Ledger's narrow read interface.

`Ledger.snapshot()` hands one out; the audit (`wasm_sandbox.audit`) and the Ledger's own reads see
the log only through it. Rows come in index order and their iterators are valid inside the
``with`` block only. Checkpoint notes are verified by the callable the Ledger passes (its key and
origin); stored subtree hashes are read in few queries and remembered for the view's lifetime, and
so are the last few objects (blobs stored by content) read.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from . import merkle
from .checkpoint import Checkpoint
from .errors import LedgerError, VerificationError

__all__ = ["LOWEST", "Entry", "LogView", "Node", "Subtrees"]

Node = tuple[int, int]  # (level, index) of a complete subtree
_CHUNK = 200  # (level, idx) pairs per query: an OR chain deeper than ~1000 terms is refused
_OBJECTS_KEPT = 8  # objects a view remembers (entries of one program are often neighbours)
_ENTRY = "SELECT idx, record_id, leaf FROM entries"
_CHECKPOINTS = "SELECT size, note FROM checkpoints"
LOWEST = -(2**63)  # the lowest key SQLite stores: "from the start", rows never written included
_SUMMARIES = {  # one table's rows in a key range, aggregated: keys, lengths, contents
    "entries": "SELECT count(*), min(idx), max(idx), CAST(group_concat(length(leaf)) AS BLOB), "
    "CAST(group_concat(record_id, char(10)) AS BLOB), CAST(group_concat(leaf, '') AS BLOB) "
    "FROM entries WHERE idx >= ? AND idx < ?",
    "blobs": "SELECT CAST(group_concat(idx) AS BLOB), "
    "CAST(group_concat(length(CAST(name AS BLOB))) AS BLOB), CAST(group_concat(name, '') AS BLOB), "
    "CAST(group_concat(length(data)) AS BLOB), CAST(group_concat(data, '') AS BLOB) "
    "FROM blobs WHERE idx >= ? AND idx < ?",  # (an ORDER BY subquery costs 50% more)
    "object_refs": "SELECT CAST(group_concat(idx) AS BLOB), "
    "CAST(group_concat(length(CAST(name AS BLOB))) AS BLOB), CAST(group_concat(name, '') AS BLOB), "
    "CAST(group_concat(length(sha256)) AS BLOB), CAST(group_concat(sha256, '') AS BLOB) "
    "FROM object_refs WHERE idx >= ? AND idx < ?",
    "checkpoints": "SELECT CAST(group_concat(size) AS BLOB), "
    "CAST(group_concat(length(CAST(note AS BLOB))) AS BLOB), CAST(group_concat(note, '') AS BLOB) "
    "FROM checkpoints WHERE size >= ? AND size < ?",
    "subtrees": "SELECT count(*), min(idx), max(idx), min(length(hash)), max(length(hash)), "
    "CAST(group_concat(hash, '') AS BLOB) FROM subtrees WHERE level = ? AND idx >= ? AND idx < ?",
}


@dataclass(frozen=True)
class Entry:
    """One logged record: its leaf index, id, canonical bytes (the leaf) and stored blobs;
    ``refs`` names those stored by content, with their SHA-256 (a blob whose object is gone
    is in ``refs`` only)."""

    index: int
    record_id: str
    leaf: bytes
    blobs: dict[str, bytes]
    refs: dict[str, bytes] = field(default_factory=dict)


class Subtrees:
    """Stored subtree hashes for one transaction: read in few queries, and remembered.

    Range hashes are remembered too, so the receipts of one batch share their work.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.nodes: dict[Node, bytes] = {}
        self.memo: dict[tuple[int, int], bytes] = {}

    def fetch(self, want: Iterable[Node]) -> None:
        """Read these nodes unless known; raises VerificationError when one is not stored."""
        missing = [n for n in dict.fromkeys(want) if n not in self.nodes]
        for i in range(0, len(missing), _CHUNK):
            part = missing[i : i + _CHUNK]
            where = " OR ".join(["(level = ? AND idx = ?)"] * len(part))
            sql = f"SELECT level, idx, hash FROM subtrees WHERE {where}"
            rows = self.db.execute(sql, [x for node in part for x in node])
            self.nodes.update(((lvl, idx), h) for lvl, idx, h in rows)
        for node in missing:
            if node not in self.nodes:
                raise VerificationError(f"stored tree hash {node} is missing")

    def hashes(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Tree hashes of leaf ranges (as ``merkle.inclusion_ranges`` gives them)."""
        new = {r: merkle.subtrees(*r) for r in ranges if r not in self.memo}
        self.fetch(n for piece in new.values() for n in piece)
        for r, piece in new.items():
            self.memo[r] = merkle.fold([self.nodes[n] for n in piece])
        return [self.memo[r] for r in ranges]


class LogView:
    """The log's tables as one transaction sees them; it never writes."""

    def __init__(self, db: sqlite3.Connection, open_checkpoint: Callable[[int, str], Checkpoint]):
        self._db, self._open = db, open_checkpoint
        self._tree = Subtrees(db)
        self._objects: OrderedDict[bytes, bytes | None] = OrderedDict()

    # Entries and blobs

    def size(self) -> int:
        """The number of entries: one more than the highest index (0 when empty)."""
        size: int = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()[0]
        return size

    def data_version(self) -> int:
        """SQLite's ``data_version``: it changes when another connection commits a write."""
        version: int = self._db.execute("PRAGMA data_version").fetchone()[0]
        return version

    def find(self, key: str | int) -> Entry | None:
        """The entry with this record id (str) or leaf index (int), with its blobs."""
        column = "record_id" if isinstance(key, str) else "idx"
        row = self._db.execute(f"{_ENTRY} WHERE {column} = ?", (key,)).fetchone()
        return self._with_blobs([row])[0] if row is not None else None

    def after(self, after: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries with index greater than ``after``, oldest first."""
        sql = f"{_ENTRY} WHERE idx > ? ORDER BY idx LIMIT ?"
        return self._with_blobs(self._db.execute(sql, (after, limit)).fetchall())

    def before(self, bound: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries with index less than ``bound``, newest first."""
        sql = f"{_ENTRY} WHERE idx < ? ORDER BY idx DESC LIMIT ?"
        return self._with_blobs(self._db.execute(sql, (bound, limit)).fetchall())

    def _with_blobs(self, rows: list[tuple[int, str, bytes]]) -> list[Entry]:
        entries = [Entry(idx, rid, leaf, {}) for idx, rid, leaf in rows]
        if not entries:
            return entries
        span = min(e.index for e in entries), max(e.index for e in entries)
        by_index = {e.index: e for e in entries}
        sql = "SELECT idx, name, data FROM blobs WHERE idx BETWEEN ? AND ?"
        for idx, name, data in self._db.execute(sql, span):
            if idx in by_index:
                by_index[idx].blobs[name] = data
        sql = "SELECT idx, name, sha256 FROM object_refs WHERE idx BETWEEN ? AND ?"
        for idx, name, digest in self._db.execute(sql, span).fetchall():
            if idx in by_index:
                by_index[idx].refs[name] = digest
                if (data := self.object(digest)) is not None:
                    by_index[idx].blobs[name] = data
        return entries

    def logged(self, record_ids: list[str], below: int) -> list[str]:
        """Those of ``record_ids`` that an entry of index below ``below`` already has."""
        found: set[str] = set()
        for i in range(0, len(record_ids), _CHUNK):
            part: list[str | int] = [*record_ids[i : i + _CHUNK], below]
            marks = ", ".join("?" * (len(part) - 1))
            sql = f"SELECT record_id FROM entries WHERE record_id IN ({marks}) AND idx < ?"
            found.update(rid for (rid,) in self._db.execute(sql, part))
        return [rid for rid in record_ids if rid in found]

    def entry_rows(self, start: int = LOWEST) -> Iterator[tuple[int, str, bytes]]:
        """Every ``(index, record_id, leaf)`` row from index ``start`` on, by index."""
        return iter(self._db.execute(f"{_ENTRY} WHERE idx >= ? ORDER BY idx", (start,)))

    def blob_rows(self, start: int = LOWEST) -> Iterator[tuple[int, str, bytes]]:
        """Every ``(index, name, data)`` blob row from index ``start`` on, by index then name
        (orphans included)."""
        sql = "SELECT idx, name, data FROM blobs WHERE idx >= ? ORDER BY idx, name"
        return iter(self._db.execute(sql, (start,)))

    def ref_rows(self, start: int = LOWEST) -> Iterator[tuple[int, str, bytes]]:
        """Every ``(index, name, sha256)`` of a blob stored by content from index ``start`` on,
        by index then name."""
        sql = "SELECT idx, name, sha256 FROM object_refs WHERE idx >= ? ORDER BY idx, name"
        return iter(self._db.execute(sql, (start,)))

    def referred(self, lo: int, hi: int) -> list[bytes]:
        """The SHA-256s the blobs of indices in ``[lo, hi)`` refer to, each once, sorted."""
        sql = "SELECT DISTINCT sha256 FROM object_refs WHERE idx >= ? AND idx < ? ORDER BY 1"
        return [key for (key,) in self._db.execute(sql, (lo, hi))]

    def object(self, sha256: bytes) -> bytes | None:
        """The stored object of this SHA-256 (unchecked), or None."""
        if sha256 in self._objects:
            self._objects.move_to_end(sha256)
            return self._objects[sha256]
        row = self._db.execute("SELECT data FROM objects WHERE sha256 = ?", (sha256,)).fetchone()
        self._objects[sha256] = None if row is None else row[0]
        if len(self._objects) > _OBJECTS_KEPT:
            self._objects.popitem(last=False)
        return self._objects[sha256]

    def unreferenced_objects(self) -> Iterator[bytes]:
        """The SHA-256 of every stored object that no blob (of any index) refers to."""
        sql = "SELECT sha256 FROM objects WHERE sha256 NOT IN (SELECT sha256 FROM object_refs)"
        return (key for (key,) in self._db.execute(sql))

    # Subtree hashes

    def node_rows(self, level: int, start: int = LOWEST) -> Iterator[tuple[int, bytes]]:
        """Every stored ``(index, hash)`` of one tree level from index ``start`` on, by index."""
        sql = "SELECT idx, hash FROM subtrees WHERE level = ? AND idx >= ? ORDER BY idx"
        return iter(self._db.execute(sql, (level, start)))

    def summary(self, table: str, *key: int) -> tuple[int | bytes | None, ...]:
        """One table's rows with keys in ``[lo, hi)`` aggregated in SQLite (for
        `wasm_sandbox.fingerprint`): ``key`` is ``(lo, hi)``, or ``(level, lo, hi)`` for
        ``subtrees``. Rows come in the order of the key index SQLite searches; contents are
        joined, with their lengths apart (so another order could only make a fingerprint
        differ, never two sets of rows agree)."""
        row: tuple[int | bytes | None, ...] = self._db.execute(_SUMMARIES[table], key).fetchone()
        return row

    def nodes_outside(self, height: int) -> Iterator[Node]:
        """Stored nodes at a level below 0 or at ``height`` and above."""
        sql = "SELECT level, idx FROM subtrees WHERE level < 0 OR level >= ?"
        return iter(self._db.execute(sql, (height,)))

    def node(self, level: int, idx: int) -> bytes:
        """The stored hash of one subtree; VerificationError when it is not stored."""
        self._tree.fetch([(level, idx)])
        return self._tree.nodes[level, idx]

    def hashes(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Tree hashes of leaf ranges from the stored nodes; VerificationError when one is gone."""
        return self._tree.hashes(ranges)

    # Checkpoints and cosignatures

    def checkpoint_rows(self, start: int = LOWEST) -> list[tuple[int, str]]:
        """Every stored ``(size, note)`` of size ``start`` and above, oldest first, unverified."""
        sql = f"{_CHECKPOINTS} WHERE size >= ? ORDER BY size"
        rows: list[tuple[int, str]] = self._db.execute(sql, (start,)).fetchall()
        return rows

    def checkpoint_row(self, size: int | None = None) -> tuple[int, str] | None:
        """The stored ``(size, note)`` of ``size`` (default: the latest), or None."""
        if size is None:
            latest = f"{_CHECKPOINTS} ORDER BY size DESC LIMIT 1"
            row: tuple[int, str] | None = self._db.execute(latest).fetchone()
        else:
            row = self._db.execute(f"{_CHECKPOINTS} WHERE size = ?", (size,)).fetchone()
        return row

    def open_checkpoint(self, size: int, note: str) -> Checkpoint:
        """A checkpoint row verified against the log's key, origin and the row's size."""
        return self._open(size, note)

    def latest(self) -> Checkpoint:
        """The newest checkpoint, verified; LedgerError when the log is still empty."""
        row = self.checkpoint_row()
        if row is None:
            raise LedgerError("the log is empty: no checkpoint yet")
        return self._open(*row)

    def cosignatures(self, size: int) -> list[str]:
        """The cosignature lines stored on checkpoint ``size``, sorted."""
        sql = "SELECT line FROM cosignatures WHERE size = ? ORDER BY line"
        return [line for (line,) in self._db.execute(sql, (size,))]

    def orphan_cosignatures(self) -> list[int]:
        """Sizes that carry cosignatures but no stored checkpoint."""
        sql = "SELECT DISTINCT size FROM cosignatures WHERE size NOT IN "
        return [s for (s,) in self._db.execute(sql + "(SELECT size FROM checkpoints)")]
