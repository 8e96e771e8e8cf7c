"""wasmtime under hard limits: one engine, a module cache, one epoch ticker, guarded runs.

`Engine` coordinates the rooms that each know one thing (docs/INTERFACES.md): `compiled`
(the configuration and `Compiled`), `call`, `guest` (one store, its WASI and its epoch
callback), `capture` (stdout, stderr), `quota`, `traps` (what wasmtime raised, as our
errors and outcomes), `threads` (workers, the ticker, SIGINT) and `wasmtime_private` (the
one user of wasmtime-py's private API). How they keep a guest from killing or hanging the
host (FIELD-NOTES.md):

* Wasm runs on a worker thread with a 64 MiB stack, far above ``max_wasm_stack``
  (1 MiB, below the 2 MiB at which ``Engine()`` aborts), so a deep recursion traps
  cleanly instead of overflowing the native stack.
* Wall-clock limits and interrupts go through an epoch deadline callback (`guest`).
* The caller waits on an `Event`; a ``KeyboardInterrupt`` there (Jupyter's interrupt
  button) cancels the guest, which ends within one tick as ``interrupted``.
* A run that can never block in a host call (a core module with no directory and no
  key-value grant) and reports no progress runs in place, without the hand-off, when the
  caller's stack is large enough (`threads.stack_fits_wasm`: a worker, or the main thread).
  On the main thread SIGINT still cancels it: the handler runs in the guest's next epoch
  callback, which is Python on this thread.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import wasmtime
import wasmtime.component as wc

from . import binary, capture, component, instrument, traps, wasi
from .cache import ModuleCache
from .call import Call, prepare_call
from .compiled import Compiled, compile_rewritten, config, fingerprint
from .component import compile_component
from .guest import Guest
from .limits import Grants, Limits
from .outcome import Outcome
from .threads import ABANDON_GRACE, WORKERS, Run, Ticker, sigint_cancels, stack_fits_wasm
from .traps import trap_kind

__all__ = ["Compiled", "Engine", "process_engine", "trap_kind"]

PROGRESS_INTERVAL = 0.1
RECENT_MODULES = 128


class Engine:
    """A wasmtime engine with fuel and epochs on, a module cache and an epoch ticker.

    Thread-safe: many threads may `run` at once, each guest in its own `Store`.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._engine = wasmtime.Engine(config())
        self.cache = ModuleCache(cache_dir, fingerprint())
        self._recent: OrderedDict[str, Compiled] = OrderedDict()
        self._lock = threading.Lock()
        self._ticker = Ticker(self._engine, capture.hand_over)
        self._wasi = wasi.Linkers(self._engine)
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
            known = self._compile(wasm, digest)
            with self._lock:
                self._recent[digest] = replace(known, cache="memory")
                while len(self._recent) > RECENT_MODULES:
                    self._recent.popitem(last=False)
        return replace(known, compile_ms=(time.perf_counter() - start) * 1000)

    def _compile(self, wasm: bytes, digest: str) -> Compiled:
        """Compile a core module (rewritten by `instrument`) or a component, or load it
        from the disk cache."""
        if binary.is_component(wasm):
            with traps.refused_module():
                component, meta, where = self.cache.get(
                    digest,
                    self._engine,
                    lambda: compile_component(self._engine, wasm),
                    wc.Component.deserialize,
                )
            of = Compiled.of_component(self._engine, component, wasm, digest, meta.decode())
            return replace(of, cache=where)
        with traps.refused_module():
            module, meta, where = self.cache.get(
                digest, self._engine, lambda: compile_rewritten(self._engine, wasm)
            )
        rewrite = instrument.Rewrite.from_bytes(meta)
        return replace(Compiled.inspect(module, wasm, digest), cache=where, rewrite=rewrite)

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
        call = (
            component.prepare_call(compiled.world, invoke, args)
            if compiled.world is not None
            else prepare_call(compiled.functions, invoke, args)
        )
        watch = wasi.Watch(
            deadline=time.monotonic() + limits.timeout, cancel=cancel or threading.Event()
        )
        run = Run(watch, limits.fuel)
        guest = functools.partial(self._guest, run, compiled, call, limits, grants)
        with self._ticker, sigint_cancels(lambda: self._cancel(run)):
            if progress is None and _never_blocks(compiled, grants) and stack_fits_wasm():
                guest()
            else:
                WORKERS.submit(guest)
                self._wait(run, limits, progress)
        if run.error is not None and run.outcome is None:
            raise run.error
        assert run.outcome is not None
        return run.outcome

    def _wait(self, run: Run, limits: Limits, progress: Callable[[int], None] | None) -> None:
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
                    run.outcome = traps.abandoned(run, limits)
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

    def _cancel(self, run: Run) -> None:
        """Stop the guest at once: its callback runs now, not at its next check."""
        run.watch.cancel.set()
        self._ticker.hurry()

    def _guest(
        self, run: Run, compiled: Compiled, call: Call, limits: Limits, grants: Grants
    ) -> None:
        """The worker's job: never raises, keeps the outcome or the error in ``run``."""
        try:
            with self._ticker:  # ticks go on for a guest that outlives its caller's wait
                guest = Guest(self._engine, self._wasi, run, compiled, limits, grants)
                outcome = guest.execute(call)
            if run.outcome is None:  # not abandoned meanwhile
                run.outcome = outcome
        except BaseException as exc:
            run.error = exc
        finally:
            run.done.set()

    def close(self) -> None:
        """Stop the ticker thread; idempotent."""
        self._ticker.close()


def _never_blocks(compiled: Compiled, grants: Grants) -> bool:
    """Whether no host call of this run can block past its deadline: the WASI of a core
    module without directories (sleeps are cut at the deadline, stdin is a file) and the
    structured log. A guest that could block must run on a worker its caller can abandon."""
    return compiled.world is None and not grants.dirs and grants.kv is None


_PROCESS_ENGINE: Engine | None = None
_PROCESS_LOCK = threading.Lock()


def process_engine() -> Engine:
    """This process's own engine, created on first use: for `wasm_sandbox.job.execute`
    without a runner (an executor's worker in another process). It lives here, imported
    after wasmtime, so that it is released before wasmtime at interpreter exit."""
    global _PROCESS_ENGINE
    with _PROCESS_LOCK:
        if _PROCESS_ENGINE is None:
            _PROCESS_ENGINE = Engine()
        return _PROCESS_ENGINE
