"""A hostile local user and hostile inputs against the home, the log and the CLI (issue 15).

The tests run as root, who bypasses permission checks, so they test what the checks decide
from owner and mode bits: another user's files are simulated with ``os.chown`` to a uid that
is not ours. Each class is also run through the real CLI where the user would meet it: one
line on stderr, exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import programs
from tests.conftest import PROBE
from wasm_sandbox import Limits, Sandbox, SandboxError

OTHER_UID = 4242  # not us: stands for another local user
ANSI = r"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "\1b[2K\1b[1A\rok\07\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 13))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 3))))"""


def cli(*args, home, stdin=None, check=None):
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *map(str, args), "--home", str(home)],
        capture_output=True,
        stdin=stdin,
        timeout=120,
    )
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


def one_line_error(proc) -> str:
    """The CLI failed the way a user should see: exit 2, one line, no traceback."""
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("wasm-sandbox: ")
    return err


@pytest.fixture
def fact(tmp_path) -> Path:
    path = tmp_path / "fact.wat"
    path.write_text(programs.FACT)
    return path


def run_fact(home: Path) -> int:
    with Sandbox(home=home) as sb:
        return sb.run(programs.FACT, invoke="fact", args=[5]).outcome.returns[0]


def mount_tmpfs(path: Path, options: str) -> None:
    """A tiny or read-only file system at ``path`` (ENOSPC for real); skip where not allowed."""
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path]).returncode:
        pytest.skip("cannot mount a tmpfs here")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.name.endswith(".tmp"))


# 1. A safe home: nothing another user can write is trusted.


@pytest.mark.parametrize("part", ["", "keys", "cache", "keys/signing.pem", "cache/cache.key"])
def test_a_home_part_owned_by_another_user_is_refused(home, part):
    assert run_fact(home) == 120
    os.chown(home / part, OTHER_UID, -1)
    with pytest.raises(SandboxError, match=rf"owned by uid {OTHER_UID}, not by you"):
        run_fact(home)


@pytest.mark.parametrize(
    ("part", "mode", "fix"),
    [
        ("", 0o777, "chmod 755"),
        ("", 0o720, "chmod 700"),
        ("keys", 0o755, "chmod 700"),
        ("cache", 0o770, "chmod 750"),
        ("keys/signing.pem", 0o640, "chmod 600"),
        ("cache/cache.key", 0o604, "chmod 600"),
    ],
)
def test_a_home_part_others_can_write_or_read_is_refused_with_the_fix(home, fact, part, mode, fix):
    assert run_fact(home) == 120
    os.chmod(home / part, mode)
    err = one_line_error(cli("run", fact, "--invoke", "fact", "5", home=home))
    assert f"has mode {mode:04o}; run {fix} " in err


def test_a_swapped_cache_directory_of_another_user_is_never_loaded(home, tmp_path):
    """The attack: another user swaps cache/ for one holding forged code and its own key."""
    assert run_fact(home) == 120
    forged = tmp_path / "forged"
    shutil.copytree(home / "cache", forged)
    for path in (forged, *forged.iterdir()):
        os.chown(path, OTHER_UID, -1)
    shutil.rmtree(home / "cache")
    forged.rename(home / "cache")
    with pytest.raises(SandboxError, match=r"cache directory .* owned by uid 4242"):
        run_fact(home)


@pytest.mark.parametrize("trouble", ["group-writable", "other-owned"])
def test_a_home_inside_a_directory_others_control_is_refused(tmp_path, trouble):
    parent = tmp_path / "shared"
    parent.mkdir()
    if trouble == "group-writable":
        os.chmod(parent, 0o775)
    else:
        os.chown(parent, OTHER_UID, -1)
    with pytest.raises(SandboxError, match=f"inside {parent}"):
        run_fact(parent / "home")


def test_a_sticky_world_writable_parent_like_tmp_is_fine(tmp_path):
    parent = tmp_path / "tmp-like"
    parent.mkdir()
    os.chmod(parent, 0o1777)
    assert run_fact(parent / "home") == 120


