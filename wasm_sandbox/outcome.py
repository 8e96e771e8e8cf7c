"""What one run did: `Outcome`, its wasm stack `Frame`s, and the status vocabulary.

A guest that traps, loops or floods its output produces an `Outcome`, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import wave

if TYPE_CHECKING:
    from . import wire, wit

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

    ``returns`` holds the export's results (ints and floats; a core reference as its text,
    ``"null"``, ``"ref.extern N"`` or ``"ref.func"``: `wasm_sandbox.call`; for a component,
    the one result as a `wasm_sandbox.wave` Python value); ``exit_code`` is the WASI exit
    status (0 for a command that returned normally, ``None`` for an export call).
    ``trap`` is the trap kind (``"stack_overflow"``, ``"unreachable"``, ...) when
    ``status`` is ``"trap"``; ``message`` explains any status other than ``"ok"``.
    ``fuel_lower_bound``: the module could not be instrumented (`wasm_sandbox.instrument`),
    so ``fuel_used`` may miss the work of loops stopped by the clock or an interrupt.
    ``result_types`` names each return's type (``i32``...; WIT type text for a component);
    ``call_args`` are a component call's arguments in WAVE, ``world`` its WIT world.
    ``host_log`` holds the ``(level, message)`` lines of the host log function.
    """

    status: str
    returns: tuple[Any, ...] = ()
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
    call_args: tuple[str, ...] | None = field(default=None, repr=False)
    world: str = field(default="", repr=False)
    host_log: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """True when the guest finished normally (``ok``, or ``exit`` with code 0)."""
        return self.status == OK or (self.status == EXIT and self.exit_code == 0)

    def shown_returns(self) -> list[str]:
        """Each return as text: WAVE for a component's, Python's ``repr`` for numbers."""
        return [_text(t, v) for t, v in zip(self.result_types, self.returns, strict=False)] or [
            repr(v) for v in self.returns
        ]

    def host_log_text(self) -> str:
        """The host log, one ``[level] message`` line per entry ("" when there is none)."""
        return "".join(f"[{level}] {message}\n" for level, message in self.host_log)

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
                [t, _text(t, v)] for t, v in zip(self.result_types, self.returns, strict=False)
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
            **({"host_log": [list(line) for line in self.host_log]} if self.host_log else {}),
        }

    @classmethod
    def from_result(cls, payload: Mapping[str, Any], **facts: Any) -> Outcome:
        """The outcome a sealed result payload (`result_payload`) describes, exactly, with
        ``facts`` the payload does not hold (``fuel_limit``, ``duration_ms``, ...): how a
        run that happened elsewhere (a server's, a disclosed one) is shown."""
        pairs = [(str(t), str(v)) for t, v in payload["returns"]]
        return cls(
            status=payload["status"],
            returns=tuple(_value(t, v) for t, v in pairs),
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
            host_log=tuple((str(lv), str(m)) for lv, m in payload.get("host_log", ())),
            **facts,
        )

    def to_json(self) -> wire.Outcome:
        """The run's facts as the CLI and REST API show them (DESIGN.md contract);
        ``host_log`` only when the guest logged through the host."""
        shown: wire.Outcome = {
            "status": self.status,
            "exit_code": self.exit_code,
            "returns": [wave.to_json(v) for v in self.returns],
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
        if self.host_log:
            shown["host_log"] = [list(line) for line in self.host_log]
        return shown


def _text(kind: str, value: Any) -> str:
    """A return as sealed: ``repr`` of a core number, a core reference's own text (``"null"``,
    ``"ref.extern N"``), WAVE of a component value."""
    if kind in _CORE:
        return repr(value)
    component_type = _component_type(kind)
    return str(value) if component_type is None else wave.show(value, component_type)


def _value(kind: str, text: str) -> Any:
    if kind in ("i32", "i64"):
        return int(text)
    if kind in _CORE:
        return float(text)
    component_type = _component_type(kind)
    return text if component_type is None else wave.parse(text, component_type)


def _component_type(kind: str) -> wit.Type | None:
    """The WIT type ``kind`` names; None for a core reference type (``externref``,
    ``(ref null 3)``), which is no WIT type."""
    try:
        return wave.parse_type(kind)
    except ValueError:
        return None


_CORE = frozenset({"i32", "i64", "f32", "f64"})
