"""What one run did: `Outcome`, its wasm stack `Frame`s, and the status vocabulary.

A guest that traps, loops or floods its output produces an `Outcome`, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from . import wire

OK = "ok"
EXIT = "exit"
TRAP = "trap"
TIMEOUT = "timeout"
OUT_OF_FUEL = "out_of_fuel"
MEMORY_LIMIT = "memory_limit"
QUOTA = "quota"
INTERRUPTED = "interrupted"
ERROR = "error"
#: The worker process carrying the run died (a signal, the OOM killer, a wasmtime bug).
CRASHED = "crashed"
#: Compiling the module broke its compile deadline or memory cap.
COMPILE_LIMIT = "compile_limit"
STATUSES = (
    OK,
    EXIT,
    TRAP,
    TIMEOUT,
    OUT_OF_FUEL,
    MEMORY_LIMIT,
    QUOTA,
    INTERRUPTED,
    ERROR,
    CRASHED,
    COMPILE_LIMIT,
)

#: The fields of a record's public ``outcome`` that its sealed result repeats: whoever opens
#: the result (`Sandbox.verify` with the key, a notebook's disclosure) checks they agree.
CHECKED_FIELDS = ("status", "trap", "exit_code", "fuel_used", "memory_bytes")
#: ``Outcome.trap``: wasmtime 50's trap codes, lowercased (``out_of_fuel`` comes with status
#: ``out_of_fuel``, ``interrupt`` never reaches an outcome: the clock makes it ``timeout`` or
#: ``interrupted``), and ``host`` for a trap without a code (a host function failed).
TRAP_KINDS = frozenset(
    [
        "stack_overflow",
        "memory_out_of_bounds",
        "heap_misaligned",
        "table_out_of_bounds",
        "indirect_call_to_null",
        "bad_signature",
        "integer_overflow",
        "integer_division_by_zero",
        "bad_conversion_to_integer",
        "unreachable",
        "interrupt",
        "out_of_fuel",
        "atomic_wait_non_shared_memory",
        "null_reference",
        "array_out_of_bounds",
        "allocation_too_large",
        "cast_failure",
        "uncaught_exception",
        "cannot_enter_component",
        "no_async_result",
        "unhandled_tag",
        "continuation_already_consumed",
        "disabled_opcode",
        "async_deadlock",
        "cannot_leave_component",
        "cannot_block_sync_task",
        "invalid_char",
        "debug_assert_string_encoding_finished",
        "debug_assert_equal_code_units",
        "debug_assert_pointer_aligned",
        "debug_assert_upper_bits_unset",
        "string_out_of_bounds",
        "list_out_of_bounds",
        "invalid_discriminant",
        "unaligned_pointer",
        "task_cancel_not_cancelled",
        "task_cancel_or_return_twice",
        "subtask_cancel_after_terminal",
        "task_return_invalid",
        "waitable_set_drop_has_waiters",
        "subtask_drop_not_resolved",
        "thread_new_indirect_invalid_type",
        "thread_new_indirect_uninitialized",
        "backpressure_overflow",
        "unsupported_callback_code",
        "cannot_resume_thread",
        "concurrent_future_stream_op",
        "reference_count_overflow",
        "stream_op_too_big",
        "waitable_sync_and_async",
        "host",
    ]
)


@dataclass(frozen=True)
class Frame:
    """One wasm stack frame of a trap, innermost first (``module_offset`` -1: unknown)."""

    func_index: int
    func_name: str | None
    module_name: str | None
    module_offset: int

    def __str__(self) -> str:
        name = self.func_name or f"func[{self.func_index}]"
        where = f" @ 0x{self.module_offset:x}" if 0 <= self.module_offset < 1 << 32 else ""
        return f"{self.module_name or '<module>'}!{name}{where}"


@dataclass(frozen=True)
class Outcome:
    """The result of running a guest under `Limits`.

    ``returns`` holds the export's results (ints and floats; a reference as its text,
    ``"null"``, ``"ref.extern N"`` or ``"ref.func"``: `wasm_sandbox.call`); ``exit_code``
    is the WASI exit status (0 for a command that returned normally, ``None`` for an export call).
    ``trap`` is the trap kind (``"stack_overflow"``, ``"unreachable"``, ...) when
    ``status`` is ``"trap"``; ``message`` explains any status other than ``"ok"``.
    ``fuel_lower_bound``: the module could not be instrumented (`wasm_sandbox.instrument`),
    so ``fuel_used`` may miss the work of loops stopped by the clock or an interrupt.
    """

    status: str
    returns: tuple[int | float | str, ...] = ()
    exit_code: int | None = None
    trap: str | None = None
    message: str | None = None
    frames: tuple[Frame, ...] = ()
    stdout: str = ""
    stderr: str = ""
    output_truncated: bool = False
    fuel_used: int = 0
    fuel_limit: int = 0
    fuel_lower_bound: bool = False
    memory_bytes: int = 0
    memory_limit: int = 0
    duration_ms: float = 0.0
    cache: str = "miss"
    deterministic: bool = False
    result_types: tuple[str, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        """True when the guest finished normally (``ok``, or ``exit`` with code 0)."""
        return self.status == OK or (self.status == EXIT and self.exit_code == 0)

    def summary(self) -> dict[str, Any]:
        """The record's ``outcome`` field: integers and strings, plus
        ``"fuel_lower_bound": true`` only when the fuel figure is a lower bound."""
        return {
            "status": self.status,
            "trap": self.trap,
            "exit_code": self.exit_code,
            "fuel_used": self.fuel_used,
            **({"fuel_lower_bound": True} if self.fuel_lower_bound else {}),
            "memory_bytes": self.memory_bytes,
            "duration_us": round(self.duration_ms * 1000),
        }

    def result_payload(self) -> dict[str, Any]:
        """What a replay must reproduce: everything but timing and cache state.

        Returns are kept as ``[type, text]`` pairs so that floats (NaN included)
        survive canonical JSON exactly.
        """
        return {
            "status": self.status,
            "returns": [
                [t, v if isinstance(v, str) else repr(v)]
                for t, v in zip(self.result_types, self.returns, strict=False)
            ],
            "exit_code": self.exit_code,
            "trap": self.trap,
            "message": self.message,
            "frames": [asdict(f) for f in self.frames],
            "stdout": self.stdout,
            "stderr": self.stderr,
            "output_truncated": self.output_truncated,
            "fuel_used": self.fuel_used,
            "memory_bytes": self.memory_bytes,
        }

    @classmethod
    def from_result(cls, payload: Mapping[str, Any], **facts: Any) -> Outcome:
        """The outcome a sealed result payload (`result_payload`) describes, exactly, with
        ``facts`` the payload does not hold (``fuel_limit``, ``duration_ms``, ...): how a
        run that happened elsewhere (a server's, a disclosed one) is shown."""
        pairs = [(str(t), str(v)) for t, v in payload["returns"]]
        return cls(
            status=payload["status"],
            returns=tuple(_returned(t, v) for t, v in pairs),
            result_types=tuple(t for t, _ in pairs),
            exit_code=payload["exit_code"],
            trap=payload["trap"],
            message=payload["message"],
            frames=tuple(Frame(**f) for f in payload["frames"]),
            stdout=payload["stdout"],
            stderr=payload["stderr"],
            output_truncated=payload["output_truncated"],
            fuel_used=payload["fuel_used"],
            memory_bytes=payload["memory_bytes"],
            **facts,
        )

    def to_json(self) -> wire.Outcome:
        """The run's facts as the CLI and REST API show them (DESIGN.md contract)."""
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "returns": [_json_number(v) for v in self.returns],
            "trap": self.trap,
            "message": self.message,
            "frames": [str(f) for f in self.frames],
            "stdout": self.stdout,
            "stderr": self.stderr,
            "output_truncated": self.output_truncated,
            "fuel_used": self.fuel_used,
            "fuel_limit": self.fuel_limit,
            "fuel_lower_bound": self.fuel_lower_bound,
            "memory_bytes": self.memory_bytes,
            "memory_limit": self.memory_limit,
            "duration_ms": round(self.duration_ms, 3),
            "cache": self.cache,
            "deterministic": self.deterministic,
        }


def _returned(kind: str, text: str) -> int | float | str:
    """A result back from its ``[type, text]`` pair."""
    if kind in ("i32", "i64"):
        return int(text)
    return float(text) if kind in ("f32", "f64") else text


def _json_number(value: int | float | str) -> wire.JsonNumber:
    """JSON has no NaN or infinity: such float returns become ``"NaN"``, ``"Infinity"``..."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value
