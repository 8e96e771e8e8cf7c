"""Process isolation with real worker processes: results, progress, interrupts, crashes,
and workers that never outlive their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests import programs
from wasm_sandbox import CompileError, InvocationError, Limits, Sandbox

ROOT = Path(__file__).parents[2]


@pytest.fixture
def isolated(home):
    with Sandbox(home=home, isolation="process") as sb:
        yield sb


def test_a_process_isolated_run_gives_what_an_in_process_run_gives(isolated):
    inside = isolated.run(programs.FACT, invoke="fact", args=[20], isolation="thread")
    outside = isolated.run(programs.FACT, invoke="fact", args=[20])
    assert outside.outcome.returns == inside.outcome.returns == (2432902008176640000,)
    assert outside.outcome.fuel_used == inside.outcome.fuel_used
    hello = isolated.run(programs.HELLO)
    assert hello.outcome.stdout == "hello, sandbox\n"
    assert isolated.pool.pids(), "the guests ran in a worker process"
    assert os.getpid() not in isolated.pool.pids()


def test_errors_from_the_worker_are_the_usual_errors_and_are_logged(isolated):
    missing = isolated.run(programs.ADD, invoke="nope")
    assert missing.outcome.status == "error"
    assert isinstance(missing.error, InvocationError)
    assert "no exported function 'nope'" in str(missing.error)
    invalid = isolated.run(b"\0asm\x01\0\0\0\x01\x05")
    assert isinstance(invalid.error, CompileError)
    assert "invalid WebAssembly module" in str(invalid.error)
    assert [r["outcome"]["status"] for r in isolated.log()] == ["error", "error"]


def test_live_fuel_progress_and_the_cancel_event_cross_the_process(isolated):
    seen: list[int] = []
    cancel = threading.Event()

    def progress(fuel: int) -> None:
        seen.append(fuel)
        if len(seen) == 3:
            cancel.set()

    ex = isolated.run(
        programs.CALLING_LOOP,
        invoke="spin",
        limits=Limits.parse(timeout="60s"),
        progress=progress,
        cancel=cancel,
    )
    assert ex.outcome.status == "interrupted"
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] > 0
    assert ex.outcome.fuel_used >= seen[-1]


def test_a_killed_worker_is_a_logged_crashed_run_and_the_next_run_works(isolated):
    isolated.run(programs.ADD, invoke="add", args=[1, 2])  # a warm worker
    (pid,) = isolated.pool.pids()
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    ex = isolated.run(programs.LOOP, invoke="spin", limits=Limits.parse(timeout="30s"))
    assert ex.outcome.status == "crashed"
    assert "killed by signal SIGKILL" in ex.outcome.message
    assert "while running the guest" in ex.outcome.message
    assert ex.record["outcome"]["status"] == "crashed"
    assert isolated.verify(ex.id).verified
    again = isolated.run(programs.ADD, invoke="add", args=[2, 3])
    assert again.outcome.returns == (5,)
    assert pid not in isolated.pool.pids()


def test_a_progress_callback_that_fails_stops_the_guest_and_raises(isolated):
    def broken(_fuel: int) -> None:
        raise ValueError("the view went away")

    with pytest.raises(ValueError, match="the view went away"):
        isolated.run(
            programs.CALLING_LOOP,
            invoke="spin",
            limits=Limits.parse(timeout="60s"),
            progress=broken,
        )
    assert isolated.run(programs.ADD, invoke="add", args=[2, 3]).outcome.returns == (5,)


PRELUDE = """
import os, sys, time
from tests import programs
from wasm_sandbox import Limits, Sandbox
sb = Sandbox(home=sys.argv[1], isolation="process")
"""


def spawn(code: str, home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), str(home)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigint_interrupts_a_process_isolated_guest_and_the_next_run_works(home):
    proc = spawn(
        """
        sb.run(programs.ADD, invoke="add", args=[1, 2])
        print("running", flush=True)
        ex = sb.run(programs.LOOP, invoke="spin", limits=Limits.parse(timeout="60s"))
        print(ex.outcome.status, flush=True)
        print(sb.run(programs.FACT, invoke="fact", args=[5]).outcome.returns, flush=True)
        """,
        home,
    )
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "interrupted"
        assert proc.stdout.readline().strip() == "(120,)"
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for init to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: list[int], seconds: float = 10) -> list[int]:
    end = time.monotonic() + seconds
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < end:
        time.sleep(0.05)
    return left


def test_no_worker_survives_a_sigkilled_parent(home):
    proc = spawn(
        """
        import threading
        threading.Thread(  # one worker busy with a guest, one idle
            target=sb.run, args=(programs.LOOP,), kwargs={"invoke": "spin",
            "limits": Limits.parse(timeout="60s")}, daemon=True,
        ).start()
        sb.run(programs.ADD, invoke="add", args=[1, 2])
        time.sleep(0.5)
        print(*sb.pool.pids(), flush=True)
        time.sleep(60)
        """,
        home,
    )
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids), proc.stderr.read()
        proc.kill()
        proc.wait(10)
        assert wait_gone(pids) == []
    finally:
        proc.kill()


def test_a_relative_grant_means_the_same_directory_after_a_chdir(isolated, tmp_path, monkeypatch):
    from wasm_sandbox import Grants

    isolated.run(programs.ADD, invoke="add", args=[1, 2])  # the worker starts in this cwd
    (tmp_path / "here" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    hello = isolated.run(programs.HELLO, grants=Grants.parse(dirs=["data"]))
    assert hello.outcome.ok, hello.outcome.message


def test_closing_the_sandbox_lets_a_run_in_flight_finish(home):
    sb = Sandbox(home=home, isolation="process")
    sb.run(programs.ADD, invoke="add", args=[1, 2])
    results = []
    spin = threading.Thread(
        target=lambda: results.append(
            sb.run(programs.LOOP, invoke="spin", limits=Limits.parse(timeout="1s"))
        )
    )
    spin.start()
    time.sleep(0.3)
    sb.close()  # the idle worker goes at once, the busy one when its run ends
    spin.join(30)
    assert [ex.outcome.status for ex in results] == ["timeout"]
    assert sb.pool.pids() == []
