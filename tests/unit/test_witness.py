"""The witness on real ledgers, keys and SQLite state: it cosigns only a log that grew."""

import base64
import sqlite3
import threading

import pytest

from tests import programs
from wasm_sandbox.checkpoint import format_checkpoint, parse_verifier_key, sign_note
from wasm_sandbox.errors import LedgerError, SandboxError, VerificationError
from wasm_sandbox.keys import KeyStore
from wasm_sandbox.ledger import Ledger
from wasm_sandbox.record import decode, encode
from wasm_sandbox.witness import (
    COSIGNATURE,
    Refused,
    Witness,
    check_cosigners,
    cosignature_message,
    verify_cosignature,
)

ORIGIN = "example.com/log"


def make_log(path, n, key=None):
    key = key or KeyStore(path.parent / "logkeys").signing_key()
    log = Ledger(path, origin=ORIGIN, signing_key=key)
    for i in range(n):
        log.append(f"r{i}", f"leaf {i}".encode())
    return log


@pytest.fixture
def log(tmp_path):
    with make_log(tmp_path / "log.sqlite", 3) as log:
        yield log


@pytest.fixture
def witness(tmp_path):
    with Witness(tmp_path / "witness", create=True) as w:
        yield w


def cosign(witness, log):
    cp = log.latest_checkpoint()
    old = witness.size_of(cp.origin)
    proof = log.consistency_proof(old, cp.size) if 0 < old < cp.size else []
    return witness.add_checkpoint(cp.note, log.verifier_key, old_size=old, proof=proof)


def test_cosignature_is_c2sp_cosignature_v1(witness, log):
    line = cosign(witness, log)
    note = log.latest_checkpoint().note
    vkey = parse_verifier_key(witness.verifier_key, COSIGNATURE)
    name, b64 = line.removeprefix("\u2014 ").split(" ")
    raw = base64.b64decode(b64)
    assert name == vkey.name and raw[:4] == vkey.key_id and len(raw) == 4 + 8 + 64
    stamp = int.from_bytes(raw[4:12], "big")
    body = note[: note.index("\n\n") + 1]
    message = cosignature_message(body, stamp)
    assert message.startswith(f"cosignature/v1\ntime {stamp}\n{ORIGIN}\n3\n".encode())
    vkey.public_key.verify(raw[12:], message)  # raises if it is not this exact message
    assert verify_cosignature(note + line + "\n", witness.verifier_key) == stamp


def test_a_cosignature_does_not_move_to_another_checkpoint_or_time(witness, log):
    line = cosign(witness, log)
    note = log.latest_checkpoint().note
    log.append("r3", b"leaf 3")
    with pytest.raises(VerificationError):
        verify_cosignature(log.latest_checkpoint().note + line + "\n", witness.verifier_key)
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[11] ^= 1  # the timestamp
    moved = f"{line.split(' ')[0]} {line.split(' ')[1]} {base64.b64encode(raw).decode()}"
    with pytest.raises(VerificationError):
        verify_cosignature(note + moved + "\n", witness.verifier_key)
    with Witness(witness.home.parent / "other", create=True) as other:
        assert check_cosigners(note + line + "\n", [other.verifier_key])[0]["cosigned"] is False
    with pytest.raises(VerificationError, match="malformed verifier key"):
        verify_cosignature(note + line + "\n", log.verifier_key)  # a log key is type 0x01


def test_first_contact_is_recorded_then_only_growth_is_cosigned(witness, log):
    assert witness.state(ORIGIN) is None
    cosign(witness, log)
    first = witness.state(ORIGIN)
    assert (first.size, first.log_key) == (3, log.verifier_key)
    log.append_many([(f"n{i}", b"x%d" % i, None) for i in range(5)])
    cosign(witness, log)
    assert witness.state(ORIGIN).size == 8
    assert witness.state(ORIGIN).first_seen == first.first_seen


