"""WASI functions the sandbox provides itself instead of wasmtime's.

* ``poll_oneoff`` (what ``sleep`` and ``nanosleep`` call): wasmtime's blocks the thread
  and ignores the epoch deadline, so a sleeping guest would outlive its timeout. Ours
  sleeps in short slices and returns ``EINTR`` as soon as the run's `Watch` says stop;
  the epoch callback then ends the guest at its next check (within one tick).
* In deterministic mode ``clock_time_get``, ``clock_res_get`` and ``random_get`` return a
  virtual clock and a seeded stream, and ``poll_oneoff`` advances the virtual clock
  instead of sleeping, so a replay sees exactly what the original run saw.
* ``path_symlink`` always fails with ``EPERM``: a guest makes no symlinks. wasmtime already
  refuses to follow a symlink out of a grant, but a planted ``out -> ../../..`` would
  redirect whatever the host later does with that path (a later grant of it, the user's
  own tools). (A host function cannot hand a checked call on to wasmtime's own
  ``path_symlink``: called from the host it has no guest memory, so it is all or none.)
"""

from __future__ import annotations

import functools
import hashlib
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import wasmtime

WASI = "wasi_snapshot_preview1"
_SUBSCRIPTION = 48
_EVENT = 32
_CLOCK, _FD_READ, _FD_WRITE = 0, 1, 2
_ABSTIME = 1
_EFAULT, _EINTR, _EINVAL, _EPERM = 21, 27, 28, 63
_SLICE = 0.01
_U32 = 0xFFFFFFFF
#: Virtual time at the start of a deterministic run: 2024-01-01T00:00:00Z in nanoseconds.
VIRTUAL_EPOCH_NS = 1_704_067_200 * 10**9


@dataclass
class Watch:
    """Why and when a run must stop; shared by the waiting caller, the epoch callback
    and the host functions. ``reason`` is set once, to ``"timeout"``, ``"interrupted"`` or
    ``"quota"`` (the read-write grants grew past their quota)."""

    deadline: float
    cancel: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None

    def should_stop(self) -> bool:
        if self.reason is None:
            if self.cancel.is_set():
                self.reason = "interrupted"
            elif time.monotonic() >= self.deadline:
                self.reason = "timeout"
        return self.reason is not None