def test_a_symlinked_home_is_judged_by_its_target(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    assert run_fact(tmp_path / "link") == 120 and (real / "ledger.sqlite").exists()
    os.chown(real, OTHER_UID, -1)
    with pytest.raises(SandboxError, match=f"{real} is owned by uid"):
        run_fact(tmp_path / "link")


def odd_home(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "home"
    if kind == "a file":
        path.write_text("not a directory")
    elif kind == "a dangling link":
        path.symlink_to(tmp_path / "gone")
    elif kind == "a link loop":
        path.symlink_to(path)
    elif kind == "under /proc":
        return Path("/proc/self/wasm-sandbox-home")
    elif kind == "/proc itself":
        return Path("/proc")
    elif kind == "a read-only mount":
        path.mkdir()
        mount_tmpfs(path, "ro,size=64k,mode=0700")
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "a file",
        "a dangling link",
        "a link loop",
        "under /proc",
        "/proc itself",
        "a read-only mount",
    ],
)
def test_an_odd_home_is_one_line(kind, tmp_path, fact):
    home = odd_home(kind, tmp_path)
    try:
        err = one_line_error(cli("run", fact, "--invoke", "fact", "5", home=home))
        one_line_error(cli("verify", "--all", home=home))
        if kind == "a read-only mount":
            assert "is not writable" in err
    finally:
        if kind == "a read-only mount":
            subprocess.run(["umount", home], check=True)


def cache_entry(home: Path) -> Path:
    [entry] = (home / "cache").glob("*.cwasm")
    return entry


@pytest.mark.parametrize("kind", ["a directory", "a FIFO", "/dev/zero", "a link to /dev/zero"])
def test_a_cache_entry_that_is_not_a_regular_file_is_ignored_without_blocking(home, kind):
    assert run_fact(home) == 120
    entry = cache_entry(home)
    entry.unlink()
    if kind == "a directory":
        entry.mkdir()
    elif kind == "a FIFO":
        os.mkfifo(entry)
    elif kind == "/dev/zero":
        os.mknod(entry, 0o600 | 0o020000, os.makedev(1, 5))
    else:
        entry.symlink_to("/dev/zero")
    assert run_fact(home) == 120  # compiled afresh; the odd entry was neither read nor kept
    assert leftovers(home) == []


@pytest.mark.parametrize("kind", ["a FIFO", "a directory"])
def test_a_cache_key_that_is_not_a_regular_file_is_one_line(home, fact, kind):
    assert run_fact(home) == 120
    key = home / "cache" / "cache.key"
    key.unlink()
    os.mkfifo(key) if kind == "a FIFO" else key.mkdir()
    err = one_line_error(cli("run", fact, "--invoke", "fact", "5", home=home))
    assert "cache.key is not a regular file; remove it" in err


@pytest.fixture
def tiny_cache(home):
    """``<home>/cache`` on a 8 KiB tmpfs: room for the key, not for compiled code."""
    cache = home / "cache"
    cache.mkdir(parents=True)
    mount_tmpfs(cache, "size=8k,mode=0700")
    yield cache
    subprocess.run(["umount", cache], check=True)


def test_a_full_disk_while_caching_leaves_nothing_half_written(tiny_cache, fact):
    home = tiny_cache.parent
    proc = cli("run", fact, "--invoke", "fact", "5", "--json", home=home, check=0)
    assert json.loads(proc.stdout)["returns"] == [120]
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and "No space left on device" in err, err
    assert sorted(p.name for p in tiny_cache.iterdir()) == ["cache.key"]


def test_a_full_disk_for_the_whole_home_is_one_line(tmp_path, fact):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    mount_tmpfs(home, "size=4k,mode=0700")
    try:
        (home / "filler").write_bytes(b"x" * 4096)
        err = one_line_error(cli("run", fact, "--invoke", "fact", "5", home=home))
        assert "No space left on device" in err
        assert leftovers(home) == []
    finally:
        subprocess.run(["umount", home], check=True)


# 2. Every run is logged, or it does not run.


def write_probe(home: Path, granted: Path, *extra: str):
    """The CLI runs the probe, which writes granted/x.txt through a rw grant."""
    args = ["--arg", "write", "--arg", "/data/x.txt", "--arg", "pwned"]
    return cli("run", PROBE, "--dir", f"{granted}:/data:rw", *args, *extra, home=home)


def break_ledger(home: Path) -> None:
    (home / "ledger.sqlite").write_bytes(b"this is not an SQLite database" * 100)


def open_keys(home: Path) -> None:
    os.chmod(home / "keys", 0o755)


@pytest.mark.parametrize("damage", [break_ledger, open_keys])
def test_a_run_that_could_not_be_logged_never_starts(home, tmp_path, damage):
    granted = tmp_path / "granted"
    granted.mkdir()
    assert run_fact(home) == 120
    damage(home)
    one_line_error(write_probe(home, granted))
    assert not (granted / "x.txt").exists()


@pytest.mark.parametrize(
    "limit",
    [
        ("--timeout", "1e300"),
        ("--timeout", "1e13s"),
        ("--timeout", "0.1ms"),
        ("--output", "1e100"),
        ("--fuel", "1e100"),
        ("--fuel", "9007199254740992"),
        ("--memory", "1e20"),
        ("--stdin-limit", "1e30"),
    ],
)
def test_limits_a_record_cannot_hold_are_refused_before_the_guest(home, tmp_path, limit):
    granted = tmp_path / "granted"
    granted.mkdir()
    err = one_line_error(write_probe(home, granted, *limit))
    assert limit[0].removeprefix("--").split("-")[0] in err and "2**53 - 1" in err
    assert not (granted / "x.txt").exists()
    assert not (home / "ledger.sqlite").exists()


