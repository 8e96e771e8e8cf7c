"""One worker process of process isolation: it compiles and runs guests for its parent.

Started by `wasm_sandbox.isolation` as ``python -c ...`` with two inherited descriptors: a
socket that carries `Job`s in and progress, results and errors out, and the read end of a
*lifeline* pipe whose write end only the parent holds. The worker dies with its parent
twice over: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, and a thread that exits the process when
the lifeline reads EOF (the parent is gone, however it went).

While it compiles, the process's data segment is capped (``RLIMIT_DATA``): a compile that
grows past the cap aborts this process, never the parent. SIGINT is ignored while idle and
cancels a running guest (`Engine.run` installs that handler).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SandboxError, WorkerError
from .limits import Grants, Limits

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

#: Where guests can run (`wasm_sandbox.isolation`); here so faces can list them cheaply.
ISOLATIONS = ("thread", "process")
#: Idle workers kept warm by a pool, beyond which finished workers exit (here for the same
#: reason: `Sandbox` takes it as a default without importing the pool).
KEEP_IDLE = 4
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Job:
    """What one worker does for one run: compile ``wasm``, then (unless ``compile_only``)
    run it. ``compile_memory`` caps the process's data segment while it compiles."""

    wasm: bytes
    limits: Limits
    compile_memory: int
    invoke: str | None = None
    args: tuple[Any, ...] = ()
    grants: Grants | None = None
    progress: bool = False
    compile_only: bool = False


def main(channel: int, lifeline: int, parent: int, cache_dir: str, nice: int) -> None:
    """The worker's life: serve jobs from ``channel`` until the parent goes away."""
    from multiprocessing.connection import Connection

    _die_with(parent, lifeline)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice > 0:
        os.nice(nice)
    from .engine import Engine  # after the lifeline: a parent that dies meanwhile is seen

    engine = Engine(cache_dir=Path(cache_dir) if cache_dir else None)
    conn = Connection(channel)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        conn.send(_serve(conn, engine, job))


def _serve(conn: Connection, engine: Any, job: object) -> tuple[str, Any]:
    """Compile and run one job (or run and seal a batch's chunk: `wasm_sandbox.procmap`);
    the reply is ``("done", outcome)`` or ``("raise", error)``."""
    try:
        if not isinstance(job, Job):
            from .procmap import Chunk, serve

            assert isinstance(job, Chunk)
            return serve(conn, engine, job)
        with data_capped(job.compile_memory):
            compiled = engine.compile(job.wasm)
        conn.send(("compiled", compiled.cache))
        if job.compile_only:
            return ("done", None)
        progress = (lambda fuel: conn.send(("progress", fuel))) if job.progress else None
        abandoned = engine.abandoned
        outcome = engine.run(
            compiled,
            invoke=job.invoke,
            args=job.args,
            limits=job.limits,
            grants=job.grants,
            progress=progress,
        )
        if engine.abandoned != abandoned:  # a guest thread stays blocked here: replace us
            conn.send(("retire", None))
        return ("done", outcome)
    except SandboxError as exc:
        return ("raise", exc)
    except Exception as exc:  # a bug here must reach the caller as one line, not kill us
        return ("raise", WorkerError(f"the worker process failed: {type(exc).__name__}: {exc}"))


@contextlib.contextmanager
def data_capped(extra: int) -> Iterator[None]:
    """``RLIMIT_DATA`` at what the process uses now plus ``extra`` bytes, then lifted."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = _data_bytes() + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _data_bytes() -> int:
    """The process's data segment now (``VmData``), as ``RLIMIT_DATA`` counts it."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _die_with(parent: int, lifeline: int) -> None:
    """SIGKILL when the parent dies (Linux), and exit when the lifeline pipe closes."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.read(lifeline, 1):  # the parent never writes: this returns b"" at its exit
            pass
        os._exit(1)

    threading.Thread(target=watch, name="wasm-sandbox-lifeline", daemon=True).start()
