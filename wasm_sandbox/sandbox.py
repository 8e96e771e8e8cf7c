"""The one pipeline: compile -> run -> seal -> commit -> append.

Every face (the magics, the REST API, the CLI, batch runs) calls `Sandbox.run`; none
repeats a step. A run whose bytes exist is sealed and logged whatever happened to it.
Importing this module is cheap: the engine (wasmtime), the keys, the log and the sealing
(cryptography, SQLite) are imported by the methods that use them.

>>> with Sandbox(home=tmp) as sb:                                   # doctest: +SKIP
...     ex = sb.run('(module (func (export "f") (result i32) i32.const 42))', invoke="f")
...     ex.outcome.returns, ex.leaf_index, sb.verify(ex.id).verified
((42,), 0, True)
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import merkle, python_guest, sources
from .errors import CompileError, PolicyError, RecordNotFound, SandboxError
from .highwater import HighWater
from .home import private_dir
from .isolation import Isolation
from .isolation import check as isolation_kind
from .isolation import runner as make_runner
from .job import Job, execute
from .metrics import Metrics
from .outcome import Outcome
from .run_options import RunOptions
from .worker import KEEP_IDLE

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from . import policy, sealing
    from .engine import Compiled
    from .execution import Execution, Opened, Verification
    from .fanout import Batch
    from .ledger import Ledger, LogReport

Source = str | bytes | os.PathLike[str]


def default_home() -> Path:
    """``$WASM_SANDBOX_HOME``, else the per-user data directory."""
    env = os.environ.get("WASM_SANDBOX_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("wasm-sandbox", appauthor=False))


class Sandbox:
    """Keys, ledger and engine of one sandbox home, and the pipeline over them.

    Thread-safe; use it as a context manager or call `close`.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        durable: bool = False,
        isolation: str = "thread",
        workers: int = KEEP_IDLE,
        nice: int = 0,
    ) -> None:
        """``durable=True`` syncs the log to the storage device at every append, so even
        a power cut loses nothing acknowledged; by default a killed process loses nothing.
        ``isolation`` is where guests run: ``"thread"`` (this process) or ``"process"`` (a
        pool of warm worker processes, up to ``workers`` kept idle, run at priority ``nice``);
        see `wasm_sandbox.isolation`."""
        from . import engine, keys, pool

        self._durable = durable
        given = Path(home).expanduser() if home is not None else default_home()
        self.home = private_dir(given, "sandbox home")
        self.keys = keys.KeyStore(self.home)
        self.high_water = HighWater(self.keys.dir)
        self.engine = engine.Engine(cache_dir=self.home / "cache")
        self.isolation = isolation_kind(isolation)
        self.pool = pool.WorkerPool(self.home / "cache", keep=workers, nice=nice)
        self.metrics = Metrics()
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()

    def runner(self, isolation: str | None = None) -> Isolation:
        """The runner of ``isolation`` (default: this sandbox's own), over one worker pool."""
        return make_runner(isolation or self.isolation, self.engine, self.pool)

    @property
    def ledger(self) -> Ledger:
        """The transparency log, opened on first use."""
        with self._lock:
            if self._ledger is None:
                from .ledger import Ledger

                signing = self.keys.signing_key()
                self._ledger = Ledger(
                    self.home / "ledger.sqlite",
                    origin=self.origin,
                    signing_key=signing,
                    durable=self._durable,
                )
            return self._ledger

    @property
    def origin(self) -> str:
        """The log's C2SP origin line: unique per signing key."""
        public = self.keys.signing_key().public_key().public_bytes_raw()
        return f"wasm-sandbox.local/{hashlib.sha256(public).hexdigest()[:16]}"

    def load(
        self,
        source: Source,
        lang: str | None = None,
        *,
        status: Callable[[str], None] | None = None,
        timeout: float | None = None,
    ) -> sources.Program:
        """Wasm bytes from WAT, C (compiled into this home's cache, within ``timeout``),
        Python (the pinned interpreter's bytes and the code) or a file."""
        return sources.load(
            source, lang, c_cache=self.home / "c-cache", status=status, timeout=timeout
        )

    def _load_to_run(
        self,
        source: Source,
        lang: str | None,
        status: Callable[[str], None] | None,
        timeout: float | None = None,
    ) -> sources.Program:
        """`load`, and for Python the interpreter compiled into the module cache the first
        time (under its own timeout, told to ``status``)."""
        program = self.load(source, lang, status=status, timeout=timeout)
        if program.interpreter is not None:
            python_guest.compile_once(self.runner(), status)
        return program

    def compile(
        self,
        source: Source,
        lang: str | None = None,
        *,
        status: Callable[[str], None] | None = None,
    ) -> tuple[sources.Program, Compiled]:
        """The program and its compiled module; raises `CompileError` (also for a compile
        that breaks the default limits)."""
        program = self._load_to_run(source, lang, status)
        try:
            compiled = self.runner().compile(program.wasm)
        except CompileError as exc:  # a module that does not validate: at its WAT position
            raise sources.locate(exc, program) from None
        if isinstance(compiled, Outcome):
            raise CompileError(compiled.message or compiled.status)
        return program, compiled

    def run(
        self,
        source: Source | Compiled,
        options: RunOptions | None = None,
        /,
        *,
        progress: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
        status: Callable[[str], None] | None = None,
        **changes: Any,
    ) -> Execution:
        """Compile ``source``, run it with ``options``, seal it, log it: `prepare`, then
        `wasm_sandbox.job.execute`, then `seal`.

        ``source`` is WAT or C text, wasm bytes, a path, or a module from `compile`.
        ``options`` may be given whole, or as keyword arguments (``invoke="f"``,
        ``limits=...``, ``stdin=b"..."``: see `RunOptions`) that change it.
        ``progress(fuel_used)`` is called about every 0.1 s while the guest runs,
        ``status(text)`` with compiler progress; setting ``cancel`` interrupts the guest.

        Raises `CompileError` for source that never became wasm bytes, and `GrantError` or
        `LimitsError` for options that cannot be honoured: nothing is logged. Everything
        else is logged and returned: a module that does not validate, a missing export or
        bad arguments as status ``error`` (`Execution.error` says why; see
        `Execution.raise_for_status`).
        """
        job = self.prepare(source, (options or RunOptions()).updated(**changes), status=status)
        ran = execute(job, self.runner(job.options.isolation), cancel=cancel, progress=progress)
        return self.seal(job, ran.outcome, ran.error)

    def prepare(
        self,
        source: Source | Compiled,
        options: RunOptions,
        *,
        status: Callable[[str], None] | None = None,
    ) -> Job:
        """Step one of a run: check the options and that the run can be logged, and turn
        ``source`` into wasm bytes (C within the run's timeout). Raises as `run` does."""
        options = self._ready_to_run(options)
        return self._job(source, options, status)

    def _ready_to_run(self, options: RunOptions) -> RunOptions:
        """Refuse options that cannot be honoured, and open the ledger and the keys now,
        so a run that could not be logged never starts; the options with this home's
        key-value store filled in."""
        options.check()
        options = self._home_grants(options)
        if options.recipient is None:
            self.keys.recipient_public_key()
        self.keys.content_secret()
        _ = self.ledger  # opened on first use: a corrupt one fails here
        self.high_water.known()  # a corrupt high-water file fails here, not after the run
        return options

    def _home_grants(self, options: RunOptions) -> RunOptions:
        """``options`` with this home's key-value store as the store of a KV grant."""
        kv = options.grants.kv
        if kv is None or kv.store:
            return options
        from . import kvstore

        store = str(self.home / kvstore.FILE)
        return replace(options, grants=replace(options.grants, kv=replace(kv, store=store)))

    def _job(
        self,
        source: Source | Compiled,
        options: RunOptions,
        status: Callable[[str], None] | None = None,
    ) -> Job:
        from .engine import Compiled

        if isinstance(source, Compiled):
            job = Job(sources.Program(source.wasm, "wasm"), options, compiled=source)
        else:
            timeout = options.limits.timeout
            job = Job(self._load_to_run(source, options.lang, status, timeout), options)
        return self._with_policy(job)

    def _with_policy(self, job: Job) -> Job:
        """``job`` with its signer and, from the trust file and the module's manifest, its
        widened options and the decisions made (`wasm_sandbox.policy`)."""
        from . import policy

        wasm, options = job.program.sealed, job.options  # Python code is no binary: unsigned
        trust = self._trust(options)
        signer = self._signer(wasm, options, trust)
        options, decided = policy.apply(options, trust, signer, policy.Manifest.read(wasm))
        if decided is not None:
            options.grants.check()  # directories the manifest was granted
            options = self._home_grants(options)
        return replace(job, options=options, signer=signer, policy=decided)

    def _trust(self, options: RunOptions) -> policy.Trust | None:
        from . import policy

        if options.trust is not None:
            return policy.Trust.load(options.trust)
        path = os.path.join(self.home, policy.FILE)  # os.path: a run's fixed cost
        return policy.Trust.load(path) if os.path.exists(path) else None

    def _signer(self, wasm: bytes, options: RunOptions, trust: policy.Trust | None) -> str | None:
        """The verifier key that signed ``wasm`` as a whole, among the required ones (or,
        when none are, this home's own module signer and the trust file's signers); raises
        `PolicyError` when keys are required and none of them signed it."""
        from . import checkpoint, signing

        required = options.signers()
        if required:
            return signing.verifier_key_of(signing.signer(wasm, required))
        known = [checkpoint.parse_verifier_key(k) for k in (trust.levels if trust else ())]
        if self.keys.has_module_signing_key:
            known.append(checkpoint.parse_verifier_key(self.keys.signer_verifier_key))
        if not known:
            return None
        try:
            return signing.verifier_key_of(signing.signer(wasm, known))
        except PolicyError:
            return None

    def seal(self, job: Job, outcome: Outcome, error: SandboxError | None = None) -> Execution:
        """The last step of a run: seal program, source, input and result of a finished
        ``job`` to its recipient (`wasm_sandbox.sealing.seal`), append the record
        (`append`), return the `Execution`.

        Batch runs call this for guests that ran elsewhere (a Dask worker).
        """
        return self.append([self.sealed(job, outcome, error)])[0]

    def sealed(
        self, job: Job, outcome: Outcome, error: SandboxError | None = None
    ) -> sealing.Sealed:
        """The sealing half of `seal`: to the job's recipient, with this home's content
        keys (`wasm_sandbox.record.shared_content_keys`); nothing is logged."""
        from . import sealing

        public = job.options.recipient or self.keys.recipient_public_key()
        keys = sealing.content_keys(job, public, self.keys.content_secret())
        return sealing.seal(job, outcome, public, error, keys)

    def append(self, runs: Sequence[sealing.Sealed]) -> list[Execution]:
        """Log sealed ``runs`` in one transaction under one signed checkpoint (in durable
        mode synced before this returns), raise the high-water mark, count them; their
        `Execution`s in the same order."""
        from .execution import Execution

        receipts = self.ledger.append_many([(s.id, s.leaf, s.blobs) for s in runs])
        if receipts:
            self.high_water.raise_to(receipts[-1].tree_size, receipts[-1].root)
        executions = []
        for run, receipt in zip(runs, receipts, strict=True):
            self.metrics.observe(run.outcome)
            executions.append(
                Execution(
                    id=run.id,
                    outcome=run.outcome,
                    record=run.record,
                    commitment=merkle.leaf_hash(run.leaf).hex(),
                    leaf_index=receipt.leaf_index,
                    tree_size=receipt.tree_size,
                    root=receipt.root.hex(),
                    checkpoint=receipt.checkpoint_note,
                    lang=run.lang,
                    result_salt=run.result_salt,
                    error=run.error,
                )
            )
        return executions

    def record(self, record_id: str) -> dict[str, Any]:
        """The stored record with this id (raises `RecordNotFound`)."""
        from . import record

        return record.decode(self.ledger.get(record_id).leaf)

    def log(self, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        """Records newest first, with their leaf index under ``"leaf_index"``."""
        from . import record

        size = self.ledger.size
        end = size if before is None else max(0, min(before, size))
        entries = self.ledger.entries(after=max(-1, end - limit - 1), limit=limit)
        rows = [{**record.decode(e.leaf), "leaf_index": e.index} for e in entries if e.index < end]
        return rows[::-1]

    def resolve(self, ref: str) -> str:
        """A record id from an id, ``last`` or ``#N`` (a leaf index)."""
        if ref == "last":
            if self.ledger.size == 0:
                raise RecordNotFound("the log is empty")
            return self.ledger.get(self.ledger.size - 1).record_id
        if ref.startswith("#") and ref[1:].isdigit():
            return self.ledger.get(int(ref[1:])).record_id
        return self.ledger.get(ref).record_id

    def verify(self, record_id: str, *, replay: bool = False) -> Verification:
        """Check a record: its form, ciphertexts, inclusion in the signed log and, with the
        private key, its commitments and that its public outcome is the sealed one
        (``checks["outcome"]``), and a deterministic replay when asked."""
        from . import verification

        return verification.verify(self, record_id, replay=replay)

    def verify_log(self, *, full: bool = False) -> LogReport:
        """Recompute the log: every record, stored hash and checkpoint, the chain of
        checkpoints, and compare it with the high-water mark (a log emptied or rolled back
        below it fails); a clean log raises the mark. Only what was logged since the last
        clean audit is checked in full while the rest is unchanged, unless ``full``."""
        from . import verification

        return verification.verify_log(self, full=full)

    def decrypt(self, record_id: str) -> Opened:
        """Open every sealed part with the private key and re-check every commitment."""
        from . import execution, record

        entry = self.ledger.get(record_id)
        rec = record.decode(entry.leaf)
        opened = record.open_record(rec, entry.blobs, self.keys.recipient_private_key())
        return execution.Opened(
            record_id,
            opened.program,
            opened.input,
            opened.result,
            rec,
            opened.salts,
            opened.stdin,
            opened.source,
        )

    def map(
        self,
        source: Source | Compiled,
        inputs: Iterable[Sequence[Any]],
        options: RunOptions | None = None,
        /,
        *,
        executor: Executor | None = None,
        progress: bool | Callable[[int, int], None] = True,
        **changes: Any,
    ) -> Batch:
        """Run one program once per argument tuple, in parallel, each sealed and logged.

        ``options`` (or keyword arguments, as for `run`) apply to every run; ``args`` comes
        from ``inputs``. ``executor`` is any `concurrent.futures.Executor` (a Dask
        ``client.get_executor()`` runs the guests on a cluster); by default a batch of
        trivial runs is run and sealed in this sandbox's worker processes, others run on
        a thread pool sized to the cores (`wasm_sandbox.fanout`). ``progress`` shows a bar
        (True), calls ``progress(done, total)``, or is silent (False). Returns a
        `wasm_sandbox.fanout.Batch`: executions in input order, with ``table()`` and
        ``to_pandas()``. Raises `CompileError` when ``source`` does not compile.
        """
        from .fanout import fan_out

        options = (options or RunOptions()).updated(**changes)
        job = self.prepare(source, options)
        jobs = [replace(job, options=replace(job.options, args=tuple(a))) for a in inputs]
        return fan_out(self, jobs, executor, progress)

    def map_programs(
        self,
        sources: Iterable[Source | Compiled],
        options: RunOptions | None = None,
        /,
        *,
        executor: Executor | None = None,
        progress: bool | Callable[[int, int], None] = True,
        **changes: Any,
    ) -> Batch:
        """Run many programs with the same options (a class's submissions, say); see `map`.

        Every source gets a record: one that does not compile is logged as an ``error`` run
        of its raw bytes, so a grader sees every submission in the log.
        """
        from .fanout import fan_out

        options = (options or RunOptions()).updated(**changes)
        options = self._ready_to_run(options)  # once, before any run: not a row per source
        jobs = [self._job_or_problem(s, options) for s in sources]
        return fan_out(self, jobs, executor, progress)

    def _job_or_problem(self, source: Source | Compiled, options: RunOptions) -> Job:
        """The job of ``source``; one that does not compile carries its raw bytes and error."""
        from .engine import Compiled

        try:
            return self._job(source, options)
        except (CompileError, PolicyError) as exc:
            raw = source.wasm if isinstance(source, Compiled) else sources.raw_bytes(source)
            return Job(sources.Program(raw, "wasm"), options, str(exc))

    def close(self) -> None:
        """Close the ledger, stop the worker processes and the engine's ticker; idempotent."""
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
        self.pool.close()
        self.engine.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
