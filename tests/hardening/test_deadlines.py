"""Nothing outlives its deadline by more than the stated grace: a guest stuck in a host
call (a FIFO in a granted directory) and compile bombs (generated), under both isolations.

Each case ends with a clear, logged status; the next run works. The wall-clock figures
belong to ``benchmarks/isolation_bench.py``, not here.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest

from tests import programs
from tests.hardening.bombs import many_functions, nested_loops
from wasm_sandbox import Grants, Limits, Sandbox
from wasm_sandbox.isolation import IN_PROCESS_COMPILE
from wasm_sandbox.pool import GRACE
from wasm_sandbox.worker import Job

ISOLATIONS = ("thread", "process")


@pytest.fixture
def sb(home):
    with Sandbox(home=home) as sandbox:
        yield sandbox


@pytest.fixture
def fifo_dir(tmp_path):
    """A read-write granted directory where a FIFO ``fifo`` appears once the guest has
    started: after the grant's scan, which refuses FIFOs, the race only the deadline covers.
    Yields the directory and an event set when the FIFO is there; a guest left blocked on
    it is released at the end."""
    root = tmp_path / "grant"
    root.mkdir()
    planted = threading.Event()

    def plant() -> None:
        deadline = time.monotonic() + 120
        while not (root / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.mkfifo(root / "fifo")
        planted.set()

    threading.Thread(target=plant, daemon=True).start()
    yield f"{root}:rw", planted
    with contextlib.suppress(OSError):  # a reader still waiting: a writer lets it go
        os.close(os.open(root / "fifo", os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_guest_blocked_opening_a_fifo_ends_as_timeout_and_is_logged(sb, fifo_dir, isolation):
    grant, planted = fifo_dir
    ex = sb.run(
        programs.OPEN_FIFO,
        limits=Limits.parse(timeout="1s"),
        grants=Grants.parse(dirs=[grant]),
        isolation=isolation,
    )
    assert planted.is_set() and ex.outcome.status == "timeout"
    said = {"thread": ("was abandoned",), "process": ("worker process was killed", "abandoned")}
    assert any(words in ex.outcome.message for words in said[isolation])
    assert f"{GRACE:g} s" in ex.outcome.message
    assert sb.verify(ex.id).verified
    assert sb.run(programs.ADD, invoke="add", args=[2, 3], isolation=isolation).outcome.ok


BOMBS = {
    "nested loops, 223 KB": lambda: nested_loops(74_000),
    "100k functions": lambda: many_functions(100_000),
}


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_compile_bomb_ends_as_compile_limit_and_is_logged(sb, bomb, isolation):
    wasm = BOMBS[bomb]()
    assert len(wasm) > IN_PROCESS_COMPILE  # so even "thread" compiles it in a worker
    ex = sb.run(wasm, limits=Limits.parse(timeout="1s"), isolation=isolation)
    assert ex.outcome.status == "compile_limit"
    assert "compilation did not finish within the 1 s timeout" in ex.outcome.message
    assert ex.record["outcome"]["status"] == "compile_limit"
    assert sb.verify(ex.id).verified
    assert sb.run(programs.ADD, invoke="add", args=[2, 3], isolation=isolation).outcome.ok


@pytest.mark.parametrize("cap", [64 << 20, 200 << 20])
def test_a_compile_past_its_memory_cap_ends_as_compile_limit(sb, cap):
    job = Job(nested_loops(30_000), Limits.parse(timeout="60s"), cap, compile_only=True)
    out = sb.pool.execute(job)
    assert out is not None and out.status == "compile_limit"
    assert f"{cap >> 20} MiB memory cap" in out.message


def test_a_module_that_compiles_in_time_is_handed_back_through_the_cache(sb):
    wasm = nested_loops(3_000)  # 9 KB: compiled in a worker, loaded from the cache here
    assert len(wasm) > IN_PROCESS_COMPILE and not sb.engine.knows(wasm)
    _, compiled = sb.compile(wasm)
    assert compiled.cache == "miss" and sb.engine.knows(wasm)
    assert sb.compile(wasm)[1].cache == "memory"


def test_replaying_a_compile_bomb_is_bounded_too(sb):
    ex = sb.run(nested_loops(74_000), limits=Limits.parse(timeout="1s"))
    report = sb.verify(ex.id, replay=True)
    assert report.replay is not None and report.replay["status"] == "compile_limit"
    assert report.verified


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_an_interrupt_ends_a_guest_blocked_on_a_fifo(sb, fifo_dir, isolation):
    grant, planted = fifo_dir
    cancel = threading.Event()
    threading.Thread(target=lambda: planted.wait(120) and (time.sleep(0.3), cancel.set())).start()
    ex = sb.run(
        programs.OPEN_FIFO,
        limits=Limits.parse(timeout="10min"),
        grants=Grants.parse(dirs=[grant]),
        cancel=cancel,
        isolation=isolation,
    )
    assert ex.outcome.status == "interrupted" and "abandoned" in ex.outcome.message
    if isolation == "process":  # the worker with the blocked thread was replaced
        assert sb.pool.pids() == []