@dataclass
class VirtualHost:
    """A clock and random stream that depend only on the order of calls."""

    seed: bytes = b"wasm-sandbox/v1/deterministic"
    now_ns: int = VIRTUAL_EPOCH_NS
    _counter: int = 0

    def tick(self) -> int:
        self.now_ns += 1000
        return self.now_ns

    def random(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self.seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        return bytes(out[:n])


class Linkers:
    """The WASI linkers of one engine, one per clock (the host's, or a `VirtualHost`'s),
    each built once and shared by every run: ``define_wasi`` and the shadowing functions
    below cost about 0.1 ms when built per run. The functions find the run they serve with
    `bind`. A linker with WASI must only instantiate into a store that has a `WasiConfig`
    (FIELD-NOTES.md), so `Guest` takes one only after ``set_wasi``."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._made: dict[bool, wasmtime.Linker] = {}
        self._lock = threading.Lock()

    def get(self, virtual: bool) -> wasmtime.Linker:
        with self._lock:
            linker = self._made.get(virtual)
            if linker is None:
                linker = self._made[virtual] = wasmtime.Linker(self._engine)
                linker.define_wasi()
                define(linker, virtual)
            return linker


#: The run this thread's guest belongs to: host calls run on the thread that called into wasm.
_bound = threading.local()


def bind(watch: Watch | None, virtual: VirtualHost | None = None) -> None:
    """Serve this thread's calls of the functions of `define` from ``watch`` and ``virtual``
    (``None``: this thread runs no guest now)."""
    _bound.watch, _bound.virtual = watch, virtual


def define(linker: wasmtime.Linker, virtual: bool) -> None:
    """Shadow the WASI functions above in ``linker`` (which already has ``define_wasi``);
    with ``virtual``, the clocks and random stream of the bound `VirtualHost` too."""
    linker.allow_shadowing = True
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    symlink = wasmtime.FuncType([i32] * 5, [i32])
    linker.define_func(WASI, "path_symlink", symlink, _path_symlink)
    poll = wasmtime.FuncType([i32, i32, i32, i32], [i32])
    linker.define_func(WASI, "poll_oneoff", poll, _poll_oneoff, access_caller=True)
    if virtual:
        clock = wasmtime.FuncType([i32, i64, i32], [i32])
        res = wasmtime.FuncType([i32, i32], [i32])
        rand = wasmtime.FuncType([i32, i32], [i32])
        linker.define_func(WASI, "clock_time_get", clock, _clock_time_get, access_caller=True)
        linker.define_func(WASI, "clock_res_get", res, _clock_res_get, access_caller=True)
        linker.define_func(WASI, "random_get", rand, _random_get, access_caller=True)


def _guarded(fn: Callable[..., int]) -> Callable[..., int]:
    """Host functions never raise: wasmtime-py passes host exceptions between threads
    through one global, so an exception here could surface in another guest's run.
    Any fault becomes ``EFAULT`` for the guest instead."""

    @functools.wraps(fn)
    def host(*args: object) -> int:
        try:
            return fn(*args)
        except Exception:
            return _EFAULT

    return host


def _memory(caller: wasmtime.Caller) -> wasmtime.Memory:
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise LookupError("the module exports no memory")
    return memory


def _now_ns(clock_id: int, virtual: VirtualHost | None) -> int:
    if virtual is not None:
        return virtual.now_ns
    return time.time_ns() if clock_id == 0 else time.monotonic_ns()


@_guarded
def _poll_oneoff(
    caller: wasmtime.Caller, in_ptr: int, out_ptr: int, count: int, nevents_ptr: int
) -> int:
    watch, virtual = _bound.watch, _bound.virtual
    memory = _memory(caller)
    in_ptr, out_ptr, nevents_ptr = in_ptr & _U32, out_ptr & _U32, nevents_ptr & _U32
    if count <= 0 or count > 4096:
        return _EINVAL
    raw = memory.read(caller, in_ptr, in_ptr + count * _SUBSCRIPTION)
    if len(raw) != count * _SUBSCRIPTION:
        return _EFAULT
    subs = [
        _parse_subscription(raw[i * _SUBSCRIPTION : (i + 1) * _SUBSCRIPTION], virtual)
        for i in range(count)
    ]
    wait_ns = min((s[2] for s in subs), default=0)
    if not _sleep(wait_ns, watch, virtual):
        return _EINTR
    fired = [s for s in subs if s[1] != _CLOCK or s[2] <= wait_ns]
    events = b"".join(struct.pack("<QHBxxxxxQH6x", u, 0, t, 0, 0) for u, t, _ in fired)
    memory.write(caller, events, out_ptr)
    memory.write(caller, struct.pack("<I", len(fired)), nevents_ptr)
    return 0


def _parse_subscription(
    raw: bytes | bytearray, virtual: VirtualHost | None
) -> tuple[int, int, int]:
    """(userdata, event type, nanoseconds to wait); fd subscriptions are ready at once."""
    userdata, tag = struct.unpack_from("<QB", raw, 0)
    if tag != _CLOCK:
        return userdata, tag if tag in (_FD_READ, _FD_WRITE) else _FD_READ, 0
    clock_id, timeout, _precision, flags = struct.unpack_from("<I4xQQH", raw, 16)
    if flags & _ABSTIME:
        timeout = max(0, timeout - _now_ns(clock_id, virtual))
    return userdata, _CLOCK, timeout


def _sleep(wait_ns: int, watch: Watch, virtual: VirtualHost | None) -> bool:
    """Sleep ``wait_ns`` unless the run must stop first; False when it must."""
    if virtual is not None:
        virtual.now_ns += wait_ns
        return True
    until = time.monotonic() + wait_ns / 1e9
    while not watch.should_stop():
        left = until - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, _SLICE))
    return False


def _path_symlink(*_args: object) -> int:
    return _EPERM


@_guarded
def _clock_time_get(caller: wasmtime.Caller, clock_id: int, _precision: int, ptr: int) -> int:
    if clock_id not in (0, 1, 2, 3):
        return _EINVAL
    _memory(caller).write(caller, struct.pack("<Q", _bound.virtual.tick()), ptr & _U32)
    return 0


@_guarded
def _clock_res_get(caller: wasmtime.Caller, clock_id: int, ptr: int) -> int:
    if clock_id not in (0, 1, 2, 3):
        return _EINVAL
    _memory(caller).write(caller, struct.pack("<Q", 1000), ptr & _U32)
    return 0


@_guarded
def _random_get(caller: wasmtime.Caller, ptr: int, length: int) -> int:
    length &= _U32
    if length > 1 << 24:
        return _EINVAL
    _memory(caller).write(caller, _bound.virtual.random(length), ptr & _U32)
    return 0
