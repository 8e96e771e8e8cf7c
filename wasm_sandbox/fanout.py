"""Batch runs: the core of `Sandbox.map` and `Sandbox.map_programs`.

Where the runs go:

* by default, a batch of at least `wasm_sandbox.procmap.MIN_RUNS` runs of programs up to
  `wasm_sandbox.procmap.MAX_PROGRAM` bytes, on a machine with more than one core, goes to
  the sandbox's warm worker processes, which run *and seal* each job (to the recipient's
  public key); the caller only appends, in groups (`wasm_sandbox.procmap`). With no idle
  worker, the batch runs one job itself first: a guest of `procmap.THREADS_SCALE` or more
  sends the batch to threads (they scale then); else the workers start in the background
  (about 0.5 s) while the caller runs jobs itself, and later batches find them warm.
* other default batches (few runs, one core, an interpreter's big program, or no worker
  process that can start) run on a thread pool sized to the cores: wasm releases the GIL,
  so guests that run long scale; the caller seals each run.
* ``executor=`` (any `concurrent.futures.Executor`: threads, a ``ProcessPoolExecutor``,
  a Dask ``client.get_executor()``) runs each guest wherever it puts it, as a portable job
  (`Job.portable`); the caller seals each run.

Either way every run is logged in the caller's log, appended in groups of whatever has
finished (one transaction and one checkpoint per group; in durable mode synced before the
batch returns), and the executions come back in input order.

>>> rows = sb.map("fact.wat", [(n,) for n in range(100)], invoke="fact")   # doctest: +SKIP
>>> rows.table()[0]["status"], rows.to_pandas().shape                       # doctest: +SKIP
('ok', (100, 12))
"""

from __future__ import annotations

import functools
import os
import queue
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

from . import procmap, sealing
from .job import Job, Ran, run_anywhere

if TYPE_CHECKING:
    from .execution import Execution
    from .sandbox import Sandbox


class Batch(list["Execution"]):
    """Executions in input order, with tabular views."""

    def table(self) -> list[dict[str, Any]]:
        """One row per run: id, leaf index, status, returns, exit code, fuel, memory, ..."""
        return [_row(ex) for ex in self]

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.table())

    def _repr_html_(self) -> str:
        from html import escape

        rows = self.table()
        if not rows:
            return "<p>empty batch</p>"
        head = "".join(f"<th>{escape(k)}</th>" for k in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in r.values()) + "</tr>"
            for r in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _row(ex: Execution) -> dict[str, Any]:
    o = ex.outcome
    return {
        "id": ex.id,
        "leaf_index": ex.leaf_index,
        "status": o.status,
        "trap": o.trap,
        "returns": list(o.returns),
        "exit_code": o.exit_code,
        "fuel_used": o.fuel_used,
        "memory_bytes": o.memory_bytes,
        "duration_ms": round(o.duration_ms, 3),
        "stdout": o.stdout,
        "stderr": o.stderr,
        "commitment": ex.commitment,
    }


def fan_out(
    sandbox: Sandbox,
    jobs: list[Job],
    executor: Executor | None,
    progress: bool | Callable[[int, int], None],
) -> Batch:
    """Execute prepared ``jobs`` (see the module's docstring for where) and log each in the
    sandbox's log: the middle step of `Sandbox.run`, fanned out."""
    report = _progress(len(jobs)) if progress is True else (progress or None)
    results: list[Execution | None] = [None] * len(jobs)
    done = 0

    def logged(group: list[tuple[int, sealing.Sealed]]) -> None:
        nonlocal done
        for (i, _), ex in zip(group, sandbox.append([s for _, s in group]), strict=True):
            results[i] = ex
        if report:
            for count in range(done + 1, done + len(group) + 1):
                report(count, len(jobs))
        done += len(group)

    try:
        in_processes = executor is None and procmap.suits(jobs)
        left = procmap.run(sandbox, jobs, logged) if in_processes else list(range(len(jobs)))
        if left:  # all of them, or those no worker process could take

            def logged_left(group: list[tuple[int, sealing.Sealed]]) -> None:
                logged([(left[k], run) for k, run in group])

            _on_executor(sandbox, [jobs[i] for i in left], executor, logged_left)
    finally:
        if report and hasattr(report, "close"):
            report.close()
    return Batch(cast("list[Execution]", results))  # every slot was filled, or it raised


def _on_executor(
    sandbox: Sandbox, jobs: list[Job], executor: Executor | None, logged: procmap.Logged
) -> None:
    """Run the guests on ``executor`` (default: threads), seal each here, and log what has
    finished in groups."""
    owned = executor is None
    pool = executor or ThreadPoolExecutor(
        max_workers=os.cpu_count() or 2, thread_name_prefix="wasm-sandbox-batch"
    )
    finished: queue.SimpleQueue[tuple[int, Future[Ran]]] = queue.SimpleQueue()
    try:
        for i, job in enumerate(jobs):
            future = pool.submit(_task(sandbox, job, owned), job if owned else job.portable())
            future.add_done_callback(functools.partial(lambda i, f: finished.put((i, f)), i))
        left = len(jobs)
        while left:
            group = [finished.get()]
            while not finished.empty():
                group.append(finished.get())
            sealed = []
            for i, future in group:
                ran = future.result()
                sealed.append((i, sandbox.sealed(jobs[i], ran.outcome, ran.error)))
            logged(sealed)
            left -= len(group)
    finally:
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)


def _task(sandbox: Sandbox, job: Job, owned: bool) -> Callable[[Job], Ran]:
    """What runs ``job``. Our own threads share the sandbox's runner (and its module
    cache); another executor's workers may be other processes or machines, with engines
    of their own (they get the job's portable copy)."""
    if owned:
        return functools.partial(run_anywhere, runner=sandbox.runner(job.options.isolation))
    return run_anywhere


def _progress(total: int) -> Callable[[int, int], None] | None:
    """A tqdm bar (a widget in notebooks, a line on a terminal), if tqdm is installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextProgress(total) if sys.stderr.isatty() else None
    bar = tqdm(total=total, desc="wasm runs", unit="run")

    class Bar:
        def __call__(self, done: int, _total: int) -> None:
            bar.update(done - bar.n)

        def close(self) -> None:
            bar.close()

    return Bar()


class _TextProgress:
    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\rwasm runs: {done}/{total}", end=end, file=sys.stderr, flush=True)
