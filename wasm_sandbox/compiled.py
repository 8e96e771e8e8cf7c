"""The engine's configuration and what compiling a module under it yields (`Compiled`)."""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass, field

import wasmtime
import wasmtime.component as wc

from . import binary, instrument, wasi
from .component import World, read_world
from .errors import CompileError

#: Below the 2 MiB at which ``wasmtime.Engine()`` aborts (FIELD-NOTES.md).
MAX_WASM_STACK = 1 << 20
#: Bump when `config` or the rewrite (`instrument`) changes: cached compiled code from
#: another configuration is ignored.
CONFIG_VERSION = 5
#: The WebAssembly 3.0 proposals `config` turns on (docs/wasm3.md).
WASM3 = (
    "wasm_gc",
    "wasm_function_references",
    "wasm_exceptions",
    "wasm_tail_call",
    "wasm_memory64",
    "wasm_multi_memory",
)
#: WASI functions through which a guest can observe time or randomness.
NONDETERMINISTIC_IMPORTS = frozenset(
    {"clock_time_get", "clock_res_get", "random_get", "poll_oneoff"}
)


@dataclass(frozen=True)
class Compiled:
    """A validated, compiled module (or component: then ``world`` is set) and what the
    sandbox needs to know about it."""

    module: wasmtime.Module | wc.Component = field(repr=False)
    wasm: bytes = field(repr=False)
    digest: str
    cache: str
    compile_ms: float
    imports: tuple[tuple[str, str], ...]
    functions: dict[str, binary.Signature] = field(repr=False)
    memories: tuple[str, ...] = ()
    gc_heap: bool = False  # see `binary.Interface.gc_heap`
    rewrite: instrument.Rewrite = field(default=instrument.unchanged(b""), repr=False)
    world: World | None = field(default=None, repr=False)

    @classmethod
    def inspect(cls, module: wasmtime.Module, wasm: bytes, digest: str) -> Compiled:
        """Read imports and exported function signatures once, from the original bytes
        (never through wasmtime's type API: see `wasm_sandbox.binary`)."""
        try:
            face = binary.interface(wasm)
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise CompileError(f"cannot read the module's imports and exports: {exc}") from None
        imports = tuple((mod, name) for mod, name, _kind in face.imports)
        memories = tuple(name for name, kind in face.exports if kind == "memory")
        facts = (imports, face.functions, memories, face.gc_heap)
        return cls(module, bytes(wasm), digest, "miss", 0.0, *facts)

    @classmethod
    def of_component(
        cls, engine: wasmtime.Engine, component: wc.Component, wasm: bytes, digest: str, wit: str
    ) -> Compiled:
        """A component and its world (`wasm_sandbox.component.read_world`)."""
        world = read_world(engine, component, wit)
        imports = tuple((name, "") for name, _ in world.imports)
        return cls(component, bytes(wasm), digest, "miss", 0.0, imports, {}, world=world)

    @property
    def uses_wasi(self) -> bool:
        if self.world is not None:
            return self.world.uses_wasi
        return any(mod == wasi.WASI for mod, _ in self.imports)

    @property
    def observes_time_or_randomness(self) -> bool:
        if self.world is not None:
            return self.world.observes_time_or_randomness
        return any(
            mod == wasi.WASI and name in NONDETERMINISTIC_IMPORTS for mod, name in self.imports
        )


def config() -> wasmtime.Config:
    """Fuel and epochs on; WebAssembly 3.0 on (GC, typed function references, exceptions,
    tail calls, memory64, multi-memory); threads and stack switching off.

    wasmtime-py aborts the process when its type API meets a GC or v128 value type, so
    the host reads every type from the bytes (`wasm_sandbox.binary`) and refuses, at the
    call boundary (`wasm_sandbox.call`), an export whose signature it cannot represent.
    Components are on (`wasm_sandbox.component`).
    Relaxed SIMD and NaNs are made deterministic so replays compute the same bits.
    """
    settings = wasmtime.Config()
    settings.consume_fuel = True
    settings.epoch_interruption = True
    settings.max_wasm_stack = MAX_WASM_STACK
    for proposal in WASM3:
        setattr(settings, proposal, True)
    settings.wasm_stack_switching = False
    settings.wasm_threads = False
    settings.wasm_component_model = True
    settings.wasm_relaxed_simd_deterministic = True
    settings.cranelift_nan_canonicalization = True
    return settings


def fingerprint() -> str:
    """Names the wasmtime version and this configuration, for the disk cache."""
    version = importlib.metadata.version("wasmtime")
    return hashlib.sha256(f"{version}/{CONFIG_VERSION}/{MAX_WASM_STACK}".encode()).hexdigest()[:16]


def compile_rewritten(engine: wasmtime.Engine, wasm: bytes) -> tuple[wasmtime.Module, bytes]:
    """Validate the original (its errors are the user's), then compile it rewritten by
    `instrument`, or unchanged if the rewrite cannot be made or compiled. Returns the
    module and the rewrite's bytes for the cache."""
    wasmtime.Module.validate(engine, wasm)
    try:
        rewrite = instrument.rewrite(wasm)
    except (ValueError, IndexError):
        rewrite = instrument.unchanged(wasm)
    try:
        module = wasmtime.Module(engine, rewrite.wasm)
    except wasmtime.WasmtimeError:  # not the user's error: run the original unchanged
        rewrite = instrument.unchanged(wasm, rewrite.memory_caps)
        module = wasmtime.Module(engine, wasm)
    return module, rewrite.to_bytes()
