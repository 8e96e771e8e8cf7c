"""Component Model value types (WIT) as plain data: `Type`, `Func`, and their text.

A component's types reach the sandbox structurally (wasmtime keeps no type names), so a
type prints as an anonymous WIT-like expression: ``u32``, ``list<string>``,
``result<u32, string>``, ``record { x: s32, y: s32 }``, ``variant { none2, num(u32) }``,
``enum { red, green }``, ``flags { read, write }``, ``own<resource>``. `parse_type`
reads that text back (sealed results name their types this way: `wasm_sandbox.wave`).
Knows no wasmtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

INTEGERS = {
    "u8": (0, (1 << 8) - 1),
    "u16": (0, (1 << 16) - 1),
    "u32": (0, (1 << 32) - 1),
    "u64": (0, (1 << 64) - 1),
    "s8": (-(1 << 7), (1 << 7) - 1),
    "s16": (-(1 << 15), (1 << 15) - 1),
    "s32": (-(1 << 31), (1 << 31) - 1),
    "s64": (-(1 << 63), (1 << 63) - 1),
}
FLOATS = frozenset({"f32", "f64"})
PRIMITIVES = frozenset({"bool", "char", "string", *INTEGERS, *FLOATS})
#: Kinds with one or two inner types written in angle brackets.
_GENERIC = ("list", "option", "tuple", "result", "own", "borrow")
#: Kinds with named members written in braces.
_NAMED = ("record", "variant", "enum", "flags")


@dataclass(frozen=True)
class Type:
    """One value type. ``of``: inner types (a record's fields, a variant's payloads,
    ``None`` for a case or result side without one); ``names``: field or case names."""

    kind: str
    of: tuple[Type | None, ...] = ()
    names: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind in PRIMITIVES or self.kind == "unsupported":
            return self.kind
        if self.kind == "result":
            sides = [str(t) if t else "_" for t in self.of]
            return "result" if sides == ["_", "_"] else f"result<{', '.join(sides)}>"
        if self.kind in ("own", "borrow"):
            return f"{self.kind}<resource>"
        if self.kind in _GENERIC:
            return f"{self.kind}<{', '.join(str(t) for t in self.of)}>"
        members = [
            f"{n}: {t}" if self.kind == "record" else (f"{n}({t})" if t else n)
            for n, t in zip(self.names, self.of or (None,) * len(self.names), strict=True)
        ]
        return f"{self.kind} {{ {', '.join(members)} }}" if members else f"{self.kind} {{}}"


@dataclass(frozen=True)
class Func:
    """A component function: named parameters and at most one result."""

    params: tuple[tuple[str, Type], ...]
    result: Type | None

    def __str__(self) -> str:
        params = ", ".join(f"{n}: {t}" for n, t in self.params)
        return f"func({params})" + (f" -> {self.result}" if self.result else "")


def parse_type(text: str) -> Type:
    """The `Type` that ``str(type)`` printed; raises `ValueError` for other text."""
    parser = _TypeParser(text)
    found = parser.type()
    if parser.rest().strip():
        raise ValueError(f"unexpected {parser.rest()[:20]!r} after a type")
    return found


class _TypeParser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def rest(self) -> str:
        return self.text[self.pos :]

    def skip(self, token: str) -> bool:
        stripped = self.rest().lstrip()
        if not stripped.startswith(token):
            return False
        self.pos = len(self.text) - len(stripped) + len(token)
        return True

    def expect(self, token: str) -> None:
        if not self.skip(token):
            raise ValueError(f"expected {token!r} at {self.rest()[:20]!r}")

    def word(self) -> str:
        stripped = self.rest().lstrip()
        end = 0
        while end < len(stripped) and (stripped[end].isalnum() or stripped[end] in "-_%"):
            end += 1
        if not end:
            raise ValueError(f"expected a name at {stripped[:20]!r}")
        self.pos = len(self.text) - len(stripped) + end
        return stripped[:end]

    def type(self) -> Type:
        kind = self.word()
        if kind in PRIMITIVES or kind == "unsupported":
            return Type(kind)
        if kind in ("own", "borrow"):
            self.expect("<")
            self.word()
            self.expect(">")
            return Type(kind)
        if kind in _GENERIC:
            if kind == "result" and not self.skip("<"):
                return Type("result", (None, None))
            if kind != "result":
                self.expect("<")
            inner = self._list(">", self._maybe_type)
            if kind == "result":
                inner += [None] * (2 - len(inner))
            return Type(kind, tuple(inner))
        if kind in _NAMED:
            self.expect("{")
            members = self._list("}", lambda: self._member(kind))
            names = tuple(n for n, _ in members)
            of = () if kind in ("enum", "flags") else tuple(t for _, t in members)
            return Type(kind, of, names)
        raise ValueError(f"unknown type {kind!r}")

    def _maybe_type(self) -> Type | None:
        return None if self.skip("_") else self.type()

    def _member(self, kind: str) -> tuple[str, Type | None]:
        name = self.word()
        if kind == "record":
            self.expect(":")
            return name, self.type()
        if kind == "variant" and self.skip("("):
            payload = self.type()
            self.expect(")")
            return name, payload
        return name, None

    def _list(self, close: str, item: Callable[[], T]) -> list[T]:
        out: list[T] = []
        while not self.skip(close):
            out.append(item())
            if not self.skip(","):
                self.expect(close)
                break
        return out
