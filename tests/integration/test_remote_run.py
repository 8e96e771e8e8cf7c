"""``%%wasm --server URL``: a kernel runs a cell on a grader's real jupyter_server; the card
shows the server's record, the server's log holds it, the kernel's home holds nothing, and the
saved notebook verifies with the server's log key only."""

import json
import os
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests import programs
from tests.integration.test_server_harness import start_server
from wasm_sandbox import Sandbox

META = "wasm-sandbox"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("grader")
    srv = start_server(root, root / "home")
    yield srv
    srv.stop()


def _execute(tmp_path, server, *cells, token=True):
    home = tmp_path / "student"
    env = {**os.environ, "WASM_SANDBOX_HOME": str(home)}
    env.pop("JUPYTER_TOKEN", None)
    if token:
        env["JUPYTER_TOKEN"] = server.token
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext wasm_sandbox")]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=env, cwd=str(tmp_path))
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return nb, path, home


def _card(nb, cell):
    return next(o for o in nb.cells[cell].outputs if META in o.get("metadata", {}))


def _verify(path, key):
    argv = ["verify-notebook", str(path), "--log-key", key, "--json"]
    out = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.returncode, json.loads(out.stdout)


def test_a_cell_runs_on_the_server_and_its_log_holds_the_run(server, tmp_path):
    nb, path, home = _execute(
        tmp_path,
        server,
        f"%%wasm --server {server.url} --invoke add 2 40\n{programs.ADD}",
        f"%%wasm --server {server.url} --out hello\n{programs.HELLO}",
        "print(hello.id, hello.outcome.stdout, end='')",
    )
    card = _card(nb, 1)
    text = card["data"]["text/plain"]
    assert "returns" in text and "42" in text and f"run on {server.url}/" in text
    meta = card["metadata"][META]
    assert meta["server"] == f"{server.url}/" and meta["disclosure"]["part"] == "result"
    printed = nb.cells[3].outputs[0]["text"]
    record_id, stdout = printed[:32], printed[33:]
    assert stdout == "hello, sandbox\n"
    with Sandbox(home=server.home) as grader:
        assert grader.record(record_id)["outcome"]["status"] == "ok"
        assert grader.verify(record_id).verified  # sealed to the grader's key: it opens there
        assert grader.ledger.size == 2
    with Sandbox(home=home) as student:
        assert student.ledger.size == 0, "the student's own log holds nothing"
    server_key = server.get("keys/public").json()["log_verifier_key"]
    code, report = _verify(path, server_key)
    assert code == 0 and report["verified"] and len(report["outputs"]) == 2, report
    keys = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", "keys", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "WASM_SANDBOX_HOME": str(home)},
    )
    student_key = json.loads(keys.stdout)["log_verifier_key"]
    assert _verify(path, student_key)[0] == 1


def test_an_edited_value_of_a_server_run_fails_verification(server, tmp_path):
    nb, path, _ = _execute(
        tmp_path, server, f"%%wasm --server {server.url} --invoke add 2 40\n{programs.ADD}"
    )
    card = _card(nb, 1)
    card["data"]["text/plain"] = card["data"]["text/plain"].replace("42", "43", 1)
    nbformat.write(nb, path)
    key = server.get("keys/public").json()["log_verifier_key"]
    code, report = _verify(path, key)
    assert code == 1 and not report["verified"], report


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ("--dir /tmp", "a server grants no --dir or --env"),
        ("--isolation thread", "the server decides where guests run"),
    ],
)
def test_what_a_server_cannot_grant_is_one_usage_line(server, tmp_path, options, problem):
    cell = f"%%wasm --server {server.url} {options} --invoke add 1 2\n{programs.ADD}"
    with pytest.raises(CellExecutionError, match=problem):
        _execute(tmp_path, server, cell)


def test_without_the_token_the_server_refuses_in_one_line(server, tmp_path):
    cell = f"%%wasm --server {server.url} --invoke add 1 2\n{programs.ADD}"
    with pytest.raises(CellExecutionError, match=r"403 .*no token, a wrong one"):
        _execute(tmp_path, server, cell, token=False)
