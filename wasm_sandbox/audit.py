"""Replaying the log from its leaves up, through a `LogView` (`Ledger.snapshot()`).

`audit` backs `Ledger.verify_all` and `chain_problems` backs `Ledger.verify_chain`. Both only read
the view: they never raise for what they find, and know no record format (``check_entry`` does).
Given a `VerifiedTree` from an earlier clean audit whose rows are unchanged
(`wasm_sandbox.fingerprint`), the audit starts after it: its tree is taken as checked, and every
entry (and object it refers to), subtree hash and checkpoint beyond it is checked in full, as is
its consistency with them.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from . import merkle
from .checkpoint import Checkpoint, previous_size
from .errors import VerificationError
from .fingerprint import Fingerprint, VerifiedTree, unchanged
from .logview import LOWEST, Entry, LogView

__all__ = ["MAX_PROBLEMS", "LogReport", "audit", "chain_problems"]

MAX_PROBLEMS = 100


@dataclass(frozen=True)
class LogReport:
    """The result of ``verify_all``.

    ``first_bad`` is ``{"index": i, "record_id": id_or_None}`` for an entry,
    ``{"subtree": [level, index]}`` for a stored tree hash, ``{"checkpoint": size}`` for a
    checkpoint, ``{"high_water": size}`` for a log behind the tree a client saw,
    ``{"object": sha256_hex}`` for a stored object no entry refers to, or None when ``ok``.
    ``problems`` lists at most MAX_PROBLEMS messages. ``verified_from`` is the size of the
    earlier verified tree the audit started after (0: it checked everything), and
    ``verified_tree`` what a clean audit of a non-empty log leaves for the next one (``since``).
    """

    ok: bool
    tree_size: int
    first_bad: dict[str, Any] | None
    problems: tuple[str, ...]
    verified_from: int = 0
    verified_tree: VerifiedTree | None = None


def audit(
    view: LogView,
    check_entry: Callable[[Entry], str | None] | None = None,
    seen: tuple[int, bytes] | None = None,
    *,
    since: VerifiedTree | None = None,
    verifier_key: str = "",
) -> LogReport:
    """Check every entry, subtree hash and checkpoint of the view, or only those after
    ``since`` when its rows are unchanged (``verifier_key`` is hashed into fingerprints);
    see `Ledger.verify_all`."""
    fingerprint = Fingerprint(view, verifier_key)
    start = since if since is not None and unchanged(view, since, fingerprint) else None
    report = _Audit(view, check_entry, seen, start).run()
    if not (report.ok and report.tree_size):
        return report
    size = report.tree_size
    tree = VerifiedTree(size, view.hashes([(0, size)])[0], fingerprint.digest(size))
    return replace(report, verified_tree=tree)


def chain_problems(view: LogView, start: int = 0) -> list[tuple[int, str]]:
    """``(checkpoint size, problem)`` for each break in the ``previous`` chain of the view's
    checkpoints (from the one of size ``start`` on) and each cosignature on no stored
    checkpoint; see `Ledger.verify_chain`."""
    orphans = view.orphan_cosignatures()
    problems = [(s, f"cosignature on checkpoint {s}, which is not stored") for s in orphans]
    rows = view.checkpoint_rows(start or LOWEST)
    before, chained = 0, False
    if start and rows and rows[0][0] == start:  # the chain up to it was checked before
        before, chained = start, previous_size(rows.pop(0)[1]) is not None
    for size, note in rows:
        previous = previous_size(note)
        if previous is None and chained:
            problems.append((size, f"checkpoint {size} does not name the one before it"))
        elif previous is not None and previous > before:
            problems.append((previous, f"checkpoint {previous} (before {size}) is missing"))
        elif previous is not None and previous != before:
            message = f"checkpoint {size} names {previous} as the one before it, not {before}"
            problems.append((size, message))
        chained, before = chained or previous is not None, size
    return problems


def _object_problem(sha256: bytes, data: bytes | None) -> str | None:
    if data is None:
        return f"its stored object {sha256.hex()[:16]}... is missing"
    if hashlib.sha256(data).digest() != sha256:
        return f"its stored object {sha256.hex()[:16]}... does not match its SHA-256"
    return None


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
        view: LogView,
        check_entry: Callable[[Entry], str | None] | None,
        seen: tuple[int, bytes] | None,
        start: VerifiedTree | None,
    ) -> None:
        self.view, self.check_entry, self.seen, self.start = view, check_entry, seen, start
        self.from_size = start.size if start else 0  # entries before it are taken as checked
        self.seen_root = None
        if seen is not None and seen[0] <= self.from_size:
            self.seen_root = view.hashes([(0, seen[0])])[0]
        self.problems: list[str] = []
        self.first: tuple[tuple[int, ...], dict[str, Any]] | None = None
        self.levels: dict[int, _Rows] = {}  # stored subtree hashes of each level, by index
        self.signed: list[Checkpoint] = []  # checkpoints whose notes verify
        self.last_size = self.from_size  # size of the latest checkpoint row seen
        self.objects: dict[bytes, str | None] = {}  # each object referred to: its problem

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

    def flag_object(self, sha256: bytes, message: str) -> None:
        self.flag((4, int.from_bytes(sha256, "big")), {"object": sha256.hex()}, message)

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
        cps = _Rows(self.view.checkpoint_rows(self.from_size + 1 if self.from_size else LOWEST))
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
        self.unreferenced_objects()
        size = self.view.size()
        self.high_water(size)
        ok = self.first is None
        first_bad = None if self.first is None else self.first[1]
        return LogReport(ok, size, first_bad, tuple(self.problems), self.from_size)

    def below(self, level: int) -> int:
        """Where the rows of a tree level still to check begin: after those of the verified
        tree (its fingerprint covers its levels), else from the lowest."""
        return (self.from_size >> level) or LOWEST

    def entries(self) -> Iterator[Entry]:
        """Entries in index order with their blobs (those stored by content checked against
        their SHA-256); flags blobs that belong to no entry."""
        start = self.below(0)
        blobs, refs = _Rows(self.view.blob_rows(start)), _Rows(self.view.ref_rows(start))
        for idx, rid, leaf in self.view.entry_rows(start):
            self.orphans(blobs, idx)
            self.orphans(refs, idx)
            entry = Entry(idx, rid, leaf, {})
            while blobs.head is not None and blobs.head[0] == idx:
                _, name, data = blobs.pop()
                entry.blobs[name] = data
            while refs.head is not None and refs.head[0] == idx:
                self.by_content(entry, *refs.pop()[1:])
            yield entry
        self.orphans(blobs, None)
        self.orphans(refs, None)

    def orphans(self, blobs: _Rows, below: int | None) -> None:
        while blobs.head is not None and (below is None or blobs.head[0] < below):
            idx, name, _ = blobs.pop()
            self.flag_entry(idx, None, f"blob {name!r} at index {idx} belongs to no entry")

    def by_content(self, entry: Entry, name: str, sha256: bytes) -> None:
        """Add the blob ``name`` stored by content to ``entry``; flag it when it is also
        stored inline, or its object is missing or does not match its SHA-256 (checked once
        per object, so a damaged object fails every entry that refers to it)."""
        where = f"entry {entry.index}: blob {name!r}"
        if name in entry.blobs:
            self.flag_entry(entry.index, entry.record_id, f"{where} is stored twice")
        data = self.view.object(sha256)
        if sha256 not in self.objects:
            self.objects[sha256] = _object_problem(sha256, data)
        if problem := self.objects[sha256]:
            self.flag_entry(entry.index, entry.record_id, f"{where}: {problem}")
        entry.refs[name] = sha256
        if data is not None:
            entry.blobs[name] = data

    def unreferenced_objects(self) -> None:
        """Flag stored objects that no blob refers to (the refs of no entry are flagged apart;
        those of the verified tree count, so its objects need not be read)."""
        for sha256 in self.view.unreferenced_objects():
            self.flag_object(sha256, f"stored object {sha256.hex()[:16]}... belongs to no entry")

    def scan(self, cps: _Rows) -> merkle.Frontier | None:
        """Check every entry; rebuild the tree up to the first gap (then return None)."""
        frontier: merkle.Frontier | None = merkle.Frontier()
        if self.start:
            tree = merkle.subtrees(0, self.start.size)
            frontier = merkle.Frontier(self.start.size, [self.view.node(*n) for n in tree])
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
            self.levels[level] = _Rows(self.view.node_rows(level, self.below(level)))
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
            cp = self.view.open_checkpoint(size, note)
        except VerificationError as exc:
            self.flag_checkpoint(size, f"checkpoint {size}: {exc}")
            return False
        self.signed.append(cp)
        if root is not None and cp.root != root:
            self.flag_checkpoint(size, f"checkpoint {size}: root differs from the entries' root")
        return True

    def extra_nodes(self, size: int) -> None:
        """Flag stored tree hashes that a tree of ``size`` leaves does not have."""
        for level in range(size.bit_length()):
            rows = self.stored(level)
            while rows.head is not None:
                self.flag_node(
                    level, rows.head[0], f"tree hash {(level, rows.pop()[0])} is unexpected"
                )
        for level, idx in self.view.nodes_outside(size.bit_length()):
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
            entry = self.view.find(self.last_size)
            message = f"entries from {self.last_size} on are not covered by a checkpoint"
            self.flag_entry(self.last_size, entry.record_id if entry else None, message)

    def consistency(self, frontier: merkle.Frontier | None) -> None:
        """Check consecutive signed checkpoints, then the latest and the rebuilt tree, agree."""
        trees = {(cp.size, cp.root) for cp in self.signed}
        if self.start:
            trees.add((self.start.size, self.start.root))
        if frontier is not None and frontier.size:
            trees.add((frontier.size, frontier.root()))
        for (size1, root1), (size2, root2) in itertools.pairwise(sorted(trees)):
            if size1 == size2:
                continue  # the latest checkpoint's root was compared with the rebuilt one
            ranges = merkle.consistency_ranges(size1, size2)
            try:
                proof = self.view.hashes(ranges)
            except VerificationError as exc:
                self.flag_checkpoint(size2, f"no consistency proof {size1} -> {size2}: {exc}")
                continue
            if not merkle.verify_consistency(size1, size2, root1, root2, proof):
                self.flag_checkpoint(size2, f"trees {size1} and {size2} are not consistent")