@settings(max_examples=300, deadline=None)
@given(
    values=st.dictionaries(
        st.sampled_from(["fuel", "memory", "timeout", "output", "max_stdin"]),
        st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=12),
    )
)
def test_every_limit_that_parses_is_one_a_record_holds(values):
    try:
        limits = Limits.parse(**values)
    except SandboxError:
        return
    rec = limits.to_record()
    assert all(type(v) is int and 0 <= v <= 2**53 - 1 for v in rec.values())
    assert Limits.from_record(rec).to_record() == rec


def test_the_largest_limits_a_record_holds_still_run_and_verify(home):
    top = Limits(fuel=2**53 - 1, output=2**53 - 1, timeout=1e9)
    with Sandbox(home=home) as sb:
        ex = sb.run(programs.FACT, invoke="fact", args=[5], limits=top)
        assert ex.outcome.returns == (120,) and sb.verify(ex.id, replay=True).verified


# 3. Bounded inputs.


def test_stdin_beyond_the_limit_is_refused_after_reading_only_the_limit(home, fact):
    with open("/dev/zero", "rb") as endless:  # never ends: slurping it would never return
        err = one_line_error(
            cli("run", fact, "--stdin", "-", "--stdin-limit", "1MiB", home=home, stdin=endless)
        )
    assert "stdin: more than the 1048576 byte limit" in err
    assert not (home / "ledger.sqlite").exists()


def test_the_default_stdin_limit_holds_against_an_endless_stream(home, fact):
    with open("/dev/zero", "rb") as endless:
        err = one_line_error(cli("run", fact, "--stdin", "-", home=home, stdin=endless))
    assert f"more than the {Limits().max_stdin} byte limit" in err


def test_the_python_api_refuses_stdin_beyond_the_limit_before_the_guest(sandbox):
    with pytest.raises(SandboxError, match="stdin: more than the 10 byte limit"):
        sandbox.run(programs.ECHO, stdin=b"x" * 11, limits=Limits(max_stdin=10))
    assert sandbox.ledger.size == 0


def test_stdin_is_sealed_as_raw_bytes_not_hex(sandbox):
    data = os.urandom(1 << 20)
    ex = sandbox.run(programs.ECHO, stdin=data)
    sealed = ex.record["input"]
    assert sealed["v"] == 2 and len(data) < sealed["ct_len"] < len(data) + 1024
    assert sandbox.decrypt(ex.id).stdin == data
    assert sandbox.verify(ex.id, replay=True).verified


def test_stdin_at_the_limit_runs_and_replays(home, tmp_path):
    stdin = tmp_path / "in.txt"
    stdin.write_bytes(b"abcdefgh")
    wat = tmp_path / "echo.wat"
    wat.write_text(programs.ECHO)
    with stdin.open("rb") as f:
        proc = cli("run", wat, "--stdin", "-", "--stdin-limit", "8", "--json", home=home, stdin=f)
    assert json.loads(proc.stdout)["stdout"] == "abcdefgh"
    replayed = json.loads(cli("verify", "last", "--replay", "--json", home=home, check=0).stdout)
    assert replayed["checks"]["replay"] == "ok"


# 4. Honest messages.


@pytest.mark.parametrize(
    ("call", "cause"),
    [
        ('"random_get" (func $f (param i32 i32) (result i32))', "requested len 4294967280 exceeds"),
        (
            '"clock_time_get" (func $f (param i32 i64 i32) (result i32))',
            "Invalid enum value Clockid",
        ),
    ],
)
def test_wasmtime_errors_keep_their_cause(sandbox, call, cause):
    args = (
        "(i32.const 0) (i32.const 0xfffffff0)"
        if "random" in call
        else "(i32.const 99) (i64.const 0) (i32.const 0)"
    )
    wat = f"""(module (import "wasi_snapshot_preview1" {call}) (memory (export "memory") 1)
      (func (export "_start") (drop (call $f {args}))))"""
    message = sandbox.run(wat).outcome.message
    assert cause in message and "\n" not in message and "backtrace" not in message


def test_terminal_control_characters_are_escaped_for_humans_and_exact_in_json(home, tmp_path):
    wat = tmp_path / "ansi.wat"
    wat.write_text(ANSI)
    human = cli("run", wat, home=home, check=0).stdout.decode()
    assert "\x1b" not in human and "\r" not in human and "\x07" not in human
    assert "exit code 3" in human and "\\x1b[2K\\x1b[1A\\x0dok\\x07" in human
    exact = json.loads(cli("run", wat, "--json", home=home, check=0).stdout)
    assert exact["stdout"] == "\x1b[2K\x1b[1A\rok\x07\n" and exact["exit_code"] == 3


