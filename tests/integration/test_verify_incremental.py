"""`verify --all` from the last clean audit (keys/log-verified) on real homes: real SQLite,
real keys, edits made in place with sqlite3, the CLI in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests import programs
from tests.integration.test_by_content import with_custom_section
from wasm_sandbox import Sandbox
from wasm_sandbox.sources import compile_wat

MARK = Path("keys") / "log-verified"


def runs(sb: Sandbox, n: int) -> None:
    for i in range(n):
        sb.run(programs.ADD, invoke="add", args=[i, 1])


@pytest.fixture
def marked(home) -> Path:
    """A home of 5 runs audited clean (its mark at 5), then 2 more runs."""
    with Sandbox(home) as sb:
        runs(sb, 5)
        report = sb.verify_log()
        assert report.ok and report.verified_from == 0 and (home / MARK).exists()
        runs(sb, 2)
    return home


def edit(home: Path, sql: str, *args: object) -> None:
    db = sqlite3.connect(home / "ledger.sqlite", isolation_level=None)
    db.execute(sql, args)
    db.close()


def flip(home: Path, table: str, column: str, where: str) -> None:
    """Flip one bit in the middle of one cell, in place."""
    db = sqlite3.connect(home / "ledger.sqlite", isolation_level=None)
    (value,) = db.execute(f"SELECT {column} FROM {table} WHERE {where}").fetchone()
    data = bytearray(value.encode() if isinstance(value, str) else value)
    data[len(data) // 2] ^= 1
    new = data.decode("utf-8", "replace") if isinstance(value, str) else bytes(data)
    db.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (new,))
    db.close()


def verify_all(home: Path, *flags: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wasm_sandbox.cli",
            "verify",
            "--all",
            "--json",
            "--home",
            home,
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_the_next_audit_checks_only_what_was_logged_since(marked):
    mark = marked / MARK
    assert mark.stat().st_mode & 0o777 == 0o600
    code, out = verify_all(marked)
    assert code == 0 and out["verified"] and out["tree_size"] == 7
    assert out["incremental"] is True and out["verified_from"] == 5
    code, again = verify_all(marked)
    assert again["verified_from"] == 7 and again["high_water"]["size"] == 7
    code, full = verify_all(marked, "--full")
    assert code == 0 and full["incremental"] is False and full["verified_from"] == 0
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", "verify", "--all", "--home", str(marked)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "records from #7 checked in full" in proc.stdout


@pytest.mark.parametrize(
    ("table", "column", "where"),
    [
        ("entries", "leaf", "idx = 5"),
        ("entries", "record_id", "idx = 6"),
        ("blobs", "data", "idx = 6 AND name = 'result'"),
        ("subtrees", "hash", "level = 0 AND idx = 6"),
        ("checkpoints", "note", "size = 7"),
    ],
)
def test_a_changed_byte_in_a_new_record_is_caught(marked, table, column, where):
    flip(marked, table, column, where)
    code, out = verify_all(marked)
    assert code == 1 and not out["verified"] and out["verified_from"] == 5
    assert out["first_bad"] is not None


@pytest.mark.parametrize(
    ("table", "column", "where", "first_bad"),
    [
        ("entries", "leaf", "idx = 2", {"index": 2}),
        ("entries", "record_id", "idx = 1", {"index": 1}),
        ("subtrees", "hash", "level = 1 AND idx = 0", {"subtree": [1, 0]}),
        ("checkpoints", "note", "size = 3", {"checkpoint": 3}),
    ],
)
def test_a_changed_byte_before_the_mark_fails_its_fingerprint(
    marked, table, column, where, first_bad
):
    flip(marked, table, column, where)
    code, out = verify_all(marked)
    assert code == 1 and out["verified_from"] == 0  # audited in full
    assert out["first_bad"].items() >= first_bad.items()


def test_a_deleted_row_before_the_mark_fails_its_fingerprint(marked):
    edit(marked, "DELETE FROM blobs WHERE idx = 3 AND name = 'input'")
    code, out = verify_all(marked)
    assert code == 1 and out["verified_from"] == 0 and out["first_bad"]["index"] == 3


def test_a_ciphertext_changed_in_place_before_the_mark_is_caught(marked):
    flip(marked, "blobs", "data", "idx = 2 AND name = 'result'")
    code, out = verify_all(marked)
    assert code == 1 and out["verified_from"] == 0 and out["first_bad"]["index"] == 2
    code, full = verify_all(marked, "--full")
    assert code == 1 and full["first_bad"]["index"] == 2
    with Sandbox(marked) as sb:
        checks = sb.verify(sb.resolve("#2")).checks
    assert checks["ciphertexts"].startswith("failed")


@pytest.fixture
def by_content(home) -> Path:
    """Runs of two programs stored by content: OLD before the mark only (#0, #1), SHARED before
    and after it (#2, #4); the mark at 3, then 2 more runs."""
    old, shared = (with_custom_section(compile_wat(programs.ADD), os.urandom(2048)) for _ in "ab")
    with Sandbox(home) as sb:
        for wasm in (old, old, shared):
            sb.run(wasm, invoke="add", args=[1, 2])
        assert sb.verify_log().ok
        runs(sb, 1)
        sb.run(shared, invoke="add", args=[1, 2])
    return home


@pytest.mark.parametrize(("first", "runs_of_it"), [(0, [0, 1]), (2, [2, 4])])
def test_an_object_changed_in_place_before_the_mark_is_caught(by_content, first, runs_of_it):
    where = f"sha256 = (SELECT sha256 FROM object_refs WHERE idx = {first})"
    flip(by_content, "objects", "data", where)
    code, out = verify_all(by_content)
    assert code == 1 and out["verified_from"] == 0 and out["first_bad"]["index"] == first
    flagged = [p.split(":")[0] for p in out["problems"] if "does not match its SHA-256" in p]
    assert flagged == [f"entry {i}" for i in runs_of_it]


def test_objects_of_runs_before_the_mark_only_belong_to_an_entry(by_content):
    code, out = verify_all(by_content)
    assert code == 0 and out["verified_from"] == 3 and out["tree_size"] == 5


def test_a_copied_home_is_audited_in_full(marked, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(marked, copy)
    flip(copy, "blobs", "data", "idx = 2 AND name = 'result'")
    code, out = verify_all(copy)
    assert code == 1 and out["verified_from"] == 0 and out["first_bad"]["index"] == 2


def rewrite_mark(home: Path, change) -> None:
    """Rewrite the mark's fields with ``change`` and a valid checksum."""
    path = home / MARK
    fields = change(path.read_text().split()[:-1])
    body = " ".join(fields)
    path.write_text(f"{body} {hashlib.sha256(body.encode()).hexdigest()[:16]}\n")


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.unlink(),
        lambda path: path.write_text(path.read_text().replace("5 ", "4 ", 1)),  # checksum kept
        lambda path: path.write_text(path.read_text()[:40]),  # torn
        lambda path: path.chmod(0o644),
        lambda path: rewrite_mark(path.parents[1], lambda f: ["4", *f[1:]]),  # lowered
        lambda path: rewrite_mark(path.parents[1], lambda f: [*f[:4], "0.0.1"]),  # old version
    ],
    ids=["deleted", "edited", "torn", "readable by others", "lowered", "another version"],
)
def test_a_damaged_mark_is_never_trusted(marked, damage):
    flip(marked, "blobs", "data", "idx = 1 AND name = 'program'")  # only a full audit sees it
    damage(marked / MARK)
    code, out = verify_all(marked)
    assert code == 1 and out["verified_from"] == 0 and out["first_bad"]["index"] == 1


def test_a_genuine_older_mark_restored_starts_the_audit_after_it(home, tmp_path):
    with Sandbox(home) as sb:
        runs(sb, 3)
        sb.verify_log()
        older = (home / MARK).read_bytes()
        runs(sb, 3)
        assert sb.verify_log().verified_from == 3
        runs(sb, 1)
        (home / MARK).write_bytes(older)
        report = sb.verify_log()
        assert report.ok and report.verified_from == 3 and report.tree_size == 7


def test_a_log_rolled_back_below_the_mark_fails(marked, tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    with Sandbox(marked) as sb:
        assert sb.verify_log().verified_from == 5
        for path in marked.glob("ledger.sqlite*"):
            shutil.copy2(path, backup)
        runs(sb, 2)
        assert sb.verify_log().verified_from == 7
    for path in marked.glob("ledger.sqlite*"):
        path.unlink()
    for path in backup.iterdir():
        shutil.copy2(path, marked)
    code, out = verify_all(marked)
    assert code == 1 and out["verified_from"] == 0 and out["first_bad"] == {"high_water": 9}
    for sql in (  # the same in place: a well-formed log of 5 records, below the mark at 9
        "DELETE FROM entries WHERE idx >= 5",
        "DELETE FROM blobs WHERE idx >= 5",
        "DELETE FROM checkpoints WHERE size > 5",
        "DELETE FROM subtrees WHERE ((idx + 1) << level) > 5",
    ):
        edit(marked, sql)
    code, out = verify_all(marked)
    assert code == 1 and out["verified_from"] == 0 and out["first_bad"] == {"high_water": 9}
    assert out["tree_size"] == 5


def test_the_python_api_forces_a_full_audit(marked):
    with Sandbox(marked) as sb:
        assert sb.verify_log(full=True).verified_from == 0
        assert sb.verify_log().verified_from == 7
