"""Reading a module's imports and exported function signatures from its bytes.

wasmtime-py aborts the whole process when asked for the kind of a value type it does not
support (``v128``, GC references): ``str(ValType)``, and so every ``FuncType`` or call
that touches one, reaches ``wasm_valtype_kind`` and dies. So the sandbox never asks
wasmtime about a guest's types: it reads them here from the binary, which wasmtime has
already validated, and calls only functions whose types the host can represent
(`wasm_sandbox.call`).

Value types are named as in the text format: ``i32``, ``v128``, ``funcref``,
``externref`` (``(ref null func)`` and ``(ref null extern)`` are those two), ``anyref``,
``(ref func)``, ``(ref null 3)`` (a type index), ...
"""

from __future__ import annotations

from dataclasses import dataclass

#: Value type bytes (WebAssembly core spec, 5.3.1-5.3.3).
VALTYPES = {
    0x7F: "i32",
    0x7E: "i64",
    0x7D: "f32",
    0x7C: "f64",
    0x7B: "v128",
}
#: Abstract heap types (GC, function references, exception handling).
HEAP_TYPES = {
    0x74: "noexn",
    0x73: "nofunc",
    0x72: "noextern",
    0x71: "none",
    0x70: "func",
    0x6F: "extern",
    0x6E: "any",
    0x6D: "eq",
    0x6C: "i31",
    0x6B: "struct",
    0x6A: "array",
    0x69: "exn",
}
_NULLABLE, _NON_NULL = 0x63, 0x64
_SUB, _SUB_FINAL, _REC = 0x50, 0x4F, 0x4E
_FUNC_TYPE, _STRUCT_TYPE, _ARRAY_TYPE = 0x60, 0x5F, 0x5E
_PACKED = (0x78, 0x77)  # i8, i16 (struct and array fields)
NUMBERS = frozenset({"i32", "i64", "f32", "f64"})
_FUNC, _TABLE, _MEMORY, _GLOBAL, _TAG = range(5)
_KINDS = ("func", "table", "memory", "global", "tag")

Signature = tuple[tuple[str, ...], tuple[str, ...]]  # parameter types, result types
#: The preamble's layer field (after the magic and the 2-byte version): 0 core, 1 component.
_COMPONENT_LAYER = b"\x01\x00"


def is_component(wasm: bytes) -> bool:
    """Whether ``wasm`` is a component (its preamble's layer field says 1), not a core module."""
    return wasm[:4] == b"\0asm" and wasm[6:8] == _COMPONENT_LAYER


