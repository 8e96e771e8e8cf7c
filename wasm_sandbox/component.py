"""Components (the Component Model) in the engine: their WIT world, the call of one typed
export, values handed to and taken from wasmtime-py, instantiation with WASI 0.2.

* The world is read once at compile time through wasmtime-py's component type API, which
  was checked in a subprocess on every value type WIT has (numbers, strings, lists,
  records, tuples, variants, enums, options, results, flags, resources) and on the WASI
  0.2 interfaces. Whatever it cannot describe is refused as one `CompileError` line.
* WASI 0.2 is linked (``Linker.add_wasip2``) only together with a `WasiConfig` on the
  store: a WASI call on a store without one aborts the process (FIELD-NOTES.md).
* wasmtime-py hands a variant, option or result over *untagged* (the bare payload) when
  its cases' Python types cannot be confused, else as ``Variant(tag, payload)``;
  `lower` and `lift` follow the same rule, so callers see only `wasm_sandbox.wave` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import wasmtime
import wasmtime.component as wc

from . import hostwit, sources, wave, wit
from . import outcome as st
from .call import Call
from .errors import CompileError, InvocationError
from .hostapi import Host

_PRIMITIVES = {
    wc.Bool: "bool",
    wc.S8: "s8",
    wc.S16: "s16",
    wc.S32: "s32",
    wc.S64: "s64",
    wc.U8: "u8",
    wc.U16: "u16",
    wc.U32: "u32",
    wc.U64: "u64",
    wc.F32: "f32",
    wc.F64: "f64",
    wc.Char: "char",
    wc.String: "string",
}
#: Import name prefixes through which a component can observe time or randomness.
_NONDETERMINISTIC = ("wasi:clocks/", "wasi:random/", "wasi:io/poll")


@dataclass(frozen=True)
class World:
    """What a component imports and exports. ``functions``: exported functions by name
    (``interface#name`` inside an exported interface); ``text``: the world in WIT."""

    imports: tuple[tuple[str, str], ...]
    functions: dict[str, wit.Func]
    text: str

    @property
    def uses_wasi(self) -> bool:
        return any(name.startswith("wasi:") for name, _ in self.imports)

    @property
    def uses_host_api(self) -> bool:
        """Whether it imports the sandbox's host API (`wasm_sandbox.hostwit`)."""
        return any(hostwit.imported(name) for name, _ in self.imports)

    @property
    def observes_time_or_randomness(self) -> bool:
        return any(name.startswith(_NONDETERMINISTIC) for name, _ in self.imports)


def compile_component(engine: wasmtime.Engine, wasm: bytes) -> tuple[wc.Component, bytes]:
    """Validate and compile; the metadata kept beside it in the cache is its WIT text."""
    component = wc.Component(engine, wasm)
    return component, (sources.wit_text(wasm) or "").encode()


def read_world(engine: wasmtime.Engine, component: wc.Component, text: str) -> World:
    """The component's world from its types; ``text`` (from ``wasm-tools``) or else one
    written from the types. Raises `CompileError` for types that cannot be read."""
    try:
        kind = component.type
        imports = tuple((n, _item(engine, e.ty)) for n, e in kind.imports(engine).items())
        exports = kind.exports(engine)
        functions: dict[str, wit.Func] = {}
        described = []
        for name, extern in exports.items():
            item = extern.ty
            described.append((name, _item(engine, item)))
            if isinstance(item, wc.FuncType):
                functions[name] = _func(item)
            elif isinstance(item, wc.ComponentInstanceType):
                for inner, sub in item.exports(engine).items():
                    if isinstance(sub.ty, wc.FuncType):
                        functions[f"{name}#{inner}"] = _func(sub.ty)
    except (TypeError, ValueError, NotImplementedError, wasmtime.WasmtimeError) as exc:
        raise CompileError(f"cannot read the component's types: {exc}") from None
    return World(imports, functions, text or _world_text(imports, tuple(described)))


def _type(ty: Any) -> wit.Type:
    """wasmtime-py's value type as a `wit.Type`."""
    if type(ty) in _PRIMITIVES:
        return wit.Type(_PRIMITIVES[type(ty)])
    if isinstance(ty, wc.ListType):
        return wit.Type("list", (_type(ty.element),))
    if isinstance(ty, wc.RecordType):
        fields = ty.fields
        return wit.Type("record", tuple(_type(t) for _, t in fields), tuple(n for n, _ in fields))
    if isinstance(ty, wc.TupleType):
        return wit.Type("tuple", tuple(_type(t) for t in ty.elements))
    if isinstance(ty, wc.VariantType):
        cases = ty.cases
        of = tuple(_type(t) if t is not None else None for _, t in cases)
        return wit.Type("variant", of, tuple(n for n, _ in cases))
    if isinstance(ty, wc.EnumType):
        return wit.Type("enum", (), tuple(ty.names))
    if isinstance(ty, wc.FlagsType):
        return wit.Type("flags", (), tuple(ty.names))
    if isinstance(ty, wc.OptionType):
        return wit.Type("option", (_type(ty.payload),))
    if isinstance(ty, wc.ResultType):
        ok, err = ty.ok, ty.err
        return wit.Type("result", (_type(ok) if ok else None, _type(err) if err else None))
    if isinstance(ty, (wc.OwnType, wc.BorrowType)):
        return wit.Type("own" if isinstance(ty, wc.OwnType) else "borrow")
    return wit.Type("unsupported")


def _func(ty: wc.FuncType) -> wit.Func:
    result = ty.result
    return wit.Func(tuple((n, _type(t)) for n, t in ty.params), _type(result) if result else None)


def _item(engine: wasmtime.Engine, item: Any) -> str:
    """One import or export as WIT-like text."""
    if isinstance(item, wc.FuncType):
        return str(_func(item))
    if isinstance(item, wc.ComponentInstanceType):
        members = [f"{n}: {_item(engine, e.ty)};" for n, e in item.exports(engine).items()]
        return "interface {\n" + "".join(f"    {m}\n" for m in members) + "  }"
    if isinstance(item, wc.ResourceType):
        return "resource"
    if isinstance(item, wc.ModuleType):
        return "core module"
    if isinstance(item, wc.ComponentType):
        return "component"
    return f"type {_type(item)}"


def _world_text(imports: Sequence[tuple[str, str]], exports: Sequence[tuple[str, str]]) -> str:
    lines = [f"  import {n}: {t};" for n, t in imports]
    lines += [f"  export {n}: {t};" for n, t in exports]
    return "world component {\n" + "".join(f"{line}\n" for line in lines) + "}\n"


@dataclass(frozen=True)
class ComponentCall(Call):
    """A call of a component's typed export: ``args`` lowered for wasmtime-py,
    ``wave_args`` the same arguments in WAVE (what the record seals)."""

    func: wit.Func | None = None
    wave_args: tuple[str, ...] = ()

    @property
    def sealed_args(self) -> tuple[str, ...] | None:
        return self.wave_args

    def lookup(self, instance: Any, store: wasmtime.Store) -> Any:
        outer, _, inner = self.name.rpartition("#")
        index = instance.get_export_index(store, outer) if outer else None
        found = instance.get_export_index(store, inner, index)
        return instance.get_func(store, found)

    def finished(self, values: Any) -> dict[str, Any]:
        result = self.func.result if self.func else None
        returns = () if result is None else (lift(values, result),)
        return {"status": st.OK, "returns": returns, "exit_code": None}


def prepare_call(world: World, invoke: str | None, args: Sequence[Any]) -> ComponentCall:
    """Check the export and convert ``args`` (Python values or `wave.Wave` text) to its
    parameter types; `InvocationError` naming the argument at fault."""
    names = ", ".join(sorted(world.functions)) or "none"
    if invoke is None:
        raise InvocationError(f"a component runs one export: pick one to invoke ({names})")
    func = world.functions.get(invoke)
    if func is None:
        raise InvocationError(f"no exported function {invoke!r} (exported functions: {names})")
    unsupported = [t for t in (*(t for _, t in func.params), func.result) if t and _opaque(t)]
    if unsupported:
        raise InvocationError(
            f"{invoke} has a {_opaque(unsupported[0])} in its signature; resources and async "
            "types cannot pass between the host and a component"
        )
    if len(args) != len(func.params):
        wanted = ", ".join(f"{n}: {t}" for n, t in func.params)
        raise InvocationError(
            f"{invoke} takes {len(func.params)} argument(s) ({wanted}), got {len(args)}"
        )
    values, texts = [], []
    for i, ((name, ty), arg) in enumerate(zip(func.params, args, strict=True)):
        try:
            value = wave.value_of(arg, ty)
            texts.append(wave.show(value, ty))
        except ValueError as exc:
            raise InvocationError(f"{invoke} argument {i + 1} ({name}: {ty}): {exc}") from None
        values.append(lower(value, ty))
    result = (str(func.result),) if func.result else ()
    return ComponentCall(invoke, tuple(values), result, func, tuple(texts))


def _opaque(ty: wit.Type) -> str | None:
    """The first resource or unsupported type inside ``ty``, as text."""
    if ty.kind in ("own", "borrow", "unsupported"):
        return str(ty)
    return next((found for t in ty.of if t and (found := _opaque(t))), None)


def instantiate(
    engine: wasmtime.Engine,
    store: wasmtime.Store,
    component: wc.Component,
    wasi: wasmtime.WasiConfig | None,
    host: Host | None = None,
) -> Any:
    """An instance in ``store``; WASI 0.2 linked only with ``wasi`` set on the store, the
    sandbox's host API (`wasm_sandbox.hostwit`) only through ``host``, within its grants
    (`GrantError` before the component starts)."""
    linker = wc.Linker(engine)
    if host is not None:
        hostwit.define(linker, host, _host_imports(engine, component))
    if wasi is not None:
        store.set_wasi(wasi)
        linker.add_wasip2()
    return linker.instantiate(store, component)


def _host_imports(
    engine: wasmtime.Engine, component: wc.Component
) -> dict[str, dict[str, wit.Func]]:
    """The functions the component imports from each interface of the host API."""
    found = {}
    for name, extern in component.type.imports(engine).items():
        if hostwit.imported(name) and isinstance(extern.ty, wc.ComponentInstanceType):
            members = extern.ty.exports(engine).items()
            found[name] = {n: _func(e.ty) for n, e in members if isinstance(e.ty, wc.FuncType)}
    return found


def lower(value: Any, ty: wit.Type) -> Any:
    """A canonical `wave` value as wasmtime-py takes it."""
    kind, of = ty.kind, ty.of
    if kind == "list":
        assert of[0] is not None
        return bytes(value) if of[0].kind == "u8" else [lower(v, of[0]) for v in value]
    if kind == "tuple":
        return tuple(lower(v, t) for v, t in zip(value, of, strict=True) if t)
    if kind == "record":
        record = wc.Record()
        for name, field in zip(ty.names, of, strict=True):
            assert field is not None
            setattr(record, name, lower(value[name], field))
        return record
    if kind == "flags":
        return set(value)
    if kind in ("option", "result", "variant"):
        case, payload = _case_of(value, ty)
        payload_type = dict(_cases(ty))[case]
        raw = lower(payload, payload_type) if payload_type else None
        return wc.Variant(case, raw) if _tagged(ty) else raw
    return float(value) if kind in wit.FLOATS else value


def lift(value: Any, ty: wit.Type) -> Any:
    """What wasmtime-py returned, as a canonical `wave` value."""
    kind, of = ty.kind, ty.of
    if kind == "list":
        assert of[0] is not None
        return [lift(v, of[0]) for v in value]
    if kind == "tuple":
        return tuple(lift(v, t) for v, t in zip(value, of, strict=True) if t)
    if kind == "record":
        fields = zip(ty.names, of, strict=True)
        return {n: lift(getattr(value, n), t) for n, t in fields if t}
    if kind == "flags":
        return [n for n in ty.names if n in value]
    if kind in ("option", "result", "variant"):
        if _tagged(ty):
            case, raw = value.tag, value.payload
        else:
            case, raw = next((c, value) for c, t in _cases(ty) if _fits(value, t))
        payload_type = dict(_cases(ty))[case]
        payload = lift(raw, payload_type) if payload_type else None
        if kind == "option":
            inner = of[0]
            assert inner is not None
            return (
                None
                if case == "none"
                else ({"some": payload} if inner.kind == "option" else payload)
            )
        return {case: payload}
    return value


def _cases(ty: wit.Type) -> list[tuple[str, wit.Type | None]]:
    if ty.kind == "option":
        return [("none", None), ("some", ty.of[0])]
    if ty.kind == "result":
        return [("ok", ty.of[0]), ("err", ty.of[1])]
    return list(zip(ty.names, ty.of, strict=True))


def _case_of(value: Any, ty: wit.Type) -> tuple[str, Any]:
    """(case, payload) of a canonical option, result or variant value."""
    if ty.kind == "option":
        if value is None:
            return "none", None
        inner = ty.of[0]
        return "some", value["some"] if inner is not None and inner.kind == "option" else value
    ((case, payload),) = value.items()
    return str(case), payload


def _classes(ty: wit.Type | None) -> frozenset[type]:
    """The Python classes wasmtime-py uses for ``ty`` (``object`` for no payload)."""
    if ty is None:
        return frozenset({object})
    kind = ty.kind
    simple: dict[str, type] = {"bool": bool, "char": str, "string": str, "enum": str}
    simple |= {"tuple": tuple, "record": wc.Record, "flags": set}
    if kind in simple:
        return frozenset({simple[kind]})
    if kind in wit.INTEGERS or kind in wit.FLOATS:
        return frozenset({int if kind in wit.INTEGERS else float})
    if kind == "list":
        element = ty.of[0]
        return frozenset({bytes if element is not None and element.kind == "u8" else list})
    if kind in ("option", "result", "variant"):
        if _tagged(ty):
            return frozenset({wc.Variant})
        return frozenset().union(*(_classes(t) for _, t in _cases(ty)))
    return frozenset({object})


def _tagged(ty: wit.Type) -> bool:
    """Whether wasmtime-py wraps this type's values in ``Variant`` (its ``_tagged``)."""
    seen: set[type] = set()
    for _, payload in _cases(ty):
        classes = _classes(payload)
        if classes & seen:
            return True
        seen |= classes
    return False


def _fits(value: Any, payload: wit.Type | None) -> bool:
    """Whether an untagged ``value`` belongs to the case with this payload type."""
    if payload is None:
        return value is None
    classes = tuple(_classes(payload))
    return isinstance(value, classes) and not (isinstance(value, bool) and bool not in classes)
