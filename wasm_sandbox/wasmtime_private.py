"""The one room that uses wasmtime-py's private API, checked against the versions it was
written for (pyproject pins them) when it is imported.

wasmtime-py wraps neither an epoch deadline callback nor a lookup of one export by name; its
``_bindings`` (the C API through ctypes), ``_extern`` and underscore members do. They may
change in any release, so everything that uses them is here, and an unsupported wasmtime-py
fails at import with `ImportError` naming the versions supported instead of misbehaving in a
run.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import re
from collections.abc import Callable
from typing import Any

import wasmtime

#: The wasmtime-py releases this shim was written for: at least `OLDEST`, below `NEWER`.
OLDEST = (50,)
NEWER = (51,)


def release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string: ``"50.0.1rc1"`` -> ``(50, 0, 1)``."""
    match = re.match(r"\d+(\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def supported(version: str) -> bool:
    """Whether ``version`` of wasmtime-py is one this shim was written for."""
    return OLDEST <= release(version) < NEWER


def check(version: str) -> None:
    """Raise `ImportError` naming the supported releases unless ``version`` is one."""
    if not supported(version):
        raise _refuse(f"{version} is installed")


def _refuse(why: str) -> ImportError:
    wanted = f">={'.'.join(map(str, OLDEST))},<{'.'.join(map(str, NEWER))}"
    return ImportError(
        f"wasm_sandbox's engine supports wasmtime-py {wanted} ({why}); "
        f'install a supported release: pip install "wasmtime{wanted}"'
    )


#: What the shim uses of ``_bindings`` besides the imports below.
_FFI = (
    "wasmtime_context_get_fuel",
    "wasmtime_context_set_fuel",
    "wasmtime_context_t",
    "wasmtime_error_new",
    "wasmtime_extern_t",
    "wasmtime_instance_export_get",
    "wasmtime_store_epoch_deadline_callback",
    "wasmtime_update_deadline_kind_t",
)


def _missing(bindings: object) -> list[str]:
    """The private names this module uses that the installed wasmtime-py lacks."""
    missing = [f"_bindings.{name}" for name in _FFI if not hasattr(bindings, name)]
    if not hasattr(wasmtime.Store, "_context"):
        missing.append("Store._context")
    if "_instance" not in getattr(wasmtime.Instance, "__annotations__", {}):
        missing.append("Instance._instance")
    return missing


_INSTALLED = importlib.metadata.version("wasmtime")
check(_INSTALLED)
try:
    from wasmtime import _bindings as ffi
    from wasmtime._extern import wrap_extern
except ImportError as exc:
    raise _refuse(f"{_INSTALLED}: {exc}") from exc
_MISSING = _missing(ffi)
if _MISSING:
    raise _refuse(f"{_INSTALLED} lacks {', '.join(_MISSING)}")

_DeadlineCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_Finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_NO_FINALIZER = _Finalizer(lambda _data: None)
#: What a deadline callback stores in ``kind[0]`` to go on running.
CONTINUE = 0
DeadlineFunction = Callable[[Any, Any, Any, Any], int]


def on_epoch_deadline(store: wasmtime.Store, function: DeadlineFunction) -> object:
    """Have wasmtime call ``function(context, data, delta, kind)`` on the guest's thread at
    every epoch deadline of ``store``. Keep the returned callback alive as long as the store.

    ``function`` returns 0 to go on (after setting ``delta[0]`` ticks and ``kind[0]`` =
    `CONTINUE`) or a `deadline_error`; it must never raise.
    """
    callback = _DeadlineCallback(function)
    ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), callback, None, _NO_FINALIZER)
    return callback


def deadline_error(reason: str) -> int:
    """What a deadline callback returns to trap the guest with ``reason``."""
    error = ffi.wasmtime_error_new(reason.encode())
    return ctypes.cast(error, ctypes.c_void_p).value or 0


def fuel_left(context: Any) -> int | None:
    """The fuel left in a deadline callback's ``context``, or None if it cannot be read."""
    left = ctypes.c_uint64()
    if ffi.wasmtime_context_get_fuel(context, ctypes.byref(left)):
        return None  # an error: the store consumes no fuel
    return left.value


#: What a host function is called with: a core module's `wasmtime.Caller`, or the
#: `wasmtime.StoreContext` of a component's host function (wasmtime.component's linker).
Context = wasmtime.Caller | wasmtime.StoreContext


def charge_fuel(caller: Context, units: int) -> bool:
    """Take ``units`` of fuel from the store a host function was called from (the guest
    then traps out of fuel at its next check when there is not enough); False when the
    store consumes no fuel or the fuel cannot be read."""
    context = caller._context()
    left = fuel_left(context)
    if left is None:
        return False
    return not ffi.wasmtime_context_set_fuel(context, max(left - units, 0))


def export(instance: wasmtime.Instance, store: wasmtime.Store, name: str) -> Any:
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
