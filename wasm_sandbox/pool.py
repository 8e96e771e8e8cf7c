"""A pool of warm worker processes (`wasm_sandbox.worker`) and the parent's side of a job.

`WorkerPool.execute` hands a `Job` to a worker of its own, relays its fuel progress and
interrupts, and enforces the deadlines from outside: the compile gets the run's timeout,
then the guest gets its timeout, and a worker still busy `GRACE` seconds past either is
killed (SIGKILL) and replaced (``compile_limit`` or ``timeout``). A worker that dies on its
own is ``crashed``, with the signal or exit code, how long it ran and the first line it
wrote to stderr. Workers are started from one long-lived thread of the pool.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from . import outcome as st
from .errors import SandboxError, WorkerError
from .limits import Limits
from .outcome import Outcome
from .threads import sigint_cancels
from .worker import KEEP_IDLE, Job

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

#: Seconds a worker may overstay a deadline before it is killed.
GRACE = 1.0
_POLL = 0.1
_START_TIMEOUT = 60.0
_WORKER_MAIN = (
    "import sys; from wasm_sandbox.worker import main; "
    "main(*map(int, sys.argv[1:4]), sys.argv[4], int(sys.argv[5]))"
)


@dataclass
class _Watch:
    """The parent's view of one job in flight."""

    job: Job
    phase: str = "compile"
    started: float = field(default_factory=time.monotonic)
    fuel_used: int = 0
    failure: Exception | None = None
    lost: bool = False  # the worker was killed or died

    def deadline(self, since: float) -> float:
        return since + self.job.limits.timeout + GRACE


