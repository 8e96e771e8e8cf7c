"""The transparency log: an append-only RFC 6962 tree of opaque records on SQLite.

Tables (all STRICT; every column is covered by ``verify_all``):

- ``entries(idx, record_id, leaf)``: leaf ``idx`` of the tree; ``leaf`` is the canonical record.
- ``blobs(idx, name, data)``: ciphertexts stored beside entry ``idx``, those under `BY_CONTENT_MIN`
  bytes.
- ``objects(sha256, data)`` and ``object_refs(idx, name, sha256)``: larger blobs, stored once by
  content (their SHA-256): entries that carry the same bytes share one object. An append of
  bytes already stored rewrites a stored copy that no longer matches them, so a damaged object
  is mended by the next run that carries it.
- ``subtrees(level, idx, hash)``: the hash of every complete subtree, leaves
  ``[idx << level, (idx + 1) << level)``, so roots and proofs for any size take O(log n) reads.
- ``checkpoints(size, note)``: the signed checkpoint written by each append transaction; its
  extension line ``previous <size>`` names the checkpoint before it, so `verify_chain` notices a
  deleted one (old ones included; not the latest deleted with its entries: only a witness can).
- ``cosignatures(size, line)``: witnesses' C2SP cosignature lines on checkpoint ``size``
  (`verify_chain` flags one whose checkpoint is gone; only a witness's key checks the line).

Each append is one ``BEGIN IMMEDIATE`` transaction that reads the size, re-checks the frontier
against the latest signed checkpoint (so the log never signs two inconsistent checkpoints), and
writes the entries, blobs, new subtree hashes and a new signed checkpoint. Appends from
concurrent threads are grouped (group commit): while one transaction runs, the others queue, and
the next writer commits everything queued in one transaction under one checkpoint. The frontier
this connection signed last is kept in memory and reused while no other connection has written
to the file since (SQLite's ``data_version``: another process's append, or any change made
behind the ledger's back, makes it read and re-check the stored frontier).
The ledger knows no record format: ``record_id`` and the blobs are bound to the leaf only by the
``check_entry`` callback of ``verify_all``. Readers see the tables through a `LogView`
(``snapshot()``): the audit lives in `wasm_sandbox.audit`, the receipt's form in
`wasm_sandbox.tlog_proof`. SQLite and file-system errors become LedgerError in one place.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import merkle
from .audit import LogReport, audit, chain_problems
from .checkpoint import (
    MAX_SIGNATURES,
    PREVIOUS,
    SIGNATURE_PREFIX,
    Checkpoint,
    VerifierKey,
    format_checkpoint,
    open_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
)
from .errors import LedgerError, RecordNotFound, VerificationError
from .fingerprint import VerifiedTree
from .logview import Entry, LogView, Subtrees
from .tlog_proof import PROOF_HEADER, format_proof, verify_receipt

__all__ = ["PREVIOUS", "PROOF_HEADER", "Entry", "Ledger", "LogReport", "Receipt", "verify_receipt"]

BUSY_TIMEOUT_S = 60.0
#: Blobs of at least this many bytes are stored once by content (table ``objects``).
BY_CONTENT_MIN = 1024
_SIGNATURE_LINE = re.compile(SIGNATURE_PREFIX + r"[^\s+]+ [A-Za-z0-9+/]+=*")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY, record_id TEXT NOT NULL UNIQUE, leaf BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS blobs (
    idx INTEGER NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (idx, name)) STRICT;
CREATE TABLE IF NOT EXISTS objects (sha256 BLOB NOT NULL PRIMARY KEY, data BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS object_refs (
    idx INTEGER NOT NULL, name TEXT NOT NULL, sha256 BLOB NOT NULL, PRIMARY KEY (idx, name)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subtrees (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS cosignatures (
    size INTEGER NOT NULL, line TEXT NOT NULL, PRIMARY KEY (size, line)) STRICT;
"""


@dataclass(frozen=True)
class Receipt:
    """What an append returns: where the record sits and the signed checkpoint that covers it."""

    record_id: str
    leaf_index: int
    tree_size: int
    root: bytes
    inclusion_proof: tuple[bytes, ...]
    checkpoint_note: str


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


def _checked_size(view: LogView, size: int | None) -> int:
    current = view.size()
    if size is None:
        return current
    if not _is_count(size) or size > current:
        raise LedgerError(f"tree size {size!r} is not in 0..{current}")
    return size


def _check_page(bound: int | None, limit: int) -> None:
    if not (bound is None or isinstance(bound, int)) or not _is_count(limit):
        raise LedgerError(f"bad page: bound {bound!r}, limit {limit!r} (want integers, limit >= 0)")


