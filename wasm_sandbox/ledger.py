"""The transparency log: an append-only RFC 6962 tree of opaque records on SQLite.

Tables (all STRICT; every column is covered by ``verify_all``):

- ``entries(idx, record_id, leaf)``: leaf ``idx`` of the tree; ``leaf`` is the canonical record.
- ``blobs(idx, name, data)``: ciphertexts stored beside entry ``idx``.
- ``subtrees(level, idx, hash)``: the hash of every complete subtree, leaves
  ``[idx << level, (idx + 1) << level)``, so roots and proofs for any size take O(log n) reads.
- ``checkpoints(size, note)``: the signed checkpoint written by each append transaction; its
  extension line ``previous <size>`` names the checkpoint before it, so `verify_chain` notices a
  deleted one (old ones included; not the latest deleted with its entries: only a witness can).
- ``cosignatures(size, line)``: witnesses' C2SP cosignature lines on checkpoint ``size``
  (`verify_chain` flags one whose checkpoint is gone; only a witness's key checks the line).

Each append is one ``BEGIN IMMEDIATE`` transaction that reads the size, re-checks the stored
frontier against the latest signed checkpoint (so the log never signs two inconsistent
checkpoints), and writes the entries, blobs, new subtree hashes and a new signed checkpoint.
The ledger knows no record format: ``record_id`` and the blobs are bound to the leaf only by the
``check_entry`` callback of ``verify_all``.
"""

from __future__ import annotations

import base64
import itertools
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import merkle
from .checkpoint import (
    MAX_SIGNATURES,
    SIGNATURE_PREFIX,
    Checkpoint,
    VerifierKey,
    b64decode,
    format_checkpoint,
    open_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
)
from .errors import LedgerError, RecordNotFound, VerificationError

__all__ = ["PREVIOUS", "PROOF_HEADER", "Entry", "Ledger", "LogReport", "Receipt", "verify_receipt"]

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
PREVIOUS = "previous"  # checkpoint extension line: "previous <size of the checkpoint before>"
BUSY_TIMEOUT_S = 60.0
MAX_PROBLEMS = 100
_SIGNATURE_LINE = re.compile(SIGNATURE_PREFIX + r"[^\s+]+ [A-Za-z0-9+/]+=*")
_CHUNK = 200  # (level, idx) pairs per query: an OR chain deeper than ~1000 terms is refused

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY, record_id TEXT NOT NULL UNIQUE, leaf BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS blobs (
    idx INTEGER NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (idx, name)) STRICT;