class WorkerPool:
    """Warm worker processes, started on demand and kept (up to ``keep`` idle).

    Thread-safe: each `execute` takes a worker of its own. Workers are started from one
    long-lived thread, because ``PR_SET_PDEATHSIG`` fires when the *thread* that started a
    child ends, and the callers' threads (a batch's pool) come and go.
    """

    def __init__(self, cache_dir: Path | None, *, keep: int = KEEP_IDLE, nice: int = 0) -> None:
        self.cache_dir, self._keep, self._nice = cache_dir, keep, nice
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._spawner: _Spawner | None = None
        self._starting = 0  # workers being started by `warm_soon`

    def warm(self, count: int) -> None:
        """Start workers until ``count`` are idle."""
        for worker in self._spawn(max(0, count - len(self._idle))):
            self.release(worker)

    def warm_soon(self, count: int, prepare: Callable[[list[Worker]], None] | None = None) -> None:
        """Start workers in the background until ``count`` are idle or starting; each
        joins the idle ones (`take_idle`) once it has said hello and ``prepare`` (which
        may raise `WorkerError`, ``EOFError`` or ``OSError``: they are dropped then) has
        returned for it."""
        with self._lock:
            missing = 0 if self._closed else count - len(self._idle) - self._starting
            if missing <= 0:
                return
            self._starting += missing
        threading.Thread(
            target=self._warm_in_background,
            args=(missing, prepare),
            name="wasm-sandbox-warm",
            daemon=True,
        ).start()

    def _warm_in_background(
        self, count: int, prepare: Callable[[list[Worker]], None] | None
    ) -> None:
        workers: list[Worker] = []
        try:
            workers = self._spawn(count)
            if prepare is not None:
                prepare(workers)
            for worker in workers:
                self.release(worker)
        except (WorkerError, EOFError, OSError):
            for worker in workers:  # `starting` drops with no idle one: waiters see none come
                worker.kill()
        finally:
            with self._lock:
                self._starting -= count

    @property
    def starting(self) -> int:
        """Workers `warm_soon` is starting now."""
        with self._lock:
            return self._starting

    def take_idle(self, count: int) -> list[Worker]:
        """Up to ``count`` idle workers, now (never starts one), for the caller's own; give
        each back with `release` (or `drop` once it is lost or killed)."""
        with self._lock:
            taken: list[Worker] = []
            while self._idle and len(taken) < count:
                worker = self._idle.pop()
                if worker.alive():
                    taken.append(worker)
                else:
                    worker.kill()
            self._busy.update(taken)
            return taken

    def pids(self) -> list[int]:
        """Process ids of the workers, idle and busy."""
        with self._lock:
            return [w.pid for w in (*self._idle, *self._busy)]

    def interrupt(self) -> None:
        """Interrupt every run in flight: each ends as ``interrupted`` (a compile, which
        cannot be cancelled, by killing its worker)."""
        with self._lock:
            busy = list(self._busy)
        for worker in busy:
            worker.interrupted = True
            worker.signal(signal.SIGINT)

    def execute(
        self,
        job: Job,
        *,
        cancel: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Outcome | None:
        """Carry out ``job`` in a worker: its `Outcome` (None for a compile that succeeded),
        or the `SandboxError` it raised. Never raises for a worker that died or overstayed."""
        worker = self.acquire()
        watch = _Watch(job)  # the deadlines start once a worker has the job
        stop = threading.Event()
        with sigint_cancels(stop.set):
            try:
                result = self._follow(worker, watch, _either(stop, cancel), progress)
            except BaseException:
                worker.kill()
                self.drop(worker)
                raise
        if watch.lost:
            self.drop(worker)
        else:
            self.release(worker)
        if watch.failure is not None:
            raise watch.failure
        if isinstance(result, SandboxError):
            raise result
        return result

    def _follow(
        self,
        worker: Worker,
        watch: _Watch,
        stopped: Callable[[], bool],
        progress: Callable[[int], None] | None,
    ) -> Outcome | SandboxError | None:
        """Send the job, relay progress, enforce the deadlines; the worker's answer."""
        deadline = watch.deadline(watch.started)
        interrupted_at = 0.0
        try:
            worker.send(watch.job)
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return _overstayed(worker, watch)
                stopping = stopped() or watch.failure is not None or worker.interrupted
                if stopping and watch.phase == "compile":
                    return _interrupted(worker, watch)
                if stopping and now - interrupted_at >= _POLL:
                    worker.signal(signal.SIGINT)  # again until it lands: idle ignores it
                    interrupted_at = now
                if not worker.conn.poll(min(deadline - now, _POLL)):
                    continue
                kind, value = worker.conn.recv()
                if kind == "progress":
                    watch.fuel_used = value
                    _report(progress, value, watch)
                elif kind == "retire":
                    watch.lost = True
                elif kind == "compiled":
                    watch.phase = "run"
                    deadline = watch.deadline(time.monotonic())
                else:  # "done" or "raise": the answer of worker._serve
                    return cast("Outcome | SandboxError | None", value)
        except (EOFError, OSError):
            return _died(worker, watch)

    def acquire(self) -> Worker:
        """A worker of the caller's own (an idle one, else a new one); give it back with
        `release` (or `drop` once it is lost or killed). Raises `WorkerError`."""
        with self._lock:
            if self._closed:
                raise WorkerError("cannot run: the sandbox's worker processes are closed")
        taken = self.take_idle(1) or self._spawn(1)
        with self._lock:
            self._busy.update(taken)
        return taken[0]

    def _spawn(self, count: int) -> list[Worker]:
        with self._lock:
            if self._closed:
                raise WorkerError(
                    "cannot start a worker: the sandbox's worker processes are closed"
                )
            if self._spawner is None:
                self._spawner = _Spawner()
            spawner = self._spawner
        return spawner.start(self.cache_dir, self._nice, count)

    def release(self, worker: Worker) -> None:
        """Keep ``worker`` idle for the next caller (or stop it beyond ``keep`` idle)."""
        with self._lock:
            self._busy.discard(worker)
            keep = not self._closed and len(self._idle) < self._keep
            if keep:
                self._idle.append(worker)
        if not keep:
            worker.kill()
        self._stop_spawner_when_done()

    def drop(self, worker: Worker) -> None:
        """Kill ``worker`` and forget it."""
        with self._lock:
            self._busy.discard(worker)
        worker.kill()
        self._stop_spawner_when_done()

    def close(self) -> None:
        """Stop the idle workers now and each busy one when its run ends; idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()
        self._stop_spawner_when_done()

    def _stop_spawner_when_done(self) -> None:
        """Once closed with no run in flight: its end would SIGKILL busy workers (their
        parent-death signal follows the thread that started them)."""
        with self._lock:
            if not self._closed or self._busy or self._spawner is None:
                return
            spawner, self._spawner = self._spawner, None
        spawner.close()


def _either(stop: threading.Event, cancel: threading.Event | None) -> Callable[[], bool]:
    return lambda: stop.is_set() or (cancel is not None and cancel.is_set())


def _report(progress: Callable[[int], None] | None, fuel: int, watch: _Watch) -> None:
    """A failing ``progress`` callback stops the guest; its error is raised at the end."""
    if progress is None or watch.failure is not None:
        return
    try:
        progress(fuel)
    except Exception as exc:
        watch.failure = exc


def lost(worker: Worker, limits: Limits, started: float, *, overstayed: bool) -> Outcome:
    """The outcome of a guest started at ``started`` (monotonic) whose worker died on its
    own (``crashed``) or overstayed its deadline and is killed now (``timeout``)."""
    watch = _Watch(Job(b"", limits, 0), phase="run", started=started)
    return _overstayed(worker, watch) if overstayed else _died(worker, watch)


def _overstayed(worker: Worker, watch: _Watch) -> Outcome:
    """Kill a worker past its deadline plus `GRACE`: ``compile_limit`` or ``timeout``."""
    worker.kill()
    watch.lost = True
    limits = watch.job.limits
    if watch.phase == "compile":
        return _failed(
            watch,
            st.COMPILE_LIMIT,
            f"compilation did not finish within the {limits.timeout:g} s timeout "
            f"(+{GRACE:g} s grace); its worker process was killed",
        )
    return _failed(
        watch,
        st.TIMEOUT,
        f"stopped after the {limits.timeout:g} s timeout: the guest did not stop within "
        f"{GRACE:g} s more (blocked in a host call), so its worker process was killed",
    )


def _died(worker: Worker, watch: _Watch) -> Outcome:
    """A worker that died on its own: ``crashed`` (or ``compile_limit`` for a compile
    that aborted, as one that reaches its memory cap does)."""
    how = worker.exit_description()
    watch.lost = True
    ran = time.monotonic() - watch.started
    said = worker.last_words()
    if watch.phase == "compile" and how.endswith("SIGABRT"):  # Rust aborts when out of memory
        return _failed(
            watch,
            st.COMPILE_LIMIT,
            f"compilation aborted after {ran:.2f} s, most likely at its "
            f"{watch.job.compile_memory >> 20} MiB memory cap ({said or how})",
        )
    detail = f" ({said})" if said else ""
    return _failed(
        watch,
        st.CRASHED,
        f"the worker process {how} after {ran:.2f} s while {_doing(watch)}{detail}",
    )


def _interrupted(worker: Worker, watch: _Watch) -> Outcome:
    """An interrupt while compiling: a compile cannot be cancelled, so its worker is killed."""
    worker.kill()
    watch.lost = True
    return _failed(watch, st.INTERRUPTED, "interrupted while compiling the module")


def _doing(watch: _Watch) -> str:
    return "compiling the module" if watch.phase == "compile" else "running the guest"


def _failed(watch: _Watch, status: str, message: str) -> Outcome:
    limits = watch.job.limits
    return Outcome(
        status=status,
        message=message,
        fuel_used=watch.fuel_used,
        fuel_limit=limits.fuel,
        memory_limit=limits.memory,
        duration_ms=(time.monotonic() - watch.started) * 1000,
    )


class Worker:
    """The parent's handle on one worker process."""

    def __init__(
        self, proc: subprocess.Popen[bytes], conn: Connection, lifeline: int, errors: IO[bytes]
    ) -> None:
        self.proc, self.conn, self._lifeline, self._errors = proc, conn, lifeline, errors
        self.pid = proc.pid
        self._said = 0
        self.interrupted = False  # by `WorkerPool.interrupt`, for the run in flight

    def send(self, job: Job | bytes) -> None:
        """Hand over a job (or a pickled order: `wasm_sandbox.procmap`); what the worker
        writes to stderr from now on is its own."""
        self._said = os.fstat(self._errors.fileno()).st_size
        self.interrupted = False
        if isinstance(job, bytes):
            self.conn.send_bytes(job)
        else:
            self.conn.send(job)

    def last_words(self) -> str:
        """The first line the worker wrote to stderr during this job (a Rust panic, an
        allocation failure), cut to 200 characters."""
        self._errors.seek(self._said)
        lines = self._errors.read(4096).decode("utf-8", "replace").strip().splitlines()
        return lines[0][:200] if lines else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(OSError):
                os.kill(self.pid, signum)

    def exit_description(self) -> str:
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "stopped answering"
        if code < 0:
            return f"was killed by signal {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def kill(self) -> None:
        """SIGKILL, reap, and close the descriptors; idempotent."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self.conn.close()
        self._errors.close()
        with contextlib.suppress(OSError):
            os.close(self._lifeline)


class _Spawner:
    """One daemon thread that starts every worker process of a pool (see `WorkerPool`);
    the callers wait for their hellos, so workers start in parallel."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="wasm-sandbox-spawner", daemon=True)
        self._thread.start()

    def start(self, cache_dir: Path | None, nice: int, count: int) -> list[Worker]:
        answer: queue.SimpleQueue[list[Worker] | BaseException] = queue.SimpleQueue()
        self._requests.put((cache_dir, nice, count, answer))
        try:
            result = answer.get(timeout=_START_TIMEOUT)
        except queue.Empty:  # the spawner was closed meanwhile
            raise WorkerError("no worker process was started (the pool is closing)") from None
        if isinstance(result, BaseException):
            raise result
        try:
            for worker in result:
                _greet(worker)
        except BaseException:
            for worker in result:
                worker.kill()
            raise
        return result

    def _loop(self) -> None:
        while (request := self._requests.get()) is not None:
            cache_dir, nice, count, answer = request
            launched: list[Worker] = []
            try:
                launched += (_launch(cache_dir, nice) for _ in range(count))
            except Exception as exc:
                for worker in launched:
                    worker.kill()
                answer.put(WorkerError(f"cannot start a worker process: {exc}"))
            else:
                answer.put(launched)

    def close(self) -> None:
        self._requests.put(None)


def _launch(cache_dir: Path | None, nice: int) -> Worker:
    """Spawn ``python -c`` running `wasm_sandbox.worker.main` (it says hello: `_greet`)."""
    from multiprocessing.connection import Connection

    ours, theirs = socket.socketpair()
    life_r, life_w = os.pipe()
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["RUST_BACKTRACE"] = "0"
    errors = tempfile.TemporaryFile()  # noqa: SIM115  (the worker owns it: closed in kill)
    argv = [str(theirs.fileno()), str(life_r), str(os.getpid()), str(cache_dir or ""), str(nice)]
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_MAIN, *argv],
            pass_fds=(theirs.fileno(), life_r),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=env,
        )
    finally:
        theirs.close()
        os.close(life_r)
    return Worker(proc, Connection(ours.detach()), life_w, errors)


def _greet(worker: Worker) -> None:
    """Wait for a launched worker's hello; raises `WorkerError` (and kills it) without."""
    if not worker.conn.poll(_START_TIMEOUT):
        worker.kill()
        raise WorkerError("a worker process did not start in time")
    try:
        worker.conn.recv()
    except (EOFError, OSError):
        how = worker.exit_description()
        worker.kill()
        raise WorkerError(f"a worker process {how} while starting") from None
