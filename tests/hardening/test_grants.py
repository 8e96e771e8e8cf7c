"""Grants that cannot be redirected: no symlink on a granted path, no symlink a guest
plants pointing out of its directory, no FIFO, socket or device in a grant, and a FILE
that is not a regular file refused without blocking."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests import programs
from wasm_sandbox import CompileError, GrantError, Grants

WASI_EPERM = 63


def _planter(target: str, link: str = "out") -> str:
    """A guest that asks for the symlink ``link -> target`` in its first preopen (fd 3)
    and returns WASI's errno."""
    t, n = target.encode(), link.encode()
    return f"""(module
  (import "wasi_snapshot_preview1" "path_symlink"
    (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{t.decode()}")
  (data (i32.const 2048) "{n.decode()}")
  (func (export "plant") (result i32)
    (call $symlink (i32.const 64) (i32.const {len(t)}) (i32.const 3)
                   (i32.const 2048) (i32.const {len(n)}))))"""


#: Escaping targets and harmless ones: a guest plants none of them (all or none, see wasi).
TARGETS = [
    "../../../..",
    "..",
    "/",
    "/etc/passwd",
    "a/../..",
    "./../x",
    "sub/../../etc",
    "../" * 12 + "etc/passwd",
    "//etc",
    "a/b/../../../c",
    "data.txt",
    "sub/x",
]


@pytest.mark.parametrize("target", TARGETS)
def test_a_guest_cannot_plant_a_symlink(sandbox, tmp_path, target):
    work = tmp_path / "w"
    work.mkdir()
    ex = sandbox.run(_planter(target), invoke="plant", grants=Grants.parse(dirs=[f"{work}:/w:rw"]))
    assert ex.outcome.returns == (WASI_EPERM,)
    assert not os.path.lexists(work / "out")


def _redirected(tmp_path):
    """Shapes of a granted path that a symlink redirects (what run 1 of the attack left)."""
    work = tmp_path / "W"
    (work / "real" / "sub").mkdir(parents=True)
    (work / "out").symlink_to("../../../..")
    (work / "alias").symlink_to("real")
    (work / "abs").symlink_to("/etc")
    return {
        "link as the grant": str(work / "out"),
        "link to a sibling": str(work / "alias"),
        "link in the middle": str(work / "alias" / "sub"),
        "absolute link": str(work / "abs"),
        "trailing slash": str(work / "out") + "/",
        "dot after the link": str(work / "out" / "."),
    }


SHAPES = [
    "link as the grant",
    "link to a sibling",
    "link in the middle",
    "absolute link",
    "trailing slash",
    "dot after the link",
]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_granted_path_through_a_symlink_is_refused_naming_the_real_path(sandbox, tmp_path, shape):
    host = _redirected(tmp_path)[shape]
    with pytest.raises(GrantError) as err:
        sandbox.run(programs.HELLO, grants=Grants.parse(dirs=[f"{host}:/data:ro"]))
    message = str(err.value)
    assert "symlink" in message and os.path.realpath(host) in message and "\n" not in message


def test_the_two_run_attack_ends_at_the_grant(sandbox, tmp_path):
    """Run 1 tries to plant ``out -> ../../../..``; run 2 cannot grant it either way."""
    work = tmp_path / "W"
    work.mkdir()
    first = sandbox.run(
        _planter("../../../.."), invoke="plant", grants=Grants.parse(dirs=[f"{work}:/w:rw"])
    )
    assert first.outcome.returns == (WASI_EPERM,)
    (work / "out").symlink_to("../../../..")  # planted by anything else on the host
    with pytest.raises(GrantError):
        sandbox.run(programs.HELLO, grants=Grants.parse(dirs=[f"{work / 'out'}:/w:ro"]))


def _special(tmp_path, kind: str):
    grant = tmp_path / "g"
    (grant / "nested").mkdir(parents=True)
    (grant / "ok.txt").write_text("fine")
    culprit = grant / "nested" / "thing"
    if kind == "fifo":
        os.mkfifo(culprit)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(culprit))
        sock.close()
    elif kind == "symlink to a fifo":
        os.mkfifo(grant / "pipe")
        culprit.symlink_to("../pipe")
    elif kind == "symlink to a device":
        culprit.symlink_to("/dev/zero")
    elif kind == "symlink out of the grant":
        culprit.symlink_to(tmp_path)
    return grant, culprit


KINDS = ["fifo", "socket", "symlink to a fifo", "symlink to a device", "symlink out of the grant"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_grant_holding_a_special_file_is_refused_naming_it(sandbox, tmp_path, kind):
    grant, culprit = _special(tmp_path, kind)
    with pytest.raises(GrantError) as err:
        sandbox.run(programs.HELLO, grants=Grants.parse(dirs=[f"{grant}:/g:ro"]))
    assert str(culprit) in str(err.value) or "pipe" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_file_argument_that_is_not_a_regular_file_is_refused_at_once(tmp_path, kind):
    path = {"device": "/dev/zero", "directory": str(tmp_path / "d.wat")}.get(kind)
    if kind == "fifo":
        path = str(tmp_path / "prog.wat")
        os.mkfifo(path)
    elif kind == "directory":
        os.mkdir(path)
    env = {**os.environ, "WASM_SANDBOX_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", "run", path, "--lang", "wat"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a blocking open would hang here and fail the test
    )
    assert proc.returncode == 2
    assert "not a regular file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_sources_load_refuses_a_fifo_without_blocking(tmp_path):
    from wasm_sandbox import sources

    fifo = tmp_path / "cell.wat"
    os.mkfifo(fifo)
    with pytest.raises(CompileError, match="not a regular file"):
        sources.load(fifo)


def test_a_fifo_among_several_files_is_an_error_row_not_a_hang(tmp_path):
    good, fifo = tmp_path / "good.wat", tmp_path / "fifo.wat"
    good.write_text(programs.HELLO)
    os.mkfifo(fifo)
    env = {**os.environ, "WASM_SANDBOX_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", "run", str(good), str(fifo), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # reading the FIFO would hang here and fail the test
    )
    rows = {row["status"]: row for row in json.loads(proc.stdout)}
    assert set(rows) == {"ok", "error"} and "not a regular file" in rows["error"]["message"]
