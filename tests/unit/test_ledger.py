"""ledger.py on real SQLite files with real Ed25519 keys: appends, proofs, audits, receipts."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wasm_sandbox import merkle
from wasm_sandbox.checkpoint import open_note, sign_note, verifier_key
from wasm_sandbox.errors import LedgerError, RecordNotFound, VerificationError
from wasm_sandbox.ledger import BY_CONTENT_MIN, Entry, Ledger, verify_receipt

ORIGIN = "example.com/test-log"
SCRIPT = Path(__file__).parents[2] / "docs" / "verify_receipt.py"
TABLES = ("entries", "blobs", "subtrees", "checkpoints")


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def record(rid: str, blobs: dict[str, bytes]) -> bytes:
    """A stand-in for the canonical record: it names its id and the digest of each blob."""
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()}
    return json.dumps({"id": rid, "blobs": digests}, sort_keys=True).encode()


def item(i: int) -> tuple[str, bytes, dict[str, bytes]]:
    rid = f"rec{i:04d}"
    blobs = {"program": b"ct-program-%d" % i, "result": b"ct-result-%d" % i}
    return rid, record(rid, blobs), blobs


def check_entry(entry: Entry) -> str | None:
    try:
        rec = json.loads(entry.leaf)
    except ValueError:
        return "leaf is not a record"
    if rec.get("id") != entry.record_id:
        return "record id does not match the record"
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in entry.blobs.items()}
    return None if digests == rec.get("blobs") else "blobs do not match the record"


def build(path: Path, key: Ed25519PrivateKey, batches: list[int]) -> Ledger:
    log = Ledger(path, origin=ORIGIN, signing_key=key)
    n = 0
    for b in batches:
        log.append_many([item(i) for i in range(n, n + b)])
        n += b
    return log


@pytest.fixture
def log(tmp_path, key):
    with build(tmp_path / "log.db", key, [1, 2, 1, 3]) as log:
        yield log


def raw(log: Ledger) -> sqlite3.Connection:
    return sqlite3.connect(log.path, isolation_level=None)


# Appending and proofs


def test_append_returns_a_receipt_that_verifies(log, key):
    rid, leaf, blobs = item(7)
    r = log.append(rid, leaf, blobs)
    assert (r.record_id, r.leaf_index, r.tree_size) == (rid, 7, 8)
    cp = open_note(r.checkpoint_note, log.verifier_key)
    assert (cp.origin, cp.size, cp.root) == (ORIGIN, 8, r.root)
    assert merkle.verify_inclusion(merkle.leaf_hash(leaf), 7, 8, list(r.inclusion_proof), r.root)
    assert log.get(rid) == Entry(7, rid, leaf, blobs)
    assert log.size == 8


def test_append_many_is_one_checkpoint(log):
    receipts = log.append_many([item(i) for i in range(7, 12)])
    assert [r.leaf_index for r in receipts] == list(range(7, 12))
    assert {r.checkpoint_note for r in receipts} == {log.latest_checkpoint().note}
    assert [cp.size for cp in log.checkpoints()] == [1, 3, 4, 7, 12]
    assert log.append_many([]) == []


def test_proofs_match_merkle_for_every_size(tmp_path, key):
    with build(tmp_path / "log.db", key, [1, 2, 3, 5, 1, 8, 13, 4]) as log:
        leaves = [merkle.leaf_hash(e.leaf) for e in log.entries(limit=100)]
        assert len(leaves) == log.size == 37
        assert log.root(0) == merkle.EMPTY_ROOT
        for n in range(1, 38):
            assert log.root(n) == merkle.root(leaves[:n])
            for i in range(n):
                assert log.inclusion_proof(i, n) == merkle.inclusion_proof(i, leaves[:n])
            for m in range(1, n + 1):
                assert log.consistency_proof(m, n) == merkle.consistency_proof(m, leaves[:n])
        assert log.consistency_proof(5) == log.consistency_proof(5, 37)


def test_old_receipts_stay_valid_and_checkpoints_stay_consistent(tmp_path, key):
    with Ledger(tmp_path / "log.db", origin=ORIGIN, signing_key=key) as log:
        receipts = [log.append(*item(i)) for i in range(9)]
        latest = log.latest_checkpoint()
        for r in receipts:
            leaf = merkle.leaf_hash(log.get(r.record_id).leaf)
            proof = list(r.inclusion_proof)
            assert merkle.verify_inclusion(leaf, r.leaf_index, r.tree_size, proof, r.root)
            proof = log.consistency_proof(r.tree_size)
            assert merkle.verify_consistency(r.tree_size, 9, r.root, latest.root, proof)


def counts(log: Ledger) -> tuple[int, ...]:
    db = raw(log)
    return tuple(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES)


def test_duplicate_record_id_writes_nothing(log):
    before = counts(log)
    with pytest.raises(LedgerError, match="record id rec0002 is already logged"):
        log.append_many([item(7), item(2)])
    with pytest.raises(LedgerError, match="twice"):
        log.append_many([item(8), item(8)])
    assert counts(log) == before
    assert log.verify_all(check_entry).ok


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", b"x", {}), "record id must be"),
        ((7, b"x", {}), "record id must be"),
        (("a\nb", b"x", {}), "record id must be"),
        (("r", "text", {}), "leaf of r must be bytes"),
        (("r", b"x", {"p": "text"}), "blob 'p' of r must be bytes"),
        (("r", b"x", {"": b"x"}), "blob name of r"),
        (("r", b"x", [b"x"]), "blobs of r must map"),
    ],
)
def test_bad_input_is_refused_with_a_one_line_error(log, args, message):
    with pytest.raises(LedgerError, match=message) as info:
        log.append(*args)
    assert "\n" not in str(info.value)
    assert log.size == 7


def test_threads_can_share_a_ledger(log):
    def work(t: int) -> None:
        for i in range(10):
            log.append(*item(100 + 10 * t + i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.size == 47
    assert log.verify_all(check_entry).ok


# Reading


def test_get_entries_and_recent(log):
    assert log.get("rec0003").index == 3
    assert log.get(3).record_id == "rec0003"
    assert log.get(3).blobs == item(3)[2]
    for missing in ("nope", 7, -1, 3.0, True):
        with pytest.raises(RecordNotFound):
            log.get(missing)
    assert [e.index for e in log.entries()] == list(range(7))
    assert [e.index for e in log.entries(after=2, limit=3)] == [3, 4, 5]
    assert [e.index for e in log.recent(3)] == [6, 5, 4]
    assert [e.index for e in log.recent(10, before=2)] == [1, 0]
    assert log.entries(after=2, limit=3)[0].blobs == item(3)[2]
    with pytest.raises(LedgerError, match="bad page"):
        log.entries(limit=-1)
    with pytest.raises(LedgerError, match="bad page"):
        log.recent(before="5")


def test_proof_arguments_are_checked(log):
    with pytest.raises(RecordNotFound):
        log.inclusion_proof(7)
    with pytest.raises(LedgerError, match="tree size 8"):
        log.root(8)
    with pytest.raises(LedgerError, match="first tree size 0"):
        log.consistency_proof(0)
    with pytest.raises(LedgerError, match="first tree size 5"):
        log.consistency_proof(5, 4)


def test_empty_log(tmp_path, key):
    with Ledger(tmp_path / "log.db", origin=ORIGIN, signing_key=key) as log:
        assert log.size == 0 and log.root() == merkle.EMPTY_ROOT and log.checkpoints() == []
        with pytest.raises(LedgerError, match="empty"):
            log.latest_checkpoint()
        assert log.verify_all().ok


def test_read_only_ledger_verifies_but_does_not_append(log):
    log.close()
    with Ledger(log.path, origin=ORIGIN, verifier=log.verifier_key) as reader:
        assert reader.verify_all(check_entry).ok
        assert reader.latest_checkpoint().size == 7
        with pytest.raises(LedgerError, match="read-only"):
            reader.append(*item(7))


def test_constructor_checks_keys_and_origin(tmp_path, key):
    path, other = tmp_path / "log.db", Ed25519PrivateKey.generate()
    with pytest.raises(LedgerError, match="signing key or a verifier key"):
        Ledger(path, origin=ORIGIN)
    with pytest.raises(LedgerError, match="does not belong"):
        Ledger(
            path, origin=ORIGIN, signing_key=key, verifier=verifier_key(ORIGIN, other.public_key())
        )
    with pytest.raises(LedgerError, match="not the origin"):
        Ledger(path, origin="other.example", verifier=verifier_key(ORIGIN, key.public_key()))
    for origin in ("", "has space", "a+b", "two\nlines", "bell\a"):
        with pytest.raises(LedgerError):
            Ledger(path, origin=origin, signing_key=key)
    with pytest.raises(LedgerError, match="cannot open"):
        Ledger(tmp_path / "no" / "such" / "dir.db", origin=ORIGIN, signing_key=key)


def test_close_is_idempotent_and_final(tmp_path, key):
    with Ledger(tmp_path / "log.db", origin=ORIGIN, signing_key=key) as log:
        log.append(*item(0))
    log.close()
    with pytest.raises(LedgerError, match="closed"):
        _ = log.size


# A damaged file: every failure is a LedgerError, never a sqlite3 one

CALLS = {
    "size": lambda log: log.size,
    "get by id": lambda log: log.get("rec0001"),
    "get by index": lambda log: log.get(1),
    "entries": lambda log: log.entries(),
    "recent": lambda log: log.recent(),
    "root": lambda log: log.root(),
    "inclusion_proof": lambda log: log.inclusion_proof(0),
    "consistency_proof": lambda log: log.consistency_proof(1),
    "latest_checkpoint": lambda log: log.latest_checkpoint(),
    "checkpoints": lambda log: log.checkpoints(),
    "verify_entry": lambda log: log.verify_entry("rec0001"),
    "verify_all": lambda log: log.verify_all(check_entry),
    "verify_chain": lambda log: log.verify_chain(),
    "cosigned_note": lambda log: log.cosigned_note(),
    "receipt": lambda log: log.receipt("rec0001"),
    "append": lambda log: log.append(*item(7)),
}


def _garble_all_but_the_schema(path: Path) -> None:
    """Overwrite every page but the first (the schema) with garbage: the file still opens."""
    data = path.read_bytes()
    page = int.from_bytes(data[16:18], "big")
    path.write_bytes(data[:page] + b"\xa5" * (len(data) - page))


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_garbled_file_is_a_ledger_error_from_every_method(log, key, call):
    log.close()
    _garble_all_but_the_schema(Path(log.path))
    damaged = Ledger(log.path, origin=ORIGIN, signing_key=key)
    with damaged, pytest.raises(LedgerError, match="malformed") as info:
        call(damaged)
    assert not isinstance(info.value, sqlite3.Error)
    assert info.value.__cause__ is None and "\n" not in str(info.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory"])
def test_an_unreadable_file_is_a_ledger_error_when_opened(log, key, damage):
    log.close()
    path = Path(log.path)
    if damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        data = path.read_bytes()
        path.write_bytes(b"not a database " * 100 if damage == "garbage" else data[:1000])
    with pytest.raises(LedgerError, match="cannot open ledger") as info:
        Ledger(path, origin=ORIGIN, signing_key=key)
    assert not isinstance(info.value, sqlite3.Error)


# Verifying


def test_verify_entry_names_its_checks(log):
    assert log.verify_entry("rec0004") == {
        "leaf_hash": True,
        "inclusion_proof": True,
        "checkpoint_signature": True,
    }
    raw(log).execute("UPDATE entries SET leaf = ? WHERE idx = 4", (b"forged",))
    assert log.verify_entry("rec0004") == {
        "leaf_hash": False,
        "inclusion_proof": False,
        "checkpoint_signature": True,
    }
    with pytest.raises(RecordNotFound):
        log.verify_entry("nope")


def test_verify_all_passes_a_good_log_and_calls_check_entry(log):
    seen = []
    report = log.verify_all(lambda e: seen.append(e.record_id))
    assert report.ok and report.tree_size == 7 and report.first_bad is None
    assert seen == [f"rec{i:04d}" for i in range(7)]
    bad = log.verify_all(lambda e: "too odd" if e.index % 2 else None)
    assert not bad.ok and bad.first_bad == {"index": 1, "record_id": "rec0001"}
    assert bad.problems == ("entry 1: too odd", "entry 3: too odd", "entry 5: too odd")


def flips(value: int | str | bytes) -> list:
    """Values that differ from ``value`` in one byte (integers: in one bit of one byte)."""
    if isinstance(value, int):
        return [value ^ 1, value ^ 0x100]
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    out = []
    for pos in sorted({0, len(data) // 2, len(data) - 1}):
        changed = bytearray(data)
        changed[pos] ^= 1
        out.append(bytes(changed))
    return out


def cells(path: Path):
    """Every (table, column, row) of the database, the row as a dict of its values."""
    db = sqlite3.connect(path)
    for (table,) in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'"):
        columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
        for row in db.execute(f"SELECT {', '.join(columns)} FROM {table}"):
            for column in columns:
                yield table, column, dict(zip(columns, row, strict=True))
    db.close()


def test_one_changed_byte_in_any_column_of_any_table_is_detected(tmp_path, key):
    pristine = tmp_path / "pristine.db"
    build(pristine, key, [1, 2, 1]).close()
    vkey, tried = verifier_key(ORIGIN, key.public_key()), set()
    for n, (table, column, row) in enumerate(cells(pristine)):
        for value in flips(row[column]):
            copy = tmp_path / f"case{n}-{len(tried)}.db"
            shutil.copy(pristine, copy)
            db = sqlite3.connect(copy, isolation_level=None)
            cast = "CAST(? AS TEXT)" if isinstance(row[column], str) else "?"
            where = " AND ".join(f"{c} = ?" for c in row)
            try:
                sql = f"UPDATE {table} SET {column} = {cast} WHERE {where}"
                db.execute(sql, (value, *row.values()))
            except sqlite3.IntegrityError:
                continue  # SQLite itself refuses this edit
            finally:
                db.close()
            with Ledger(copy, origin=ORIGIN, verifier=vkey) as log:
                report = log.verify_all(check_entry)
            assert not report.ok, (table, column, row, value)
            tried.add((table, column))
    every_column = {(t, c) for t, c, _ in cells(pristine)}
    assert tried == every_column


def test_deleted_rows_are_detected(tmp_path, key):
    pristine = tmp_path / "pristine.db"
    build(pristine, key, [1, 2, 1, 3]).close()
    cases = [("entries", f"idx = {i}") for i in range(7)]
    cases += [("blobs", f"idx = {i} AND name = 'result'") for i in range(7)]
    cases += [("subtrees", f"level = {lvl} AND idx = 0") for lvl in range(3)]
    cases += [("subtrees", "level = 0 AND idx = 6"), ("checkpoints", "size = 7")]
    for n, (table, where) in enumerate(cases):
        copy = tmp_path / f"case{n}.db"
        shutil.copy(pristine, copy)
        sqlite3.connect(copy, isolation_level=None).execute(f"DELETE FROM {table} WHERE {where}")
        with Ledger(copy, origin=ORIGIN, signing_key=key) as log:
            assert not log.verify_all(check_entry).ok, (table, where)


def test_first_bad_names_the_entry_or_checkpoint(log):
    db = raw(log)
    db.execute("DELETE FROM entries WHERE idx = 6")
    assert log.verify_all(check_entry).first_bad == {"index": 6, "record_id": None}
    db.execute("UPDATE entries SET leaf = ? WHERE idx = 2", (item(2)[1] + b" ",))
    assert log.verify_all(check_entry).first_bad == {"index": 2, "record_id": "rec0002"}


def test_first_bad_names_a_bad_checkpoint(log):
    note = log.latest_checkpoint().note
    raw(log).execute("UPDATE checkpoints SET note = ? WHERE size = 7", (note.replace("7", "8", 1),))
    report = log.verify_all(check_entry)
    assert report.first_bad == {"checkpoint": 7}
    assert "checkpoint 7" in report.problems[0]


def test_reordered_rows_are_detected(log):
    db = raw(log)
    db.execute("UPDATE entries SET idx = idx + 100 WHERE idx IN (2, 3)")
    db.execute("UPDATE entries SET idx = 5 - (idx - 100) WHERE idx IN (102, 103)")  # swap 2 and 3
    assert [e.record_id for e in log.entries()][2:4] == ["rec0003", "rec0002"]
    report = log.verify_all()
    assert not report.ok and report.first_bad == {"index": 2, "record_id": "rec0003"}


def test_swapped_blobs_are_detected_by_check_entry(log):
    db = raw(log)
    db.execute("UPDATE blobs SET idx = 100 WHERE idx = 1")
    db.execute("UPDATE blobs SET idx = 1 WHERE idx = 2")
    db.execute("UPDATE blobs SET idx = 2 WHERE idx = 100")
    assert log.verify_all().ok  # the ledger alone cannot tell: blobs are opaque
    assert log.verify_all(check_entry).first_bad == {"index": 1, "record_id": "rec0001"}


def test_wrong_verifier_key_fails_every_checkpoint(log):
    log.close()
    other = Ed25519PrivateKey.generate()
    with Ledger(log.path, origin=ORIGIN, signing_key=other) as impostor:
        report = impostor.verify_all(check_entry)
        assert not report.ok and report.first_bad == {"checkpoint": 1}
        with pytest.raises(VerificationError, match="no signature"):
            impostor.latest_checkpoint()
        with pytest.raises(VerificationError, match="refusing to append"):
            impostor.append(*item(7))


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE subtrees SET hash = zeroblob(32) WHERE level = 2 AND idx = 0",
        "UPDATE subtrees SET hash = zeroblob(32) WHERE level = 0 AND idx = 6",
        "DELETE FROM checkpoints WHERE size = 7",
        "DELETE FROM entries WHERE idx = 6",
        "DELETE FROM checkpoints",
    ],
)
def test_a_tampered_log_refuses_to_sign_again(log, key, tamper):
    raw(log).execute(tamper)
    size = log.size
    with pytest.raises(VerificationError, match="refusing to append"):
        log.append(*item(7))
    assert log.size == size


def test_the_log_never_signs_an_inconsistent_checkpoint(log, key):
    # Forge a frontier the attacker controls and a note that matches it but is not signed by us.
    forged = merkle.Frontier(7, [hashlib.sha256(b"%d" % i).digest() for i in range(3)])
    db = raw(log)
    for (level, idx), h in zip(merkle.subtrees(0, 7), forged.hashes, strict=True):
        db.execute("UPDATE subtrees SET hash = ? WHERE level = ? AND idx = ?", (h, level, idx))
    body = f"{ORIGIN}\n7\n{base64.b64encode(forged.root()).decode()}\n"
    note = sign_note(body, ORIGIN, Ed25519PrivateKey.generate())
    db.execute("UPDATE checkpoints SET note = ? WHERE size = 7", (note,))
    with pytest.raises(VerificationError, match="no signature"):
        log.append(*item(7))
    assert log.size == 7
    assert not log.verify_all().ok


# Receipts


def test_receipt_is_a_c2sp_tlog_proof_with_the_leaf(log):
    text = log.receipt("rec0005")
    head, note = text.split("\n\n", 1)
    lines = head.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert base64.b64decode(lines[1].removeprefix("extra ")) == item(5)[1]
    assert lines[2] == "index 5"
    assert [base64.b64decode(x) for x in lines[3:]] == log.inclusion_proof(5)
    assert note == log.latest_checkpoint().note
    assert verify_receipt(text, log.verifier_key)


def test_every_changed_byte_of_a_receipt_fails(log):
    text = log.receipt("rec0002").encode()
    for i in range(len(text)):
        changed = bytearray(text)
        changed[i] ^= 1
        assert not verify_receipt(changed.decode("utf-8", "surrogateescape"), log.verifier_key), i


def test_receipts_fail_with_another_key_or_garbage(log):
    text = log.receipt("rec0002")
    other = Ed25519PrivateKey.generate()
    with Ledger(log.path + "-other", origin=ORIGIN, signing_key=other) as stranger:
        assert not verify_receipt(text, stranger.verifier_key)
    for junk in ("", "c2sp.org/tlog-proof@v1\n\n", text.replace("index 2", "index 02"), None, 5):
        assert not verify_receipt(junk, log.verifier_key)
    assert not verify_receipt(text, "not a key")


def test_standalone_script_verifies_a_real_receipt(log, tmp_path):
    good, bad = tmp_path / "good.tlog-proof", tmp_path / "bad.tlog-proof"
    good.write_text(log.receipt("rec0003"))
    bad.write_text(log.receipt("rec0003").replace("index 3", "index 4"))
    run = [sys.executable, str(SCRIPT)]
    ok = subprocess.run([*run, str(good), log.verifier_key], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("verified: record 3 of " + ORIGIN)
    no = subprocess.run([*run, str(bad), log.verifier_key], capture_output=True, text=True)
    assert no.returncode == 1 and no.stdout.startswith("NOT verified")
    usage = subprocess.run(run, capture_output=True, text=True)
    assert usage.returncode == 2


def test_verify_all_compares_the_log_with_a_tree_a_client_saw(tmp_path, key):
    log = build(tmp_path / "seen.sqlite", key, [3, 2])
    seen = (3, log.root(3))
    assert log.verify_all(check_entry, seen=seen).ok
    assert log.verify_all(check_entry, seen=(5, log.root(5))).ok
    shorter = log.verify_all(check_entry, seen=(6, log.root(5)))
    assert not shorter.ok and shorter.first_bad == {"high_water": 6}
    assert "fewer than the 6" in shorter.problems[0]
    other = log.verify_all(check_entry, seen=(3, log.root(2)))
    assert not other.ok and other.first_bad == {"high_water": 3}
    assert "history rewritten" in other.problems[0]
    log.close()


def _queued(log: Ledger, n: int) -> None:
    """Wait until ``n`` appends wait in the group-commit queue (they block, so they will)."""
    for _ in range(2000):
        if len(log._queue) >= n:
            return
        threading.Event().wait(0.005)
    raise AssertionError(f"{n} appends never queued")


def test_concurrent_appends_share_one_transaction_and_a_bad_one_fails_alone(log):
    blocker = raw(log)
    blocker.execute("BEGIN IMMEDIATE")  # the first writer waits in SQLite; the others queue
    results: dict[str, object] = {}

    def append(it):
        try:
            results[it[0]] = log.append(*it)
        except LedgerError as exc:
            results[it[0]] = exc

    first = threading.Thread(target=append, args=(item(7),))
    first.start()
    while first.is_alive() and log._writer.acquire(blocking=False):
        log._writer.release()  # not yet inside: wait until it holds the writer's lock
        threading.Event().wait(0.005)
    later = [item(8), item(9), ("rec0000", *item(0)[1:]), item(10)]
    threads = [threading.Thread(target=append, args=(it,)) for it in later]
    for t in threads:
        t.start()
    _queued(log, len(later))
    blocker.execute("COMMIT")
    for t in [first, *threads]:
        t.join()
    assert isinstance(results["rec0000"], LedgerError)
    assert "already logged" in str(results["rec0000"])
    good = [results[rid] for rid in ("rec0008", "rec0009", "rec0010")]
    assert {r.leaf_index for r in good} == {8, 9, 10} and results["rec0007"].leaf_index == 7
    assert all(verify_receipt(log.receipt(f"rec{i:04d}"), log.verifier_key) for i in (8, 9, 10))
    assert log.verify_all(check_entry).ok and log.size == 11


def test_queued_appends_commit_under_one_checkpoint(log):
    blocker = raw(log)
    blocker.execute("BEGIN IMMEDIATE")
    receipts = {}
    first = threading.Thread(target=lambda: receipts.update({7: log.append(*item(7))}))
    first.start()
    while first.is_alive() and log._writer.acquire(blocking=False):
        log._writer.release()
        threading.Event().wait(0.005)
    threads = [
        threading.Thread(target=lambda i=i: receipts.update({i: log.append(*item(i))}))
        for i in (8, 9, 10)
    ]
    for t in threads:
        t.start()
    _queued(log, 3)
    blocker.execute("COMMIT")
    for t in [first, *threads]:
        t.join()
    assert receipts[7].tree_size == 8
    assert {receipts[i].tree_size for i in (8, 9, 10)} == {11}  # one checkpoint for the group
    assert len({receipts[i].checkpoint_note for i in (8, 9, 10)}) == 1
    assert [cp.size for cp in log.checkpoints()][-2:] == [8, 11]
    assert not log.verify_chain() and log.verify_all(check_entry).ok


# Blobs stored by content

PROGRAM = b"shared ciphertext " * 100  # over BY_CONTENT_MIN: stored once, by content


def sharing(i: int, program: bytes = PROGRAM) -> tuple[str, bytes, dict[str, bytes]]:
    rid = f"big{i:04d}"
    blobs = {"program": program, "result": b"ct-result-%d" % i}
    return rid, record(rid, blobs), blobs


@pytest.fixture
def shared(log):
    """The log with three more entries (7, 8, 9) that carry the same large blob."""
    log.append_many([sharing(i) for i in range(3)])
    return log


def rows(log: Ledger, sql: str) -> list[tuple]:
    return raw(log).execute(sql).fetchall()


def test_a_large_blob_is_stored_once_and_read_back_with_every_entry(shared):
    digest = hashlib.sha256(PROGRAM).digest()
    assert len(PROGRAM) >= BY_CONTENT_MIN
    assert rows(shared, "SELECT sha256, length(data) FROM objects") == [(digest, len(PROGRAM))]
    assert rows(shared, "SELECT idx FROM object_refs") == [(7,), (8,), (9,)]
    assert rows(shared, "SELECT count(*) FROM blobs WHERE name = 'program' AND idx >= 7") == [(0,)]
    for entry in [shared.get("big0001"), *shared.entries(after=6)]:
        assert entry.blobs["program"] == PROGRAM and entry.refs == {"program": digest}
    assert shared.verify_all(check_entry).ok


def test_a_damaged_object_fails_every_entry_that_refers_to_it(shared):
    damaged = bytearray(PROGRAM)
    damaged[500] ^= 1
    raw(shared).execute("UPDATE objects SET data = ?", (bytes(damaged),))
    for check in (None, check_entry):
        report = shared.verify_all(check)
        assert report.first_bad == {"index": 7, "record_id": "big0000"}
        flagged = [p for p in report.problems if "does not match its SHA-256" in p]
        assert [p.split(":")[0] for p in flagged] == ["entry 7", "entry 8", "entry 9"]


def test_the_next_append_of_the_same_bytes_mends_a_damaged_object(shared):
    raw(shared).execute("UPDATE objects SET data = ?", (PROGRAM[:-1] + b"?",))
    assert not shared.verify_all().ok
    shared.append(*sharing(3))
    assert shared.verify_all(check_entry).ok
    assert rows(shared, "SELECT count(*) FROM objects") == [(1,)]


def test_a_missing_object_and_an_object_of_no_entry_are_flagged(shared):
    raw(shared).execute("DELETE FROM objects")
    report = shared.verify_all(check_entry)
    assert report.first_bad == {"index": 7, "record_id": "big0000"}
    assert sum("is missing" in p for p in report.problems) == 3
    with build(shared.path + "-2", Ed25519PrivateKey.generate(), [2]) as other:
        stray = b"stray" * 300
        raw(other).execute(
            "INSERT INTO objects VALUES (?, ?)", (hashlib.sha256(stray).digest(), stray)
        )
        report = other.verify_all(check_entry)
        assert report.first_bad == {"object": hashlib.sha256(stray).hexdigest()}
        assert "belongs to no entry" in report.problems[0]


def test_a_ref_moved_to_another_object_is_caught_by_check_entry(shared):
    other = b"another program " * 100
    shared.append(*sharing(3, other))
    raw(shared).execute(
        "UPDATE object_refs SET sha256 = ? WHERE idx = 8", (hashlib.sha256(other).digest(),)
    )
    assert shared.verify_all().ok  # the ledger alone cannot tell: both objects are intact
    assert shared.verify_all(check_entry).first_bad == {"index": 8, "record_id": "big0001"}


def test_a_ref_of_no_entry_and_a_blob_stored_twice_are_flagged(shared):
    db = raw(shared)
    db.execute("UPDATE object_refs SET idx = 100 WHERE idx = 9")
    report = shared.verify_all()
    assert report.first_bad == {"index": 100, "record_id": None}
    assert any("blob 'program' at index 100 belongs to no entry" in p for p in report.problems)
    db.execute("UPDATE object_refs SET idx = 9 WHERE idx = 100")
    db.execute("INSERT INTO blobs VALUES (8, 'program', ?)", (PROGRAM,))
    report = shared.verify_all()
    assert report.first_bad == {"index": 8, "record_id": "big0001"}
    assert "entry 8: blob 'program' is stored twice" in report.problems


def test_a_refused_append_of_large_blobs_writes_nothing(shared):
    tables = ("objects", "object_refs", *TABLES)
    before = [rows(shared, f"SELECT count(*) FROM {t}") for t in tables]
    with pytest.raises(LedgerError, match="record id big0001 is already logged"):
        shared.append_many([sharing(5, b"new program " * 100), sharing(1)])
    assert [rows(shared, f"SELECT count(*) FROM {t}") for t in tables] == before
