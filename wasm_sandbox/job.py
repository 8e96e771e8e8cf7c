"""`Job`: one prepared run (program bytes and options), and `execute`, the step that runs it.

The pipeline is three steps, each one function, that every way of running calls:
`Sandbox.prepare` (source -> `Job`), `execute` (`Job` -> `Outcome`, anywhere: this
thread, a worker process, a Dask worker) and `Sandbox.seal` (`Job` + `Outcome` ->
sealed, logged `Execution`). `Sandbox.run` is the three in a row; batch runs fan the
middle one out over an executor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .errors import CompileError, InvocationError, SandboxError
from .isolation import Isolation
from .limits import Grants
from .outcome import ERROR, Outcome
from .run_options import RunOptions
from .sources import Program, locate

if TYPE_CHECKING:
    from .engine import Compiled


@dataclass(frozen=True)
class Job:
    """A program ready to run with its options.

    ``problem`` is set when the source never became a module that can run (a batch logs
    it as an ``error`` run); ``compiled`` is the module when the caller had it already;
    ``signer`` is the verifier key that signed the binary, when one known to the run did;
    ``policy`` the trust level and the decisions on its manifest (`wasm_sandbox.policy`).
    `portable` is the copy that travels to another process or machine.
    """

    program: Program
    options: RunOptions
    problem: str | None = None
    compiled: Compiled | None = field(default=None, repr=False, compare=False)
    signer: str | None = None
    policy: dict[str, Any] | None = None

    @property
    def guest_grants(self) -> Grants:
        """The grants the guest runs with. For a program an interpreter runs (Python):
        its arguments (``-c CODE``), then the granted ones, then ``args`` as strings."""
        grants = self.options.grants
        if not self.program.argv:
            return grants
        args = tuple(str(a) for a in self.options.args)
        return replace(grants, argv=(*self.program.argv, *grants.argv, *args))

    @property
    def guest_args(self) -> tuple[Any, ...]:
        """The arguments of the call: ``args``, except for an interpreter's ``_start``
        (they went to its argv, `guest_grants`)."""
        return () if self.program.argv else self.options.args

    def portable(self) -> Job:
        """This job without what cannot be pickled (the compiled module, the recipient key:
        a guest needs neither)."""
        return replace(self, compiled=None, options=replace(self.options, recipient=None))


@dataclass(frozen=True)
class Ran:
    """What `execute` returns: the outcome, and for status ``error`` the error itself."""

    outcome: Outcome
    error: SandboxError | None = None


def execute(
    job: Job,
    runner: Isolation | None = None,
    *,
    cancel: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> Ran:
    """Run ``job`` with ``runner`` (a sandbox's) or this process's engine (created on first
    use, for executors whose workers are other processes). Never raises for the guest's or
    the input's faults: a module that does not validate, a missing export or arguments that
    do not fit come back as status ``error`` with the error."""
    if job.problem is not None:
        return Ran(failed(job.options, job.problem))
    runner = runner or _process_runner()
    try:
        return Ran(runner.run(job, cancel=cancel, progress=progress))
    except (CompileError, InvocationError) as exc:
        if isinstance(exc, CompileError):  # a module that does not validate: at its WAT line
            exc = locate(exc, job.program)
        return Ran(failed(job.options, str(exc)), exc)


def run_anywhere(job: Job, runner: Isolation | None = None) -> Ran:
    """`execute`, for an executor's worker: whatever goes wrong there (the transport, a
    grant that a remote machine cannot honour) is that run's ``error``, not the batch's."""
    try:
        return execute(job, runner)
    except Exception as exc:
        return Ran(failed(job.options, str(exc)))


def failed(options: RunOptions, message: str) -> Outcome:
    """The ``error`` outcome of a run that could not start."""
    limits = options.limits
    return Outcome(
        status=ERROR, message=message, fuel_limit=limits.fuel, memory_limit=limits.memory
    )


def _process_runner() -> Isolation:
    from . import engine, pool

    return Isolation(engine.process_engine(), pool.WorkerPool(None))
