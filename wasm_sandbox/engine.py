"""wasmtime under hard limits: one engine, a module cache, one epoch ticker, guarded runs.

How this module keeps a guest from killing or hanging the host (FIELD-NOTES.md):

* WASI is linked only together with a `WasiConfig` set on the same store.
* Wasm runs on a worker thread with a 64 MiB stack, far above ``max_wasm_stack``
  (1 MiB, below the 2 MiB at which ``Engine()`` aborts), so a deep recursion traps
  cleanly instead of overflowing the native stack.
* Wall-clock limits and interrupts go through an epoch deadline callback that runs on
  the guest's thread at every tick and decides per store whether to go on; blocking
  ``poll_oneoff`` sleeps are replaced (see `wasi`) so they end at the deadline too.
* The caller waits on an `Event`; a ``KeyboardInterrupt`` there (Jupyter's interrupt
  button) cancels the guest, which ends within one tick as ``interrupted``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.metadata
import math
import os
import queue
import re
import signal
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import wasmtime
from wasmtime import _bindings as ffi
from wasmtime._extern import wrap_extern
from wasmtime._wasi import CUSTOM_OUTPUTS, custom_call

from . import binary, instrument, wasi
from . import outcome as st
from .cache import ModuleCache
from .errors import CompileError, InvocationError
from .limits import Grants, Limits, bytes_used, open_granted_dir
from .outcome import Frame, Outcome

MAX_WASM_STACK = 1 << 20
WORKER_STACK = 64 << 20
TICK = 0.01
MAX_TICKS_BETWEEN_CHECKS = 5
PROGRESS_INTERVAL = 0.1
MAX_FRAMES = 32
RELEASE_WAIT = 2.0
#: Seconds past its deadline (or a cancel) after which a guest stuck in a host call is
#: abandoned: its caller gets ``timeout`` and the guest's thread is left blocked.
ABANDON_GRACE = 1.0
RECENT_MODULES = 128
#: Seconds between two looks at how much the read-write grants have grown, at least, and
#: at least this many times what the last look took (so looking costs at most ~1/5 of a run).
QUOTA_INTERVAL = 0.05
QUOTA_COST_FACTOR = 4
#: Bump when `_config` or the rewrite (`instrument`) changes: cached compiled code from
#: another configuration is ignored.
CONFIG_VERSION = 3
#: WASI functions through which a guest can observe time or randomness.
NONDETERMINISTIC_IMPORTS = frozenset(
    {"clock_time_get", "clock_res_get", "random_get", "poll_oneoff"}
)

_DeadlineCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_Finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_NO_FINALIZER = _Finalizer(lambda _data: None)
_CONTINUE = 0


@dataclass(frozen=True)
class Compiled:
    """A validated, compiled module and what the sandbox needs to know about it."""

    module: wasmtime.Module = field(repr=False)
    wasm: bytes = field(repr=False)
    digest: str
    cache: str
    compile_ms: float
    imports: tuple[tuple[str, str], ...]
    functions: dict[str, binary.Signature] = field(repr=False)
    memories: tuple[str, ...] = ()
    rewrite: instrument.Rewrite = field(default=instrument.unchanged(b""), repr=False)

    @classmethod
    def inspect(cls, module: wasmtime.Module, wasm: bytes, digest: str) -> Compiled:
        """Read imports and exported function signatures once, from the original bytes
        (never through wasmtime's type API: see `wasm_sandbox.binary`)."""
        try:
            face = binary.interface(wasm)
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise CompileError(f"cannot read the module's imports and exports: {exc}") from None
        imports = tuple((mod, name) for mod, name, _kind in face.imports)
        memories = tuple(name for name, kind in face.exports if kind == "memory")
        return cls(module, bytes(wasm), digest, "miss", 0.0, imports, face.functions, memories)

    @property
    def uses_wasi(self) -> bool:
        return any(mod == wasi.WASI for mod, _ in self.imports)

    @property
    def observes_time_or_randomness(self) -> bool:
        return any(
            mod == wasi.WASI and name in NONDETERMINISTIC_IMPORTS for mod, name in self.imports
        )


def _config() -> wasmtime.Config:
    """Fuel and epochs on; proposals whose types wasmtime-py cannot handle turned off.

    With GC, typed function references, exceptions or stack switching on, a module may
    export a function whose signature holds a reference type other than funcref and
    externref; merely reading that signature aborts the process inside wasmtime-py
    (found by the hardening campaign). Such modules are refused at compile time instead.
    Relaxed SIMD and NaNs are made deterministic so replays compute the same bits.
    """
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.max_wasm_stack = MAX_WASM_STACK
    config.wasm_gc = False
    config.wasm_function_references = False
    config.wasm_exceptions = False
    config.wasm_stack_switching = False
    config.wasm_threads = False
    config.wasm_component_model = False
    config.wasm_relaxed_simd_deterministic = True
    config.cranelift_nan_canonicalization = True
    return config


@dataclass
class _Run:
    """State shared by the caller, the guest thread and the epoch callback of one run."""

    watch: wasi.Watch
    fuel_limit: int
    fuel_used: int = 0
    outcome: Outcome | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Engine:
    """A wasmtime engine with fuel and epochs on, a module cache and an epoch ticker.

    Thread-safe: many threads may `run` at once, each guest in its own `Store`.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._engine = wasmtime.Engine(_config())
        version = importlib.metadata.version("wasmtime")
        fingerprint = hashlib.sha256(f"{version}/{CONFIG_VERSION}/{MAX_WASM_STACK}".encode())
        self.cache = ModuleCache(cache_dir, fingerprint.hexdigest()[:16])
        self._recent: OrderedDict[str, Compiled] = OrderedDict()
        self._lock = threading.Lock()
        self._ticker = _Ticker(self._engine)
        #: Guests given up on while stuck in a host call (their threads stay blocked).
        self.abandoned = 0

    def compile(self, wasm: bytes) -> Compiled:
        """Validate and compile ``wasm``, or take it from the memory or disk cache.

        Raises `CompileError` for bytes that are not a valid module.
        """
        start = time.perf_counter()
        digest = hashlib.sha256(wasm).hexdigest()
        with self._lock:
            known = self._recent.get(digest)
            if known is not None:
                self._recent.move_to_end(digest)
        if known is None:
            try:
                module, meta, where = self.cache.get(
                    digest, self._engine, lambda: self._compile_rewritten(wasm)
                )
            except wasmtime.WasmtimeError as exc:
                raise CompileError(_binary_error(exc)) from None
            rewrite = instrument.Rewrite.from_bytes(meta)
            known = replace(Compiled.inspect(module, wasm, digest), cache=where, rewrite=rewrite)
            with self._lock:
                self._recent[digest] = replace(known, cache="memory")
                while len(self._recent) > RECENT_MODULES:
                    self._recent.popitem(last=False)
        return replace(known, compile_ms=(time.perf_counter() - start) * 1000)

    def _compile_rewritten(self, wasm: bytes) -> tuple[wasmtime.Module, bytes]:
        """Validate the original (its errors are the user's), then compile it rewritten
        by `instrument`, or unchanged if the rewrite cannot be made or compiled."""
        wasmtime.Module.validate(self._engine, wasm)
        try:
            rewrite = instrument.rewrite(wasm)
        except (ValueError, IndexError):
            rewrite = instrument.unchanged(wasm)
        try:
            module = wasmtime.Module(self._engine, rewrite.wasm)
        except wasmtime.WasmtimeError:
            rewrite = instrument.unchanged(wasm, rewrite.memory_caps)
            module = wasmtime.Module(self._engine, wasm)
        return module, rewrite.to_bytes()

    def knows(self, wasm: bytes) -> bool:
        """Whether ``wasm`` is compiled already, in memory or in the disk cache."""
        digest = hashlib.sha256(wasm).hexdigest()
        with self._lock:
            if digest in self._recent:
                return True
        return self.cache.has(digest)

    def run(
        self,
        compiled: Compiled,
        *,
        invoke: str | None = None,
        args: Sequence[Any] = (),
        limits: Limits | None = None,
        grants: Grants | None = None,
        cancel: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Outcome:
        """Run ``invoke`` (or the WASI ``_start``) under ``limits`` with ``grants``.

        Blocks until the guest ends; ``progress(fuel_used)`` is called from this thread
        about every 0.1 s meanwhile. Setting ``cancel`` (or a ``KeyboardInterrupt`` in
        this thread) ends the guest as ``interrupted``. Raises `InvocationError` for a
        missing export or arguments that do not fit, `GrantError` for a bad grant.
        """
        limits, grants = limits or Limits(), grants or Grants()
        grants.check()
        call = _prepare_call(compiled.functions, invoke, args)
        watch = wasi.Watch(
            deadline=time.monotonic() + limits.timeout, cancel=cancel or threading.Event()
        )
        run = _Run(watch, limits.fuel)
        with self._ticker, _sigint_cancels(lambda: self._cancel(run)):
            _WORKERS.submit(lambda: self._guest(run, compiled, call, limits, grants))
            self._wait(run, limits, progress)
        if run.error is not None and run.outcome is None:
            raise run.error
        assert run.outcome is not None
        return run.outcome

    def _wait(self, run: _Run, limits: Limits, progress: Callable[[int], None] | None) -> None:
        """Wait for the guest until its deadline (or a cancel) plus `ABANDON_GRACE`; a guest
        still stuck then (in a blocking host call) is abandoned as ``timeout``. A failing
        ``progress`` callback stops the guest, then raises."""
        failure: Exception | None = None
        give_up = run.watch.deadline + ABANDON_GRACE
        while True:
            try:
                if run.done.wait(PROGRESS_INTERVAL):
                    break
                if run.watch.cancel.is_set() or failure:
                    give_up = min(give_up, time.monotonic() + ABANDON_GRACE)
                if time.monotonic() >= give_up:
                    run.outcome = _abandoned(run, limits)
                    self.abandoned += 1
                    self._cancel(run)  # it stops at its next epoch check, if it ever returns
                    break
                if progress and not failure:
                    progress(run.fuel_used)
            except KeyboardInterrupt:  # SIGINT outside the main thread's handler
                self._cancel(run)
            except Exception as exc:
                failure = exc
                self._cancel(run)
        if failure is not None:
            raise failure

    def _cancel(self, run: _Run) -> None:
        """Stop the guest at once: advance the epoch past its deadline so its callback runs
        now (other guests' callbacks run early too, find nothing to do and go on)."""
        run.watch.cancel.set()
        for _ in range(MAX_TICKS_BETWEEN_CHECKS):
            self._engine.increment_epoch()

    def _guest(
        self, run: _Run, compiled: Compiled, call: _Call, limits: Limits, grants: Grants
    ) -> None:
        try:
            with self._ticker:  # ticks go on for a guest that outlives its caller's wait
                outcome = _Guest(self._engine, run, compiled, limits, grants).execute(call)
            if run.outcome is None:  # not abandoned meanwhile
                run.outcome = outcome
        except BaseException as exc:
            run.error = exc
        finally:
            run.done.set()

    def close(self) -> None:
        """Stop the ticker thread; idempotent."""
        self._ticker.close()


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[Any, ...]
    result_types: tuple[str, ...]


def _prepare_call(
    funcs: dict[str, binary.Signature], invoke: str | None, args: Sequence[Any]
) -> _Call:
    """Check the export and convert ``args`` to its parameter types before running."""
    name = invoke or "_start"
    if name not in funcs:
        hint = ", ".join(sorted(funcs)) or "none"
        if invoke is None:
            raise InvocationError(
                f"the module has no _start; pick an export to invoke (exported functions: {hint})"
            )
        raise InvocationError(f"no exported function {invoke!r} (exported functions: {hint})")
    params, results = funcs[name]
    unsupported = [t for t in (*params, *results) if t not in binary.NUMBERS]
    if unsupported:
        raise InvocationError(
            f"{name} has a {unsupported[0]} in its signature; only i32, i64, f32 and f64 "
            "values can pass between the host and the guest"
        )
    if len(args) != len(params):
        raise InvocationError(
            f"{name} takes {len(params)} argument(s) ({', '.join(params)}), got {len(args)}"
        )
    converted = tuple(
        _convert(value, kind, name, i)
        for i, (value, kind) in enumerate(zip(args, params, strict=True))
    )
    return _Call(name, converted, results)


_INT_RANGE = {"i32": (-(1 << 31), (1 << 32) - 1), "i64": (-(1 << 63), (1 << 64) - 1)}


def _convert(value: Any, kind: str, name: str, index: int) -> int | float:
    where = f"{name} argument {index + 1} ({kind})"
    try:
        if kind in _INT_RANGE:
            if isinstance(value, (float, bool)):
                raise ValueError
            number = int(value, 0) if isinstance(value, str) else int(value)
            low, high = _INT_RANGE[kind]
            if not low <= number <= high:
                raise InvocationError(f"{where}: {number} is out of range")
            bits = 32 if kind == "i32" else 64
            return number - (1 << bits) if number >= 1 << (bits - 1) else number
        if kind in ("f32", "f64"):
            return float(value)
    except (TypeError, ValueError):
        raise InvocationError(f"{where}: cannot use {value!r}") from None
    raise InvocationError(f"{where}: parameters of type {kind} cannot be passed")


class _Guest:
    """One guest in one store, on the worker thread."""

    def __init__(
        self, engine: wasmtime.Engine, run: _Run, compiled: Compiled, limits: Limits, grants: Grants
    ) -> None:
        self.engine, self.run, self.compiled = engine, run, compiled
        self.limits, self.grants = limits, grants
        self.stdout, self.stderr = _Capture(limits.output), _Capture(limits.output)
        self.virtual = wasi.VirtualHost() if grants.deterministic else None
        self.store = wasmtime.Store(engine)
        self.store.set_limits(  # one budget for all memories (see `instrument.memory_share`)
            memory_size=instrument.memory_share(limits.memory, compiled.rewrite.memory_caps),
            table_elements=limits.table_elements,
            instances=limits.instances,
            tables=limits.tables,
            memories=limits.memories,
        )
        self.store.set_fuel(limits.fuel)
        self.quota = _Quota(grants, limits.dir_quota)
        self.store.set_epoch_deadline(_ticks_to_next_check(run.watch))
        self.callback = _DeadlineCallback(self._on_deadline)
        ffi.wasmtime_store_epoch_deadline_callback(
            self.store.ptr(), self.callback, None, _NO_FINALIZER
        )

    def execute(self, call: _Call) -> Outcome:
        start = time.perf_counter()
        instance = None
        stdin_path = None
        try:
            stdin_path = self._stdin_file()
            instance = self._instantiate(stdin_path)
            values = _export(instance, self.store, call.name)(self.store, *call.args)
            facts = _finished(values, call)
            if self.run.watch.reason:  # a host call was cut short by the deadline
                facts = _classify(None, self.run.watch, self.limits, self.compiled.rewrite)
        except Exception as exc:  # every guest failure becomes an Outcome
            facts = _classify(exc, self.run.watch, self.limits, self.compiled.rewrite)
        finally:
            if stdin_path:
                os.unlink(stdin_path)
        if self.quota.exceeded(at_end=True) and self.run.watch.reason in (None, st.QUOTA):
            facts = self.quota.facts()
        duration = (time.perf_counter() - start) * 1000
        memory = self._memory_bytes(instance) if instance else 0
        fuel_used = max(self.limits.fuel - self.store.get_fuel(), self.run.fuel_used)
        exact = self.compiled.rewrite.fuel_exact
        if instance and not exact:  # a guest that ran never logs 0, even as a lower bound
            fuel_used = max(fuel_used, 1)
        self.store.close()
        self.stdout.wait_released()
        self.stderr.wait_released()
        return Outcome(
            **facts,
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
            output_truncated=self.stdout.truncated or self.stderr.truncated,
            fuel_used=fuel_used,
            fuel_limit=self.limits.fuel,
            fuel_lower_bound=not exact,
            memory_bytes=memory,
            memory_limit=self.limits.memory,
            duration_ms=duration,
            cache=self.compiled.cache,
            deterministic=self._deterministic(),
            result_types=call.result_types,
        )

    def _memory_bytes(self, instance: wasmtime.Instance) -> int:
        """Bytes of all memories, through the exports the rewrite added (else only the
        module's own exported ones). Linear memory never shrinks: this is the peak."""
        rewrite = self.compiled.rewrite
        names = (
            [instrument.memory_export(i) for i in range(len(rewrite.memory_caps))]
            if rewrite.memories_exported
            else self.compiled.memories
        )
        found = (_export(instance, self.store, name) for name in names)
        return sum(m.data_len(self.store) for m in found if isinstance(m, wasmtime.Memory))

    def _deterministic(self) -> bool:
        """Whether a replay with the same inputs must give the same result."""
        return not self.grants.dirs and (
            self.virtual is not None or not self.compiled.observes_time_or_randomness
        )

    def _instantiate(self, stdin_path: str | None) -> wasmtime.Instance:
        if not self.compiled.imports:
            return wasmtime.Instance(self.store, self.compiled.module, [])
        linker = wasmtime.Linker(self.engine)
        if self.compiled.uses_wasi:
            self.store.set_wasi(self._wasi_config(stdin_path))
            linker.define_wasi()
            wasi.define(linker, self.run.watch, self.virtual)
        return linker.instantiate(self.store, self.compiled.module)

    def _wasi_config(self, stdin_path: str | None) -> wasmtime.WasiConfig:
        config = wasmtime.WasiConfig()
        config.argv = ["main.wasm", *self.grants.argv]
        config.env = [list(pair) for pair in self.grants.env]
        for grant in self.grants.dirs:  # opened without following symlinks (see limits)
            fd = open_granted_dir(grant.host)
            try:
                config.preopen_dir(f"/proc/self/fd/{fd}", grant.guest, fs_mutable=grant.writable)
            finally:
                os.close(fd)  # wasmtime opened its own descriptor of the same directory
        if stdin_path:
            config.stdin_file = stdin_path
        self.stdout.attach(config, ffi.wasi_config_set_stdout_custom)
        self.stderr.attach(config, ffi.wasi_config_set_stderr_custom)
        return config

    def _stdin_file(self) -> str | None:
        if not self.grants.stdin or not self.compiled.uses_wasi:
            return None
        fd, path = tempfile.mkstemp(prefix="wasm-sandbox-stdin-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(self.grants.stdin)
        except BaseException:
            os.unlink(path)
            raise
        return path

    def _on_deadline(self, context: Any, _data: Any, delta: Any, kind: Any) -> int:
        """Runs on the guest thread at every epoch tick: stop, or go on one more tick."""
        try:
            if self.quota.exceeded() and self.run.watch.reason is None:
                self.run.watch.reason = st.QUOTA
            if self.run.watch.should_stop():
                reason = self.run.watch.reason
                assert reason is not None  # should_stop() sets it
                error = ffi.wasmtime_error_new(reason.encode())
                return ctypes.cast(error, ctypes.c_void_p).value or 0
            left = ctypes.c_uint64()
            if not ffi.wasmtime_context_get_fuel(context, ctypes.byref(left)):
                self.run.fuel_used = self.run.fuel_limit - left.value
        except Exception:  # an exception must never cross back into wasmtime
            pass
        delta[0] = _ticks_to_next_check(self.run.watch)
        kind[0] = _CONTINUE
        return 0


class _Quota:
    """How far the read-write grants have grown since the run started, looked at from the
    epoch callback at most every `QUOTA_INTERVAL` (or `QUOTA_COST_FACTOR` times what a look
    took, for a tree of many files) and once at the end.

    A guest can overshoot by what it writes between two looks (its write rate times
    `QUOTA_INTERVAL`) plus what one host call writes (the run's deadline bounds that call)
    before it is stopped; what it wrote stays on disk.
    """

    def __init__(self, grants: Grants, quota: int) -> None:
        self.hosts = [d.host for d in grants.dirs if d.writable]
        self.quota = quota
        self.start = bytes_used(self.hosts) if self.hosts else 0
        self.grown = 0
        self.next_look = time.monotonic() + QUOTA_INTERVAL

    def exceeded(self, at_end: bool = False) -> bool:
        if not self.hosts:
            return False
        now = time.monotonic()
        if at_end or now >= self.next_look:
            self.grown = max(self.grown, bytes_used(self.hosts) - self.start)
            cost = time.monotonic() - now  # a big tree is looked at less often
            self.next_look = now + max(QUOTA_INTERVAL, QUOTA_COST_FACTOR * cost)
        return self.grown > self.quota

    def facts(self) -> dict[str, Any]:
        return {
            "status": st.QUOTA,
            "message": f"the read-write grants grew by {self.grown} bytes, past the "
            f"{self.quota} byte quota",
        }


def _abandoned(run: _Run, limits: Limits) -> Outcome:
    """The outcome of a guest that did not stop: it is blocked in a host call."""
    why = (
        "interrupted"
        if run.watch.cancel.is_set() and time.monotonic() < run.watch.deadline
        else f"stopped after the {limits.timeout:g} s timeout"
    )
    return Outcome(
        status=st.INTERRUPTED if why == "interrupted" else st.TIMEOUT,
        message=f"{why}; the guest did not stop within {ABANDON_GRACE:g} s more (blocked in "
        "a host call) and was abandoned: its thread stays blocked until that call returns",
        fuel_used=run.fuel_used,
        fuel_limit=limits.fuel,
        memory_limit=limits.memory,
        duration_ms=(time.monotonic() - run.watch.deadline + limits.timeout) * 1000,
    )


def _ticks_to_next_check(watch: wasi.Watch) -> int:
    """Epoch ticks until the guest's callback should look again: at its deadline, and at
    least every `MAX_TICKS_BETWEEN_CHECKS` (for fuel progress and cancellation). The callback
    needs the GIL, so checking at every tick would stall guests while other threads run
    Python."""
    left = math.ceil((watch.deadline - time.monotonic()) / TICK)
    return max(1, min(MAX_TICKS_BETWEEN_CHECKS, left))


class _Capture:
    """A WASI output stream kept in memory, cut at ``limit`` bytes.

    wasmtime calls it, and finally releases it, from its own (tokio) threads, the release
    only after the store is gone. A release still pending when the interpreter exits calls
    into a finalized Python and aborts the process, so `attach` registers our own release
    callback and `wait_released` lets the run wait for it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.released = threading.Event()
        self.attached = False

    def attach(self, config: wasmtime.WasiConfig, setter: Callable[..., None]) -> None:
        """Route one WASI output of ``config`` here (``setter``: the C API's set-custom)."""
        setter(config.ptr(), custom_call, CUSTOM_OUTPUTS.allocate(self), _release_capture)
        self.attached = True

    def wait_released(self) -> None:
        if self.attached:
            self.released.wait(RELEASE_WAIT)

    def __call__(self, data: bytes) -> None:
        room = self.limit - self.size
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.chunks.append(data)
            self.size += len(data)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


def _release(index: int | None) -> None:
    # wasmtime types its slab for its own callables; `_Capture.attach` stores a _Capture
    capture = cast(_Capture, CUSTOM_OUTPUTS.get(index or 0))
    CUSTOM_OUTPUTS.deallocate(index or 0)
    capture.released.set()


_release_capture = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_release)


def _finished(values: Any, call: _Call) -> dict[str, Any]:
    if values is None:
        returns: tuple[Any, ...] = ()
    elif isinstance(values, (list, tuple)):
        returns = tuple(values)
    else:
        returns = (values,)
    exit_code = 0 if call.name == "_start" else None
    return {"status": st.OK, "returns": returns, "exit_code": exit_code}


def _classify(
    exc: Exception | None, watch: wasi.Watch, limits: Limits, rewrite: instrument.Rewrite
) -> dict[str, Any]:
    """Turn whatever wasmtime raised into the Outcome's status fields."""
    if watch.reason == st.TIMEOUT:
        return {"status": st.TIMEOUT, "message": f"stopped after the {limits.timeout:g} s timeout"}
    if watch.reason == st.INTERRUPTED:
        return {"status": st.INTERRUPTED, "message": "interrupted"}
    if watch.reason == st.QUOTA:
        return {"status": st.QUOTA}  # the run's `_Quota` adds what it measured
    if isinstance(exc, wasmtime.ExitTrap):
        status = st.OK if exc.code == 0 else st.EXIT
        return {"status": status, "exit_code": exc.code}
    if isinstance(exc, wasmtime.Trap):
        return _trap(exc, limits, rewrite)
    text = str(exc)
    if "exceeds memory limits" in text or "memory minimum size" in text:
        return {
            "status": st.MEMORY_LIMIT,
            "message": f"the module needs more memory at start than the "
            f"{limits.memory} byte limit ({_one_line(text)})",
        }
    return {"status": st.ERROR, "message": _one_line(text)}


def trap_kind(code: wasmtime.TrapCode) -> str:
    """The stable name of a trap code: ``TrapCode.STACK_OVERFLOW`` -> ``"stack_overflow"``."""
    return code.name.lower()


def _trap(trap: wasmtime.Trap, limits: Limits, rewrite: instrument.Rewrite) -> dict[str, Any]:
    frames = tuple(  # offsets in the original bytes; the added fuel sync is not shown
        Frame(f.func_index, f.func_name, f.module_name, _offset(f.module_offset, rewrite))
        for f in trap.frames or ()
        if f.func_index != rewrite.sync_index
    )
    code = trap.trap_code
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return {
            "status": st.OUT_OF_FUEL,
            "trap": trap_kind(code),
            "frames": frames,
            "message": f"used all {limits.fuel} units of fuel",
        }
    kind = trap_kind(code) if code is not None else "host"
    return {
        "status": st.TRAP,
        "trap": kind,
        "frames": frames[:MAX_FRAMES],
        "message": _trap_message(trap.message),
    }


def _offset(value: int, rewrite: instrument.Rewrite) -> int:
    """wasmtime reports an unknown offset as 2**64 - 1; records need -1."""
    return rewrite.original_offset(value) if 0 <= value < 1 << 32 else -1


def _trap_message(text: str) -> str:
    """A trap's cause chain on one line ("wasm trap: call stack exhausted"); the backtrace
    is in the Outcome's frames."""
    return _one_line(text, head=False)


def _export(instance: wasmtime.Instance, store: wasmtime.Store, name: str) -> Any:
    """One export by name. ``instance.exports(store)`` wraps every export in Python
    objects first, which takes seconds for a module with thousands of them."""
    raw = name.encode()
    item = ffi.wasmtime_extern_t()
    found = ffi.wasmtime_instance_export_get(
        store._context(),
        ctypes.byref(instance._instance),
        ctypes.create_string_buffer(raw, len(raw)),
        len(raw),
        ctypes.byref(item),
    )
    return wrap_extern(item) if found else None


def _one_line(text: str, *, head: bool = True) -> str:
    """wasmtime's error text on one line: its head (``head=False``: only when there is no
    cause) without the wasm backtrace, then every cause of its "Caused by:" chain, joined by
    ": " (a cause that only repeats the end of the one before is dropped)."""
    first, _, causes = text.partition("Caused by:")
    chain = [re.sub(r"^\d+:\s*", "", line.strip()) for line in causes.splitlines()]
    chain = [cause for cause in chain if cause]
    if head or not chain:
        chain.insert(0, re.sub(r"\s*at wasm backtrace:.*", "", first, flags=re.DOTALL))
    parts = [" ".join(part.split()) for part in chain]
    kept = [p for i, p in enumerate(parts) if p and not (i and parts[i - 1].endswith(p))]
    return ": ".join(kept) or "unknown error"


def _binary_error(exc: wasmtime.WasmtimeError) -> str:
    """Why wasmtime refused the bytes: its whole cause chain, on one line."""
    return f"invalid WebAssembly module: {_one_line(str(exc), head=False)}"


@contextlib.contextmanager
def _sigint_cancels(cancel: Callable[[], None]) -> Iterator[None]:
    """While a guest runs, SIGINT (Jupyter's interrupt button) cancels it instead of
    raising ``KeyboardInterrupt`` at an arbitrary point of the caller's code."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, lambda _sig, _frame: cancel())
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


class _Workers:
    """Daemon threads with stacks large enough for wasm, kept for reuse.

    Starting a thread costs more than a small guest's whole run, so finished workers wait
    for the next job; a new one starts only when all are busy (so there are never fewer
    workers than jobs, and never more than the most jobs ever run at once).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self._start()
            self._jobs.put(job)

    def _start(self) -> None:
        previous = threading.stack_size(WORKER_STACK)
        try:
            threading.Thread(target=self._serve, name="wasm-sandbox-guest", daemon=True).start()
        finally:
            threading.stack_size(previous)

    def _serve(self) -> None:
        while True:
            self._jobs.get()()  # a job never raises: _guest keeps its errors in the run
            with self._lock:
                self._idle += 1


_WORKERS = _Workers()


class _Ticker:
    """One thread that advances the engine's epoch every `TICK` while any run is active."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._active = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Ticker:
        with self._cond:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="wasm-sandbox-epoch", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._active -= 1

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._active == 0 and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            time.sleep(TICK)
            self._engine.increment_epoch()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
