"""Receipts travel with a notebook: a notebook executed with %%wasm cells verifies with
``wasm-sandbox verify-notebook`` and only the log's verifier key; edits, swaps and a wrong key
fail, naming the output."""

import base64
import copy
import json
import os
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from tests import programs
from wasm_sandbox import receipts
from wasm_sandbox.sandbox import Sandbox

META = "wasm-sandbox"
INCLUSION = "inclusion: the proof does not lead to the signed checkpoint's root"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A notebook of three %%wasm runs (returns, stdout, trap), executed and saved; the log's
    verifier key; a second log's key."""
    base = tmp_path_factory.mktemp("receipts")
    env = {**os.environ, "WASM_SANDBOX_HOME": str(base / "home")}
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext wasm_sandbox"),
        nbformat.v4.new_code_cell(f"%%wasm --invoke add 2 40\n{programs.ADD}"),
        nbformat.v4.new_code_cell(f"%%wasm\n{programs.HELLO}"),
        nbformat.v4.new_code_cell(f"%%wasm --invoke boom\n{programs.TRAP}"),
        nbformat.v4.new_code_cell(f"%%wasm --invoke add 2 40\n{programs.ADD}"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=env, cwd=str(base))
    path = base / "nb.ipynb"
    nbformat.write(nb, path)
    key = _key(env)
    other = _key({**env, "WASM_SANDBOX_HOME": str(base / "other")})
    return path, key, other


def _key(env):
    return json.loads(_cli(["keys", "--json"], env).stdout)["log_verifier_key"]


def _cli(argv, env=None):
    return subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *argv],
        capture_output=True,
        text=True,
        env=env or {**os.environ, "HOME": "/nonexistent", "WASM_SANDBOX_HOME": "/nonexistent"},
        timeout=60,
    )


def verify(path, key, *more):
    out = _cli(["verify-notebook", str(path), "--log-key", key, *more, "--json"])
    return out.returncode, json.loads(out.stdout)


def edited(saved, tmp_path, change):
    path, key, _ = saved
    nb = json.loads(path.read_text())
    change(nb)
    out = tmp_path / "edited.ipynb"
    out.write_text(json.dumps(nb))
    return verify(out, key)


def static(nb, cell):
    return next(o for o in nb["cells"][cell]["outputs"] if META in o.get("metadata", {}))


def failed(report):
    return {o["cell"]: o["problems"] for o in report["outputs"] if not o["verified"]}


def test_the_saved_notebook_verifies_with_only_the_log_key(saved):
    path, key, _ = saved
    code, report = verify(path, key)
    assert code == 0 and report["verified"], report
    assert [o["cell"] for o in report["outputs"]] == [1, 2, 3, 4]
    assert all(len(o["record_id"]) == 32 for o in report["outputs"])
    nb = json.loads(path.read_text())
    assert "verifiable receipt inside" in "".join(static(nb, 1)["data"]["text/plain"])
    assert static(nb, 1)["metadata"][META]["receipt"].startswith("c2sp.org/tlog-proof@v1\n")


@pytest.mark.parametrize("mime", ["text/plain", "text/html"])
def test_an_edited_return_value_fails_naming_that_output(saved, tmp_path, mime):
    def change(nb):
        data = static(nb, 1)["data"]
        text = "".join(data[mime])
        assert "42" in text
        data[mime] = (
            text.replace("42", "43", 1)
            if mime == "text/plain"
            else text.replace(">42</pre>", ">43</pre>")
        )

    code, report = edited(saved, tmp_path, change)
    assert code == 1 and not report["verified"]
    assert list(failed(report)) == [1] and mime in failed(report)[1][0], report


def test_an_edited_stdout_fails(saved, tmp_path):
    def change(nb):
        data = static(nb, 2)["data"]
        data["text/plain"] = "".join(data["text/plain"]).replace("hello", "HELLO", 1)

    code, report = edited(saved, tmp_path, change)
    assert code == 1 and list(failed(report)) == [2], report