@dataclass(frozen=True)
class Interface:
    """What a module imports and exports, read from its bytes."""

    imports: tuple[tuple[str, str, str], ...]  # (module, name, kind)
    exports: tuple[tuple[str, str], ...]  # (name, kind)
    functions: dict[str, Signature]  # exported functions by name
    gc_heap: bool = False  # struct, array or tag types: values wasmtime keeps in its GC heap


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ValueError("unexpected end of section")
        self.pos += 1
        return self.data[self.pos - 1]

    def u32(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 35:
                raise ValueError("LEB128 integer too long")

    def name(self) -> str:
        n = self.u32()
        if self.pos + n > self.end:
            raise ValueError("name runs past the section")
        self.pos += n
        return self.data[self.pos - n : self.pos].decode("utf-8", errors="replace")

    def valtype(self) -> str:
        b = self.byte()
        if b in VALTYPES:
            return VALTYPES[b]
        if b in HEAP_TYPES:  # shorthand: funcref, externref, anyref, ...
            return f"{HEAP_TYPES[b]}ref"
        if b not in (_NULLABLE, _NON_NULL):
            raise ValueError(f"unknown value type 0x{b:02x}")
        heap = self.heaptype()
        if b == _NULLABLE and heap in HEAP_TYPES.values():
            return f"{heap}ref"
        return f"(ref {'null ' if b == _NULLABLE else ''}{heap})"

    def heaptype(self) -> str:
        """An abstract heap type's name, or a type index (an s33, never negative here)."""
        if self.data[self.pos] in HEAP_TYPES:
            return HEAP_TYPES[self.byte()]
        return str(self.u32())

    def limits(self) -> None:
        flags = self.byte()
        self.u32() if not flags & 0x04 else self._u64()
        if flags & 0x01:
            self.u32() if not flags & 0x04 else self._u64()
        if flags & 0x08:  # custom page size
            self.u32()

    def _u64(self) -> None:
        while self.byte() & 0x80:
            pass


def interface(wasm: bytes) -> Interface:
    """Imports, exports and exported function signatures of a valid core module.

    Raises ``ValueError`` for bytes it cannot read (which wasmtime would have refused).
    """
    if wasm[:4] != b"\0asm":
        raise ValueError("not a WebAssembly module")
    types: list[Signature | None] = []  # None: a struct or array type
    func_types: list[int] = []
    imports: list[tuple[str, str, str]] = []
    exports: list[tuple[str, str, int]] = []
    tags = False
    reader = _Reader(wasm, 8)
    while reader.pos < len(wasm):
        section, size = reader.byte(), reader.u32()
        body = _Reader(wasm, reader.pos, reader.pos + size)
        reader.pos += size
        if section == 1:
            types = _types(body)
        elif section == 2:
            for _ in range(body.u32()):
                imports.append(_import(body, func_types))
        elif section == 3:
            func_types += [body.u32() for _ in range(body.u32())]
        elif section == 7:
            exports = [(body.name(), _KINDS[body.byte()], body.u32()) for _ in range(body.u32())]
        elif section == 13:
            tags = True
    functions = {
        name: _signature(types[func_types[index]])
        for name, kind, index in exports
        if kind == "func"
    }
    heap = tags or None in types or any(kind == "tag" for _, _, kind in imports)
    return Interface(tuple(imports), tuple((n, k) for n, k, _ in exports), functions, heap)


def custom_section(wasm: bytes, name: str) -> bytes | None:
    """The payload of the first custom section called ``name`` (module or component), or
    None; ``ValueError`` for bytes it cannot read."""
    reader = _Reader(wasm, 8)
    while reader.pos < len(wasm):
        section, size = reader.byte(), reader.u32()
        end = reader.pos + size
        if end > len(wasm):
            raise ValueError("a section runs past the end")
        if section == 0:
            body = _Reader(wasm, reader.pos, end)
            if body.name() == name:
                return wasm[body.pos : end]
        reader.pos = end
    return None


def function_count_width(wasm: bytes) -> int:
    """Bytes of the LEB128 function count that opens the code section (0 without one)."""
    reader = _Reader(wasm, 8)
    while reader.pos < len(wasm):
        section, size = reader.byte(), reader.u32()
        if section == 10:
            start = reader.pos
            reader.u32()
            return reader.pos - start
        reader.pos += size
    return 0


def _types(r: _Reader) -> list[Signature | None]:
    """The type section: recursion groups flattened, each type's signature (None: not
    a function type)."""
    types: list[Signature | None] = []
    for _ in range(r.u32()):
        group = 1
        if r.data[r.pos] == _REC:
            r.byte()
            group = r.u32()
        types += [_subtype(r) for _ in range(group)]
    return types


def _subtype(r: _Reader) -> Signature | None:
    if r.data[r.pos] in (_SUB, _SUB_FINAL):
        r.byte()
        for _ in range(r.u32()):  # supertypes
            r.u32()
    form = r.byte()
    if form == _FUNC_TYPE:
        params = tuple(r.valtype() for _ in range(r.u32()))
        return params, tuple(r.valtype() for _ in range(r.u32()))
    if form not in (_STRUCT_TYPE, _ARRAY_TYPE):
        raise ValueError(f"type form 0x{form:02x} is not a function, struct or array type")
    for _ in range(r.u32() if form == _STRUCT_TYPE else 1):
        if r.data[r.pos] in _PACKED:
            r.byte()
        else:
            r.valtype()
        r.byte()  # mutability
    return None


def _signature(found: Signature | None) -> Signature:
    if found is None:
        raise ValueError("an exported function whose type is not a function type")
    return found


def _import(r: _Reader, func_types: list[int]) -> tuple[str, str, str]:
    module, name, kind = r.name(), r.name(), r.byte()
    if kind == _FUNC:
        func_types.append(r.u32())
    elif kind == _TABLE:
        r.valtype()
        r.limits()
    elif kind == _MEMORY:
        r.limits()
    elif kind == _GLOBAL:
        r.valtype()
        r.byte()
    elif kind == _TAG:
        r.byte()
        r.u32()
    else:
        raise ValueError(f"unknown import kind 0x{kind:02x}")
    return module, name, _KINDS[kind]
