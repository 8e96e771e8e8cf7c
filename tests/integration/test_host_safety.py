"""Each way FIELD-NOTES.md lists to kill or hang the host, tried for real in a child process.

A child process is used so that, if protection failed, the test sees a crash (a signal
exit or a hang) instead of taking pytest down with it.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wasm_sandbox.compiled import MAX_WASM_STACK
from wasm_sandbox.threads import WORKER_STACK

ROOT = Path(__file__).resolve().parents[2]
PRELUDE = """
import sys, threading, time
from tests import programs
from wasm_sandbox.engine import Engine
from wasm_sandbox.limits import Limits
from wasm_sandbox.sources import compile_wat
engine = Engine()
def run(wat, **kw):
    return engine.run(engine.compile(compile_wat(wat)), **kw)
"""


def child(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spawn(code: str) -> subprocess.Popen:
    """A child running ``code`` after the prelude, its output read line by line."""
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigint_while_a_guest_loops_ends_it_as_interrupted_and_the_next_run_works():
    code = """
        compiled = engine.compile(compile_wat(programs.LOOP))
        print("running", flush=True)
        out = engine.run(compiled, invoke="spin", limits=Limits.parse(timeout="60s"))
        print(out.status, flush=True)
        print(run(programs.FACT, invoke="fact", args=[5]).returns, flush=True)
    """
    proc = spawn(code)
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "interrupted"  # not the 60 s "timeout"
        assert proc.stdout.readline().strip() == "(120,)"  # the next run works normally
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        proc.kill()


def test_repeated_sigints_never_escape_as_exceptions():
    code = """
        import signal
        compiled = engine.compile(compile_wat(programs.CALLING_LOOP))
        for i in range(5):
            status = "escaped"
            print("running", flush=True)
            try:
                status = engine.run(compiled, invoke="spin").status
            except KeyboardInterrupt:
                pass
            while True:  # like Jupyter between cells: a press after the run is harmless
                try:
                    time.sleep(0.3)
                    break
                except KeyboardInterrupt:
                    pass
            print(status, flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    """
    proc = spawn(code)
    try:
        for _ in range(5):
            assert proc.stdout.readline().strip() == "running"
            time.sleep(0.1)
            for _ in range(3):  # an impatient user presses the button three times
                proc.send_signal(signal.SIGINT)
            assert proc.stdout.readline().strip() == "interrupted"
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        proc.kill()


def test_wasi_imports_always_come_with_a_wasi_config():
    # A WASI import called through an export (not _start) and with no grants at all:
    # without a WasiConfig on the store this aborts the process.
    proc = child("""
        wat = programs.HELLO.replace('(export "_start")', '(export "greet")')
        out = run(wat, invoke="greet")
        print(out.status, repr(out.stdout))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok 'hello, sandbox\\n'"


def test_stack_overflow_from_a_small_stack_thread_is_a_clean_trap():
    proc = child("""
        results = []
        threading.stack_size(256 * 1024)
        t = threading.Thread(target=lambda: results.append(run(programs.RECURSE, invoke="recurse")))
        t.start(); t.join()
        print(results[0].status, results[0].trap)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "trap stack_overflow"


def test_max_wasm_stack_stays_below_the_abort_threshold():
    assert MAX_WASM_STACK <= 2 << 20
    assert WORKER_STACK >= 16 * MAX_WASM_STACK
    proc = child("print(run(programs.RECURSE, invoke='recurse').trap)")
    assert proc.returncode == 0 and proc.stdout.strip() == "stack_overflow"


def test_blocking_sleep_does_not_outlive_the_deadline():
    proc = child(
        "out = run(programs.SLEEP_10S, limits=Limits.parse(timeout='300ms'))\n"
        "print(out.status, out.duration_ms < 10_000)"  # the 10 s sleep was cut, not waited out
    )
    assert proc.stdout.strip() == "timeout True"


def test_exit_after_capturing_output_is_clean():
    proc = child("""
        for _ in range(20):
            assert run(programs.HELLO).stdout == "hello, sandbox\\n"
    """)
    assert proc.returncode == 0
    assert "panic" not in proc.stderr, proc.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_a_guest_cannot_signal_the_host():
    # WASI preview 1 has no kill(); proc_raise is not linked by wasmtime: instantiation fails.
    proc = child("""
        wat = '(module (import "wasi_snapshot_preview1" "proc_raise"'
        wat += ' (func (param i32) (result i32)))'
        wat += ' (memory (export "memory") 1) (func (export "_start")))'
        out = run(wat)
        print(out.status)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("error", "ok")


def test_v128_and_gc_signatures_never_reach_wasmtimes_type_api():
    # Found by the hardening campaign: str(ValType) of a v128 or a GC reference aborts the
    # process inside wasmtime-py. A guest exporting such a function must get an error.
    proc = child("""
        from wasm_sandbox import InvocationError
        vec = '(module (func (export "v") (param v128) (result v128) local.get 0)'
        vec += ' (func (export "ok") (result i32) i32.const 7))'
        try:
            run(vec, invoke="v", args=[0])
        except InvocationError as exc:
            print("refused:", exc)
        print(run(vec, invoke="ok").returns)
        gc = '(module (type $s (struct (field i32))) (func (export "f") (param (ref null $s)))'
        gc += ' (func (export "g") (result (ref func)) ref.func 0) (elem declare func 0)'
        gc += ' (func (export "ok") (result i32) (struct.get $s 0 (struct.new $s (i32.const 8)))))'
        for name in ("f", "g"):
            try:
                run(gc, invoke=name)
            except InvocationError as exc:
                print("refused:", exc)
        print(run(gc, invoke="ok").returns)
    """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("refused: v has a v128 in its signature")
    assert lines[1] == "(7,)"
    assert lines[2].startswith("refused: f has a (ref null 0) in its signature")
    assert lines[3].startswith("refused: g has a (ref func) in its signature")
    assert lines[4] == "(8,)"
