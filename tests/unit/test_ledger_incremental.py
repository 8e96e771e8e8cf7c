"""Incremental audits (`Ledger.verify_all(since=...)`) on real SQLite files with real keys:
what follows a verified tree is checked in full, the prefix through its fingerprint."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.unit.test_ledger import ORIGIN, PROGRAM, build, cells, check_entry, flips, item, sharing
from wasm_sandbox.fingerprint import CHUNK, Fingerprint, VerifiedTree
from wasm_sandbox.ledger import Ledger

OWN = {1: PROGRAM, 2: b"only before the tree " * 60, 5: PROGRAM, 6: b"only after it " * 80}


def entry_at(i: int) -> tuple[str, bytes, dict[str, bytes]]:
    """Entries 1 and 5 share an object; 2 and 6 have one each (a tree of 4 splits them)."""
    return sharing(i, OWN[i]) if i in OWN else item(i)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def grown(path: Path, key: Ed25519PrivateKey, first: list[int], then: list[int]) -> VerifiedTree:
    """A log of ``first`` batches, audited clean, then grown by ``then``: the verified tree."""
    with Ledger(path, origin=ORIGIN, signing_key=key) as log:
        n = 0
        for b in [*first, *then]:
            if n == sum(first):
                tree = log.verify_all(check_entry).verified_tree
            log.append_many([entry_at(i) for i in range(n, n + b)])
            n += b
        if not then:
            tree = log.verify_all(check_entry).verified_tree
    assert tree is not None and tree.size == sum(first)
    return tree


def in_prefix(path: Path, table: str, row: dict, size: int) -> bool:
    """Whether the row belongs to the first ``size`` leaves (what a fingerprint covers)."""
    if table == "subtrees":
        return (row["idx"] + 1) << row["level"] <= size
    if table == "objects":  # when a blob of those leaves refers to it
        sql = "SELECT count(*) FROM object_refs WHERE sha256 = ? AND idx < ?"
        with sqlite3.connect(path) as db:
            return db.execute(sql, (row["sha256"], size)).fetchone()[0] > 0
    return row["size"] <= size if table == "checkpoints" else row["idx"] < size


def edited(pristine: Path, copy: Path, table: str, column: str, row: dict, value) -> bool:
    """``pristine`` copied with one cell changed; False when SQLite refuses the edit."""
    shutil.copy(pristine, copy)
    db = sqlite3.connect(copy, isolation_level=None)
    cast = "CAST(? AS TEXT)" if isinstance(row[column], str) else "?"
    where = " AND ".join(f"{c} = ?" for c in row)
    try:
        db.execute(f"UPDATE {table} SET {column} = {cast} WHERE {where}", (value, *row.values()))
    except sqlite3.IntegrityError:
        return False
    finally:
        db.close()
    return True


def test_a_clean_audit_hands_on_its_tree_and_the_next_starts_after_it(tmp_path, key):
    tree = grown(tmp_path / "log.db", key, [1, 2, 1], [1, 2])
    with Ledger(tmp_path / "log.db", origin=ORIGIN, signing_key=key) as log:
        report = log.verify_all(check_entry, since=tree)
        assert report.ok and report.verified_from == 4 and report.tree_size == 7
        assert report.verified_tree is not None and report.verified_tree.size == 7
        assert report.verified_tree.root == log.root()
        full = log.verify_all(check_entry)
        assert full.verified_from == 0 and full.verified_tree == report.verified_tree
        assert log.verify_all(check_entry, since=report.verified_tree).verified_from == 7


def test_every_changed_byte_is_caught_in_new_rows_and_in_old_ones(tmp_path, key):
    pristine = tmp_path / "pristine.db"
    tree = grown(pristine, key, [1, 2, 1], [1, 2])
    vkey = Ledger(pristine, origin=ORIGIN, signing_key=key).verifier_key
    tried = set()
    for n, (table, column, row) in enumerate(cells(pristine)):
        old = in_prefix(pristine, table, row, tree.size)
        for value in flips(row[column]):
            copy = tmp_path / f"case{n}-{len(tried)}.db"
            if not edited(pristine, copy, table, column, row, value):
                continue
            with Ledger(copy, origin=ORIGIN, verifier=vkey) as log:
                report = log.verify_all(check_entry, since=tree)
            assert not report.ok, (table, column, row, value)
            # a changed prefix is audited in full, a new row after the tree
            assert report.verified_from == (0 if old else tree.size), (table, row)
            tried.add((table, column, old))
    every_column = {(t, c) for t, c, _ in cells(pristine)}
    assert {"objects", "object_refs"} <= {t for t, _ in every_column}
    assert {(t, c) for t, c, old in tried if old} == every_column
    assert {(t, c) for t, c, old in tried if not old} == every_column


def test_deleted_or_added_rows_before_the_tree_fail_the_fingerprint(tmp_path, key):
    pristine = tmp_path / "pristine.db"
    tree = grown(pristine, key, [1, 2, 1], [2])
    cases = [
        "DELETE FROM entries WHERE idx = 1",
        "DELETE FROM blobs WHERE idx = 2 AND name = 'result'",
        "INSERT INTO blobs VALUES (1, 'extra', x'00')",
        "INSERT INTO blobs VALUES (-1, 'program', x'00')",
        "INSERT INTO entries SELECT -1, 'stray', leaf FROM entries WHERE idx = 0",
        "DELETE FROM subtrees WHERE level = 1 AND idx = 0",
        "INSERT INTO subtrees VALUES (1, -1, zeroblob(32))",
        "DELETE FROM checkpoints WHERE size = 3",
        "INSERT INTO checkpoints SELECT 0, note FROM checkpoints WHERE size = 1",
        "DELETE FROM object_refs WHERE idx = 2",
        "DELETE FROM objects WHERE sha256 IN (SELECT sha256 FROM object_refs WHERE idx = 2)",
        "INSERT INTO object_refs SELECT 3, 'extra', sha256 FROM object_refs WHERE idx = 1",
        "INSERT INTO object_refs SELECT -1, 'program', sha256 FROM object_refs WHERE idx = 1",
    ]
    for n, sql in enumerate(cases):
        copy = tmp_path / f"case{n}.db"
        shutil.copy(pristine, copy)
        sqlite3.connect(copy, isolation_level=None).execute(sql)
        with Ledger(copy, origin=ORIGIN, signing_key=key) as log:
            report = log.verify_all(check_entry, since=tree)
            caught = not report.ok or log.verify_chain(report.verified_from)
        assert report.verified_from == 0, sql
        assert caught, sql
    sqlite3.connect(pristine, isolation_level=None).execute(
        "INSERT INTO subtrees VALUES (3, -1, zeroblob(32))"  # above the tree's levels
    )
    with Ledger(pristine, origin=ORIGIN, signing_key=key) as log:
        report = log.verify_all(check_entry, since=tree)
    assert report.first_bad == {"subtree": [3, -1]} and report.verified_from == 4


def test_a_tree_the_log_no_longer_has_is_not_taken_as_checked(tmp_path, key):
    tree = grown(tmp_path / "log.db", key, [2, 2], [1])
    with Ledger(tmp_path / "log.db", origin=ORIGIN, signing_key=key) as log:
        for since in (
            VerifiedTree(tree.size, bytes(32), tree.fingerprint),  # another root
            VerifiedTree(tree.size, tree.root, bytes(32)),  # another fingerprint
            VerifiedTree(tree.size - 1, tree.root, tree.fingerprint),  # lowered
            VerifiedTree(9, tree.root, tree.fingerprint),  # beyond the log
            VerifiedTree(0, tree.root, tree.fingerprint),
        ):
            report = log.verify_all(check_entry, since=since)
            assert report.ok and report.verified_from == 0, since
    other = Ed25519PrivateKey.generate()
    shutil.copy(tmp_path / "log.db", tmp_path / "other.db")
    with Ledger(tmp_path / "other.db", origin=ORIGIN, signing_key=other) as log:
        report = log.verify_all(check_entry, since=tree)  # another key: every checkpoint fails
    assert report.verified_from == 0 and not report.ok


def test_a_fingerprint_grown_chunk_by_chunk_equals_one_taken_at_once(tmp_path, key):
    sizes = [CHUNK - 1, 1, CHUNK + 5, 3]
    with build(tmp_path / "log.db", key, sizes) as log, log.snapshot() as view:
        grown_one = Fingerprint(view, log.verifier_key)
        ends = [sum(sizes[: i + 1]) for i in range(len(sizes))]
        stepwise = [grown_one.digest(end) for end in ends]
        assert stepwise == [Fingerprint(view, log.verifier_key).digest(end) for end in ends]
        assert len(set(stepwise)) == len(ends)
        assert Fingerprint(view, "another+key").digest(ends[-1]) != stepwise[-1]


def test_an_audit_across_chunks_checks_what_follows_and_sees_an_old_edit(tmp_path, key):
    path = tmp_path / "log.db"
    tree = grown(path, key, [CHUNK + 100], [CHUNK, 7])
    with Ledger(path, origin=ORIGIN, signing_key=key) as log:
        assert log.verify_all(check_entry, since=tree).verified_from == CHUNK + 100
        sqlite3.connect(path, isolation_level=None).execute(
            "UPDATE entries SET leaf = CAST(leaf || x'20' AS BLOB) WHERE idx = ?", (CHUNK + 3,)
        )
        report = log.verify_all(check_entry, since=tree)
    assert report.verified_from == 0
    assert report.first_bad == {"index": CHUNK + 3, "record_id": item(CHUNK + 3)[0]}


def test_the_chain_is_checked_from_the_tree_on(tmp_path, key):
    tree = grown(tmp_path / "log.db", key, [1, 1, 1], [1, 1])
    with Ledger(tmp_path / "log.db", origin=ORIGIN, signing_key=key) as log:
        assert log.verify_chain(tree.size) == [] == log.verify_chain()
        sqlite3.connect(log.path, isolation_level=None).execute(
            "DELETE FROM checkpoints WHERE size = 4"
        )
        assert log.verify_chain(tree.size) == [(4, "checkpoint 4 (before 5) is missing")]
