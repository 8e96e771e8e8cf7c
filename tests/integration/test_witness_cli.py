"""The attacks of issue 17, scripted against real homes through the real CLI.

Each attack edits a copy of a sandbox home (its SQLite file, or the whole directory) the way
someone who owns the machine could, and the test asserts which command catches it.
"""

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

from tests import programs
from wasm_sandbox import Sandbox, merkle
from wasm_sandbox.checkpoint import format_checkpoint, sign_note
from wasm_sandbox.highwater import NAME as HIGH_WATER
from wasm_sandbox.keys import KeyStore
from wasm_sandbox.record import decode, encode


def cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = json.loads(proc.stdout) if proc.stdout.startswith("{") else None
    return proc.returncode, out, proc.stderr


def run(home, source, **kwargs):
    with Sandbox(home) as sb:
        return sb.run(source, **kwargs).id


@pytest.fixture
def homes(tmp_path):
    """A log with a trapped run between two good ones, cosigned by a fresh witness."""
    log, witness = tmp_path / "log", tmp_path / "witness"
    ids = [run(log, programs.ADD, invoke="add", args=[1, 2])]
    ids.append(run(log, programs.TRAP, invoke="boom"))
    ids.append(run(log, programs.ADD, invoke="add", args=[3, 4]))
    code, out, _ = cli("witness", "init", "--home", witness, "--json")
    assert code == 0
    code, cosigned, _ = cli("witness", "cosign", "--home", witness, "--log", log, "--json")
    assert code == 0 and cosigned["cosigned"] and cosigned["tree_size"] == 3
    assert cosigned["first_contact"] and cosigned["witnessed_size"] is None
    return log, witness, out["verifier_key"], ids


def sql(home, statement, *params):
    db = sqlite3.connect(home / "ledger.sqlite")
    db.execute(statement, params)
    db.commit()
    db.close()


def resign_everything(home):
    """Recompute every stored tree hash from the leaves and re-sign every checkpoint with the
    home's own signing key: what the owner of the home can always do."""
    db = sqlite3.connect(home / "ledger.sqlite")
    leaves = [merkle.leaf_hash(leaf) for (leaf,) in db.execute("SELECT leaf FROM entries")]
    for level, idx in db.execute("SELECT level, idx FROM subtrees").fetchall():
        new = merkle.root(leaves[idx << level : (idx + 1) << level])
        db.execute("UPDATE subtrees SET hash = ? WHERE level = ? AND idx = ?", (new, level, idx))
    key = KeyStore(home).signing_key()
    for size, note in db.execute("SELECT size, note FROM checkpoints").fetchall():
        origin, _, _, *extensions = note[: note.index("\n\n")].split("\n")
        body = format_checkpoint(origin, size, merkle.root(leaves[:size]))
        body += "".join(f"{line}\n" for line in extensions)
        note = sign_note(body, origin, key)
        db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note, size))
    db.commit()
    db.close()


def forget_high_water(home):
    """What an attacker who owns the home does after rewriting the log: remove the
    high-water mark (docs/home.md), the one thing on this machine that remembers more."""
    (home / "keys" / HIGH_WATER).unlink()


def test_the_witnessed_log_verifies_with_the_witness(homes):
    log, witness, vkey, ids = homes
    code, out, _ = cli("verify", "--all", "--home", log, "--witness", vkey, "--json")
    assert code == 0 and out["verified"]
    assert out["witnesses"][0]["verifier_key"] == vkey and out["witnesses"][0]["cosigned"]
    code, out, _ = cli("witness", "check", "--home", witness, "--log", log, "--json")
    assert code == 0 and out["consistent"] and out["witnessed_size"] == out["tree_size"] == 3
    code, out, _ = cli("verify", ids[1], "--home", log, "--json")
    assert code == 0 and out["checks"]["outcome"] == "ok"


def test_a_new_run_is_not_witnessed_until_cosigned(homes):
    log, witness, vkey, _ = homes
    run(log, programs.ADD, invoke="add", args=[5, 6])
    code, out, _ = cli("verify", "--all", "--home", log, "--witness", vkey, "--json")
    assert code == 1 and out["problems"] == [] and not out["witnesses"][0]["cosigned"]
    code, out, _ = cli("witness", "check", "--home", witness, "--log", log, "--json")
    assert code == 0 and (out["witnessed_size"], out["tree_size"]) == (3, 4)
    assert cli("witness", "cosign", "--home", witness, "--log", log)[0] == 0
    assert cli("verify", "--all", "--home", log, "--witness", vkey)[0] == 0