def test_refusals_change_nothing(witness, log, tmp_path):
    cosign(witness, log)
    before = witness.state(ORIGIN)
    cp = log.latest_checkpoint()
    key = log.verifier_key
    earlier = log.checkpoints()[1]  # size 2: a rollback
    with pytest.raises(Refused, match="rolled back"):
        witness.add_checkpoint(earlier.note, key, old_size=3, proof=[])
    with pytest.raises(Refused, match="holds size 3"):
        witness.add_checkpoint(cp.note, key, old_size=2, proof=[])
    with make_log(tmp_path / "fork.sqlite", 0, log._key) as fork:  # same key, other leaves
        fork.append_many([(f"f{i}", b"fork %d" % i, None) for i in range(3)])
        with pytest.raises(Refused, match="forked"):
            witness.add_checkpoint(fork.latest_checkpoint().note, key, old_size=3, proof=[])
        fork.append("f3", b"fork 3")
        proof = fork.consistency_proof(3, 4)
        with pytest.raises(Refused, match="inconsistent"):
            witness.add_checkpoint(fork.latest_checkpoint().note, key, old_size=3, proof=proof)
    forged = cp.note.replace("\n3\n", "\n4\n")
    with pytest.raises(Refused, match="bad log checkpoint"):
        witness.add_checkpoint(forged, key, old_size=3, proof=[])
    stranger = KeyStore(tmp_path / "stranger").signing_key()
    with make_log(tmp_path / "other.sqlite", 4, stranger) as other:
        note, proof = other.latest_checkpoint().note, other.consistency_proof(3, 4)
        with pytest.raises(Refused, match="key changed"):
            witness.add_checkpoint(note, other.verifier_key, old_size=3, proof=proof)
    assert witness.state(ORIGIN) == before


def test_check_reports_without_cosigning(witness, log):
    assert witness.check(log.latest_checkpoint().note, log.verifier_key, [])["consistent"] is False
    cosign(witness, log)
    log.append("r3", b"leaf 3")
    report = witness.check(log.latest_checkpoint().note, log.verifier_key, log.consistency_proof(3))
    assert report["consistent"] and (report["witnessed_size"], report["tree_size"]) == (3, 4)
    assert witness.state(ORIGIN).size == 3


def test_two_concurrent_cosigns_from_one_size_one_wins(tmp_path, log):
    Witness(tmp_path / "w", create=True).close()
    log.append("r3", b"leaf 3")
    note, key, results = log.latest_checkpoint().note, log.verifier_key, []
    barrier = threading.Barrier(8)

    def one():
        with Witness(tmp_path / "w") as w:
            barrier.wait()
            try:
                results.append(w.add_checkpoint(note, key, old_size=0, proof=[]))
            except Refused as exc:
                results.append(exc.conflict)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str).count(4) == 7 and sum(isinstance(r, str) for r in results) == 1
    db = sqlite3.connect(tmp_path / "w" / "witness.sqlite")
    assert db.execute("SELECT origin, size FROM logs").fetchall() == [(ORIGIN, 4)]


def test_a_home_that_is_not_a_witness_is_refused(tmp_path, witness):
    with pytest.raises(SandboxError, match="not a witness home"):
        Witness(tmp_path / "nothing")
    vkey = witness.verifier_key
    with Witness(witness.home) as again:
        assert again.verifier_key == vkey
    (witness.home / "keys" / "signing.pem").unlink()
    with pytest.raises(SandboxError, match=r"key signing\.pem is missing"):
        Witness(witness.home)


def test_the_ledger_keeps_cosignatures_beside_checkpoints(witness, log):
    line = cosign(witness, log)
    log.add_cosignature(3, line)
    log.add_cosignature(3, line)  # idempotent
    assert log.cosigned_note() == log.latest_checkpoint().note + line + "\n"
    assert log.cosigned_note(2) == log.checkpoints()[1].note
    with pytest.raises(LedgerError, match="no checkpoint of size 9"):
        log.add_cosignature(9, line)
    with pytest.raises(LedgerError, match="not a note signature line"):
        log.add_cosignature(3, "\u2014 name has spaces\nand a newline")


def test_a_checkpoint_holds_no_more_cosignatures_than_a_note_can(witness, log, tmp_path):
    from wasm_sandbox.checkpoint import MAX_SIGNATURES

    lines = [cosign(witness, log)]
    for n in range(MAX_SIGNATURES - 2):
        with Witness(tmp_path / f"w{n}", create=True) as other:
            lines.append(cosign(other, log))
    for line in lines:
        log.add_cosignature(3, line)
    log.add_cosignature(3, lines[0])  # a line already stored is no new one
    with Witness(tmp_path / "one-too-many", create=True) as other:
        line = cosign(other, log)
    with pytest.raises(LedgerError, match=f"holds {MAX_SIGNATURES - 1} cosignatures"):
        log.add_cosignature(3, line)
    assert verify_cosignature(log.cosigned_note(), witness.verifier_key)  # still parses


