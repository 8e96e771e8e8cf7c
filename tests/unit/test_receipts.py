"""verify_notebook on hostile notebook JSON: every %%wasm-looking output gets a named problem,
never an exception; a file that is not a notebook is one line and exit status 2."""

import subprocess
import sys

import pytest

from wasm_sandbox import receipts
from wasm_sandbox.sandbox import Sandbox

CARD = {"text/html": '<div class="wasm-sandbox-run" data-status="ok">', "text/plain": "x"}


@pytest.fixture(scope="module")
def log_key(tmp_path_factory):
    with Sandbox(home=tmp_path_factory.mktemp("home")) as sb:
        return sb.ledger.verifier_key


def meta(value):
    return {"output_type": "display_data", "data": CARD, "metadata": {"wasm-sandbox": value}}


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ({"output_type": "display_data", "data": CARD, "metadata": []}, "no receipt"),
        (meta(None), "no receipt"),
        (meta({"receipt": 7}), "no receipt"),
        (
            meta({"receipt": "c2sp.org/tlog-proof@v1\nextra !!\nindex 0\n\nnot a note"}),
            "checkpoint",
        ),
        (meta({"receipt": "\n\n\n\n"}), "checkpoint"),
    ],
)
def test_a_broken_receipt_is_a_named_problem(log_key, output, problem):
    report = receipts.verify_notebook({"cells": [{"outputs": [output]}]}, log_key)
    assert report["verified"] is False
    assert report["outputs"][0]["problems"][0].startswith(problem), report


@pytest.mark.parametrize("cells", [[], [7, "x", {"outputs": 3}, {"outputs": [None, 1]}]])
def test_cells_without_runs_verify_vacuously(log_key, cells):
    assert receipts.verify_notebook({"cells": cells}, log_key) == {"verified": True, "outputs": []}


@pytest.mark.parametrize("content", ["[1, 2]", "{not json", '{"cells": 3}'])
def test_a_file_that_is_not_a_notebook_is_one_line_and_exit_2(tmp_path, content, log_key):
    path = tmp_path / "nb.ipynb"
    path.write_text(content)
    cmd = [sys.executable, "-m", "wasm_sandbox.cli", "verify-notebook", str(path)]
    out = subprocess.run([*cmd, "--log-key", log_key], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "cannot read" in out.stderr
