"""A batch run *and sealed* in the sandbox's warm worker processes; the caller only appends.

For trivial guests a run's cost is mostly Python (sealing, building the record), which
threads cannot share out under one GIL. So `run` hands `Chunk`s of portable jobs to the
workers of the sandbox's `wasm_sandbox.pool.WorkerPool` (fresh interpreters started with
``subprocess``, never forked from this one). A worker runs each job, seals it to the
recipient's *public* key (`wasm_sandbox.sealing`) and sends the `Sealed` run back at once;
the caller appends whatever has arrived as one group (`Sandbox.append`: one transaction,
one checkpoint). The private key never leaves the caller. With no idle worker the caller runs
one job itself: a guest of `THREADS_SCALE` seconds or more hands the batch back (`fanout` runs
it on threads, which scale for such guests) and no worker is started; otherwise the missing
workers start in the background (`WorkerPool.warm_soon`) and the caller runs jobs until one
is ready. A batch no worker can come to is handed back too.

What can go wrong, per run, while the batch goes on:

* a worker that dies: the run it was on is ``crashed`` (the signal, how long it ran, its
  first line on stderr), the rest of its chunk goes to the other workers, and a new worker
  takes its place;
* a worker still busy on one run ``2 * timeout + GRACE`` seconds after it began (a compile
  and a guest, each within the timeout): killed, that run is ``timeout``;
* an interrupt (``KeyboardInterrupt``) or any other error: the busy workers are killed,
  what was appended stays logged, the runs in flight are not.

Chunks shrink as the batch nears its end (guided scheduling) so that no worker idles long
while another finishes a big one; a worker gets its next small chunk before it finishes the
current one, so it never waits for the caller.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from . import sealing
from .engine import Compiled, Engine
from .envelope import load_public_der, public_der
from .errors import SandboxError
from .isolation import COMPILE_MEMORY, Isolation
from .job import Job, run_anywhere
from .limits import Limits
from .outcome import INTERRUPTED, Outcome
from .pool import GRACE, Worker, WorkerPool, lost
from .worker import data_capped

if TYPE_CHECKING:
    from .sandbox import Sandbox

#: Fewest runs a batch needs to go to worker processes (below: threads, see `fanout`).
MIN_RUNS = 32
#: Largest program sent to worker processes (larger ones, interpreters, go to threads).
MAX_PROGRAM = 1 << 20
MIN_CHUNK, MAX_CHUNK = 4, 64
#: Runs appended in one transaction at most, and the longest the first of them waits for
#: the others: a group of 64 costs the caller about a third of what a run alone costs.
GROUP, GROUP_WAIT = 64, 0.05
#: A guest that runs this many seconds makes sealing a small part of a run: threads scale
#: then, so a batch whose workers are still starting runs on threads instead of waiting.
THREADS_SCALE = 0.005
#: A chunk pickled to at most this many bytes is sent before its worker is free (it fits
#: in the socket's buffer, so sending it never blocks).
AHEAD_BYTES = 64 << 10

Logged = Callable[[list[tuple[int, sealing.Sealed]]], None]


@dataclass(frozen=True)
class Chunk:
    """What one worker runs and seals, in order: portable jobs, each with its recipient's
    public key (DER) and its program's content keys (`sealing.content_keys`: not the home's
    content secret); ``cwd`` is the caller's working directory (relative grants)."""

    jobs: tuple[tuple[Job, bytes, dict[str, bytes]], ...]
    cwd: str


