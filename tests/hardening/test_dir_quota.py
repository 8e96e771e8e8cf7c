"""A read-write grant has a byte quota: a guest that writes past it, densely or through a
sparse file, ends with status ``quota`` and the run is logged."""

import json
import os
import subprocess
import sys

import pytest

from wasm_sandbox import Grants, Limits


def _writer(how: str) -> str:
    """A WASI command that creates ``/w/big`` in its grant (fd 3) and then fills it:
    ``dense`` writes 64 KiB chunks for ever, ``sparse`` sets its size to 4 TiB (ext4 refuses 1 PiB),
    ``far`` writes one byte at a 1 TiB offset."""
    fill = {
        "dense": "(loop (drop (call $write (local.get $fd) (i32.const 0) (i32.const 1) "
        "(i32.const 8))) (br 0))",
        "sparse": "(drop (call $set_size (local.get $fd) (i64.const 0x40000000000)))",
        "far": "(drop (call $pwrite (local.get $fd) (i32.const 0) (i32.const 1) "
        "(i64.const 0x10000000000) (i32.const 8)))",
    }[how]
    return f"""(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite"
    (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size"
    (func $set_size (param i32 i64) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 32) "big")
  (func (export "_start") (local $fd i32)
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const 65536))
    ;; path_open(dirfd 3, follow, "big", O_CREAT|O_TRUNC, all rights, all rights, 0, &fd)
    (drop (call $open (i32.const 3) (i32.const 1) (i32.const 32) (i32.const 3)
      (i32.const 9) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 16)))
    (local.set $fd (i32.load (i32.const 16)))
    {fill}))"""


QUOTA = Limits.parse(dir_quota="4MiB", timeout="20s", fuel="1e12")


@pytest.mark.parametrize("how", ["dense", "sparse", "far"])
def test_writing_past_the_quota_ends_with_status_quota(sandbox, tmp_path, how):
    work = tmp_path / "w"
    work.mkdir()
    ex = sandbox.run(_writer(how), limits=QUOTA, grants=Grants.parse(dirs=[f"{work}:/w:rw"]))
    assert ex.outcome.status == "quota", ex.outcome
    assert "4194304 byte quota" in ex.outcome.message
    assert (work / "big").exists()
    assert sandbox.verify(ex.id)


def test_what_was_there_before_does_not_count(sandbox, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "old").write_bytes(b"x" * (8 << 20))  # twice the quota, before the run
    from tests import programs

    ex = sandbox.run(programs.HELLO, limits=QUOTA, grants=Grants.parse(dirs=[f"{work}:/w:rw"]))
    assert ex.outcome.status == "ok"


def test_a_read_only_grant_has_no_quota_to_watch(sandbox, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "big").write_bytes(b"x" * (8 << 20))
    from tests import programs

    ex = sandbox.run(programs.HELLO, limits=QUOTA, grants=Grants.parse(dirs=[f"{data}:/d"]))
    assert ex.outcome.status == "ok"


def test_the_cli_takes_dir_quota_and_reports_the_status(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    prog = tmp_path / "fill.wat"
    prog.write_text(_writer("dense"))
    env = {**os.environ, "WASM_SANDBOX_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wasm_sandbox.cli",
            "run",
            str(prog),
            "--json",
            "--dir",
            f"{work}:/w:rw",
            "--dir-quota",
            "1MiB",
            "--fuel",
            "1e12",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "quota"
    assert os.path.getsize(work / "big") > 1 << 20
