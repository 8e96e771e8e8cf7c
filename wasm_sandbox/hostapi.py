"""The sandbox's own host functions, each behind a grant: a key-value store
(``--kv NAMESPACE[:ro]``) and a structured log (``--host-log``). `Host` owns their logic
(store, quotas, log budget, fuel charges) on plain bytes; core modules reach it through the
pointer functions below, components through the WIT package in `wasm_sandbox.hostwit`.
Core modules, version 1::

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
_BAD_POINTER = -2
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


@dataclass(frozen=True)
class Refusal:
    """A write the store refused: the core return code and the component's error text."""

    code: int
    message: str


#: What a read-only grant answers every write.
READ_ONLY = Refusal(-3, "this run was granted the KV namespace read-only (--kv NAMESPACE:ro)")
_OVER_QUOTA = -4


@dataclass
class Host:
    """The host functions of one run: its store connection, log lines and quota state.
    Each operation charges the calling store's fuel (``context``: a `wasmtime.Caller` or
    a component host function's `wasmtime.StoreContext`) and never raises."""

    grants: Grants
    log_limit: int
    lines: list[tuple[str, str]] = field(default_factory=list)
    log_truncated: bool = False
    _log_size: int = 0
    overrun: str | None = None
    kv: KvStore | None = None

    def check(self, function: str, grant: str) -> None:
        """`GrantError` unless this run was granted ``grant`` (``kv``, ``host_log``), which
        ``function`` (its name in the refusal) needs; opens the store on first use."""
        if not getattr(self.grants, grant):
            raise GrantError(f"{function}: this run was not granted it ({_NEEDS[grant]})")
        kv = self.grants.kv
        if grant == "kv" and kv is not None and self.kv is None:
            self.kv = KvStore(kv.store, kv.namespace, kv.writable, kv.max_bytes, kv.max_keys)

    def define(self, linker: wasmtime.Linker, imports: tuple[tuple[str, str], ...]) -> None:
        """Define what a core module imports from `MODULE`; `GrantError` for a function
        that does not exist or was not granted."""
        for module, name in imports:
            if module != MODULE:
                continue
            if name not in FUNCTIONS:
                raise GrantError(f"{MODULE} has no function {name!r} ({', '.join(FUNCTIONS)})")
            params, results, grant = FUNCTIONS[name]
            self.check(f"{MODULE} {name}", grant)
            kind = wasmtime.FuncType([_I32] * params, [_I32] * results)
            linker.define_func(MODULE, name, kind, self._pointers(name), access_caller=True)

    def close(self) -> None:
        if self.kv is not None:
            self.kv.close()

    def kv_get(self, context: wasmtime_private.Context, key: bytes) -> bytes | None:
        assert self.kv is not None  # `check` opened it
        value = self.kv.get(key)
        charge(context, len(key) + len(value or b""))
        return value

    def kv_set(self, context: wasmtime_private.Context, key: bytes, value: bytes) -> Refusal | None:
        """None when stored; a refusal for a read-only grant or past a quota (which also
        sets `overrun`: the run then ends with status ``quota``)."""
        assert self.kv is not None
        charge(context, len(key) + len(value))
        if not self.kv.writable:
            return READ_ONLY
        overrun = self.kv.set(key, value)
        if overrun is None:
            return None
        self.overrun = self.overrun or overrun.message
        return Refusal(_OVER_QUOTA, overrun.message)

    def kv_delete(self, context: wasmtime_private.Context, key: bytes) -> bool | Refusal:
        assert self.kv is not None
        charge(context, len(key))
        if not self.kv.writable:
            return READ_ONLY
        return self.kv.delete(key)

    def log(self, context: wasmtime_private.Context, level: str, message: bytes) -> None:
        """Append a line; past the output limit (which holds the log too) drop it."""
        charge(context, len(message))
        if self._log_size + len(message) > self.log_limit:
            self.log_truncated = True
            return
        self._log_size += len(message)
        self.lines.append((level, message.decode("utf-8", "replace")))

    def _pointers(self, name: str) -> Callable[..., int | None]:
        """The core module function ``name``: pointers in, a return code out."""
        method = getattr(self, f"_core_{name}")
        returns = FUNCTIONS[name][1] > 0

        @functools.wraps(method)
        def host(caller: wasmtime.Caller, *args: int) -> int | None:
            try:  # never raise into wasmtime (see `wasm_sandbox.wasi._guarded`)
                code = int(method(_Memory(caller), *args))
            except Exception:  # IndexError: a pointer outside memory 0
                code = _BAD_POINTER
            return code if returns else None

        return host

    def _core_kv_get(self, mem: _Memory, key: int, key_len: int, out: int, cap: int) -> int:
        value = self.kv_get(mem.caller, mem.read(key, key_len))
        if value is None:
            return -1
        mem.write(out, value[: cap & _U32])
        return len(value)

    def _core_kv_set(self, mem: _Memory, key: int, key_len: int, value: int, value_len: int) -> int:
        refused = self.kv_set(mem.caller, mem.read(key, key_len), mem.read(value, value_len))
        return 0 if refused is None else refused.code

    def _core_kv_delete(self, mem: _Memory, key: int, key_len: int) -> int:
        done = self.kv_delete(mem.caller, mem.read(key, key_len))
        return done.code if isinstance(done, Refusal) else int(done)

    def _core_log(self, mem: _Memory, level: int, text: int, text_len: int) -> int:
        name = LEVELS[level] if 0 <= level < len(LEVELS) else "info"
        self.log(mem.caller, name, mem.read(text, text_len))
        return 0


def charge(context: wasmtime_private.Context, moved: int) -> None:
    """Take `CALL_FUEL` plus one unit per byte moved from the calling store."""
    wasmtime_private.charge_fuel(context, CALL_FUEL + max(moved, 0))


class _Memory:
    """Memory 0 of the calling instance."""

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

    def _check(self, ptr: int, length: int) -> None:
        if self.memory is None:
            raise IndexError(ptr)
        if ptr + length > self.memory.data_len(self.caller):
            raise IndexError(ptr)