def test_a_swapped_receipt_fails(saved, tmp_path):
    def change(nb):  # cells 1 and 4 ran the same call: only the receipts tell them apart
        a, b = static(nb, 1)["metadata"][META], static(nb, 4)["metadata"][META]
        a["receipt"], b["receipt"] = b["receipt"], a["receipt"]

    code, report = edited(saved, tmp_path, change)
    assert code == 1 and sorted(failed(report)) == [1, 4], report


def test_the_whole_metadata_of_another_run_fails(saved, tmp_path):
    def change(nb):
        a, b = static(nb, 1)["metadata"], static(nb, 4)["metadata"]
        a[META], b[META] = copy.deepcopy(b[META]), copy.deepcopy(a[META])

    code, report = edited(saved, tmp_path, change)
    assert code == 1 and sorted(failed(report)) == [1, 4], report


def test_an_altered_inclusion_proof_fails(saved, tmp_path):
    def change(nb):
        meta = static(nb, 4)["metadata"][META]  # written when the log held 4 runs: 2 hashes
        head, _, note = meta["receipt"].partition("\n\n")
        lines = head.split("\n")
        lines[3] = base64.b64encode(bytes(32)).decode()  # the leaf's sibling hash
        meta["receipt"] = "\n".join(lines) + "\n\n" + note

    code, report = edited(saved, tmp_path, change)
    assert code == 1 and failed(report) == {4: [INCLUSION]}, report


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d.update(salt="00" * 32), "disclosure: does not open"),
        (lambda d: d.update(salt="zz"), "disclosure: malformed"),
        (lambda d: d.update(payload={"x": 1.5}), "disclosure: does not open"),
        (lambda d: d.update(payload=[1]), "disclosure: the payload is not an object"),
        (lambda d: d["payload"].update(returns=[["i32", "43"]]), "disclosure: does not open"),
        (lambda d: d.pop("payload"), "disclosure: the payload is not an object"),
    ],
)
def test_an_edited_disclosure_fails(saved, tmp_path, edit, problem):
    code, report = edited(
        saved, tmp_path, lambda nb: edit(static(nb, 1)["metadata"][META]["disclosure"])
    )
    assert code == 1 and list(failed(report)) == [1] and failed(report)[1][0].startswith(problem)


def test_a_removed_receipt_fails(saved, tmp_path):
    code, report = edited(saved, tmp_path, lambda nb: static(nb, 3)["metadata"].pop(META))
    assert code == 1 and failed(report) == {3: ["no receipt in the output"]}, report


def test_the_wrong_log_key_fails_every_output(saved):
    path, _, other = saved
    code, report = verify(path, other)
    assert code == 1 and sorted(failed(report)) == [1, 2, 3, 4]
    assert all("checkpoint" in p[0] for p in failed(report).values())


def test_a_witness_cosignature_is_required_with_witness(saved, tmp_path):
    """Without a cosignature --witness fails; a receipt re-issued after the witness cosigned
    carries it and passes."""
    path, key, _ = saved
    home, whome = path.parent / "home", str(tmp_path / "w")
    vkey = json.loads(_cli(["witness", "init", "--home", whome, "--json"]).stdout)["verifier_key"]
    code, report = verify(path, key, "--witness", vkey)
    assert code == 1 and failed(report)[1][0].startswith("witness: no valid cosignature")
    assert _cli(["witness", "cosign", "--home", whome, "--log", str(home)]).returncode == 0

    nb = json.loads(path.read_text())
    meta = static(nb, 1)["metadata"][META]
    rid = report["outputs"][0]["record_id"]
    with Sandbox(home=home) as sb:
        meta["receipt"] = receipts.receipt(sb.ledger, rid)
    out = tmp_path / "cosigned.ipynb"
    out.write_text(json.dumps(nb))
    code, report = verify(out, key, "--witness", vkey)
    assert 1 not in failed(report) and sorted(failed(report)) == [2, 3, 4], report
