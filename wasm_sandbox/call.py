"""The call a run makes: the export and its arguments, checked and converted beforehand.

The host passes numbers and two reference types (docs/wasm3.md): ``externref``, given as
``None`` or ``"null"`` (null) or an integer ``N`` or ``"ref.extern N"`` (a host reference
carrying N), and ``funcref``, only null. Reference results come back as text: ``"null"``,
``"ref.extern N"``, ``"ref.func"``. Any other reference type (GC, typed or non-null
references, exnref) is refused before the guest runs: wasmtime-py cannot even describe it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import wasmtime

from . import binary, wasmtime_private
from . import outcome as st
from .errors import InvocationError

#: Types the host can pass and receive.
PASSABLE = binary.NUMBERS | {"externref", "funcref"}
NULL, FUNC, EXTERN = "null", "ref.func", "ref.extern "
_INT_RANGE = {"i32": (-(1 << 31), (1 << 32) - 1), "i64": (-(1 << 63), (1 << 64) - 1)}


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]
    result_types: tuple[str, ...]

    @property
    def sealed_args(self) -> tuple[str, ...] | None:
        """The arguments as the record seals them, when not as given (components: WAVE)."""
        return None

    def lookup(self, instance: Any, store: wasmtime.Store) -> Any:
        """The function to call in ``instance``."""
        return wasmtime_private.export(instance, store, self.name)

    def finished(self, values: Any) -> dict[str, Any]:
        """The Outcome's status fields for a call that returned ``values``."""
        if len(self.result_types) == 1:  # wasmtime-py: one value, a list, or None for none
            returns: tuple[Any, ...] = (values,)
        else:
            returns = tuple(values or ())
        returns = tuple(map(_result, self.result_types, returns))
        exit_code = 0 if self.name == "_start" else None
        return {"status": st.OK, "returns": returns, "exit_code": exit_code}


def prepare_call(
    funcs: dict[str, binary.Signature], invoke: str | None, args: Sequence[Any]
) -> Call:
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
    unsupported = [t for t in (*params, *results) if t not in PASSABLE]
    if unsupported:
        raise InvocationError(
            f"{name} has a {unsupported[0]} in its signature; only i32, i64, f32, f64, "
            "externref and (null) funcref values can pass between the host and the guest"
        )
    if len(args) != len(params):
        raise InvocationError(
            f"{name} takes {len(params)} argument(s) ({', '.join(params)}), got {len(args)}"
        )
    converted = tuple(
        _convert(value, kind, name, i)
        for i, (value, kind) in enumerate(zip(args, params, strict=True))
    )
    return Call(name, converted, results)


def _result(kind: str, value: Any) -> Any:
    """A reference result as text; numbers unchanged."""
    if kind == "externref":
        return NULL if value is None else f"{EXTERN}{value}"
    if kind == "funcref":
        return NULL if value is None else FUNC
    return value


def _convert(value: Any, kind: str, name: str, index: int) -> int | float | None:
    where = f"{name} argument {index + 1} ({kind})"
    if kind in ("externref", "funcref") and value in (None, NULL):
        return None
    if kind == "externref" and isinstance(value, str) and value.startswith(EXTERN):
        value = value[len(EXTERN) :]
    try:
        if kind in (*_INT_RANGE, "externref"):
            if isinstance(value, (float, bool)):
                raise ValueError
            number = int(value, 0) if isinstance(value, str) else int(value)
            if kind == "externref":
                return number  # wasmtime-py wraps it in a host reference
            low, high = _INT_RANGE[kind]
            if not low <= number <= high:
                raise InvocationError(f"{where}: {number} is out of range")
            bits = 32 if kind == "i32" else 64
            return number - (1 << bits) if number >= 1 << (bits - 1) else number
        if kind in ("f32", "f64"):
            return float(value)
    except (TypeError, ValueError):
        raise InvocationError(f"{where}: cannot use {value!r}") from None
    raise InvocationError(f"{where}: only null can be passed, got {value!r}")
