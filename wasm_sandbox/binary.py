"""Reading a module's imports and exported function signatures from its bytes.

wasmtime-py aborts the whole process when asked for the kind of a value type it does not
support (``v128``, GC references): ``str(ValType)``, and so every ``FuncType`` or call
that touches one, reaches ``wasm_valtype_kind`` and dies. So the sandbox never asks
wasmtime about a guest's types: it reads them here from the binary, which wasmtime has
already validated, and calls only functions whose types are all plain numbers.
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
    0x70: "funcref",
    0x6F: "externref",
}
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
        return VALTYPES.get(b, f"0x{b:02x}")

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
    types: list[Signature] = []
    func_types: list[int] = []
    imports: list[tuple[str, str, str]] = []
    exports: list[tuple[str, str, int]] = []
    reader = _Reader(wasm, 8)
    while reader.pos < len(wasm):
        section, size = reader.byte(), reader.u32()
        body = _Reader(wasm, reader.pos, reader.pos + size)
        reader.pos += size
        if section == 1:
            types = [_functype(body) for _ in range(body.u32())]
        elif section == 2:
            for _ in range(body.u32()):
                imports.append(_import(body, func_types))
        elif section == 3:
            func_types += [body.u32() for _ in range(body.u32())]
        elif section == 7:
            exports = [(body.name(), _KINDS[body.byte()], body.u32()) for _ in range(body.u32())]
    functions = {name: types[func_types[index]] for name, kind, index in exports if kind == "func"}
    return Interface(tuple(imports), tuple((n, k) for n, k, _ in exports), functions)


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


def _functype(r: _Reader) -> Signature:
    form = r.byte()
    if form != 0x60:
        raise ValueError(f"type form 0x{form:02x} is not a function type")
    params = tuple(r.valtype() for _ in range(r.u32()))
    return params, tuple(r.valtype() for _ in range(r.u32()))


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
