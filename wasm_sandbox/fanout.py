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
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .engine import Compiled, Engine
from .isolation import Isolation
from .limits import Grants, Limits
from .outcome import ERROR, Outcome
from .pool import WorkerPool

if TYPE_CHECKING:
    from .sandbox import Execution, Sandbox, Source

_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Job:
    """One guest to run: picklable, so it can travel to another process or machine."""

    wasm: bytes
    invoke: str | None
    args: tuple[Any, ...]
    limits: Limits
    grants: Grants
    error: str | None = None  # the source did not compile: nothing to run
    lang: str = "wasm"  # what the bytes were compiled from, and that text (sealed as `source`)
    text: str | None = None


def execute(job: Job, runner: Isolation | None = None) -> Outcome:
    """Run one job with ``runner`` (a sandbox's) or this process's engine (created on first
    use). Never raises for guest or input problems: they come back as an ``error`` Outcome."""
    if job.error is not None:
        return _failed(job, job.error)
    runner = runner or Isolation(_process_engine(), WorkerPool(None))
    try:
        return runner.run(
            job.wasm,
            invoke=job.invoke,
            args=job.args,
            limits=job.limits,
            grants=job.grants,
        )
    except Exception as exc:  # a SandboxError, or anything the transport raised
        return _failed(job, str(exc))


def _process_engine() -> Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine()
        return _ENGINE


def _failed(job: Job, message: str) -> Outcome:
    return Outcome(
        status=ERROR, message=message, fuel_limit=job.limits.fuel, memory_limit=job.limits.memory
    )


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


def run_many(
    sandbox: Sandbox,
    source: Source | Compiled,
    inputs: Iterable[Sequence[Any]],
    *,
    invoke: str | None = None,
    limits: Limits | None = None,
    grants: Grants | None = None,
    lang: str | None = None,
    executor: Executor | None = None,
    progress: bool | Callable[[int, int], None] = True,
    recipient: Any = None,
    isolation: str | None = None,
) -> Batch:
    """Run one program once per argument tuple in ``inputs``; see `Sandbox.map`."""
    limits, grants = limits or Limits(), grants or Grants()
    program = _compiled_job(sandbox, source, Job(b"", invoke, (), limits, grants), lang)
    jobs = [replace(program, args=tuple(args)) for args in inputs]
    return _run_jobs(sandbox, jobs, executor, progress, recipient, isolation)


def run_programs(
    sandbox: Sandbox,
    sources: Iterable[Source | Compiled],
    args: Sequence[Any] = (),
    *,
    invoke: str | None = None,
    limits: Limits | None = None,
    grants: Grants | None = None,
    executor: Executor | None = None,
    progress: bool | Callable[[int, int], None] = True,
    recipient: Any = None,
    isolation: str | None = None,
) -> Batch:
    """Run many programs with the same arguments (a class's submissions, say).

    A source that does not compile becomes an ``error`` run in the log, not an exception.
    """
    limits, grants = limits or Limits(), grants or Grants()
    jobs = [
        _job_or_error(sandbox, s, Job(b"", invoke, tuple(args), limits, grants)) for s in sources
    ]
    return _run_jobs(sandbox, jobs, executor, progress, recipient, isolation)


def _compiled_job(
    sandbox: Sandbox, source: Source | Compiled, job: Job, lang: str | None = None
) -> Job:
    """``job`` with the bytes of ``source``, its language and text (as `Sandbox.run` seals
    them); raises `CompileError` for source that never became wasm."""
    if isinstance(source, Compiled):
        return replace(job, wasm=source.wasm)
    program = sandbox.load(source, lang)
    return replace(job, wasm=program.wasm, lang=program.lang, text=program.text)


def _job_or_error(sandbox: Sandbox, source: Source | Compiled, job: Job) -> Job:
    """The job for ``source``; one that does not compile carries its raw bytes and error."""
    from .errors import CompileError

    try:
        return _compiled_job(sandbox, source, job)
    except CompileError as exc:
        raw = source if isinstance(source, bytes) else _raw(source)
        return replace(job, wasm=raw, error=str(exc))


def _raw(source: Any) -> bytes:
    from .errors import CompileError
    from .sources import read_regular_file

    if isinstance(source, str) and not os.path.exists(source):
        return source.encode()
    try:  # never blocks: a FIFO or /dev/zero among the files is refused, not read
        return read_regular_file(Path(source))
    except (CompileError, TypeError):
        return str(source).encode()


def _run_jobs(
    sandbox: Sandbox,
    jobs: list[Job],
    executor: Executor | None,
    progress: bool | Callable[[int, int], None],
    recipient: Any = None,
    isolation: str | None = None,
) -> Batch:
    owned = executor is None
    pool = executor or ThreadPoolExecutor(
        max_workers=os.cpu_count() or 2, thread_name_prefix="wasm-sandbox-batch"
    )
    # Our own threads share the sandbox's engine (and its module cache); another
    # executor's workers may be other processes or machines, with engines of their own.
    run = functools.partial(execute, runner=sandbox.runner(isolation)) if owned else execute
    report = _progress(len(jobs)) if progress is True else (progress or None)
    results: list[Execution | None] = [None] * len(jobs)
    try:
        futures: dict[Future[Outcome], int] = {
            pool.submit(run, job): i for i, job in enumerate(jobs)
        }
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            job = jobs[i]
            outcome = future.result()
            results[i] = sandbox.seal(
                job.wasm, job.invoke, job.args, job.limits, job.grants, outcome, recipient,
                job.lang, source=job.text,
            )  # fmt: skip
            if report:
                report(done, len(jobs))
    finally:
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)
        if report and hasattr(report, "close"):
            report.close()
    return Batch(cast("list[Execution]", results))  # the loop filled every slot or raised


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