def suits(jobs: Sequence[Job]) -> bool:
    """Whether worker processes can help: at least `MIN_RUNS` runs, more than one core,
    and programs of at most `MAX_PROGRAM` bytes."""
    return (
        len(jobs) >= MIN_RUNS
        and cores() > 1
        and all(len(j.program.wasm) <= MAX_PROGRAM for j in jobs)
    )


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def serve(conn: Connection, engine: Engine, chunk: Chunk) -> tuple[str, Any]:
    """The worker's side (`wasm_sandbox.worker`): say ``("started", None)`` (this module's
    imports are done: the first run's clock starts), run and seal each job, sending
    ``("sealed", Sealed)`` after each; the reply is ``("done", retire)``, where ``retire``
    says a guest thread stays blocked here (abandoned in a host call)."""
    conn.send(("started", None))
    if os.getcwd() != chunk.cwd:
        os.chdir(chunk.cwd)
    runner, abandoned = _CappedCompile(engine, WorkerPool(None)), engine.abandoned
    keys: dict[bytes, ec.EllipticCurvePublicKey] = {}
    for job, der, content in chunk.jobs:
        public = keys.get(der) or keys.setdefault(der, load_public_der(der))
        ran = run_anywhere(job, runner)
        conn.send(("sealed", sealing.seal(job, ran.outcome, public, ran.error, content)))
    return ("done", engine.abandoned != abandoned)


class _CappedCompile(Isolation):
    """The in-process runner of a worker, whose compiles of modules it does not know yet
    run under the data-segment cap (a compile that grows past it aborts the worker only)."""

    def compile(self, wasm: bytes, limits: Limits | None = None) -> Compiled | Outcome:
        if self.engine.knows(wasm):
            return self.engine.compile(wasm)
        with data_capped(COMPILE_MEMORY):
            return self.engine.compile(wasm)


@dataclass
class _Lane:
    """One worker of the batch: the job indices it was sent and has not answered yet."""

    worker: Worker
    sent: deque[int] = field(default_factory=deque)
    chunks: int = 0  # sent, not answered "done"
    since: float = 0.0  # when the run at sent[0] began, about
    retire: bool = False

    @property
    def conn(self) -> Connection:
        return self.worker.conn


