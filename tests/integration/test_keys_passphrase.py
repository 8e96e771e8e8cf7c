"""Private keys at rest under a passphrase, through the real CLI with real keys."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests import programs

PASSPHRASE = "tr0ub4dor&3"


def cli(home, *args, passphrase=None):
    env = {k: v for k, v in os.environ.items() if k != "WASM_SANDBOX_PASSPHRASE"}
    if passphrase is not None:
        env["WASM_SANDBOX_PASSPHRASE"] = passphrase
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *map(str, args), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,  # no terminal: nothing may wait for a prompt
    )
    out = json.loads(proc.stdout) if proc.stdout.startswith("{") else None
    return proc.returncode, out, proc.stderr


def logged(home) -> int:
    db = sqlite3.connect(home / "ledger.sqlite")
    try:
        return db.execute("SELECT count(*) FROM entries").fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def protected(tmp_path):
    """A home with one run, then protected: its keys as they were before."""
    home, prog = tmp_path / "home", tmp_path / "add.wat"
    prog.write_text(programs.ADD)
    assert cli(home, "run", prog, "--invoke", "add", "1", "2")[0] == 0
    code, before, _ = cli(home, "keys", "--json")
    assert code == 0 and before["protected"] is False
    code, after, err = cli(home, "keys", "--protect", "--json", passphrase=PASSPHRASE)
    assert code == 0, err
    assert after["protected"] is True
    assert {k: v for k, v in after.items() if k != "protected"} == {
        k: v for k, v in before.items() if k != "protected"
    }
    return home, prog


def test_a_protected_home_runs_verifies_and_decrypts_with_the_passphrase(protected):
    home, prog = protected
    code, run, err = cli(
        home, "run", prog, "--invoke", "add", "20", "22", "--json", passphrase=PASSPHRASE
    )
    assert code == 0 and run["returns"] == [42], err
    code, out, _ = cli(home, "verify", "--all", "--json", passphrase=PASSPHRASE)
    assert code == 0 and out["verified"] and out["tree_size"] == 2
    code, out, _ = cli(home, "verify", run["id"], "--json", passphrase=PASSPHRASE)
    assert code == 0 and out["checks"]["commitments"] == "ok"
    code, out, _ = cli(home, "decrypt", "last", "--json", passphrase=PASSPHRASE)
    assert code == 0 and out["commitments_ok"] and out["result"]["returns"]
    for name in ("recipient.pem", "signing.pem"):
        text = (home / "keys" / name).read_text()
        assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")


@pytest.mark.parametrize(
    ("passphrase", "message"),
    [
        (None, "protected by a passphrase; set $WASM_SANDBOX_PASSPHRASE"),
        ("wrong", "wrong passphrase"),
    ],
)
def test_a_missing_or_wrong_passphrase_is_one_line_and_logs_nothing(protected, passphrase, message):
    home, prog = protected
    code, out, err = cli(
        home, "run", prog, "--invoke", "add", "1", "1", "--json", passphrase=passphrase
    )
    assert code == 2 and out is None
    assert err.count("\n") == 1 and message in err and err.startswith("wasm-sandbox: ")
    assert logged(home) == 1
    code, _, err = cli(home, "decrypt", "last", passphrase=passphrase)
    assert code == 2 and message in err and "Traceback" not in err


def test_protect_needs_a_passphrase(tmp_path):
    code, _, err = cli(tmp_path / "home", "keys", "--protect")
    assert code == 2 and err.count("\n") == 1 and "WASM_SANDBOX_PASSPHRASE" in err
    code, out, _ = cli(tmp_path / "home", "keys", "--json")
    assert code == 0 and out["protected"] is False