# 5. Replay without side effects.


def test_replay_writes_to_a_scratch_copy_never_the_granted_directory(home, tmp_path):
    granted = tmp_path / "granted"
    granted.mkdir()
    assert write_probe(home, granted).returncode == 0
    assert (granted / "x.txt").read_text() == "pwned"
    (granted / "x.txt").write_text("mine")
    (granted / "keep.txt").write_text("keep")
    out = json.loads(cli("verify", "last", "--replay", "--json", home=home).stdout)
    assert out["replay"]["status"] == "ok"  # the guest wrote, into the copy
    assert (granted / "x.txt").read_text() == "mine" and (granted / "keep.txt").exists()
    assert sorted(p.name for p in granted.iterdir()) == ["keep.txt", "x.txt"]


# 6. What one machine can notice about its own log.


def three_runs(home: Path) -> None:
    for _ in range(3):
        assert run_fact(home) == 120


def verify_all(home: Path, check: int) -> dict:
    return json.loads(cli("verify", "--all", "--json", home=home, check=check).stdout)


def ledger_files(home: Path) -> list[Path]:
    return [p for p in home.iterdir() if p.name.startswith("ledger.sqlite")]


def test_an_emptied_ledger_fails_verify_all(home):
    three_runs(home)
    assert verify_all(home, 0)["high_water"]["size"] == 3
    for path in ledger_files(home):
        path.unlink()
    out = verify_all(home, 1)
    assert out["verified"] is False and out["first_bad"] == {"high_water": 3}
    assert "fewer than the 3 this home saw" in out["problems"][0]


def test_a_rolled_back_ledger_fails_verify_all(home, tmp_path):
    assert run_fact(home) == 120
    backup = tmp_path / "backup"
    backup.mkdir()
    for path in ledger_files(home):
        shutil.copy2(path, backup)
    three_runs(home)
    for path in ledger_files(home):
        path.unlink()
    for path in backup.iterdir():
        shutil.copy2(path, home)
    out = verify_all(home, 1)
    assert out["first_bad"] == {"high_water": 4} and out["tree_size"] == 1


def test_a_rewritten_history_of_the_same_size_fails_verify_all(home):
    three_runs(home)
    for path in ledger_files(home):
        path.unlink()
    three_runs(home)  # a fresh log, as long as the old one: the mark keeps the old root
    out = verify_all(home, 1)
    assert out["first_bad"] == {"high_water": 3} and "history rewritten" in out["problems"][0]


def test_a_clean_log_raises_the_mark_and_verifies(home):
    three_runs(home)
    out = verify_all(home, 0)
    assert out["verified"] is True and out["high_water"]["size"] == 3
    assert (home / "keys" / "log-high-water").stat().st_mode & 0o777 == 0o600


def test_a_torn_or_forged_high_water_file_is_one_line(home, fact):
    three_runs(home)
    mark = home / "keys" / "log-high-water"
    mark.write_bytes(mark.read_bytes().replace(b"03", b"09", 1))  # size changed, checksum not
    err = one_line_error(cli("verify", "--all", home=home))
    assert "log-high-water is corrupt; remove it" in err
    one_line_error(cli("run", fact, "--invoke", "fact", "5", home=home))


def test_a_full_temp_directory_for_stdin_is_an_error_outcome_and_leaves_nothing(home, tmp_path):
    tiny = tmp_path / "tmp"
    tiny.mkdir()
    mount_tmpfs(tiny, "size=4k")
    wat = tmp_path / "echo.wat"
    wat.write_text(programs.ECHO)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "wasm_sandbox.cli", "run", wat, "--stdin", "-", "--json"],
            input=b"x" * 65536,
            capture_output=True,
            env={**os.environ, "TMPDIR": str(tiny), "WASM_SANDBOX_HOME": str(home)},
            timeout=120,
        )
        out = json.loads(proc.stdout)
        assert out["status"] == "error" and "No space left on device" in out["message"]
        assert list(tiny.iterdir()) == []
    finally:
        subprocess.run(["umount", tiny], check=True)


def test_a_high_water_file_removed_under_a_running_sandbox_is_written_again(home):
    with Sandbox(home=home) as sb:
        sb.run(programs.FACT, invoke="fact", args=[5])
        (home / "keys" / "log-high-water").unlink()
        ex = sb.run(programs.FACT, invoke="fact", args=[5])
        assert sb.high_water.read() == (2, bytes.fromhex(ex.root))