def test_a_re_signed_rewrite_of_an_outcome(homes):
    log, witness, vkey, ids = homes
    db = sqlite3.connect(log / "ledger.sqlite")
    (leaf,) = db.execute("SELECT leaf FROM entries WHERE record_id = ?", (ids[1],)).fetchone()
    db.close()
    record = decode(leaf)
    assert record["outcome"]["status"] == "trap"
    record["outcome"] |= {"status": "ok", "trap": None}
    sql(log, "UPDATE entries SET leaf = ? WHERE record_id = ?", encode(record), ids[1])
    resign_everything(log)

    code, out, _ = cli("verify", "--all", "--home", log, "--json")
    assert code == 1 and "high_water" in out["first_bad"]  # this home saw the old root
    forget_high_water(log)  # the owner of the home rewrites that file too
    code, out, _ = cli("verify", "--all", "--home", log, "--json")
    assert code == 0 and out["verified"]  # the log alone cannot tell: its own key re-signed it
    code, out, _ = cli("verify", ids[1], "--home", log, "--json")
    assert code == 1 and not out["verified"]
    assert out["checks"]["outcome"].startswith("failed: ")
    assert "status ('ok' vs sealed 'trap')" in out["checks"]["outcome"]
    assert out["checks"]["commitments"] == "ok"  # the sealed result itself was untouched
    code, out, _ = cli("witness", "check", "--home", witness, "--log", log, "--json")
    assert code == 1 and not out["consistent"] and "forked" in out["reason"]
    code, out, _ = cli("witness", "cosign", "--home", witness, "--log", log, "--json")
    assert code == 1 and not out["cosigned"]
    code, out, _ = cli("verify", "--all", "--home", log, "--witness", vkey, "--json")
    assert code == 1 and not out["witnesses"][0]["cosigned"]  # the old cosignature is void


def test_truncation_of_the_last_run_and_its_checkpoint(homes):
    log, witness, vkey, _ = homes
    sql(log, "DELETE FROM blobs WHERE idx = 2")
    sql(log, "DELETE FROM entries WHERE idx = 2")
    sql(log, "DELETE FROM subtrees WHERE level = 0 AND idx = 2")
    sql(log, "DELETE FROM checkpoints WHERE size = 3")
    sql(log, "DELETE FROM cosignatures WHERE size = 3")

    code, out, _ = cli("verify", "--all", "--home", log, "--json")
    assert code == 1 and out["first_bad"] == {"high_water": 3}  # this home saw 3 records
    forget_high_water(log)  # the owner of the home rewrites that file too
    code, out, _ = cli("verify", "--all", "--home", log, "--json")
    assert code == 0 and out["tree_size"] == 2  # a shorter log is still a well-formed log
    code, out, _ = cli("witness", "check", "--home", witness, "--log", log, "--json")
    assert code == 1 and "rolled back" in out["reason"]
    assert (out["witnessed_size"], out["tree_size"]) == (3, 2)
    code, out, _ = cli("verify", "--all", "--home", log, "--witness", vkey, "--json")
    assert code == 1 and not out["verified"] and not out["witnesses"][0]["cosigned"]


@pytest.mark.parametrize("size", [1, 2])
def test_an_old_checkpoint_row_deleted(homes, size):
    log, _, vkey, _ = homes
    sql(log, "DELETE FROM checkpoints WHERE size = ?", size)
    code, out, _ = cli("verify", "--all", "--home", log, "--witness", vkey, "--json")
    assert code == 1 and not out["verified"]
    assert out["first_bad"] == {"checkpoint": size}
    assert f"checkpoint {size} (before {size + 1}) is missing" in out["problems"]