# Outcomes bound to sealed results, and checkpoints chained: what the log checks by itself.


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "ok"), ("trap", None), ("exit_code", 0), ("fuel_used", 9), ("memory_bytes", 65536)],
)
def test_verify_compares_the_public_outcome_with_the_sealed_result(sandbox, field, value):
    ex = sandbox.run(programs.TRAP, invoke="boom")
    assert sandbox.verify(ex.id).checks["outcome"] == "ok"
    rec = decode(sandbox.ledger.get(ex.id).leaf)
    assert rec["outcome"][field] != value
    rec["outcome"][field] = value
    db = sqlite3.connect(sandbox.home / "ledger.sqlite")
    db.execute("UPDATE entries SET leaf = ? WHERE record_id = ?", (encode(rec), ex.id))
    db.commit()
    db.close()
    report = sandbox.verify(ex.id)
    assert not report.verified
    assert report.checks["outcome"].startswith(
        f"failed: the public outcome disagrees with the "
        f"sealed result on {field} ({value!r} vs sealed"
    )


def test_the_duration_is_not_sealed_so_not_compared(sandbox):
    ex = sandbox.run(programs.TRAP, invoke="boom")
    rec = decode(sandbox.ledger.get(ex.id).leaf)
    rec["outcome"]["duration_us"] += 1
    db = sqlite3.connect(sandbox.home / "ledger.sqlite")
    db.execute("UPDATE entries SET leaf = ? WHERE record_id = ?", (encode(rec), ex.id))
    db.commit()
    db.close()
    report = sandbox.verify(ex.id)
    assert report.checks["outcome"] == "ok" and report.checks["leaf_hash"] == "failed"


def test_each_checkpoint_names_the_one_before_it(log):
    log.append_many([("a", b"a", None), ("b", b"b", None)])
    bodies = [cp.note.split("\n\n")[0] for cp in log.checkpoints()]
    assert [body.split("\n")[3:] for body in bodies] == [[f"previous {n}"] for n in (0, 1, 2, 3)]
    assert log.verify_chain() == []


def resign_without_chain(db, log, key, size):
    note = sign_note(format_checkpoint(ORIGIN, size, log.root(size)), ORIGIN, key)
    db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note, size))
    db.commit()


def test_older_checkpoints_without_the_chain_line_are_accepted_only_first(tmp_path):
    key = KeyStore(tmp_path / "keys").signing_key()
    with make_log(tmp_path / "log.sqlite", 2, key) as log:
        db = sqlite3.connect(log.path)
        for size in (1, 2):  # as a log written before the chain existed
            resign_without_chain(db, log, key, size)
        log.append("r2", b"leaf 2")
        assert log.verify_chain() == [] and log.verify_all().ok
        saved = db.execute("SELECT note FROM checkpoints WHERE size = 2").fetchone()[0]
        db.execute("DELETE FROM checkpoints WHERE size = 2")
        db.commit()
        assert log.verify_chain() == [(2, "checkpoint 2 (before 3) is missing")]
        db.execute("INSERT INTO checkpoints VALUES (2, ?)", (saved,))
        db.commit()
        log.append("r3", b"leaf 3")
        resign_without_chain(db, log, key, 4)  # the chain line cannot be dropped later
        assert log.verify_chain() == [(4, "checkpoint 4 does not name the one before it")]
        db.execute("DELETE FROM checkpoints WHERE size = 1")
        db.commit()
        assert len(log.verify_chain()) == 1  # a deleted legacy checkpoint: not noticed (docs)
        db.close()


def test_a_checkpoint_slipped_into_the_chain_is_named(tmp_path):
    key = KeyStore(tmp_path / "keys").signing_key()
    with make_log(tmp_path / "log.sqlite", 0, key) as log:
        log.append_many([("a", b"a", None), ("b", b"b", None)])  # one checkpoint, of size 2
        body = format_checkpoint(ORIGIN, 1, log.root(1)) + "previous 0\n"
        db = sqlite3.connect(log.path)
        db.execute("INSERT INTO checkpoints VALUES (1, ?)", (sign_note(body, ORIGIN, key),))
        db.commit()
        db.close()
        assert log.verify_all().ok  # signed by the log's key and consistent: it looks genuine
        assert log.verify_chain() == [(2, "checkpoint 2 names 0 as the one before it, not 1")]
