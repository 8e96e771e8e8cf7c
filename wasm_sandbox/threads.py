"""The engine's threads: large-stack workers that run guests, the one epoch ticker, and
SIGINT turned into a cancel while a caller waits for its guest.

Imports no wasmtime at run time, so a process that only waits (`pool`) does not load it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import queue
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import wasmtime

    from .outcome import Outcome
    from .wasi import Watch

#: Far above ``MAX_WASM_STACK``, so a deep recursion traps instead of overflowing this stack.
WORKER_STACK = 64 << 20
TICK = 0.01
MAX_TICKS_BETWEEN_CHECKS = 5
#: Seconds past its deadline (or a cancel) after which a guest stuck in a host call is
#: abandoned: its caller gets ``timeout`` and the guest's thread is left blocked.
ABANDON_GRACE = 1.0
#: The least stack limit under which the main thread runs wasm in place (Linux grows the
#: main thread's stack on demand up to it; ``MAX_WASM_STACK`` is 1 MiB).
MAIN_STACK_FOR_WASM = 8 << 20

_this_thread = threading.local()


@dataclass
class Run:
    """State shared by the caller, the guest thread and the epoch callback of one run."""

    watch: Watch
    fuel_limit: int
    fuel_used: int = 0
    outcome: Outcome | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def ticks_to_next_check(watch: Watch) -> int:
    """Epoch ticks until the guest's callback should look again: at its deadline, and at
    least every `MAX_TICKS_BETWEEN_CHECKS` (for fuel progress and cancellation). The callback
    needs the GIL, so checking at every tick would stall guests while other threads run
    Python."""
    left = math.ceil((watch.deadline - time.monotonic()) / TICK)
    return max(1, min(MAX_TICKS_BETWEEN_CHECKS, left))


@contextlib.contextmanager
def sigint_cancels(cancel: Callable[[], None]) -> Iterator[None]:
    """While a guest runs, SIGINT (Jupyter's interrupt button) cancels it instead of
    raising ``KeyboardInterrupt`` at an arbitrary point of the caller's code."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.signal(signal.SIGINT, lambda _sig, _frame: cancel())
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def stack_fits_wasm() -> bool:
    """Whether wasm may run on this thread's own stack: one of the `Workers`, or the main
    thread under a stack limit of at least `MAIN_STACK_FOR_WASM`."""
    if getattr(_this_thread, "is_worker", False):
        return True
    return threading.current_thread() is threading.main_thread() and _main_stack_fits()


@functools.cache
def _main_stack_fits() -> bool:
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    return soft == resource.RLIM_INFINITY or soft >= MAIN_STACK_FOR_WASM


class Workers:
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
        """Run ``job`` on a worker; it must never raise (keep its errors in its `Run`)."""
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
        _this_thread.is_worker = True
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1


WORKERS = Workers()


class Ticker:
    """One thread that advances the engine's epoch every `TICK` while any run is active,
    and then calls ``on_tick``."""

    def __init__(self, engine: wasmtime.Engine, on_tick: Callable[[], None]) -> None:
        self._engine = engine
        self._on_tick = on_tick
        self._active = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Ticker:
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

    def hurry(self) -> None:
        """Advance the epoch past every guest's next check, so their callbacks run now
        (those with nothing to do go on)."""
        for _ in range(MAX_TICKS_BETWEEN_CHECKS):
            self._engine.increment_epoch()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._active == 0 and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            time.sleep(TICK)
            self._engine.increment_epoch()
            with contextlib.suppress(Exception):  # the epoch goes on, whatever on_tick does
                self._on_tick()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
