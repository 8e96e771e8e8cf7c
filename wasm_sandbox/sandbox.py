"""The one pipeline: compile -> run -> seal -> commit -> append.

Every face (the magics, the REST API, the CLI, batch runs) calls `Sandbox.run`; none
repeats a step. A run whose bytes exist is sealed and logged whatever happened to it.

>>> with Sandbox(home=tmp) as sb:                                   # doctest: +SKIP
...     ex = sb.run('(module (func (export "f") (result i32) i32.const 42))', invoke="f")
...     ex.outcome.returns, ex.leaf_index, sb.verify(ex.id).verified
((42,), 0, True)
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from . import merkle, record, sources
from .engine import Compiled, Engine
from .envelope import key_id
from .errors import CompileError, InvocationError, RecordNotFound, SandboxError
from .keys import KeyStore
from .ledger import Ledger, LogReport
from .limits import Grants, Limits
from .metrics import Metrics
from .outcome import ERROR, Outcome

Source = str | bytes | os.PathLike[str]


def default_home() -> Path:
    """``$WASM_SANDBOX_HOME``, else the per-user data directory."""
    env = os.environ.get("WASM_SANDBOX_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("wasm-sandbox", appauthor=False))


@dataclass(frozen=True)
class Execution:
    """One sealed, logged run.

    ``commitment`` is the hex Merkle leaf hash of the canonical record: it commits to the
    program, input and result commitments, the limits and the outcome. ``root`` is the
    tree's root at ``tree_size`` right after this run was appended.
    """

    id: str
    outcome: Outcome
    record: dict[str, Any] = field(repr=False)
    commitment: str
    leaf_index: int
    tree_size: int
    root: str
    checkpoint: str = field(repr=False, default="")
    lang: str = "wasm"

    def to_json(self) -> dict[str, Any]:
        """The object ``wasm-sandbox run --json`` prints (DESIGN.md contract)."""
        return {
            "id": self.id,
            **self.outcome.to_json(),
            "commitment": self.commitment,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "root": self.root,
        }

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .jupyter.html import mimebundle

        return mimebundle(self)


@dataclass(frozen=True)
class Verification:
    """The result of `Sandbox.verify`: every check by name, and the verdict."""

    id: str
    verified: bool
    leaf_index: int
    tree_size: int
    root: str
    checks: dict[str, str]
    replay: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.verified

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "verified": self.verified,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "root": self.root,
            "checks": self.checks,
        }
        if self.replay is not None:
            out["replay"] = self.replay
        return out


@dataclass(frozen=True)
class Opened:
    """What `Sandbox.decrypt` recovers with the private key."""

    id: str
    program: bytes
    input: dict[str, Any]
    result: dict[str, Any]
    record: dict[str, Any]
    salts: dict[str, bytes] = field(repr=False)


class Sandbox:
    """Keys, ledger and engine of one sandbox home, and the pipeline over them.

    Thread-safe; use it as a context manager or call `close`.
    """

    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, durable: bool = False
    ) -> None:
        """``durable=True`` syncs the log to the storage device at every append, so even
        a power cut loses nothing acknowledged; by default a killed process loses nothing."""
        self._durable = durable
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.keys = KeyStore(self.home)
        self.engine = Engine(cache_dir=self.home / "cache")
        self.metrics = Metrics()
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()

    @property
    def ledger(self) -> Ledger:
        """The transparency log, opened on first use."""
        with self._lock:
            if self._ledger is None:
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
    ) -> sources.Program:
        """Wasm bytes from WAT, C (compiled into this home's cache) or a file."""
        return sources.load(source, lang, c_cache=self.home / "c-cache", status=status)

    def compile(
        self,
        source: Source,
        lang: str | None = None,
        *,
        status: Callable[[str], None] | None = None,
    ) -> tuple[sources.Program, Compiled]:
        """The program and its compiled module; raises `CompileError`."""
        program = self.load(source, lang, status=status)
        return program, self.engine.compile(program.wasm)

    def run(
        self,
        source: Source | Compiled,
        *,
        lang: str | None = None,
        invoke: str | None = None,
        args: Sequence[Any] = (),
        limits: Limits | None = None,
        grants: Grants | None = None,
        stdin: bytes | str | None = None,
        recipient: ec.EllipticCurvePublicKey | None = None,
        progress: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
        status: Callable[[str], None] | None = None,
    ) -> Execution:
        """Compile ``source``, run it under ``limits`` with ``grants``, seal it, log it.

        ``source`` is WAT or C text, wasm bytes, a path, or a module from `compile`.
        Raises `CompileError` for source that never became wasm bytes (nothing is logged);
        a module that does not validate, a missing export or bad arguments are logged as
        status ``error`` and then raised with the `Execution` as ``exc.execution``.
        """
        limits, grants = limits or Limits(), grants or Grants()
        if stdin is not None:
            grants = replace(grants, stdin=stdin.encode() if isinstance(stdin, str) else stdin)
        grants.check()
        lang_used, wasm = "wasm", b""
        try:
            if isinstance(source, Compiled):
                compiled, wasm = source, source.wasm
            else:
                program = self.load(source, lang, status=status)
                lang_used, wasm = program.lang, program.wasm
                compiled = self.engine.compile(wasm)
            outcome = self.engine.run(
                compiled,
                invoke=invoke,
                args=args,
                limits=limits,
                grants=grants,
                cancel=cancel,
                progress=progress,
            )
        except (CompileError, InvocationError) as exc:
            if not wasm:
                raise
            failed = Outcome(
                status=ERROR, message=str(exc), fuel_limit=limits.fuel, memory_limit=limits.memory
            )
            execution = self.seal(wasm, invoke, args, limits, grants, failed, recipient, lang_used)
            exc.execution = execution  # type: ignore[attr-defined]
            raise
        return self.seal(wasm, invoke, args, limits, grants, outcome, recipient, lang_used)

    def seal(
        self,
        wasm: bytes,
        invoke: str | None,
        args: Sequence[Any],
        limits: Limits,
        grants: Grants,
        outcome: Outcome,
        recipient: ec.EllipticCurvePublicKey | None = None,
        lang: str = "wasm",
    ) -> Execution:
        """Seal program, input and result of a finished run and append its record.

        `run` calls this; so do batch runs whose guests ran elsewhere (a Dask worker).
        """
        public = recipient or self.keys.recipient_public_key()
        rid = record.new_id()
        inputs = {"invoke": invoke, "args": [str(a) for a in args], "grants": grants.to_payload()}
        parts = record.seal_run(rid, wasm, inputs, outcome.result_payload(), public)
        rec = record.build(
            rid,
            int(time.time() * 1000),
            key_id(public),
            parts,
            len(wasm),
            limits.to_record(),
            outcome.summary(),
            outcome.deterministic,
        )
        leaf = record.encode(rec)
        receipt = self.ledger.append(rid, leaf, record.blobs(parts))
        self.metrics.observe(outcome)
        return Execution(
            id=rid,
            outcome=outcome,
            record=rec,
            commitment=merkle.leaf_hash(leaf).hex(),
            leaf_index=receipt.leaf_index,
            tree_size=receipt.tree_size,
            root=receipt.root.hex(),
            checkpoint=receipt.checkpoint_note,
            lang=lang,
        )

    def record(self, record_id: str) -> dict[str, Any]:
        """The stored record with this id (raises `RecordNotFound`)."""
        return record.decode(self.ledger.get(record_id).leaf)

    def log(self, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        """Records newest first, with their leaf index under ``"leaf_index"``."""
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
        entry = self.ledger.get(record_id)
        checks: dict[str, str] = {}
        rec = _check(checks, "record", lambda: record.decode(entry.leaf))
        if rec is not None:
            _check(checks, "ciphertexts", lambda: _raise_if(record.check_blobs(rec, entry.blobs)))
        for name, passed in self.ledger.verify_entry(record_id).items():
            checks[name] = "ok" if passed else "failed"
        opened = None
        key = self._opening_key(rec["recipient"]) if rec is not None else None
        if rec is not None and key is not None:
            opened = _check(
                checks, "commitments", lambda: record.open_record(rec, entry.blobs, key)
            )
        elif rec is not None:
            checks["commitments"] = (
                f"skipped: sealed to recipient {rec['recipient'][:16]}..., "
                "whose private key is not in this home"
            )
        if opened is not None:
            problem = _outcome_problem(rec["outcome"], opened.result)
            checks["outcome"] = f"failed: {problem}" if problem else "ok"
        replayed = self._replay(rec, opened) if replay and opened is not None else None
        if replayed is not None:
            checks["replay"] = "ok" if replayed["matches"] else f"failed: {replayed['reason']}"
        verified = all(v == "ok" or v.startswith("skipped") for v in checks.values())
        return Verification(
            record_id,
            verified,
            entry.index,
            self.ledger.size,
            self.ledger.root().hex(),
            checks,
            replayed,
        )

    def _opening_key(self, recipient_id: str) -> ec.EllipticCurvePrivateKey | None:
        """This home's private key, if it is the one the record was sealed to."""
        try:
            key = self.keys.recipient_private_key()
        except SandboxError:
            return None
        return key if key_id(key.public_key()) == recipient_id else None

    def _replay(self, rec: dict[str, Any] | None, opened: record.OpenedRecord) -> dict[str, Any]:
        """Re-run the decrypted program with the recorded limits and inputs; compare the
        result commitment with the recorded one."""
        assert rec is not None
        grants = Grants.from_payload(opened.input["grants"])
        if not rec["deterministic"]:
            grants = replace(grants, deterministic=True)
        compiled = self.engine.compile(opened.program)
        try:
            outcome = self.engine.run(
                compiled,
                invoke=opened.input["invoke"],
                args=opened.input["args"],
                limits=Limits.from_record(rec["limits"]),
                grants=grants,
            )
        except SandboxError as exc:
            outcome = Outcome(status=ERROR, message=str(exc))
        again = record.recommit(
            "result", rec["id"], outcome.result_payload(), opened.salts["result"]
        )
        matches = again.hex() == rec["result"]["commitment"]
        reason = "" if matches else _difference(opened.result, outcome.result_payload())
        if not matches and not rec["deterministic"]:
            reason += " (the run was not recorded as deterministic)"
        return {
            "matches": matches,
            "deterministic": rec["deterministic"],
            "status": outcome.status,
            "reason": reason,
        }

    def decrypt(self, record_id: str) -> Opened:
        """Open every sealed part with the private key and re-check every commitment."""
        entry = self.ledger.get(record_id)
        rec = record.decode(entry.leaf)
        opened = record.open_record(rec, entry.blobs, self.keys.recipient_private_key())
        return Opened(record_id, opened.program, opened.input, opened.result, rec, opened.salts)

    def verify_log(self) -> Any:
        """Recompute the whole log: every record, stored hash and checkpoint."""
        report = self.ledger.verify_all(check_entry=_check_entry)
        return _with_chain(report, self.ledger.verify_chain())

    def map(
        self,
        source: Source | Compiled,
        inputs: Iterable[Sequence[Any]],
        *,
        invoke: str | None = None,
        limits: Limits | None = None,
        executor: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Run one program once per argument tuple, in parallel, each sealed and logged.

        ``executor`` is any `concurrent.futures.Executor` (a Dask ``client.get_executor()``
        runs the guests on a cluster); the default is a thread pool sized to the cores.
        Returns a `wasm_sandbox.batch.Batch`: executions in input order, with ``table()``
        and ``to_pandas()``.
        """
        from .batch import run_many

        return run_many(
            self, source, inputs, invoke=invoke, limits=limits, executor=executor, **kwargs
        )

    def map_programs(
        self, sources: Iterable[Source | Compiled], args: Sequence[Any] = (), **kwargs: Any
    ) -> Any:
        """Run many programs with the same arguments; see `map` for the options."""
        from .batch import run_programs

        return run_programs(self, sources, args, **kwargs)

    def close(self) -> None:
        """Close the ledger and stop the engine's ticker; idempotent."""
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
        self.engine.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check(checks: dict[str, str], name: str, fn: Callable[[], Any]) -> Any:
    try:
        value = fn()
    except SandboxError as exc:
        checks[name] = f"failed: {exc}"
        return None
    checks[name] = "ok"
    return value


def _raise_if(problem: str | None) -> None:
    if problem:
        raise SandboxError(problem)


def _check_entry(entry: Any) -> str | None:
    """The ledger's per-entry hook: the leaf is a valid record and its blobs match it."""
    try:
        rec = record.decode(entry.leaf)
    except SandboxError as exc:
        return str(exc)
    if rec["id"] != entry.record_id:
        return f"record id {rec['id']} stored under id {entry.record_id}"
    return record.check_blobs(rec, entry.blobs)


def _difference(before: dict[str, Any], after: dict[str, Any]) -> str:
    changed = [k for k in sorted(before) if before.get(k) != after.get(k)]
    return "result differs in " + ", ".join(changed) if changed else "result differs"


def _with_chain(report: LogReport, chain: list[tuple[int, str]]) -> LogReport:
    """``report`` failed by the breaks `Ledger.verify_chain` found (a deleted checkpoint)."""
    if not chain:
        return report
    first_bad = report.first_bad or {"checkpoint": chain[0][0]}
    problems = report.problems + tuple(message for _, message in chain)
    return replace(report, ok=False, first_bad=first_bad, problems=problems)


_SUMMARY_FIELDS = ("status", "trap", "exit_code", "fuel_used", "memory_bytes")


def _outcome_problem(summary: dict[str, Any], result: dict[str, Any]) -> str | None:
    """How the record's public outcome differs from the sealed result, if it does."""
    wrong = [f for f in _SUMMARY_FIELDS if summary.get(f) != result.get(f)]
    if not wrong:
        return None
    return "the public outcome disagrees with the sealed result on " + ", ".join(
        f"{f} ({summary.get(f)!r} vs sealed {result.get(f)!r})" for f in wrong
    )