def test_a_cosignature_without_its_checkpoint(homes):
    log, _, vkey, _ = homes
    sql(log, "UPDATE cosignatures SET size = 2")
    code, out, _ = cli("verify", "--all", "--home", log, "--witness", vkey, "--json")
    assert code == 1 and not out["witnesses"][0]["cosigned"]
    sql(log, "UPDATE cosignatures SET size = 7")
    code, out, _ = cli("verify", "--all", "--home", log, "--json")
    assert code == 1 and "cosignature on checkpoint 7, which is not stored" in out["problems"]


def test_a_fork_under_the_same_keys(homes, tmp_path):
    log, witness, vkey, _ = homes
    twin = tmp_path / "twin"
    shutil.copytree(log, twin)
    run(log, programs.ADD, invoke="add", args=[10, 20])
    run(twin, programs.TRAP, invoke="boom")
    code, out, _ = cli("witness", "cosign", "--home", witness, "--log", twin, "--json")
    assert code == 0 and out["tree_size"] == 4
    code, out, _ = cli("witness", "cosign", "--home", witness, "--log", log, "--json")
    assert code == 1 and not out["cosigned"] and "forked" in out["reason"]
    run(log, programs.ADD, invoke="add", args=[1, 1])  # growing past the fork does not help
    code, out, _ = cli("witness", "cosign", "--home", witness, "--log", log, "--json")
    assert code == 1 and "inconsistent" in out["reason"]
    code, out, _ = cli("witness", "check", "--home", witness, "--log", log, "--json")
    assert code == 1 and not out["consistent"]
    assert cli("witness", "check", "--home", witness, "--log", twin)[0] == 0
    assert cli("verify", "--all", "--home", log, "--witness", vkey)[0] == 1
    assert cli("verify", "--all", "--home", twin, "--witness", vkey)[0] == 0


def test_a_rollback_to_an_earlier_copy_of_the_home(homes, tmp_path):
    log, witness, vkey, _ = homes
    backup = tmp_path / "backup"
    shutil.copytree(log, backup)
    run(log, programs.ADD, invoke="add", args=[2, 2])
    assert cli("witness", "cosign", "--home", witness, "--log", log)[0] == 0
    shutil.rmtree(log)
    shutil.copytree(backup, log)
    code, out, _ = cli("verify", "--all", "--home", log, "--witness", vkey, "--json")
    assert code == 0  # the copy carries the witness's older cosignature: only its state knows
    code, out, _ = cli("witness", "cosign", "--home", witness, "--log", log, "--json")
    assert code == 1 and "rolled back" in out["reason"] and out["witnessed_size"] == 4
    code, out, _ = cli("witness", "check", "--home", witness, "--log", log, "--json")
    assert code == 1 and (out["witnessed_size"], out["tree_size"]) == (4, 3)


def test_usage_errors_are_one_line(homes, tmp_path):
    log, witness, _, _ = homes
    code, _, err = cli("witness", "cosign", "--home", witness, "--log", "https:///no-host")
    assert code == 2 and err.count("\n") == 1 and "not an http(s) server URL" in err
    code, _, err = cli("witness", "check", "--home", tmp_path / "none", "--log", log)
    assert code == 2 and "not a witness home" in err and err.count("\n") == 1
    code, _, err = cli("witness", "check", "--home", witness, "--log", tmp_path)
    assert code == 2 and "no ledger.sqlite" in err and err.count("\n") == 1
    code, _, err = cli("verify", "--all", "--home", log, "--witness", "not-a-key")
    assert code == 2 and "malformed verifier key" in err and err.count("\n") == 1


def test_two_cosigns_at_once_both_succeed_and_the_state_is_whole(homes):
    log, witness, vkey, _ = homes
    run(log, programs.ADD, invoke="add", args=[8, 9])
    argv = [sys.executable, "-m", "wasm_sandbox.cli", "witness", "cosign", "--json"]
    argv += ["--home", str(witness), "--log", str(log)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert {o["tree_size"] for o in outs} == {4} and not any(o["first_contact"] for o in outs)
    db = sqlite3.connect(witness / "witness.sqlite")
    assert [row[0] for row in db.execute("SELECT size FROM logs")] == [4]
    db.close()
    code, out, _ = cli("verify", "--all", "--home", log, "--witness", vkey, "--json")
    assert code == 0 and out["witnesses"][0]["cosigned"]
