"""Edit the SQLite file of a real sandbox home; `wasm-sandbox verify --all` must notice."""

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

from tests import programs
from wasm_sandbox import Limits, Sandbox


@pytest.fixture(scope="module")
def logged_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with Sandbox(home) as sb:
        sb.run(programs.ADD, invoke="add", args=[1, 2])
        sb.run(programs.TRAP, invoke="boom")
        sb.run(programs.HELLO)
        sb.run(programs.LOOP, invoke="spin", limits=Limits.parse(fuel=1000))
    return home


def verify_all(home):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wasm_sandbox.cli",
            "verify",
            "--all",
            "--json",
            "--home",
            str(home),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, json.loads(proc.stdout)


def tampered_copy(src, dst, sql, *params):
    shutil.copytree(src, dst)
    db = sqlite3.connect(dst / "ledger.sqlite")
    db.execute(sql, params)
    db.commit()
    db.close()
    return dst


def flip(value):
    data = bytearray(value if isinstance(value, bytes) else value.encode())
    data[len(data) // 2] ^= 0x01
    return bytes(data) if isinstance(value, bytes) else data.decode(errors="replace")


def test_the_untouched_log_verifies(logged_home):
    code, report = verify_all(logged_home)
    assert code == 0 and report["verified"] and report["tree_size"] == 4


@pytest.mark.parametrize(
    ("table", "column", "key"),
    [
        ("entries", "leaf", "idx"),
        ("entries", "record_id", "idx"),
        ("blobs", "data", "rowid"),
        ("subtrees", "hash", "level * 1000000000 + idx"),
        ("checkpoints", "note", "size"),
    ],
)
def test_one_flipped_byte_anywhere_is_detected(logged_home, tmp_path, table, column, key):
    db = sqlite3.connect(logged_home / "ledger.sqlite")
    rows = db.execute(f"SELECT {key}, {column} FROM {table}").fetchall()
    db.close()
    for i, (row_key, value) in enumerate(rows):
        home = tampered_copy(
            logged_home,
            tmp_path / f"{table}-{i}",
            f"UPDATE {table} SET {column} = ? WHERE {key} = ?",
            flip(value),
            row_key,
        )
        code, report = verify_all(home)
        assert code == 1 and not report["verified"], (table, column, row_key)
        assert report["first_bad"] is not None and report["problems"]


def test_a_deleted_record_is_detected_and_named(logged_home, tmp_path):
    home = tampered_copy(logged_home, tmp_path / "deleted", "DELETE FROM entries WHERE idx = 1")
    code, report = verify_all(home)
    assert code == 1 and report["first_bad"]["index"] == 1


def test_swapped_records_are_detected(logged_home, tmp_path):
    home = tmp_path / "swapped"
    shutil.copytree(logged_home, home)
    db = sqlite3.connect(home / "ledger.sqlite")
    (a,), (b,) = db.execute("SELECT leaf FROM entries WHERE idx IN (1, 2) ORDER BY idx")
    db.execute("UPDATE entries SET leaf = ? WHERE idx = 1", (b,))
    db.execute("UPDATE entries SET leaf = ? WHERE idx = 2", (a,))
    db.commit()
    db.close()
    code, report = verify_all(home)
    assert code == 1 and report["first_bad"]["index"] == 1
