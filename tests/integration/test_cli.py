"""The ``wasm-sandbox`` command as a user runs it: a real process, a real home directory."""

import base64
import json
import os
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


def test_a_module_with_try_table_and_throw_runs_and_returns(tmp_path, wat):
    path = wat("eh.wat", programs.TRY_TABLE)
    assert cli_json("run", path, "--invoke", "safe", "4", home=tmp_path)["returns"] == [8]
    assert cli_json("run", path, "--invoke", "safe", "42", home=tmp_path)["returns"] == [1042]
    escaped = cli_json("run", path, "--invoke", "unsafe", "42", home=tmp_path)
    assert (escaped["status"], escaped["trap"]) == ("trap", "uncaught_exception")
    assert cli_json("verify", "--all", home=tmp_path)["verified"]


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
        "incremental": False,  # the first audit of this home checks everything
        "verified_from": 0,
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


def test_missing_recipient_file_is_one_line_and_exit_2(tmp_path):
    out = cli("run", EXAMPLES / "fact.wat", "--recipient", tmp_path / "nope.pem", home=tmp_path)
    assert out.returncode == 2
    assert out.stderr == f"wasm-sandbox: --recipient: cannot read {tmp_path / 'nope.pem'}: " + (
        "No such file or directory\n"
    )
    imported = cli("keys", "--import-recipient", tmp_path / "nope.pem", home=tmp_path, check=2)
    assert imported.stderr.startswith("wasm-sandbox: --import-recipient: cannot read")
    exported = cli("keys", "--export-public", tmp_path / "no" / "me.pem", home=tmp_path, check=2)
    assert exported.stderr.startswith("wasm-sandbox: --export-public: cannot write")
    assert exported.stderr.count("\n") == 1


def test_bad_dir_is_one_line_and_exit_2_even_for_a_batch(tmp_path):
    fact = EXAMPLES / "fact.wat"
    for files in ([fact], [fact, fact]):
        out = cli("run", *files, "--dir", tmp_path / "nope", home=tmp_path, check=2)
        prefix = f"wasm-sandbox: --dir: {str(tmp_path / 'nope')!r} is not a directory"
        assert out.stderr.startswith(prefix) and out.stderr.count("\n") == 1
    assert cli_json("log", home=tmp_path) == []  # nothing was logged


@pytest.mark.parametrize("command", [["log"], ["run", EXAMPLES / "fact.wat", "--json"]])
def test_output_into_a_closed_pipe_ends_without_a_traceback(tmp_path, command):
    cli("run", EXAMPLES / "fact.wat", "--invoke", "fact", "5", home=tmp_path, check=0)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, like `| head -c 0`
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "wasm_sandbox.cli", *map(str, command), "--home", str(tmp_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 141


def test_fuel_none_leaves_the_clock(tmp_path, wat):
    loop = wat("loop.wat", programs.LOOP)
    out = cli_json(
        "run", loop, "--invoke", "spin", "--fuel", "none", "--timeout", "200ms", home=tmp_path
    )
    assert out["status"] == "timeout" and out["fuel_limit"] == 2**53 - 1


def test_decrypt_shows_the_wat_text_and_a_binary_disassembled(tmp_path, wat):
    text = (EXAMPLES / "fact.wat").read_text()
    cli_json("run", EXAMPLES / "fact.wat", "--invoke", "fact", "5", home=tmp_path)
    opened = cli_json("decrypt", "last", home=tmp_path)
    assert (opened["source_kind"], opened["source"]) == ("wat", text)
    binary = tmp_path / "fact.wasm"
    binary.write_bytes(base64.b64decode(opened["program"]))
    cli_json("run", binary, "--invoke", "fact", "5", home=tmp_path)
    shown = cli_json("decrypt", "last", home=tmp_path)
    assert shown["source_kind"] == "disassembly" and shown["source"].startswith("(module")
    assert "i64.mul" in shown["source"]
    plain = cli("decrypt", "#0", home=tmp_path, check=0).stdout
    assert f"--- source (wat)\n{text}" in plain


@pytest.mark.slow
def test_decrypt_shows_the_c_text(tmp_path, wat):
    pytest.importorskip("ziglang", reason="install wasm-sandbox[c]")
    source = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'
    cli_json("run", wat("hi.c", source), home=tmp_path)
    opened = cli_json("decrypt", "last", home=tmp_path)
    assert (opened["source_kind"], opened["source"]) == ("c", source)


def test_isolation_process_runs_the_guest_in_a_worker_and_a_compile_bomb_is_compile_limit(
    tmp_path, wat
):
    from tests.hardening.bombs import nested_loops

    fact = EXAMPLES / "fact.wat"
    out = cli_json("run", fact, "--invoke", "fact", "5", "--isolation", "process", home=tmp_path)
    assert out["status"] == "ok" and out["returns"] == [120]
    bomb = tmp_path / "bomb.wasm"
    bomb.write_bytes(nested_loops(74_000))
    for isolation in ("thread", "process"):
        out = cli_json("run", bomb, "--timeout", "1s", "--isolation", isolation, home=tmp_path)
        assert out["status"] == "compile_limit", out
    human = cli("run", bomb, "--timeout", "1s", home=tmp_path, check=0)
    assert "compile_limit" in human.stdout or "compile limit" in human.stdout
    wrong = cli("run", fact, "--isolation", "vm", home=tmp_path, check=2)
    assert "invalid choice: 'vm'" in wrong.stderr


def test_a_batch_with_recipient_seals_every_record_to_that_key(tmp_path, wat):
    """Issue 16: `run a.wat b.wat --recipient K` sealed both records to the home's own key."""
    from wasm_sandbox import Sandbox
    from wasm_sandbox.envelope import key_id

    teacher = tmp_path / "teacher"
    pem = tmp_path / "teacher.pem"
    cli("keys", "--export-public", pem, home=teacher, check=0)
    with Sandbox(home=teacher) as sb:
        teacher_id = key_id(sb.keys.recipient_public_key())
    files = [wat("a.wat", programs.ADD), wat("b.wat", programs.ADD)]
    runs = cli_json("run", *files, "--invoke", "add", "2", "3", "--recipient", pem, home=tmp_path)
    assert [r["returns"] for r in runs] == [[5], [5]]
    rows = cli_json("log", home=tmp_path)
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in runs)
    assert {r["recipient"] for r in rows} == {teacher_id}
    with Sandbox(home=tmp_path) as sb:  # the student's own key opens none of them
        assert all(not sb.verify(r["id"]).checks["commitments"].startswith("ok") for r in rows)