class _Batch:
    """The caller's side of one batch: lanes, jobs not yet sent, what came back."""

    def __init__(self, sandbox: Sandbox, jobs: Sequence[Job], logged: Logged) -> None:
        self.sandbox, self.jobs, self.logged, self.pool = sandbox, jobs, logged, sandbox.pool
        self.todo: deque[int] = deque(range(len(jobs)))
        self.lanes: list[_Lane] = []
        self.wanted = min(cores(), math.ceil(len(jobs) / MIN_CHUNK))
        self.left = len(jobs)
        self.cwd = os.getcwd()
        self.keys = [j.options.recipient or sandbox.keys.recipient_public_key() for j in jobs]
        self._secret = sandbox.keys.content_secret()
        self._der: dict[int, bytes] = {}  # by id() of a key in self.keys
        self._content: dict[tuple[int, int], dict[str, bytes]] = {}  # by id() of program, key
        self.failure: BaseException | None = None
        self._held: tuple[list[int], bytes] | None = None  # a chunk too big to send ahead
        self._long = False  # the first runs here showed guests long enough for threads

    def run(self) -> list[int]:
        """Take the pool's idle workers (starting what is missing), running jobs here until
        there is one; append what came back in groups of up to `GROUP` runs (the first
        waiting at most `GROUP_WAIT` seconds). The jobs left for threads: when no worker
        is (or is left, or is coming) to run them, or, on a cold pool, the first runs here
        showed guests of `THREADS_SCALE` seconds or more (then no worker is started)."""
        self.lanes += (_Lane(w) for w in self.pool.take_idle(self.wanted))
        group = [] if self.lanes else self._probe()
        since = time.monotonic()
        if not self._long:
            self.pool.warm_soon(self.wanted - len(self.lanes), _preload)
        try:
            while self.left:
                stuck = not self._take_workers() or (self._long and not self.lanes)
                got = (
                    []
                    if stuck
                    else self._step(GROUP_WAIT - (time.monotonic() - since) if group else None)
                )
                if got and not group:
                    since = time.monotonic()
                group += got
                full = len(group) >= min(GROUP, self.left) or self.failure is not None or stuck
                if group and (full or time.monotonic() - since >= GROUP_WAIT):
                    self.logged(group)
                    self.left -= len(group)
                    group = []
                if self.failure is not None:
                    raise self.failure
                if stuck:
                    return list(self.todo)
            self._settle()
        finally:
            for lane in self.lanes:
                busy = lane.chunks or lane.sent or lane.retire
                (self.pool.drop if busy else self.pool.release)(lane.worker)
        return []

    def _take_workers(self) -> bool:
        """Lanes for the pool's idle workers, up to `wanted`; False when there is none
        and none is coming."""
        if len(self.lanes) >= self.wanted:
            return True
        coming = self.pool.starting > 0
        self.lanes += (_Lane(w) for w in self.pool.take_idle(self.wanted - len(self.lanes)))
        return bool(self.lanes) or coming

    def _step(self, wait_for: float | None) -> list[tuple[int, sealing.Sealed]]:
        """One run here while no worker is ready; else feed the workers and collect."""
        if not self.lanes:
            return [self._here(self.todo.popleft())] if self.todo else []
        self._feed()
        return list(self._collect(wait_for))

    def _here(self, i: int) -> tuple[int, sealing.Sealed]:
        """Run and seal job ``i`` here; SIGINT meanwhile interrupts the guest (it is
        logged as ``interrupted``) and then the batch (`KeyboardInterrupt`)."""
        job = self.jobs[i]
        ran = run_anywhere(job, self.sandbox.runner(job.options.isolation))
        if ran.outcome.status == INTERRUPTED:
            self.failure = self.failure or KeyboardInterrupt()
        return i, self._seal(i, ran.outcome, ran.error)

    def _probe(self) -> list[tuple[int, sealing.Sealed]]:
        """One run here, and a second when it was long (a single run can be slowed by the
        machine's other work): whether guests are long enough for threads (`_long`)."""
        runs = [self._here(self.todo.popleft())]
        if _long_run(runs[0]) and self.todo:
            runs.append(self._here(self.todo.popleft()))
        self._long = all(_long_run(run) for run in runs)
        return runs

    def _settle(self) -> None:
        """Read the last chunks' ``done`` (sent right after their last run), so their
        workers go back to the pool warm."""
        for lane in self.lanes:
            while lane.chunks and not lane.sent and lane.conn.poll(GRACE):
                list(self._drain(lane))

    def _feed(self) -> None:
        """Give each lane a chunk when it has none, and one ahead of its current when that
        one is small; a big one is held for the next lane that is free."""
        for lane in list(self.lanes):
            while not lane.retire and lane.chunks < 2:
                order = self._held or self._next()
                if order is None:
                    break
                if lane.chunks and len(order[1]) > AHEAD_BYTES:
                    self._held = order
                    break
                self._held = None
                self._send(lane, *order)

    def _next(self) -> tuple[list[int], bytes] | None:
        """The next chunk's job indices and its pickled `Chunk`; None when none is left."""
        if not self.todo:
            return None
        size = _clamp(math.ceil(len(self.todo) / (3 * len(self.lanes))))
        indices = [self.todo.popleft() for _ in range(min(len(self.todo), size))]
        chunk = Chunk(
            tuple(
                (self.jobs[i].portable(), self._public(i), self._content_keys(i)) for i in indices
            ),
            self.cwd,
        )
        return indices, pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL)

    def _send(self, lane: _Lane, indices: list[int], data: bytes) -> None:
        """Send a chunk; a worker found dead is replaced (or, with runs in flight, left for
        `_collect` to find and report), and the chunk goes back to the queue."""
        try:
            lane.worker.send(data)
        except OSError:
            self.todo.extendleft(reversed(indices))
            lane.retire = True
            if not lane.chunks:
                self._replace(lane)
            return
        if not lane.chunks:
            lane.since = time.monotonic()
        lane.sent.extend(indices)
        lane.chunks += 1

    def _public(self, i: int) -> bytes:
        key = self.keys[i]
        der = self._der.get(id(key))
        if der is None:
            der = self._der[id(key)] = public_der(key)
        return der

    def _content_keys(self, i: int) -> dict[str, bytes]:
        """Job ``i``'s content keys, derived once per program and recipient."""
        job, key = self.jobs[i], self.keys[i]
        ids = (id(job.program), id(key))
        keys = self._content.get(ids)
        if keys is None:
            keys = self._content[ids] = sealing.content_keys(job, key, self._secret)
        return keys

    def _seal(self, i: int, outcome: Outcome, error: SandboxError | None = None) -> sealing.Sealed:
        """Seal job ``i`` here (a run made here, or one a worker lost)."""
        return sealing.seal(self.jobs[i], outcome, self.keys[i], error, self._content_keys(i))

    def _collect(self, at_most: float | None) -> Iterator[tuple[int, sealing.Sealed]]:
        """Everything the workers have sent by now (waiting for the first, ``at_most``
        seconds if given), and the runs of workers that died or overstayed, sealed here."""
        busy = [lane for lane in self.lanes if lane.chunks]
        timeout = self._wait_time(busy)
        if at_most is not None:
            timeout = max(0.0, min(timeout, at_most))
        ready = wait([lane.conn for lane in busy], timeout=timeout)
        for lane in busy:
            if lane.conn in ready:
                yield from self._drain(lane)
        now = time.monotonic()
        for lane in [ln for ln in self.lanes if ln.sent and now > self._deadline(ln)]:
            yield from self._lost(lane, overstayed=True)

    def _drain(self, lane: _Lane) -> Iterator[tuple[int, sealing.Sealed]]:
        try:
            while True:
                kind, value = lane.conn.recv()
                if kind == "sealed":
                    yield lane.sent.popleft(), value
                    lane.since = time.monotonic()
                elif kind == "started":
                    lane.since = time.monotonic()
                elif kind == "done":
                    lane.chunks -= 1
                    lane.retire = lane.retire or bool(value)
                    if lane.retire and not lane.chunks:
                        self._replace(lane)
                        return
                else:  # "raise": sealing failed, or a bug in the worker
                    lane.chunks -= 1
                    self.failure = self.failure or value
                if not lane.chunks or not lane.conn.poll():
                    return
        except (EOFError, OSError):
            yield from self._lost(lane, overstayed=False)

    def _lost(self, lane: _Lane, *, overstayed: bool) -> Iterator[tuple[int, sealing.Sealed]]:
        """The run ``lane`` was on (if any), ``crashed`` or ``timeout``, sealed here; the
        rest of its jobs go back to the queue and a new worker replaces it."""
        if lane.sent:
            i = lane.sent.popleft()
            job = self.jobs[i]
            outcome = lost(lane.worker, job.options.limits, lane.since, overstayed=overstayed)
            yield i, self._seal(i, outcome)
        self.todo.extendleft(reversed(lane.sent))
        self._replace(lane)

    def _replace(self, lane: _Lane) -> None:
        """Drop ``lane``'s worker and start another (`_take_workers` takes it when ready)."""
        self.pool.drop(lane.worker)
        self.lanes.remove(lane)
        self.pool.warm_soon(self.wanted - len(self.lanes), _preload)

    def _deadline(self, lane: _Lane) -> float:
        return lane.since + 2 * self.jobs[lane.sent[0]].options.limits.timeout + GRACE

    def _wait_time(self, busy: list[_Lane]) -> float:
        deadlines = [self._deadline(lane) for lane in busy if lane.sent]
        return max(0.0, min(deadlines, default=time.monotonic() + 1) - time.monotonic())


def _preload(workers: list[Worker]) -> None:
    """Have new workers import what serving a chunk needs (an empty chunk each), before a
    batch waits on them."""
    empty = pickle.dumps(Chunk((), os.getcwd()), pickle.HIGHEST_PROTOCOL)
    for worker in workers:
        worker.send(empty)
    for worker in workers:
        while worker.conn.recv()[0] == "started":
            pass


def _long_run(run: tuple[int, sealing.Sealed]) -> bool:
    return run[1].outcome.duration_ms >= THREADS_SCALE * 1000


def _clamp(size: int) -> int:
    return max(MIN_CHUNK, min(MAX_CHUNK, size))


def run(sandbox: Sandbox, jobs: Sequence[Job], logged: Logged) -> list[int]:
    """Run and seal ``jobs`` in the sandbox's worker processes (and here, until one is
    ready), calling ``logged`` with each group of ``(index, Sealed)``; the indices of the
    jobs left undone because no worker process could start (or none is left)."""
    return _Batch(sandbox, jobs, logged).run()
