"""What wasmtime raised, as our errors and outcomes: the one place the engine maps
``WasmtimeError``, ``Trap`` and ``ExitTrap``."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from typing import Any

import wasmtime

from . import instrument, wasi
from . import outcome as st
from .errors import CompileError
from .limits import Limits
from .outcome import Frame, Outcome
from .threads import ABANDON_GRACE, Run

MAX_FRAMES = 32
#: wasmtime's words for a GC allocation the store's memory limit has no room for (an
#: error, not a trap).
GC_HEAP_FULL = "GC heap out of memory"
#: wasmtime's words for a wasm exception that no handler caught (a trap without a code).
UNCAUGHT = "thrown Wasm exception"
UNCAUGHT_EXCEPTION = "uncaught_exception"


@contextlib.contextmanager
def refused_module() -> Iterator[None]:
    """Bytes wasmtime refuses to compile raise `CompileError` with its cause chain."""
    try:
        yield
    except wasmtime.WasmtimeError as exc:
        raise CompileError(
            f"invalid WebAssembly module: {one_line(str(exc), head=False)}"
        ) from None


def classify(
    exc: Exception | None, watch: wasi.Watch, limits: Limits, rewrite: instrument.Rewrite
) -> dict[str, Any]:
    """Turn whatever wasmtime raised into the Outcome's status fields."""
    if watch.reason == st.TIMEOUT:
        return {"status": st.TIMEOUT, "message": f"stopped after the {limits.timeout:g} s timeout"}
    if watch.reason == st.INTERRUPTED:
        return {"status": st.INTERRUPTED, "message": "interrupted"}
    if watch.reason == st.QUOTA:
        return {"status": st.QUOTA}  # the run's `Quota` adds what it measured
    if isinstance(exc, wasmtime.ExitTrap):
        status = st.OK if exc.code == 0 else st.EXIT
        return {"status": status, "exit_code": exc.code}
    if isinstance(exc, wasmtime.Trap):
        return _trap(exc, limits, rewrite)
    text = str(exc)
    if GC_HEAP_FULL in text:
        return {
            "status": st.MEMORY_LIMIT,
            "message": f"the GC heap is full under the {limits.memory} byte memory limit "
            f"({one_line(text, head=False)})",
        }
    code = component_trap(text)
    if code is not None:
        return _coded(code, (), one_line(text, head=False), limits)
    if "exceeds memory limits" in text or "memory minimum size" in text:
        return {
            "status": st.MEMORY_LIMIT,
            "message": f"the module needs more memory at start than the "
            f"{limits.memory} byte limit ({one_line(text)})",
        }
    return {"status": st.ERROR, "message": one_line(text)}


def abandoned(run: Run, limits: Limits) -> Outcome:
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


def trap_kind(code: wasmtime.TrapCode) -> str:
    """The stable name of a trap code: ``TrapCode.STACK_OVERFLOW`` -> ``"stack_overflow"``."""
    return code.name.lower()


def _trap(trap: wasmtime.Trap, limits: Limits, rewrite: instrument.Rewrite) -> dict[str, Any]:
    frames = tuple(  # offsets in the original bytes; the added fuel sync is not shown
        Frame(f.func_index, f.func_name, f.module_name, _offset(f.module_offset, rewrite))
        for f in trap.frames or ()
        if f.func_index != rewrite.sync_index
    )
    # the backtrace is in the frames
    return _coded(trap.trap_code, frames, one_line(trap.message, head=False), limits)


def _coded(
    code: wasmtime.TrapCode | None, frames: tuple[Frame, ...], message: str, limits: Limits
) -> dict[str, Any]:
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return {
            "status": st.OUT_OF_FUEL,
            "trap": trap_kind(code),
            "frames": frames,
            "message": f"used all {limits.fuel} units of fuel",
        }
    kind = trap_kind(code) if code is not None else "host"
    if kind == UNCAUGHT_EXCEPTION or (code is None and message == UNCAUGHT):
        kind, message = UNCAUGHT_EXCEPTION, "uncaught exception: a wasm exception reached the host"
    return {"status": st.TRAP, "trap": kind, "frames": frames[:MAX_FRAMES], "message": message}


#: wasmtime's text of a trap's code: a component call raises a plain `WasmtimeError`
#: whose last cause is ``wasm trap: <text>`` (no `Trap`, no code, no frames).
_TRAP_TEXTS = {
    "call stack exhausted": wasmtime.TrapCode.STACK_OVERFLOW,
    "out of bounds memory access": wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS,
    "undefined element: out of bounds table access": wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS,
    "uninitialized element": wasmtime.TrapCode.INDIRECT_CALL_TO_NULL,
    "indirect call type mismatch": wasmtime.TrapCode.BAD_SIGNATURE,
    "integer overflow": wasmtime.TrapCode.INTEGER_OVERFLOW,
    "integer divide by zero": wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO,
    "invalid conversion to integer": wasmtime.TrapCode.BAD_CONVERSION_TO_INTEGER,
    "wasm `unreachable` instruction executed": wasmtime.TrapCode.UNREACHABLE,
    "all fuel consumed by WebAssembly": wasmtime.TrapCode.OUT_OF_FUEL,
    "cannot enter component instance": wasmtime.TrapCode.CANNOT_ENTER_COMPONENT,
}
_WASM_TRAP = re.compile(r"wasm trap: (.+)")


def component_trap(text: str) -> wasmtime.TrapCode | None:
    """The trap code named in a component call's error text, if it names one."""
    found = _WASM_TRAP.findall(text)
    return _TRAP_TEXTS.get(found[-1].strip()) if found else None


def _offset(value: int, rewrite: instrument.Rewrite) -> int:
    """wasmtime reports an unknown offset as 2**64 - 1; records need -1."""
    return rewrite.original_offset(value) if 0 <= value < 1 << 32 else -1


def one_line(text: str, *, head: bool = True) -> str:
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
