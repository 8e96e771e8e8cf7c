"""Where a guest and its compilation run: on a thread of this process, or in a worker process.

Two runners behind one interface (`Isolation.compile`, `Isolation.run`); the pipeline does
not care which one ran the guest:

* ``"thread"`` (`Isolation`): the guest runs on a thread of this process (`Engine.run`).
  A cache-miss compile of a module larger than `IN_PROCESS_COMPILE` bytes still happens in
  a worker process, because wasmtime cannot interrupt a compile: the worker writes the
  compiled code to the HMAC-checked disk cache, and this process loads it from there.
* ``"process"`` (`ProcessIsolation`): compile and run both happen in a warm worker process
  (`wasm_sandbox.worker`) from a `wasm_sandbox.pool.WorkerPool`, which enforces the
  deadlines from outside (``compile_limit``, ``timeout``, ``crashed``: see `wasm_sandbox.pool`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from .errors import CompileError, UsageProblem
from .limits import Grants, Limits
from .outcome import Outcome
from .worker import ISOLATIONS, Job

if TYPE_CHECKING:
    from .engine import Compiled, Engine
    from .job import Job as RunJob
    from .pool import WorkerPool

#: Bytes a compile may add to a worker's data segment (``RLIMIT_DATA``).
COMPILE_MEMORY = 2 << 30
#: Modules up to this size compile in this process: the worst known module of this size
#: (deeply nested blocks, compile time about quadratic in the depth) takes about 0.1 s.
IN_PROCESS_COMPILE = 8 << 10


class Isolation:
    """The in-process runner (``"thread"``): guests run on a thread of this process."""

    name = "thread"

    def __init__(self, engine: Engine, pool: WorkerPool) -> None:
        self.engine, self.pool = engine, pool

    def compile(self, wasm: bytes, limits: Limits | None = None) -> Compiled | Outcome:
        """The compiled module, or an `Outcome` (``compile_limit``, ``crashed``) when
        compiling broke the limits; raises `CompileError` for an invalid module."""
        limits = limits or Limits()
        small = len(wasm) <= IN_PROCESS_COMPILE
        if small or self.pool.cache_dir is None or self.engine.knows(wasm):
            return self.engine.compile(wasm)
        start = time.perf_counter()
        failed = self.pool.execute(Job(wasm, limits, COMPILE_MEMORY, compile_only=True))
        if failed is not None:
            return failed
        if not self.engine.knows(wasm):
            raise CompileError("the compiled module could not be stored in the cache")
        compiled = self.engine.compile(wasm)
        return replace(compiled, cache="miss", compile_ms=(time.perf_counter() - start) * 1000)

    def run(
        self,
        job: RunJob,
        *,
        cancel: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Outcome:
        """Compile the job's program (unless it carries its module) and run it with its
        options; see `Engine.run`."""
        options = job.options
        built = job.compiled or self.compile(job.program.wasm, options.limits)
        if isinstance(built, Outcome):
            return built
        return self.engine.run(
            built,
            invoke=options.invoke,
            args=job.guest_args,
            limits=options.limits,
            grants=job.guest_grants,
            cancel=cancel,
            progress=progress,
        )


class ProcessIsolation(Isolation):
    """The process runner (``"process"``): compile and run in a warm worker process."""

    name = "process"

    def run(
        self,
        job: RunJob,
        *,
        cancel: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Outcome:
        options = job.options
        order = Job(
            job.program.wasm,
            options.limits,
            COMPILE_MEMORY,
            options.invoke,
            job.guest_args,
            _absolute(job.guest_grants),
            progress is not None,
        )
        outcome = self.pool.execute(order, cancel=cancel, progress=progress)
        assert outcome is not None
        return outcome


def _absolute(grants: Grants) -> Grants:
    """Grants with absolute host paths: the worker's working directory is the one this
    process had when the worker started, not necessarily the one it has now."""
    dirs = tuple(replace(d, host=os.path.abspath(d.host)) for d in grants.dirs)
    return replace(grants, dirs=dirs)


def runner(kind: str, engine: Engine, pool: WorkerPool) -> Isolation:
    """The runner named ``kind`` (one of `ISOLATIONS`) over ``engine`` and ``pool``."""
    check(kind)
    return (ProcessIsolation if kind == "process" else Isolation)(engine, pool)


def check(kind: str) -> str:
    """``kind`` if it names an isolation, else `SandboxError`."""
    if kind not in ISOLATIONS:
        raise UsageProblem(f"isolation must be one of {', '.join(ISOLATIONS)}, not {kind!r}")
    return kind
