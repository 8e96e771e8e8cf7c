"""Programs sealed by content (record version 3) in a real home: one stored ciphertext per
program, every run still its own sealed record, and every check still catching tampering."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests import programs
from wasm_sandbox import Grants, Limits, Sandbox, envelope, record
from wasm_sandbox.errors import DecryptionError
from wasm_sandbox.sources import compile_wat

LARGE = 256 * 1024


def with_custom_section(wasm: bytes, payload: bytes) -> bytes:
    """``wasm`` with a custom section named ``pad`` holding ``payload`` appended."""
    body = b"\x03pad" + payload
    size, n = bytearray(), len(body)
    while True:
        size.append((n & 0x7F) | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            break
    return wasm + b"\x00" + bytes(size) + body


@pytest.fixture(scope="module")
def big() -> bytes:
    """ADD with 256 KiB of incompressible bytes in a custom section."""
    return with_custom_section(compile_wat(programs.ADD), os.urandom(LARGE))


def db_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.glob("ledger.sqlite*"))


def sql(home: Path, statement: str, *params: object) -> list[tuple]:
    db = sqlite3.connect(home / "ledger.sqlite")
    try:
        rows = db.execute(statement, params).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def cli(home: Path, *args: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *args, "--json", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_a_hundred_runs_of_a_256_kib_module_grow_the_database_by_under_2_mb(home, big):
    with Sandbox(home) as sb:
        first = sb.run(big, invoke="add", args=(1, 2))
    before = db_bytes(home)  # at rest: closing copies the WAL into the database
    with Sandbox(home) as sb:
        runs = [sb.run(big, invoke="add", args=(i, 1)) for i in range(100)]
        assert all(ex.record["v"] == record.VERSION == 3 for ex in [first, *runs])
        assert [ex.outcome.returns for ex in runs[:2]] == [(1,), (2,)]
        assert sb.verify_log().ok
    assert db_bytes(home) - before < 2_000_000
    assert sql(home, "SELECT count(*), sum(length(data)) FROM objects") == [(1, len(big) + 16)]
    assert sql(home, "SELECT count(*) FROM object_refs") == [(101,)]


@pytest.fixture
def shared_home(home, big):
    """Three runs of the large program, one of a small one; their record ids."""
    with Sandbox(home) as sb:
        ids = [sb.run(big, invoke="add", args=(i, i)).id for i in range(3)]
        ids.append(sb.run(programs.ADD, invoke="add", args=(1, 1)).id)
    return ids


def test_each_run_opens_replays_and_verifies(home, big, shared_home):
    with Sandbox(home) as sb:
        for rid in shared_home[:3]:
            opened = sb.decrypt(rid)
            assert opened.program == big and opened.record["v"] == 3
            report = sb.verify(rid, replay=True)
            assert report.verified and report.checks["replay"] == "ok", report.checks
        assert sb.record(shared_home[3])["v"] == 2  # a small program is not sealed by content


def test_a_tampered_shared_ciphertext_fails_every_run_that_uses_it(home, shared_home):
    (data,) = sql(home, "SELECT data FROM objects")[0]
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 1
    sql(home, "UPDATE objects SET data = ?", bytes(flipped))
    code, report = cli(home, "verify", "--all")
    assert code == 1 and not report["verified"]
    assert report["first_bad"] == {"index": 0, "record_id": shared_home[0]}
    assert sum("does not match its SHA-256" in p for p in report["problems"]) == 3
    for rid in shared_home[:3]:
        code, report = cli(home, "verify", rid)
        assert code == 1 and not report["verified"]
        assert report["checks"]["ciphertexts"].startswith("failed: program: ciphertext does not")
        assert report["checks"]["commitments"].startswith("failed: program:")
    code, report = cli(home, "verify", shared_home[3])
    assert code == 0 and report["verified"]


def test_a_run_moved_to_another_programs_ciphertext_is_caught(home, big, shared_home):
    with Sandbox(home) as sb:
        other = sb.run(big[:-1] + b"!", invoke="add", args=(0, 0))
    digest = bytes.fromhex(other.record["program"]["ct_sha256"])
    sql(home, "UPDATE object_refs SET sha256 = ? WHERE idx = 1", digest)
    code, report = cli(home, "verify", "--all")
    assert code == 1 and report["first_bad"] == {"index": 1, "record_id": shared_home[1]}
    assert cli(home, "verify", shared_home[1])[1]["checks"]["ciphertexts"].startswith("failed")


def test_a_run_sealed_to_another_recipient_opens_with_that_key_only(home, big, tmp_path):
    teacher = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "teacher.pem"
    pem.write_bytes(
        teacher.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    program = tmp_path / "big.wasm"
    program.write_bytes(big)
    run = ["run", str(program), "--invoke", "add", "2", "3"]
    code, theirs = cli(home, *run, "--recipient", str(pem))
    assert code == 0 and theirs["returns"] == [5]
    assert cli(home, *run)[0] == 0  # the same program, sealed to this home
    with Sandbox(home) as sb:
        entry = sb.ledger.get(theirs["id"])
        rec = record.decode(entry.leaf)
        assert rec["v"] == 3 and rec["recipient"] == envelope.key_id(teacher.public_key())
        assert record.open_record(rec, entry.blobs, teacher).program == big
        with pytest.raises(DecryptionError, match="sealed to recipient"):
            record.open_record(rec, entry.blobs, sb.keys.recipient_private_key())
        mine = record.decode(sb.ledger.get(1).leaf)
        assert mine["program"]["ct_sha256"] != rec["program"]["ct_sha256"]  # one per recipient
    code, report = cli(home, "verify", theirs["id"])
    assert code == 0 and report["checks"]["commitments"].startswith("skipped")
    assert cli(home, "verify", "--all")[1]["verified"]


def _sealed_the_old_way(sb: Sandbox, wasm: bytes, version: int) -> str:
    """A run appended as a version 1 or 2 record (what this home logged before)."""
    public, rid = sb.keys.recipient_public_key(), record.new_id()
    outcome = sb.engine.run(sb.engine.compile(wasm), invoke="add", args=(20, 22))
    call = {"invoke": "add", "args": ["20", "22"], "grants": Grants().to_payload()}
    if version == 2:
        parts = record.seal_run(rid, wasm, call, outcome.result_payload(), public)
    else:
        payloads = {
            "program": wasm,
            "input": record.encode_input(call, b""),
            "result": envelope.canonical(outcome.result_payload()),
        }
        parts = {p: envelope.seal(p, d, public, rid) for p, d in payloads.items()}
    limits = Limits().to_record()
    rec = record.build(
        rid, 0, envelope.key_id(public), parts, len(wasm), limits, outcome.summary(), True
    )
    assert rec["v"] == version
    sb.ledger.append(rid, record.encode(rec), record.blobs(parts))
    return rid


def test_records_logged_before_version_3_still_open_and_verify(home, big):
    with Sandbox(home) as sb:
        old = [_sealed_the_old_way(sb, big, 1), _sealed_the_old_way(sb, big, 2)]
    # the layout of a log written before blobs were stored by content: every blob inline
    sql(
        home,
        "INSERT INTO blobs SELECT idx, name, data FROM object_refs JOIN objects USING (sha256)",
    )
    sql(home, "DROP TABLE objects")
    sql(home, "DROP TABLE object_refs")
    assert sql(home, "SELECT count(*) FROM blobs") == [(6,)]
    with Sandbox(home) as sb:
        new = sb.run(big, invoke="add", args=(20, 22)).id
        for rid in [*old, new]:
            report = sb.verify(rid, replay=True)
            assert report.verified and report.checks["commitments"] == "ok", report.checks
            assert sb.decrypt(rid).program == big
        assert [sb.record(rid)["v"] for rid in [*old, new]] == [1, 2, 3]
    code, report = cli(home, "verify", "--all")
    assert code == 0 and report["verified"] and report["tree_size"] == 3


@pytest.mark.parametrize(
    ("column", "change"),
    [
        ("objects.sha256", "UPDATE objects SET sha256 = zeroblob(32)"),
        ("objects.data", "UPDATE objects SET data = substr(data, 2)"),
        ("object_refs.idx", "UPDATE object_refs SET idx = idx + 7 WHERE idx = 2"),
        ("object_refs.name", "UPDATE object_refs SET name = 'source' WHERE idx = 2"),
        ("object_refs.sha256", "UPDATE object_refs SET sha256 = zeroblob(32) WHERE idx = 2"),
        ("a deleted object", "DELETE FROM objects"),
        ("a deleted ref", "DELETE FROM object_refs WHERE idx = 2"),
    ],
)
def test_any_change_to_the_shared_tables_is_detected(home, shared_home, column, change):
    sql(home, change)
    code, report = cli(home, "verify", "--all")
    assert code == 1 and not report["verified"] and report["problems"], column
