"""Bad input on the command line is one line on stderr and exit 2, never a traceback: each
row is what a user may well type (a directory for a file, a file for a home, a missing
file, a file that is not what the command expects)."""

import subprocess
import sys

import pytest

FACT = '(module (func (export "f") (result i32) i32.const 7))'

#: (command line, words the one line must hold); ``{tmp}`` is a fresh directory holding
#: ``f.wat``, an empty file ``afile``, a directory ``adir`` and ``bad.ipynb`` (not JSON).
TABLE = [
    ("run {tmp}/adir", "not a regular file"),
    ("run {tmp}/missing.wat", "No such file or directory"),
    ("run {tmp}/f.wat --invoke f --recipient {tmp}/adir", "--recipient: cannot read"),
    ("run {tmp}/f.wat --invoke f --recipient {tmp}/afile", "recipient key"),
    ("run {tmp}/f.wat --invoke f --home {tmp}/afile", "is not a directory"),
    ("run {tmp}/f.wat --invoke f --dir {tmp}/missing:/d", "--dir:"),
    ("run {tmp}/f.wat --invoke f --dir {tmp}/afile:/d", "is not a directory"),
    ("run {tmp}/f.wat --invoke f --isolation nope", "invalid choice"),
    ("log --home /proc/self/nothing/here", "cannot create it"),
    ("keys --home {tmp}/afile", "is not a directory"),
    ("keys --export-public {tmp}/adir", "cannot write"),
    ("keys --import-recipient {tmp}/adir", "cannot read"),
    ("verify", "needs a record id"),
    ("decrypt nothing-like-this", "no record"),
    ("course --dir {tmp}/afile --no-browser", "cannot start the course"),
    ("witness init --home {tmp}/afile", "is not a directory"),
    ("witness check --home {tmp}/adir --log {tmp}/home", "is not a witness home"),
    ("verify-notebook {tmp}/adir --log-key K", "cannot read"),
    ("verify-notebook {tmp}/bad.ipynb --log-key K", "cannot read"),
    ("verify --all --witness garbage", "malformed verifier key"),
]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    (root / "f.wat").write_text(FACT)
    (root / "afile").write_text("")
    (root / "adir").mkdir()
    (root / "bad.ipynb").write_text("{")
    return root


@pytest.mark.parametrize(("line", "words"), TABLE, ids=[row[0].split()[0] for row in TABLE])
def test_bad_input_is_one_line_and_exit_2(tmp, line, words):
    argv = line.format(tmp=tmp).split()
    own_home = "--home" in argv or argv[0] in ("witness", "verify-notebook")
    env_home = [] if own_home else ["--home", str(tmp / "home")]
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *argv, *env_home],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    if lines[0].startswith("usage:"):  # argparse's own errors: the usage, then one line
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("wasm-sandbox"), proc.stderr
    assert words in lines[0]