CREATE TABLE IF NOT EXISTS subtrees (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS cosignatures (
    size INTEGER NOT NULL, line TEXT NOT NULL, PRIMARY KEY (size, line)) STRICT;
"""

Node = tuple[int, int]  # (level, index) of a complete subtree


@dataclass(frozen=True)
class Receipt:
    """What an append returns: where the record sits and the signed checkpoint that covers it."""

    record_id: str
    leaf_index: int
    tree_size: int
    root: bytes
    inclusion_proof: tuple[bytes, ...]
    checkpoint_note: str


@dataclass(frozen=True)
class Entry:
    """One logged record: its leaf index, id, canonical bytes (the leaf) and stored blobs."""

    index: int
    record_id: str
    leaf: bytes
    blobs: dict[str, bytes]


@dataclass(frozen=True)
class LogReport:
    """The result of ``verify_all``.

    ``first_bad`` is ``{"index": i, "record_id": id_or_None}`` for an entry,
    ``{"subtree": [level, index]}`` for a stored tree hash, ``{"checkpoint": size}`` for a
    checkpoint, ``{"high_water": size}`` for a log behind the tree a client saw, or None when
    ``ok``. ``problems`` lists at most MAX_PROBLEMS messages.
    """

    ok: bool
    tree_size: int
    first_bad: dict[str, Any] | None
    problems: tuple[str, ...]


def _text(raw: bytes) -> str:
    """Decode TEXT without failing, so tampered bytes surface as a failed check, not a crash."""
    return raw.decode("utf-8", "surrogateescape")


def _bytes(value: object, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise LedgerError(f"{what} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise LedgerError(f"{what} must be non-empty printable text, not {value!r}")
    return value


_Item = tuple[str, bytes, dict[str, bytes]]


def _item(record_id: str, leaf: bytes, blobs: Mapping[str, bytes] | None) -> _Item:
    """A validated ``(record_id, leaf, blobs)``; raises LedgerError naming the bad part."""
    rid = _name(record_id, "record id")
    if blobs is not None and not isinstance(blobs, Mapping):
        raise LedgerError(f"blobs of {rid} must map names to bytes")
    named = {
        _name(k, f"blob name of {rid}"): _bytes(v, f"blob {k!r} of {rid}")
        for k, v in (blobs or {}).items()
    }
    return rid, _bytes(leaf, f"leaf of {rid}"), named


def _is_count(n: object) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


def _check_page(bound: int | None, limit: int) -> None:
    if not (bound is None or isinstance(bound, int)) or not _is_count(limit):
        raise LedgerError(f"bad page: bound {bound!r}, limit {limit!r} (want integers, limit >= 0)")


class _Subtrees:
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


class Ledger:
    """An append-only transparency log in one SQLite file (WAL mode).

    Every append that returned is on disk in the write-ahead log before it returns, so
    killing the process at any point loses nothing acknowledged (``synchronous=NORMAL``).
    ``durable=True`` also syncs to the storage device at each append (``FULL``), which
    survives power loss too at about ten times the cost of an append.

    ``origin`` names the log and its signing key. Appending needs ``signing_key``; reading and
    verifying need only ``verifier`` (a verifier key string), which a signing key implies.
    Safe to share between threads; several processes may append to the same file at once.

    >>> with Ledger(path, origin="example.com/log", signing_key=key) as log:  # doctest: +SKIP
    ...     receipt = log.append(record_id, record_bytes, {"program": ciphertext})
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        origin: str,
        signing_key: Ed25519PrivateKey | None = None,
        verifier: str | None = None,
        durable: bool = False,
    ) -> None:
        self.path, self.origin, self._key = str(path), origin, signing_key
        self._synchronous = "FULL" if durable else "NORMAL"
        self._last_opened: tuple[int, str, Checkpoint] | None = None
        self._verifier = self._make_verifier(origin, signing_key, verifier)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = self._connect()

    @staticmethod
    def _make_verifier(
        origin: str, signing_key: Ed25519PrivateKey | None, verifier: str | None
    ) -> VerifierKey:
        try:
            if signing_key is not None:
                implied = verifier_key(origin, signing_key.public_key())
                if verifier is not None and verifier != implied:
                    raise LedgerError("verifier key does not belong to the signing key")
                verifier = implied
            if verifier is None:
                raise LedgerError("a ledger needs a signing key or a verifier key")
            vkey = parse_verifier_key(verifier)
            format_checkpoint(origin, 0, merkle.EMPTY_ROOT)  # the origin must make checkpoints
        except ValueError as exc:
            raise LedgerError(f"bad log origin {origin!r}: {exc}") from None
        if vkey.name != origin:
            raise LedgerError(f"verifier key is for {vkey.name!r}, not the origin {origin!r}")
        return vkey

    def _connect(self) -> sqlite3.Connection:
        conn = None
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.text_factory = _text
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
                raise sqlite3.OperationalError("WAL mode is not available")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from None
        return conn

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; calling it again does nothing."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError(f"ledger {self.path} is closed")
        return self._conn

    @contextmanager
    def _transaction(self, mode: str = "DEFERRED") -> Iterator[sqlite3.Connection]:
        """One SQLite transaction under the thread lock; SQLite errors become LedgerError."""
        with self._lock:
            db = self._db()
            try:
                db.execute(f"BEGIN {mode}")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger {self.path}: {exc}") from None

    # Reading

    @property
    def verifier_key(self) -> str:
        """The C2SP verifier key string of this log: ``origin+hexkeyid+base64(0x01||key)``."""
        return verifier_key(self._verifier.name, self._verifier.public_key)

    @property
    def size(self) -> int:
        """The number of entries in the log."""
        with self._transaction() as db:
            return self._size(db)

    @staticmethod
    def _size(db: sqlite3.Connection) -> int:
        size: int = db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()[0]
        return size

    def _checked_size(self, db: sqlite3.Connection, size: int | None) -> int:
        current = self._size(db)
        if size is None:
            return current
        if not _is_count(size) or size > current:
            raise LedgerError(f"tree size {size!r} is not in 0..{current}")
        return size

    def get(self, key: str | int) -> Entry:
        """The entry with this record id (str) or leaf index (int); raises RecordNotFound."""
        column = "idx" if isinstance(key, int) and not isinstance(key, bool) else "record_id"
        if column == "record_id" and not isinstance(key, str):
            raise RecordNotFound(f"no record {key!r}: give a record id or a leaf index")
        with self._transaction() as db:
            sql = f"SELECT idx, record_id, leaf FROM entries WHERE {column} = ?"
            row = db.execute(sql, (key,)).fetchone()
            if row is None:
                raise RecordNotFound(f"no record {key!r} in the log")
            return self._with_blobs(db, [row])[0]

    @staticmethod
    def _with_blobs(db: sqlite3.Connection, rows: list[tuple[int, str, bytes]]) -> list[Entry]:
        entries = [Entry(idx, rid, leaf, {}) for idx, rid, leaf in rows]
        if entries:
            lo, hi = min(e.index for e in entries), max(e.index for e in entries)
            by_index = {e.index: e.blobs for e in entries}
            sql = "SELECT idx, name, data FROM blobs WHERE idx BETWEEN ? AND ?"
            for idx, name, data in db.execute(sql, (lo, hi)):
                if idx in by_index:
                    by_index[idx][name] = data
        return entries

    def entries(self, after: int = -1, limit: int = 50) -> list[Entry]:
        """Up to ``limit`` entries with index greater than ``after``, oldest first."""
        sql = "SELECT idx, record_id, leaf FROM entries WHERE idx > ? ORDER BY idx LIMIT ?"
        _check_page(after, limit)
        with self._transaction() as db:
            return self._with_blobs(db, db.execute(sql, (after, limit)).fetchall())

    def recent(self, limit: int = 50, *, before: int | None = None) -> list[Entry]:
        """Up to ``limit`` entries with index less than ``before`` (default: all), newest first."""
        sql = "SELECT idx, record_id, leaf FROM entries WHERE idx < ? ORDER BY idx DESC LIMIT ?"
        _check_page(before, limit)
        with self._transaction() as db:
            bound = self._size(db) if before is None else before
            return self._with_blobs(db, db.execute(sql, (bound, limit)).fetchall())

    def root(self, size: int | None = None) -> bytes:
        """The tree hash at ``size`` (default: now); LedgerError for a size beyond the log."""
        with self._transaction() as db:
            return _Subtrees(db).hashes([(0, self._checked_size(db, size))])[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 6962 inclusion proof of leaf ``index`` in the tree of ``size`` (default: now)."""
        with self._transaction() as db:
            size = self._checked_size(db, size)
            if not _is_count(index) or index >= size:
                raise RecordNotFound(f"no leaf {index!r} in a tree of size {size}")
            return _Subtrees(db).hashes(merkle.inclusion_ranges(index, size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The RFC 6962 consistency proof from ``size1`` to ``size2`` (default: now)."""
        with self._transaction() as db:
            size2 = self._checked_size(db, size2)
            if not _is_count(size1) or not 0 < size1 <= size2:
                raise LedgerError(f"first tree size {size1!r} is not in 1..{size2}")
            return _Subtrees(db).hashes(merkle.consistency_ranges(size1, size2))

    def latest_checkpoint(self) -> Checkpoint:
        """The newest signed checkpoint, verified; LedgerError when the log is still empty."""
        with self._transaction() as db:
            return self._latest(db)

    @staticmethod
    def _latest_row(db: sqlite3.Connection) -> tuple[int, str] | None:
        row: tuple[int, str] | None = db.execute(
            "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        return row

    def _latest(self, db: sqlite3.Connection) -> Checkpoint:
        row = self._latest_row(db)
        if row is None:
            raise LedgerError("the log is empty: no checkpoint yet")
        return self._open(*row)

    def _open(self, size: int, note: str) -> Checkpoint:
        """A stored checkpoint, verified against this log's key, origin and row size.

        The last checkpoint verified is remembered: the same text verifies the same way, and
        every append re-reads the checkpoint the previous append signed.
        """
        if self._last_opened is not None and self._last_opened[:2] == (size, note):
            return self._last_opened[2]
        cp = open_note(note, self._verifier)
        if cp.origin != self.origin or cp.size != size:
            raise VerificationError(f"checkpoint {size} names {cp.origin!r} at size {cp.size}")
        self._last_opened = (size, note, cp)
        return cp

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, oldest first, each verified (raises VerificationError)."""
        with self._transaction() as db:
            rows = db.execute("SELECT size, note FROM checkpoints ORDER BY size").fetchall()
        return [self._open(size, note) for size, note in rows]

    # Appending

    def append(
        self, record_id: str, leaf: bytes, blobs: Mapping[str, bytes] | None = None
    ) -> Receipt:
        """Log one record (``leaf``: its canonical bytes) with its blobs; see ``append_many``."""
        return self.append_many([(record_id, leaf, blobs)])[0]

    def append_many(
        self, items: Iterable[tuple[str, bytes, Mapping[str, bytes] | None]]
    ) -> list[Receipt]:
        """Log ``(record_id, leaf, blobs)`` items in one transaction under one new checkpoint.

        Raises LedgerError for bad input, a record id already logged or a read-only ledger, and
        VerificationError when the stored tree does not match the latest signed checkpoint.
        Nothing is written unless everything is.
        """
        if self._key is None:
            raise LedgerError(f"ledger {self.path} is read-only: no signing key")
        batch = [_item(*item) for item in items]
        if len({rid for rid, _, _ in batch}) != len(batch):
            raise LedgerError("the same record id appears twice in one append")
        if not batch:
            return []
        with self._transaction("IMMEDIATE") as db:
            return self._append(db, batch, self._key)

    def _append(
        self, db: sqlite3.Connection, batch: list[_Item], key: Ed25519PrivateKey
    ) -> list[Receipt]:
        start, tree = self._size(db), _Subtrees(db)
        frontier = self._frontier(tree, start)
        new = [n for _, leaf, _ in batch for n in frontier.append(merkle.leaf_hash(leaf))]
        tree.nodes.update(((level, idx), h) for level, idx, h in new)
        self._insert(db, start, batch)
        db.executemany("INSERT INTO subtrees VALUES (?, ?, ?)", new)
        size, root = frontier.size, frontier.root()
        body = format_checkpoint(self.origin, size, root) + f"{PREVIOUS} {start}\n"
        note = sign_note(body, self.origin, key)
        db.execute("INSERT INTO checkpoints VALUES (?, ?)", (size, note))
        self._last_opened = (size, note, Checkpoint(self.origin, size, root, note))  # we signed it
        receipts = []
        for i, (rid, _, _) in enumerate(batch):
            proof = tree.hashes(merkle.inclusion_ranges(start + i, size))
            receipts.append(Receipt(rid, start + i, size, root, tuple(proof), note))
        return receipts

    def _frontier(self, tree: _Subtrees, size: int) -> merkle.Frontier:
        """The stored frontier at ``size``, checked against the latest signed checkpoint."""
        coords = merkle.subtrees(0, size)
        tree.fetch(coords)
        frontier = merkle.Frontier(size, [tree.nodes[c] for c in coords])
        row = self._latest_row(tree.db)
        if row is None and size == 0:
            return frontier
        try:
            latest = self._open(*row) if row is not None else None
        except VerificationError as exc:
            raise VerificationError(f"{exc}; refusing to append") from None
        if latest is None or latest.size != size or latest.root != frontier.root():
            raise VerificationError(
                f"the stored tree of {size} entries does not match the latest signed checkpoint "
                f"(of {latest.size if latest else 0}); refusing to append"
            )
        return frontier

    @staticmethod
    def _insert(db: sqlite3.Connection, start: int, batch: list[_Item]) -> None:
        rows = [(start + i, rid, leaf) for i, (rid, leaf, _) in enumerate(batch)]
        try:
            db.executemany("INSERT INTO entries VALUES (?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            sql = "SELECT 1 FROM entries WHERE record_id = ? AND idx < ?"
            taken = [rid for rid, _, _ in batch if db.execute(sql, (rid, start)).fetchone()]
            raise LedgerError(f"record id {taken[0] if taken else '?'} is already logged") from None
        blobs = [(start + i, k, v) for i, (_, _, b) in enumerate(batch) for k, v in b.items()]
        db.executemany("INSERT INTO blobs VALUES (?, ?, ?)", blobs)

    # Verifying

    def verify_entry(self, record_id: str) -> dict[str, bool]:
        """Named checks of one entry against the latest checkpoint; RecordNotFound if absent.

        ``leaf_hash``: the leaf re-hashes to the stored tree hash; ``inclusion_proof``: the
        re-hashed leaf is in the tree of the latest checkpoint's root; ``checkpoint_signature``:
        that checkpoint is signed by this log's key (and names this origin and size).
        """
        entry = self.get(record_id)
        checks = dict.fromkeys(("leaf_hash", "inclusion_proof", "checkpoint_signature"), False)
        lh, node = merkle.leaf_hash(entry.leaf), (0, entry.index)
        with self._transaction() as db:
            try:
                tree = _Subtrees(db)
                tree.fetch([node])
                checks["leaf_hash"] = tree.nodes[node] == lh
                cp = self._latest(db)
                checks["checkpoint_signature"] = True
                if entry.index < cp.size:
                    proof = tree.hashes(merkle.inclusion_ranges(entry.index, cp.size))
                    checks["inclusion_proof"] = merkle.verify_inclusion(
                        lh, entry.index, cp.size, proof, cp.root
                    )
            except LedgerError:
                pass
        return checks

    def verify_all(
        self,
        check_entry: Callable[[Entry], str | None] | None = None,
        seen: tuple[int, bytes] | None = None,
    ) -> LogReport:
        """Audit the whole log from its leaves up; never raises for what it finds.

        Recomputes every leaf hash and stored subtree hash, checks the index sequence, verifies
        every checkpoint (signature, origin, size, root recomputed from the leaves) and the
        consistency of consecutive checkpoints and of the latest one with the current tree.
        ``check_entry(entry)`` returns a problem (str) or None: it checks the record id and the
        blobs against the record, whose format the ledger does not know. ``seen`` is a tree
        ``(size, root)`` a client saw earlier (`wasm_sandbox.highwater`): a log now shorter, or
        whose first ``size`` entries have another root, is flagged as ``{"high_water": size}``.
        """
        with self._transaction() as db:
            return _Audit(self, db, check_entry, seen).run()

    def verify_chain(self) -> list[tuple[int, str]]:
        """``(checkpoint size, problem)`` for each break in the chain of checkpoints (each names
        the one before it) and each cosignature on no stored checkpoint.

        Signatures are not verified again here: run it with `verify_all`, which flags every
        note its key did not sign (so a forged ``previous`` line fails there).

        Checkpoints written before the ``previous`` line existed are accepted only before the
        first one that has it.
        """
        with self._transaction() as db:
            rows = db.execute("SELECT size, note FROM checkpoints ORDER BY size").fetchall()
            sql = "SELECT DISTINCT size FROM cosignatures WHERE size NOT IN "
            orphans = [s for (s,) in db.execute(sql + "(SELECT size FROM checkpoints)")]
        problems = [(s, f"cosignature on checkpoint {s}, which is not stored") for s in orphans]
        before, chained = 0, False
        for size, note in rows:
            previous = _previous(note)
            if previous is None and chained:
                problems.append((size, f"checkpoint {size} does not name the one before it"))
            elif previous is not None and previous > before:
                problems.append((previous, f"checkpoint {previous} (before {size}) is missing"))
            elif previous is not None and previous != before:
                message = f"checkpoint {size} names {previous} as the one before it, not {before}"
                problems.append((size, message))
            chained, before = chained or previous is not None, size
        return problems

    # Cosignatures

    def add_cosignature(self, size: int, line: str) -> None:
        """Attach a witness's cosignature line to the stored checkpoint of ``size``.

        Only its form is checked here (the ledger knows no witness keys); LedgerError when no
        checkpoint of that size is stored, the line is not a note signature line, or the
        checkpoint already holds as many lines as a note may (`checkpoint.MAX_SIGNATURES`).
        """
        if not isinstance(line, str) or not _SIGNATURE_LINE.fullmatch(line):
            raise LedgerError(f"not a note signature line: {str(line)[:40]!r}")
        with self._transaction("IMMEDIATE") as db:
            if db.execute("SELECT 1 FROM checkpoints WHERE size = ?", (size,)).fetchone() is None:
                raise LedgerError(f"no checkpoint of size {size!r} to cosign")
            sql = "SELECT count(*) FROM cosignatures WHERE size = ? AND line != ?"
            if db.execute(sql, (size, line)).fetchone()[0] >= MAX_SIGNATURES - 1:
                raise LedgerError(f"checkpoint {size} holds {MAX_SIGNATURES - 1} cosignatures")
            db.execute("INSERT OR IGNORE INTO cosignatures VALUES (?, ?)", (size, line))

    def cosigned_note(self, size: int | None = None) -> str:
        """The checkpoint note of ``size`` (default: the latest), verified, with every stored
        cosignature line appended; LedgerError when there is no such checkpoint."""
        with self._transaction() as db:
            sql = "SELECT size, note FROM checkpoints WHERE size = ?"
            row = self._latest_row(db) if size is None else db.execute(sql, (size,)).fetchone()
            if row is None:
                what = "the log is empty" if size is None else f"no checkpoint of size {size!r}"
                raise LedgerError(what)
            note = self._open(*row).note
            sql = "SELECT line FROM cosignatures WHERE size = ? ORDER BY line"
            lines = [line for (line,) in db.execute(sql, (row[0],))]
        return note + "".join(f"{line}\n" for line in lines)

    # Receipts

    def receipt(self, record_id: str) -> str:
        """A self-contained C2SP tlog-proof for the record against the latest checkpoint.

        The leaf (the canonical record) travels base64-encoded in the ``extra`` line.
        """
        entry = self.get(record_id)
        with self._transaction() as db:
            cp = self._latest(db)
            proof = _Subtrees(db).hashes(merkle.inclusion_ranges(entry.index, cp.size))
        lines = [PROOF_HEADER, f"extra {base64.b64encode(entry.leaf).decode()}"]
        lines += [f"index {entry.index}", *(base64.b64encode(h).decode() for h in proof)]
        return "\n".join(lines) + "\n\n" + cp.note


def _previous(note: str) -> int | None:
    """The size named by a checkpoint's ``previous`` extension line, if it has one."""
    for line in note[: note.find("\n\n")].split("\n")[3:]:
        name, _, digits = line.partition(" ")
        if name == PREVIOUS and digits.isascii() and digits.isdigit():
            return int(digits)
    return None


def verify_receipt(text: str, verifier_key: str) -> bool:
    """Whether a receipt from ``Ledger.receipt`` proves its leaf is in the log of this key."""
    try:
        head, _, note = text.partition("\n\n")
        header, extra, index, *hashes = head.split("\n")
        digits = index.removeprefix("index ")
        if (
            header != PROOF_HEADER
            or not extra.startswith("extra ")
            or not index.startswith("index ")
        ):
            return False
        if not (digits.isascii() and digits.isdigit() and digits == str(int(digits))):
            return False
        leaf = b64decode(extra.removeprefix("extra "))
        proof = [b64decode(h) for h in hashes]
        vkey = parse_verifier_key(verifier_key)
        cp = open_note(note, vkey)
    except (ValueError, AttributeError, VerificationError):
        return False
    leaf_hash = merkle.leaf_hash(leaf)
    return cp.origin == vkey.name and merkle.verify_inclusion(
        leaf_hash, int(digits), cp.size, proof, cp.root
    )


class _Rows:
    """A cursor that can look one row ahead."""

    def __init__(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._rows = iter(rows)
        self.head = next(self._rows, None)

    def pop(self) -> tuple[Any, ...]:
        """The head row (callers check that there is one) and the next as the new head."""
        row, self.head = self.head, next(self._rows, None)
        assert row is not None
        return row


class _Audit:
    """One pass over a snapshot of the log, rebuilding the tree from its leaves."""

    def __init__(
        self,
        ledger: Ledger,
        db: sqlite3.Connection,
        check_entry: Callable[[Entry], str | None] | None,
        seen: tuple[int, bytes] | None = None,
    ) -> None:
        self.ledger, self.db, self.check_entry = ledger, db, check_entry
        self.seen, self.seen_root = seen, None if seen is None or seen[0] else merkle.root([])
        self.problems: list[str] = []
        self.first: tuple[tuple[int, ...], dict[str, Any]] | None = None
        self.levels: dict[int, _Rows] = {}  # stored subtree hashes of each level, by index
        self.signed: list[Checkpoint] = []  # checkpoints whose notes verify
        self.last_size = 0  # size of the latest checkpoint row seen

    def flag(self, rank: tuple[int, ...], where: dict[str, Any], message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)
        if self.first is None or rank < self.first[0]:
            self.first = (rank, where)

    def flag_entry(self, index: int, record_id: str | None, message: str) -> None:
        self.flag((0, index), {"index": index, "record_id": record_id}, message)

    def flag_node(self, level: int, idx: int, message: str) -> None:
        self.flag((1, level, idx), {"subtree": [level, idx]}, message)

    def flag_checkpoint(self, size: int, message: str) -> None:
        self.flag((2, size), {"checkpoint": size}, message)

    def high_water(self, size: int) -> None:
        """Flag a log shorter than, or rewritten below, the tree a client saw."""
        if self.seen is None:
            return
        seen, root = self.seen
        where = {"high_water": seen}
        if size < seen:
            message = f"the log has {size} entries, fewer than the {seen} this home saw"
            self.flag((3, seen), where, message + " (emptied or rolled back)")
        elif self.seen_root is not None and self.seen_root != root:
            message = f"the log's first {seen} entries are not the ones this home saw"
            self.flag((3, seen), where, message + " (history rewritten)")

    def run(self) -> LogReport:
        cps = _Rows(self.db.execute("SELECT size, note FROM checkpoints ORDER BY size"))
        while cps.head is not None and cps.head[0] < 1:
            self.flag_checkpoint(cps.pop()[0], "a checkpoint of size < 1 was never written")
        frontier = self.scan(cps)
        if frontier is not None:
            self.extra_nodes(frontier.size)
            self.beyond(frontier.size, cps)
        while cps.head is not None:  # after a gap: signatures only
            size, note = cps.pop()
            self.compare_checkpoint(size, note, None)
        self.consistency(frontier)
        size = self.ledger._size(self.db)
        self.high_water(size)
        ok = self.first is None
        first_bad = None if self.first is None else self.first[1]
        return LogReport(ok, size, first_bad, tuple(self.problems))

    def entries(self) -> Iterator[Entry]:
        """Entries in index order with their blobs; flags blobs that belong to no entry."""
        blobs = _Rows(self.db.execute("SELECT idx, name, data FROM blobs ORDER BY idx, name"))
        sql = "SELECT idx, record_id, leaf FROM entries ORDER BY idx"
        for idx, rid, leaf in self.db.execute(sql):
            self.orphans(blobs, idx)
            mine = {}
            while blobs.head is not None and blobs.head[0] == idx:
                _, name, data = blobs.pop()
                mine[name] = data
            yield Entry(idx, rid, leaf, mine)
        self.orphans(blobs, None)

    def orphans(self, blobs: _Rows, below: int | None) -> None:
        while blobs.head is not None and (below is None or blobs.head[0] < below):
            idx, name, _ = blobs.pop()
            self.flag_entry(idx, None, f"blob {name!r} at index {idx} belongs to no entry")

    def scan(self, cps: _Rows) -> merkle.Frontier | None:
        """Check every entry; rebuild the tree up to the first gap (then return None)."""
        frontier: merkle.Frontier | None = merkle.Frontier()
        for entry in self.entries():
            problem = self.check_entry(entry) if self.check_entry else None
            if problem:
                self.flag_entry(entry.index, entry.record_id, f"entry {entry.index}: {problem}")
            if frontier is None:
                continue
            if entry.index != frontier.size:
                what = "is missing" if entry.index > frontier.size else "is out of sequence"
                self.flag_entry(frontier.size, None, f"entry {frontier.size} {what}")
                frontier = None
                continue
            for level, idx, h in frontier.append(merkle.leaf_hash(entry.leaf)):
                self.compare_node(level, idx, h, entry)
            if self.seen is not None and frontier.size == self.seen[0]:
                self.seen_root = frontier.root()
            while cps.head is not None and cps.head[0] == frontier.size:
                size, note = cps.pop()
                self.compare_checkpoint(size, note, frontier.root())
        return frontier

    def stored(self, level: int) -> _Rows:
        if level not in self.levels:
            sql = "SELECT idx, hash FROM subtrees WHERE level = ? ORDER BY idx"
            self.levels[level] = _Rows(self.db.execute(sql, (level,)))
        return self.levels[level]

    def compare_node(self, level: int, idx: int, h: bytes, entry: Entry) -> None:
        """Compare a rebuilt subtree hash with the stored one (a leaf's with its entry)."""
        rows = self.stored(level)
        while rows.head is not None and rows.head[0] < idx:
            self.flag_node(level, rows.head[0], f"tree hash {(level, rows.pop()[0])} is unexpected")
        if rows.head is None or rows.head[0] != idx:
            self.flag_node(level, idx, f"tree hash {(level, idx)} is missing")
        elif rows.pop()[1] == h:
            return
        elif level == 0:
            self.flag_entry(idx, entry.record_id, f"entry {idx}: leaf does not match its tree hash")
        else:
            self.flag_node(level, idx, f"tree hash {(level, idx)} is wrong")

    def compare_checkpoint(self, size: int, note: str, root: bytes | None) -> bool:
        """Verify a checkpoint row against ``root``, the root rebuilt from the entries if known.

        Returns whether its note is signed by the log for this origin and size.
        """
        self.last_size = max(self.last_size, size)
        try:
            cp = self.ledger._open(size, note)
        except VerificationError as exc:
            self.flag_checkpoint(size, f"checkpoint {size}: {exc}")
            return False
        self.signed.append(cp)
        if root is not None and cp.root != root:
            self.flag_checkpoint(size, f"checkpoint {size}: root differs from the entries' root")
        return True

    def extra_nodes(self, size: int) -> None:
        """Flag stored tree hashes that a tree of ``size`` leaves does not have."""
        for level, rows in self.levels.items():
            while rows.head is not None:
                self.flag_node(
                    level, rows.head[0], f"tree hash {(level, rows.pop()[0])} is unexpected"
                )
        sql = "SELECT level, idx FROM subtrees WHERE level < 0 OR level >= ?"
        for level, idx in self.db.execute(sql, (size.bit_length(),)):
            self.flag_node(level, idx, f"tree hash {(level, idx)} is unexpected")

    def beyond(self, size: int, cps: _Rows) -> None:
        """Flag signed checkpoints beyond the entries, and entries beyond every checkpoint."""
        signed_beyond = []
        while cps.head is not None:
            later, note = cps.pop()
            if self.compare_checkpoint(later, note, None):
                signed_beyond.append(later)
        if signed_beyond:
            message = f"entry {size} is missing: checkpoint {signed_beyond[0]} covers it"
            self.flag_entry(size, None, message)
        if self.last_size < size:
            sql = "SELECT record_id FROM entries WHERE idx = ?"
            rid = self.db.execute(sql, (self.last_size,)).fetchone()[0]
            message = f"entries from {self.last_size} on are not covered by a checkpoint"
            self.flag_entry(self.last_size, rid, message)

    def consistency(self, frontier: merkle.Frontier | None) -> None:
        """Check consecutive signed checkpoints, then the latest and the rebuilt tree, agree."""
        trees = {(cp.size, cp.root) for cp in self.signed}
        if frontier is not None and frontier.size:
            trees.add((frontier.size, frontier.root()))
        for (size1, root1), (size2, root2) in itertools.pairwise(sorted(trees)):
            if size1 == size2:
                continue  # the latest checkpoint's root was compared with the rebuilt one
            ranges = merkle.consistency_ranges(size1, size2)
            try:
                proof = _Subtrees(self.db).hashes(ranges)
            except VerificationError as exc:
                self.flag_checkpoint(size2, f"no consistency proof {size1} -> {size2}: {exc}")
                continue
            if not merkle.verify_consistency(size1, size2, root1, root2, proof):
                self.flag_checkpoint(size2, f"trees {size1} and {size2} are not consistent")