@contextmanager
def _foreign_errors(what: str) -> Iterator[None]:
    """The ledger's one boundary: SQLite and file-system errors become a one-line LedgerError."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise LedgerError(f"{what}: {exc}") from None


@dataclass
class _Pending:
    """An append waiting in the group-commit queue, and what became of it."""

    batch: list[_Item]
    receipts: list[Receipt] | None = None
    error: Exception | None = None


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
        self._tip: tuple[int, int, merkle.Frontier] | None = None  # data_version, size, ours
        self._verifier = self._make_verifier(origin, signing_key, verifier)
        self._lock = threading.RLock()
        self._writer = threading.Lock()  # held by the thread committing the queued appends
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()  # never held across a transaction
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
        with _foreign_errors(f"cannot open ledger {self.path}"):
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            try:
                self._prepare(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.text_factory = _text
        if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            raise LedgerError(f"cannot open ledger {self.path}: WAL mode is not available")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("BEGIN IMMEDIATE")
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
        conn.execute("COMMIT")

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; calling it again does nothing."""
        with self._lock, _foreign_errors(f"ledger {self.path}"):
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError(f"ledger {self.path} is closed")
        return self._conn

    @contextmanager
    def _transaction(self, mode: str = "DEFERRED") -> Iterator[sqlite3.Connection]:
        """One SQLite transaction under the thread lock, inside the ledger's error boundary."""
        with self._lock, _foreign_errors(f"ledger {self.path}"):
            db = self._db()
            db.execute(f"BEGIN {mode}")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # SQLite rolls back by itself after some errors
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[LogView]:
        """A read-only `LogView` of the log in one transaction, valid inside the ``with``."""
        with self._transaction() as db:
            yield LogView(db, self._open)

    # Reading

    @property
    def verifier_key(self) -> str:
        """The C2SP verifier key string of this log: ``origin+hexkeyid+base64(0x01||key)``."""
        return verifier_key(self._verifier.name, self._verifier.public_key)

    @property
    def size(self) -> int:
        """The number of entries in the log."""
        with self.snapshot() as view:
            return view.size()

    def get(self, key: str | int) -> Entry:
        """The entry with this record id (str) or leaf index (int); raises RecordNotFound."""
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise RecordNotFound(f"no record {key!r}: give a record id or a leaf index")
        with self.snapshot() as view:
            entry = view.find(key)
        if entry is None:
            raise RecordNotFound(f"no record {key!r} in the log")
        return entry

    def entries(self, after: int = -1, limit: int = 50) -> list[Entry]:
        """Up to ``limit`` entries with index greater than ``after``, oldest first."""
        _check_page(after, limit)
        with self.snapshot() as view:
            return view.after(after, limit)

    def recent(self, limit: int = 50, *, before: int | None = None) -> list[Entry]:
        """Up to ``limit`` entries with index less than ``before`` (default: all), newest first."""
        _check_page(before, limit)
        with self.snapshot() as view:
            return view.before(view.size() if before is None else before, limit)

    def root(self, size: int | None = None) -> bytes:
        """The tree hash at ``size`` (default: now); LedgerError for a size beyond the log."""
        with self.snapshot() as view:
            return view.hashes([(0, _checked_size(view, size))])[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 6962 inclusion proof of leaf ``index`` in the tree of ``size`` (default: now)."""
        with self.snapshot() as view:
            size = _checked_size(view, size)
            if not _is_count(index) or index >= size:
                raise RecordNotFound(f"no leaf {index!r} in a tree of size {size}")
            return view.hashes(merkle.inclusion_ranges(index, size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The RFC 6962 consistency proof from ``size1`` to ``size2`` (default: now)."""
        with self.snapshot() as view:
            size2 = _checked_size(view, size2)
            if not _is_count(size1) or not 0 < size1 <= size2:
                raise LedgerError(f"first tree size {size1!r} is not in 1..{size2}")
            return view.hashes(merkle.consistency_ranges(size1, size2))

    def latest_checkpoint(self) -> Checkpoint:
        """The newest signed checkpoint, verified; LedgerError when the log is still empty."""
        with self.snapshot() as view:
            return view.latest()

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
        with self.snapshot() as view:
            rows = view.checkpoint_rows()
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
        pending = _Pending(batch)
        with self._queue_lock:
            self._queue.append(pending)
        with self._writer:  # whoever holds it commits every append queued so far
            if pending.receipts is None and pending.error is None:
                self._commit_queued(self._key)
        if pending.error is not None:
            raise pending.error
        assert pending.receipts is not None  # committed by us or by the writer before us
        return pending.receipts

    def _commit_queued(self, key: Ed25519PrivateKey) -> None:
        """Commit the queued appends in one transaction; when that fails, each on its own, so
        a bad one (a record id already logged) fails only its caller."""
        with self._queue_lock:
            group, self._queue = self._queue, []
        try:
            if len(group) > 1 and len({rid for p in group for rid, _, _ in p.batch}) == sum(
                len(p.batch) for p in group
            ):
                try:
                    receipts = self._append_batch([i for p in group for i in p.batch], key)
                except (LedgerError, VerificationError):
                    pass  # one of them is at fault: each on its own below says which
                else:
                    for p in group:
                        p.receipts, receipts = receipts[: len(p.batch)], receipts[len(p.batch) :]
                    return
            for p in group:
                try:
                    p.receipts = self._append_batch(p.batch, key)
                except (LedgerError, VerificationError) as exc:
                    p.error = exc
        finally:
            for p in group:
                if p.receipts is None and p.error is None:
                    p.error = LedgerError("append interrupted before it was committed")

    def _append_batch(self, batch: list[_Item], key: Ed25519PrivateKey) -> list[Receipt]:
        """One transaction; once it has committed, its frontier is the one to resume from."""
        try:
            with self._transaction("IMMEDIATE") as db:
                receipts, tip = self._append(db, batch, key)
        except BaseException:
            self._tip = None  # it may have committed (an error in COMMIT's tail): read it again
            raise
        self._tip = tip
        return receipts

    def _append(
        self, db: sqlite3.Connection, batch: list[_Item], key: Ed25519PrivateKey
    ) -> tuple[list[Receipt], tuple[int, int, merkle.Frontier]]:
        view, tree = LogView(db, self._open), Subtrees(db)
        version = view.data_version()  # no other writer until we commit
        tip = self._tip
        start = tip[1] if tip is not None and tip[0] == version else view.size()
        frontier = self._frontier(view, tree, start, version)
        new = [n for _, leaf, _ in batch for n in frontier.append(merkle.leaf_hash(leaf))]
        tree.nodes.update(((level, idx), h) for level, idx, h in new)
        try:
            _insert(db, start, batch)
        except sqlite3.IntegrityError:  # record_id is UNIQUE
            taken = view.logged([rid for rid, _, _ in batch], below=start)
            raise LedgerError(f"record id {(taken or ['?'])[0]} is already logged") from None
        db.executemany("INSERT INTO subtrees VALUES (?, ?, ?)", new)
        size, root = frontier.size, frontier.root()
        body = format_checkpoint(self.origin, size, root) + f"{PREVIOUS} {start}\n"
        note = sign_note(body, self.origin, key, self._verifier.key_id)
        db.execute("INSERT INTO checkpoints VALUES (?, ?)", (size, note))
        self._last_opened = (size, note, Checkpoint(self.origin, size, root, note))  # we signed it
        receipts = []
        for i, (rid, _, _) in enumerate(batch):
            proof = tree.hashes(merkle.inclusion_ranges(start + i, size))
            receipts.append(Receipt(rid, start + i, size, root, tuple(proof), note))
        return receipts, (version, frontier.size, frontier)

    def _frontier(self, view: LogView, tree: Subtrees, size: int, version: int) -> merkle.Frontier:
        """The frontier at ``size``, checked against the latest signed checkpoint: the one
        this connection committed last if no other connection wrote since (``version`` is
        SQLite's ``data_version`` now), else the stored one."""
        coords = merkle.subtrees(0, size)
        tip = self._tip
        if tip is not None and (tip[0], tip[1]) == (version, size):
            tree.nodes.update(zip(coords, tip[2].hashes, strict=True))
            return merkle.Frontier(size, tip[2].hashes)
        row = view.checkpoint_row()
        tree.fetch(coords)
        frontier = merkle.Frontier(size, [tree.nodes[c] for c in coords])
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

    # Verifying

    def verify_entry(self, record_id: str) -> dict[str, bool]:
        """Named checks of one entry against the latest checkpoint; RecordNotFound if absent.

        ``leaf_hash``: the leaf re-hashes to the stored tree hash; ``inclusion_proof``: the
        re-hashed leaf is in the tree of the latest checkpoint's root; ``checkpoint_signature``:
        that checkpoint is signed by this log's key (and names this origin and size).
        """
        entry = self.get(record_id)
        checks = dict.fromkeys(("leaf_hash", "inclusion_proof", "checkpoint_signature"), False)
        lh = merkle.leaf_hash(entry.leaf)
        with self.snapshot() as view:
            try:
                checks["leaf_hash"] = view.node(0, entry.index) == lh
                cp = view.latest()
                checks["checkpoint_signature"] = True
                if entry.index < cp.size:
                    proof = view.hashes(merkle.inclusion_ranges(entry.index, cp.size))
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
        since: VerifiedTree | None = None,
    ) -> LogReport:
        """Audit the whole log from its leaves up; never raises for what it finds.

        Recomputes every leaf hash and stored subtree hash, checks the index sequence, verifies
        every checkpoint (signature, origin, size, root recomputed from the leaves) and the
        consistency of consecutive checkpoints and of the latest one with the current tree.
        ``check_entry(entry)`` returns a problem (str) or None: it checks the record id and the
        blobs against the record, whose format the ledger does not know. ``seen`` is a tree
        ``(size, root)`` a client saw earlier (`wasm_sandbox.highwater`): a log now shorter, or
        whose first ``size`` entries have another root, is flagged as ``{"high_water": size}``.

        ``since`` is the ``verified_tree`` of an earlier clean report: when the rows of its
        leaves are unchanged (`wasm_sandbox.fingerprint`: all but blob contents) and the stored
        tree still has its root, only what follows it is checked (``verified_from``), else all.
        """
        with self.snapshot() as view:
            return audit(view, check_entry, seen, since=since, verifier_key=self.verifier_key)

    def verify_chain(self, start: int = 0) -> list[tuple[int, str]]:
        """``(checkpoint size, problem)`` for each break in the chain of checkpoints (each names
        the one before it; from checkpoint ``start`` on, the chain before it taken as checked)
        and each cosignature on no stored checkpoint.

        Signatures are not verified again here: run it with `verify_all`, which flags every
        note its key did not sign (so a forged ``previous`` line fails there).

        Checkpoints written before the ``previous`` line existed are accepted only before the
        first one that has it.
        """
        with self.snapshot() as view:
            return chain_problems(view, start)

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
            if LogView(db, self._open).checkpoint_row(size) is None:
                raise LedgerError(f"no checkpoint of size {size!r} to cosign")
            sql = "SELECT count(*) FROM cosignatures WHERE size = ? AND line != ?"
            if db.execute(sql, (size, line)).fetchone()[0] >= MAX_SIGNATURES - 1:
                raise LedgerError(f"checkpoint {size} holds {MAX_SIGNATURES - 1} cosignatures")
            db.execute("INSERT OR IGNORE INTO cosignatures VALUES (?, ?)", (size, line))

    def cosigned_note(self, size: int | None = None) -> str:
        """The checkpoint note of ``size`` (default: the latest), verified, with every stored
        cosignature line appended; LedgerError when there is no such checkpoint."""
        with self.snapshot() as view:
            row = view.checkpoint_row(size)
            if row is None:
                what = "the log is empty" if size is None else f"no checkpoint of size {size!r}"
                raise LedgerError(what)
            note = view.open_checkpoint(*row).note
            lines = view.cosignatures(row[0])
        return note + "".join(f"{line}\n" for line in lines)

    # Receipts

    def receipt(self, record_id: str) -> str:
        """A self-contained C2SP tlog-proof (`wasm_sandbox.tlog_proof`) for the record against
        the latest checkpoint; the leaf (the canonical record) travels in its ``extra`` line."""
        entry = self.get(record_id)
        with self.snapshot() as view:
            cp = view.latest()
            proof = view.hashes(merkle.inclusion_ranges(entry.index, cp.size))
        return format_proof(entry.leaf, entry.index, proof, cp.note)


_PUT_OBJECT = (
    "INSERT INTO objects VALUES (?, ?) "
    "ON CONFLICT (sha256) DO UPDATE SET data = excluded.data WHERE data != excluded.data"
)


def _insert(db: sqlite3.Connection, start: int, batch: list[_Item]) -> None:
    rows = [(start + i, rid, leaf) for i, (rid, leaf, _) in enumerate(batch)]
    db.executemany("INSERT INTO entries VALUES (?, ?, ?)", rows)
    blobs = [(start + i, k, v) for i, (_, _, b) in enumerate(batch) for k, v in b.items()]
    small = [row for row in blobs if len(row[2]) < BY_CONTENT_MIN]
    db.executemany("INSERT INTO blobs VALUES (?, ?, ?)", small)
    if len(small) < len(blobs):
        large = [
            (i, k, hashlib.sha256(v).digest(), v) for i, k, v in blobs if len(v) >= BY_CONTENT_MIN
        ]
        db.executemany(_PUT_OBJECT, {d: v for _, _, d, v in large}.items())
        db.executemany("INSERT INTO object_refs VALUES (?, ?, ?)", [r[:3] for r in large])
