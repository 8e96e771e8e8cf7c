"""Runs carried out in worker processes, so the server's event loop keeps its GIL.

A guest runs in native code, but reading a request, sealing the run and appending it to
the log are Python. In the server's own process that work competes with the event loop
for the interpreter lock: with 100 runs at once, the loop waited for the lock at every
system call and ``GET health`` slowed to match. So each run goes to one of ``workers``
processes (started with ``spawn``: the server has threads, forking it is unsafe), each with
its own `Sandbox` on the same home (the ledger is safe across processes). If a worker dies,
the runs in flight fail with `WorkerDied` and the next run gets a fresh pool.

SIGINT is ignored by an idle worker and cancels a running guest (`Engine.run` installs the
handler), which is how `Workers.interrupt` stops runs when the server shuts down.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import signal
import sys
import threading
import types
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from cryptography.hazmat.primitives.asymmetric import ec

from wasm_sandbox.errors import CompileError, KeyStoreError, SandboxError
from wasm_sandbox.limits import Grants, Limits
from wasm_sandbox.sandbox import Execution, Sandbox

from .server_request import BadField, parse

_sandbox: Sandbox | None = None  # the worker process's own


class WorkerDied(SandboxError):
    """The worker process carrying out a run ended abruptly (the run is lost, not logged)."""


class Workers:
    """``workers`` processes that each run one request body at a time.

    The processes start with the first run (a server whose REST API is never used starts
    none) and then stay. `run` blocks the calling thread (not holding the GIL) until the
    run's `Execution` comes back; admission control stays with the caller's thread pool.
    """

    def __init__(self, home: str | None, workers: int, nice: int = 0) -> None:
        self._args = (home, nice)
        self._workers = workers
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def run(self, body: bytes, default: Limits, maximum: Limits) -> Execution:
        """Read ``body`` and run it in a worker; raises `BadField`, `SandboxError` or
        `WorkerDied`."""
        executor = self._current()
        try:
            return executor.submit(_run, body, default, maximum).result()
        except BrokenProcessPool:
            with self._lock:
                if self._executor is executor:  # the next run starts a fresh pool
                    self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
            raise WorkerDied("the worker process carrying out this run died") from None

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot run: the workers are closed")
            if self._executor is None:
                self._executor = self._start()
            return self._executor

    def _start(self) -> ProcessPoolExecutor:
        """A new pool with all its processes started at once, each born with SIGINT blocked
        until it ignores it: an interrupt must not kill a process while it starts."""
        executor = ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init,
            initargs=self._args,
        )
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with _main_module_hidden():
                for _ in range(self._workers):  # with none idle yet, each submit starts one
                    executor.submit(int)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return executor

    def pids(self) -> list[int]:
        """The worker processes' ids (none before the first run)."""
        with self._lock:
            executor = self._executor
        return list(getattr(executor, "_processes", None) or {})

    def interrupt(self) -> None:
        """SIGINT to every worker: each running guest ends as ``interrupted``, and is logged."""
        for pid in self.pids():
            with contextlib.suppress(OSError):  # already gone
                os.kill(pid, signal.SIGINT)

    def close(self) -> None:
        """Wait for the runs in progress (`interrupt` them first to hurry) and stop."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """While processes spawn, a blank ``__main__``: a spawned child re-runs the parent's main
    script otherwise, which under ``jupyter lab`` imports all of JupyterLab (seconds and
    about 50 MB per worker, for nothing: the workers need only this module)."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _init(home: str | None, nice: int) -> None:
    """Worker start: ignore SIGINT while idle, lower the priority, open the sandbox."""
    global _sandbox
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if nice > 0:
        os.nice(nice)
    _sandbox = Sandbox(home=home)


def _run(body: bytes, default: Limits, maximum: Limits) -> Execution:
    """In a worker: read a ``POST executions`` body, run it, return the logged `Execution`.

    Raises `BadField` for a body, limit or WAT source that is wrong (nothing logged). A run
    that was logged as status ``error`` (a missing export, arguments that do not fit) is
    returned like any other result.
    """
    sandbox = _sandbox
    assert sandbox is not None, "worker not initialized"
    request = parse(body, functools.partial(_private_key, sandbox))
    limits = request.limits_within(default, maximum)
    try:
        return sandbox.run(
            request.program,
            lang=request.lang,
            invoke=request.invoke,
            args=request.args,
            limits=limits,
            grants=Grants(argv=request.argv, deterministic=request.deterministic),
            stdin=request.stdin,
            recipient=request.recipient,
        )
    except SandboxError as exc:
        execution = getattr(exc, "execution", None)
        if execution is not None:  # logged as status "error": a result, not a failure
            return execution  # type: ignore[no-any-return]
        if isinstance(exc, CompileError):  # never became a module: nothing was logged
            where = {"line": exc.line, "column": exc.column}
            raise BadField(request.source_field, str(exc), **where) from None
        raise


def _private_key(sandbox: Sandbox) -> ec.EllipticCurvePrivateKey:
    """The key that opens sealed programs, or `BadField` when this home has none."""
    try:
        if not sandbox.keys.has_private_key:
            raise KeyStoreError("this home seals to an imported key it cannot open")
        return sandbox.keys.recipient_private_key()
    except KeyStoreError as exc:
        message = f"this server cannot open sealed programs ({exc})"
        raise BadField("sealed_program", message) from None
