"""The sandbox's own host functions for core modules, each behind a grant: a key-value
store (``--kv NAMESPACE[:ro]``) and a structured log (``--host-log``). Version 1::

    (import "wasm-sandbox:host@1" "kv_get"    (func (param i32 i32 i32 i32) (result i32)))
        key ptr, key len, out ptr, out capacity -> the value's length (copies at most
        the capacity), -1 no such key
    (import "wasm-sandbox:host@1" "kv_set"    (func (param i32 i32 i32 i32) (result i32)))
        key ptr, key len, value ptr, value len -> 0 stored, -3 read-only grant,
        -4 over the namespace's quota: the guest then ends with status ``quota``
    (import "wasm-sandbox:host@1" "kv_delete" (func (param i32 i32) (result i32)))
        key ptr, key len -> 1 deleted, 0 no such key, -3 read-only grant
    (import "wasm-sandbox:host@1" "log"       (func (param i32 i32 i32)))
        level (0 debug, 1 info, 2 warn, 3 error), message ptr, message len

Every function also returns -2 for a pointer outside memory 0. Each call is charged
`CALL_FUEL` plus one unit per byte moved against the run's fuel, so a guest cannot hide
work in the host. A module that imports a function it was not granted is refused before
it starts (status ``error``, one line naming the grant it needs); docs/host-functions.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import wasmtime

from . import instrument, wasmtime_private
from .errors import GrantError
from .kvstore import KvStore
from .limits import Grants

MODULE = "wasm-sandbox:host@1"
CALL_FUEL = 1000
LEVELS = ("debug", "info", "warn", "error")
_BAD_POINTER, _READ_ONLY, _OVER_QUOTA = -2, -3, -4
_I32 = wasmtime.ValType.i32()
_U32 = 0xFFFFFFFF
#: name -> (parameters, results, the grant it needs)
FUNCTIONS = {
    "kv_get": (4, 1, "kv"),
    "kv_set": (4, 1, "kv"),
    "kv_delete": (2, 1, "kv"),
    "log": (3, 0, "host_log"),
}
_NEEDS = {"kv": "--kv NAMESPACE[:ro]", "host_log": "--host-log"}


@dataclass
class Host:
    """The host functions of one run: its store connection, log lines and quota state."""

    grants: Grants
    log_limit: int
    lines: list[tuple[str, str]] = field(default_factory=list)
    log_truncated: bool = False
    _log_size: int = 0
    overrun: str | None = None
    kv: KvStore | None = None

    def define(self, linker: wasmtime.Linker, imports: tuple[tuple[str, str], ...]) -> None:
        """Define what the module imports from `MODULE`; `GrantError` for a function that
        does not exist or was not granted."""
        for module, name in imports:
            if module != MODULE:
                continue
            if name not in FUNCTIONS:
                raise GrantError(f"{MODULE} has no function {name!r} ({', '.join(FUNCTIONS)})")
            params, results, grant = FUNCTIONS[name]
            if not getattr(self.grants, grant):
                raise GrantError(f"{MODULE} {name}: this run was not granted it ({_NEEDS[grant]})")
            kind = wasmtime.FuncType([_I32] * params, [_I32] * results)
            linker.define_func(MODULE, name, kind, self._host(name), access_caller=True)
        if self.grants.kv is not None and self.kv is None:
            kv = self.grants.kv
            self.kv = KvStore(kv.store, kv.namespace, kv.writable, kv.max_bytes, kv.max_keys)

    def close(self) -> None:
        if self.kv is not None:
            self.kv.close()

    def _host(self, name: str) -> Callable[..., int | None]:
        method = getattr(self, f"_{name}")
        returns = FUNCTIONS[name][1] > 0

        @functools.wraps(method)
        def host(caller: wasmtime.Caller, *args: int) -> int | None:
            try:  # never raise into wasmtime (see `wasm_sandbox.wasi._guarded`)
                code = int(method(_Memory(caller), *args))
            except Exception:  # IndexError: a pointer outside memory 0
                code = _BAD_POINTER
            return code if returns else None

        return host

    def _kv_get(self, mem: _Memory, key: int, key_len: int, out: int, cap: int) -> int:
        assert self.kv is not None
        value = self.kv.get(mem.read(key, key_len))
        if value is None:
            mem.charge(key_len)
            return -1
        shown = value[: cap & _U32]
        mem.charge(key_len + len(shown))
        mem.write(out, shown)
        return len(value)

    def _kv_set(self, mem: _Memory, key: int, key_len: int, value: int, value_len: int) -> int:
        assert self.kv is not None
        mem.charge(key_len + value_len)
        if not self.kv.writable:
            return _READ_ONLY
        overrun = self.kv.set(mem.read(key, key_len), mem.read(value, value_len))
        if overrun is None:
            return 0
        self.overrun = self.overrun or overrun.message
        return _OVER_QUOTA

    def _kv_delete(self, mem: _Memory, key: int, key_len: int) -> int:
        assert self.kv is not None
        mem.charge(key_len)
        if not self.kv.writable:
            return _READ_ONLY
        return int(self.kv.delete(mem.read(key, key_len)))

    def _log(self, mem: _Memory, level: int, text: int, text_len: int) -> int:
        mem.charge(text_len)
        data = mem.read(text, text_len)
        if self._log_size + len(data) > self.log_limit:  # the output limit holds the log too
            self.log_truncated = True
            return 0
        self._log_size += len(data)
        name = LEVELS[level] if 0 <= level < len(LEVELS) else "info"
        self.lines.append((name, data.decode("utf-8", "replace")))
        return 0


class _Memory:
    """Memory 0 of the calling instance, and the fuel of its store."""

    def __init__(self, caller: wasmtime.Caller) -> None:
        self.caller = caller
        found = caller.get(instrument.memory_export(0)) or caller.get("memory")
        self.memory = found if isinstance(found, wasmtime.Memory) else None

    def read(self, ptr: int, length: int) -> bytes:
        ptr, length = ptr & _U32, length & _U32  # i32 arguments arrive signed
        self._check(ptr, length)
        assert self.memory is not None
        return bytes(self.memory.read(self.caller, ptr, ptr + length))

    def write(self, ptr: int, data: bytes) -> None:
        ptr &= _U32
        self._check(ptr, len(data))
        assert self.memory is not None
        self.memory.write(self.caller, data, ptr)

    def charge(self, moved: int) -> None:
        wasmtime_private.charge_fuel(self.caller, CALL_FUEL + max(moved, 0))

    def _check(self, ptr: int, length: int) -> None:
        if self.memory is None:
            raise IndexError(ptr)
        if ptr + length > self.memory.data_len(self.caller):
            raise IndexError(ptr)
