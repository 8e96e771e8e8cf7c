"""Batch runs over any `concurrent.futures.Executor`: the core of `Sandbox.map`.

The guest runs wherever the executor puts it (a thread here, a Dask worker elsewhere);
sealing and logging happen in the caller, so every record lands in the caller's log.
With no executor a thread pool sized to the cores is used: wasm releases the GIL.

>>> rows = sb.map("fact.wat", [(n,) for n in range(100)], invoke="fact")   # doctest: +SKIP
>>> rows.table()[0]["status"], rows.to_pandas().shape                       # doctest: +SKIP
('ok', (100, 12))
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, cast

from .isolation import Isolation
from .job import Job, Ran, execute, failed

if TYPE_CHECKING:
    from .execution import Execution
    from .sandbox import Sandbox


def run_anywhere(job: Job, runner: Isolation | None = None) -> Ran:
    """`execute`, for an executor's worker: whatever goes wrong there (the transport, a
    grant that a remote machine cannot honour) is that run's ``error``, not the batch's."""
    try:
        return execute(job, runner)
    except Exception as exc:
        return Ran(failed(job.options, str(exc)))


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
    """Execute prepared ``jobs`` on ``executor`` and seal each in the caller, in the
    sandbox's log: the middle step of `Sandbox.run`, fanned out."""
    owned = executor is None
    pool = executor or ThreadPoolExecutor(
        max_workers=os.cpu_count() or 2, thread_name_prefix="wasm-sandbox-batch"
    )
    report = _progress(len(jobs)) if progress is True else (progress or None)
    results: list[Execution | None] = [None] * len(jobs)
    try:
        futures: dict[Future[Ran], int] = {
            pool.submit(_task(sandbox, job, owned), job if owned else job.portable()): i
            for i, job in enumerate(jobs)
        }
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            ran = future.result()
            results[i] = sandbox.seal(jobs[i], ran.outcome, ran.error)
            if report:
                report(done, len(jobs))
    finally:
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)
        if report and hasattr(report, "close"):
            report.close()
    return Batch(cast("list[Execution]", results))  # the loop filled every slot or raised


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
