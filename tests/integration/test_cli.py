"""The ``wasm-sandbox`` command as a user runs it: a real process, a real home directory."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import programs
from tests.conftest import PROBE
from tests.contract import RUN_JSON_KEYS

EXAMPLES = Path(__file__).resolve().parents[2] / "notebooks" / "examples"


def cli(*args, home, stdin=None, check=None):
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *map(str, args), "--home", str(home)],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


def cli_json(*args, home, check=0):
    return json.loads(cli(*args, "--json", home=home, check=check).stdout)


@pytest.fixture
def wat(tmp_path):
    def write(name, text):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def test_run_json_has_every_contract_field(tmp_path):
    out = cli_json("run", EXAMPLES / "fact.wat", "--invoke", "fact", "20", home=tmp_path)
    assert set(out) >= RUN_JSON_KEYS
    assert out["status"] == "ok" and out["returns"] == [2432902008176640000]
    assert (out["leaf_index"], out["tree_size"]) == (0, 1)
    assert len(out["commitment"]) == 64 and len(out["root"]) == 64


def test_run_a_wasi_command_and_a_failing_guest_both_exit_0(tmp_path, wat):
    hello = cli_json("run", EXAMPLES / "hello.wat", home=tmp_path)
    assert hello["stdout"] == "Hello from the sandbox!\n" and hello["exit_code"] == 0
    loop = cli_json(
        "run", wat("loop.wat", programs.LOOP), "--invoke", "spin", "--fuel", "1e5", home=tmp_path
    )
    assert loop["status"] == "out_of_fuel" and loop["fuel_used"] == 100000
    slow = cli_json(
        "run",
        wat("loop.wat", programs.LOOP),
        "--invoke",
        "spin",
        "--timeout",
        "200ms",
        home=tmp_path,
    )
    assert slow["status"] == "timeout" and slow["tree_size"] == 3


def test_bad_input_exits_2_with_one_line(tmp_path, wat):
    bad = cli("run", wat("bad.wat", "(module\n  (func i33.add))"), home=tmp_path, check=2)
    assert bad.stderr.strip() == (
        "wasm-sandbox: WAT line 2, column 9: unknown operator or unexpected token"
    )
    missing = cli("run", tmp_path / "nope.wasm", home=tmp_path, check=2)
    assert "cannot read" in missing.stderr and missing.stderr.count("\n") == 1
    usage = cli("run", EXAMPLES / "fact.wat", "--fuel", "lots", home=tmp_path, check=2)
    assert "fuel: cannot read 'lots'" in usage.stderr


def test_missing_export_is_logged_but_exits_2(tmp_path):
    out = cli("run", EXAMPLES / "fact.wat", "--invoke", "nope", "--json", home=tmp_path, check=2)
    assert json.loads(out.stdout)["status"] == "error"
    assert "no exported function 'nope'" in out.stderr


def test_verify_log_decrypt_keys_checkpoint_proof(tmp_path):
    run = cli_json("run", EXAMPLES / "fact.wat", "--invoke", "fact", "5", home=tmp_path)
    verified = cli_json("verify", run["id"], home=tmp_path)
    assert verified["verified"] is True and verified["leaf_index"] == 0
    assert set(verified) >= {"id", "verified", "leaf_index", "tree_size", "root", "checks"}
    everything = cli_json("verify", "--all", home=tmp_path)
    mark = {"size": 1, "root": run["root"]}  # the high-water mark this home keeps
    assert everything == {
        "verified": True,
        "tree_size": 1,
        "first_bad": None,
        "problems": [],
        "high_water": mark,
    }
    rows = cli_json("log", home=tmp_path)
    assert [r["id"] for r in rows] == [run["id"]]
    opened = cli_json("decrypt", "last", home=tmp_path)
    assert opened["commitments_ok"] is True
    assert base64.b64decode(opened["program"]).startswith(b"\0asm")
    assert opened["result"]["returns"] == [["i64", "120"]]
    keys = cli_json("keys", home=tmp_path)
    assert keys["recipient_public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert keys["log_verifier_key"].startswith(keys["log_origin"] + "+")
    note = cli("checkpoint", home=tmp_path, check=0).stdout
    assert note.startswith(keys["log_origin"] + "\n1\n")
    receipt = cli("proof", run["id"], home=tmp_path, check=0).stdout
    assert receipt.startswith("c2sp.org/tlog-proof@v1")


def test_verify_unknown_id_is_a_clear_error(tmp_path):
    cli_json("run", EXAMPLES / "fact.wat", "--invoke", "fact", "5", home=tmp_path)
    out = cli("verify", "0" * 32, home=tmp_path, check=2)
    assert "wasm-sandbox:" in out.stderr and "Traceback" not in out.stderr


def test_grants_through_the_cli(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("granted\n")
    probe = PROBE
    ok = cli_json(
        "run",
        probe,
        "--arg",
        "read",
        "--arg",
        "/data/in.txt",
        "--dir",
        f"{data}:/data",
        home=tmp_path,
    )
    assert ok["stdout"] == "granted\n"
    denied = cli_json(
        "run",
        probe,
        "--arg",
        "write",
        "--arg",
        "/data/x",
        "--arg",
        "y",
        "--dir",
        f"{data}:/data",
        home=tmp_path,
    )
    assert denied["status"] == "exit" and denied["exit_code"] == 1
    echo = cli_json("run", probe, "--arg", "echo", "--stdin", "piped", home=tmp_path)
    assert echo["stdout"] == "piped"


def test_several_files_make_a_batch(tmp_path):
    out = cli_json(
        "run", EXAMPLES / "hello.wat", EXAMPLES / "fact.wat", "--invoke", "fact", "3", home=tmp_path
    )
    assert sorted(r["leaf_index"] for r in out) == [0, 1]
    assert [r["status"] for r in out] == ["error", "ok"]  # results in the order of the files
    assert out[1]["returns"] == [6]


def test_help_has_examples():
    out = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "examples:" in out and "--invoke fact 10" in out
