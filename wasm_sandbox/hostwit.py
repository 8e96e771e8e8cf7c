"""The host API for components: the WIT package ``wasm-sandbox:host@1.0.0`` shipped with
the project (`WIT`, interfaces ``kv`` and ``log``), defined on a component's linker over the
run's `hostapi.Host`, so components and core modules share one store, one quota, one log
budget and one fuel charge per call.

A component that imports an interface it was not granted is refused before it starts with
the core module's one line; so is an interface, function or signature the package does not
have (wasmtime's component linker takes host functions untyped, so the types are checked
here). wasmtime-py passes ``option<list<u8>>``, ``result<_, string>`` and
``result<bool, string>`` untagged (`wasm_sandbox.component`): the functions below return
``None``/``bytes``, ``None``/``str`` and ``bool``/``str``, and never raise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import wasmtime
import wasmtime.component as wc

from . import wit
from .errors import GrantError
from .hostapi import LEVELS, Host, Refusal

PACKAGE, VERSION = "wasm-sandbox:host", "1.0.0"
#: The package's WIT, for a component's ``deps/`` (docs/host-functions.md).
WIT = Path(__file__).with_name("wit") / "host.wit"
_STRING, _BYTES = wit.Type("string"), wit.Type("list", (wit.Type("u8"),))
_LEVEL = wit.Type("enum", (), LEVELS)
#: interface -> (the grant it needs, its functions)
INTERFACES: dict[str, tuple[str, dict[str, wit.Func]]] = {
    "kv": (
        "kv",
        {
            "get": wit.Func((("key", _STRING),), wit.Type("option", (_BYTES,))),
            "set": wit.Func(
                (("key", _STRING), ("value", _BYTES)), wit.Type("result", (None, _STRING))
            ),
            "delete": wit.Func(
                (("key", _STRING),), wit.Type("result", (wit.Type("bool"), _STRING))
            ),
        },
    ),
    "log": ("host_log", {"log": wit.Func((("level", _LEVEL), ("message", _STRING)), None)}),
}
_FAILED = "the host could not do it"


def imported(name: str) -> bool:
    """Whether the component import ``name`` is one of this package's interfaces."""
    return name.startswith(f"{PACKAGE}/")


def define(linker: wc.Linker, host: Host, imports: Mapping[str, Mapping[str, wit.Func]]) -> None:
    """Define the package's interfaces that ``imports`` (import name -> the functions the
    component imports from it) names; `GrantError` before anything is defined for one
    that is unknown, differently typed or not granted."""
    chosen = {name: _interface(host, name, funcs) for name, funcs in imports.items()}
    if not chosen:
        return
    with linker.root() as root:
        for name, interface in chosen.items():
            with root.add_instance(name) as instance:
                for function, implementation in _functions(host, interface).items():
                    instance.add_func(function, implementation)


def _interface(host: Host, name: str, functions: Mapping[str, wit.Func]) -> str:
    """The interface that import ``name`` names, checked against the package and grants."""
    interface, _, version = name.removeprefix(f"{PACKAGE}/").partition("@")
    if interface not in INTERFACES or version != VERSION:
        known = ", ".join(f"{i}@{VERSION}" for i in INTERFACES)
        raise GrantError(f"{PACKAGE} has no interface {name!r} ({known})")
    grant, expected = INTERFACES[interface]
    for function, kind in functions.items():
        if function not in expected:
            raise GrantError(f"{name} has no function {function!r} ({', '.join(expected)})")
        if kind != expected[function]:
            raise GrantError(f"{name} {function}: the package has {expected[function]}, "
                             f"the component imports {kind}")  # fmt: skip
    host.check(f"{name} {next(iter(functions), interface)}", grant)
    return interface


def _functions(host: Host, interface: str) -> dict[str, Callable[..., Any]]:
    """The interface's functions over ``host``: WIT values in, WIT values out."""
    if interface == "log":

        def log(context: wasmtime.StoreContext, level: str, message: str) -> None:
            host.log(context, level if level in LEVELS else "info", message.encode())

        return {"log": _guarded(None, log)}

    def get(context: wasmtime.StoreContext, key: str) -> bytes | None:
        return host.kv_get(context, key.encode())

    def set_(context: wasmtime.StoreContext, key: str, value: bytes) -> str | None:
        refused = host.kv_set(context, key.encode(), value)
        return None if refused is None else refused.message

    def delete(context: wasmtime.StoreContext, key: str) -> bool | str:
        done = host.kv_delete(context, key.encode())
        return done.message if isinstance(done, Refusal) else done

    return {
        "get": _guarded(None, get),
        "set": _guarded(_FAILED, set_),
        "delete": _guarded(_FAILED, delete),
    }


def _guarded(fallback: Any, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, returning ``fallback`` instead of raising into wasmtime (an exception
    there is kept by wasmtime-py and can surface in another run: FIELD-NOTES.md)."""

    @functools.wraps(function)
    def guarded(*args: Any) -> Any:
        try:
            return function(*args)
        except Exception:
            return fallback

    return guarded
