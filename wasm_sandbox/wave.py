"""WAVE, the WebAssembly Value Encoding: component values as text, read and written
guided by their `wasm_sandbox.wit.Type`, and the plain Python values they stand for.

=================  ==========================  ===================================
WIT type           WAVE                        Python
=================  ==========================  ===================================
bool, integers     ``true``, ``-3``, ``7``     ``bool``, ``int``
f32, f64           ``1.5``, ``nan``, ``-inf``  ``float``
char, string       ``'x'``, ``"hi\\n"``        ``str``
list, tuple        ``[1, 2]``, ``(1, "a")``    ``list``, ``tuple``
record             ``{x: 1, y: 2}``, ``{:}``   ``dict`` by field name
option             ``some(3)``, ``none``       the value or ``None`` (``{"some": v}``
                                               when the payload is an option itself)
result             ``ok(5)``, ``err("bad")``   ``{"ok": 5}``, ``{"err": "bad"}``
variant            ``circle(2)``, ``empty``    ``{"circle": 2}``, ``{"empty": None}``
enum               ``red``                     ``"red"``
flags              ``{read, write}``, ``{}``   ``list`` of names, in declared order
=================  ==========================  ===================================

A label that is a WAVE keyword is written with ``%`` (``%none``). `Wave` marks a
command-line argument as WAVE text; `value_of` accepts it, a Python value, or a ``str``
of WAVE for a type whose Python form is not a string. Knows no wasmtime.

>>> show(parse("{x: 1, y: -2}", parse_type("record { x: s32, y: s32 }")),
...      parse_type("record { x: s32, y: s32 }"))
'{x: 1, y: -2}'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any, cast

from .wit import FLOATS, INTEGERS, Type, parse_type

__all__ = ["Wave", "parse", "parse_type", "show", "to_json", "value_of"]

_KEYWORDS = frozenset({"true", "false", "none", "some", "ok", "err", "inf", "nan"})
_LABEL = re.compile(r"%?[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
_NUMBER = re.compile(r"-?(?:inf|nan|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'"}
_SHOWN = {v: k for k, v in _ESCAPES.items()}
#: Kinds whose Python form is a ``str``: a ``str`` given for another kind is WAVE text.
_STRING_FORMS = frozenset({"string", "char", "enum", "variant"})


class Wave(str):
    """An argument written in WAVE (from a command line or a request), not a Python value."""


def parse(text: str, ty: Type) -> Any:
    """The Python value of WAVE ``text`` of type ``ty``; `ValueError` saying where not."""
    reader = _Reader(text)
    value = reader.value(ty)
    reader.space()
    if reader.pos < len(text):
        raise ValueError(f"unexpected {text[reader.pos :][:20]!r} after the value")
    return value


def value_of(value: Any, ty: Type) -> Any:
    """``value`` (a `Wave`, a Python value, or WAVE text for a type whose Python form is
    no string) checked against ``ty``, in the canonical Python form; `ValueError` if not."""
    if isinstance(value, Wave) or (isinstance(value, str) and ty.kind not in _STRING_FORMS):
        return parse(value, ty)
    return parse(show(value, ty), ty)  # one checker: print, then read back


def show(value: Any, ty: Type) -> str:
    """``value`` of type ``ty`` as WAVE text; `ValueError` when it does not fit the type."""
    kind = ty.kind
    if kind == "bool":
        return _exact(value, bool, "true or false", lambda v: "true" if v else "false")
    if kind in INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer ({kind}), got {value!r}")
        return str(value)
    if kind in FLOATS:
        return _float(value)
    if kind in ("char", "string"):
        if not isinstance(value, str) or (kind == "char" and len(value) != 1):
            raise ValueError(f"expected a {kind}, got {value!r}")
        quote = "'" if kind == "char" else '"'
        return quote + "".join(_escaped(c, quote) for c in value) + quote
    return _COMPOUND[kind](value, ty)


def to_json(value: Any) -> Any:
    """A canonical Python value as JSON: tuples as lists, non-finite floats as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def _exact(value: Any, kind: type, what: str, fmt: Any) -> str:
    if not isinstance(value, kind):
        raise ValueError(f"expected {what}, got {value!r}")
    return str(fmt(value))


def _float(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    number = float(value)
    if math.isnan(number):
        return "nan"
    return ("inf" if number > 0 else "-inf") if math.isinf(number) else repr(number)


def _escaped(char: str, quote: str) -> str:
    if char in _SHOWN and (char not in "'\"" or char == quote):
        return "\\" + _SHOWN[char]
    return f"\\u{{{ord(char):x}}}" if ord(char) < 0x20 or ord(char) == 0x7F else char


def _label(name: str) -> str:
    return f"%{name}" if name in _KEYWORDS else name


def _items(value: Any, kinds: type | tuple[type, ...], what: str) -> list[Any]:
    if not isinstance(value, kinds):
        raise ValueError(f"expected a {what}, got {value!r}")
    return list(cast(Iterable[Any], value))


def _show_list(value: Any, ty: Type) -> str:
    assert ty.of[0] is not None
    items = _items(value, (list, tuple, bytes), "list")
    return "[" + ", ".join(show(v, ty.of[0]) for v in items) + "]"


def _show_tuple(value: Any, ty: Type) -> str:
    items = _items(value, (list, tuple), "tuple")
    if len(items) != len(ty.of):
        raise ValueError(f"expected a tuple of {len(ty.of)}, got {len(items)} item(s)")
    return "(" + ", ".join(show(v, t) for v, t in zip(items, ty.of, strict=True) if t) + ")"


def _show_record(value: Any, ty: Type) -> str:
    if not isinstance(value, dict):
        raise ValueError(f"expected a record (a dict), got {value!r}")
    unknown = set(value) - set(ty.names)
    missing = [n for n in ty.names if n not in value]
    if unknown or missing:
        wrong = f"no field {sorted(unknown)[0]!r}" if unknown else f"missing field {missing[0]!r}"
        raise ValueError(f"record {{{', '.join(ty.names)}}}: {wrong}")
    fields = [
        f"{_label(n)}: {show(value[n], t)}" for n, t in zip(ty.names, ty.of, strict=True) if t
    ]
    return "{" + ", ".join(fields) + "}" if fields else "{:}"


def _show_flags(value: Any, ty: Type) -> str:
    names = _items(value, (list, tuple, set, frozenset), "set of flag names")
    unknown = [n for n in names if n not in ty.names]
    if unknown:
        raise ValueError(f"no flag {unknown[0]!r} (flags: {', '.join(ty.names)})")
    return "{" + ", ".join(_label(n) for n in ty.names if n in names) + "}"


def _show_enum(value: Any, ty: Type) -> str:
    if value not in ty.names:
        raise ValueError(f"expected one of {', '.join(ty.names)}, got {value!r}")
    return _label(value)


def _show_case(value: Any, ty: Type) -> str:
    """A variant or result: ``{case: payload}`` (a bare case name for a variant too)."""
    if isinstance(value, str) and ty.kind == "variant":
        value = {value: None}
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"expected {{case: payload}} for a {ty.kind}, got {value!r}")
    ((case, payload),) = value.items()
    names = ty.names or ("ok", "err")
    if case not in names:
        raise ValueError(f"expected a case of {', '.join(names)}, got {case!r}")
    payload_type = ty.of[names.index(case)]
    label = case if ty.kind == "result" else _label(case)
    if payload_type is None:
        if payload is not None:
            raise ValueError(f"case {case} has no payload, got {payload!r}")
        return label
    return f"{label}({show(payload, payload_type)})"


def _show_option(value: Any, ty: Type) -> str:
    inner = ty.of[0]
    assert inner is not None
    if value is None:
        return "none"
    if inner.kind == "option":
        if not isinstance(value, dict) or set(value) != {"some"}:
            raise ValueError(f"expected None or {{'some': value}}, got {value!r}")
        value = value["some"]
    return f"some({show(value, inner)})"


def _unsupported(value: Any, ty: Type) -> str:
    raise ValueError(f"{ty} values cannot pass between the host and a component")


_COMPOUND = {
    "list": _show_list,
    "tuple": _show_tuple,
    "record": _show_record,
    "flags": _show_flags,
    "enum": _show_enum,
    "variant": _show_case,
    "result": _show_case,
    "option": _show_option,
    "own": _unsupported,
    "borrow": _unsupported,
    "unsupported": _unsupported,
}


class _Reader:
    """A recursive-descent reader of one WAVE value, guided by its type."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def fail(self, wanted: str) -> ValueError:
        found = self.text[self.pos :][:20] or "the end"
        return ValueError(f"expected {wanted} at column {self.pos + 1}, found {found!r}")

    def space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def take(self, token: str) -> bool:
        self.space()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.take(token):
            raise self.fail(repr(token))

    def match(self, pattern: re.Pattern[str], wanted: str) -> str:
        self.space()
        found = pattern.match(self.text, self.pos)
        if not found:
            raise self.fail(wanted)
        self.pos = found.end()
        return found.group()

    def label(self, wanted: str = "a name") -> str:
        return self.match(_LABEL, wanted).removeprefix("%")

    def value(self, ty: Type) -> Any:
        kind = ty.kind
        if kind == "bool":
            word = self.match(_LABEL, "true or false")
            if word not in ("true", "false"):
                raise ValueError(f"expected true or false, found {word!r}")
            return word == "true"
        if kind in INTEGERS:
            return self.integer(kind)
        if kind in FLOATS:
            return float(self.match(_NUMBER, "a number"))
        if kind in ("char", "string"):
            return self.quoted(kind)
        return getattr(self, f"read_{kind}", self.read_unsupported)(ty)

    def integer(self, kind: str) -> int:
        text = self.match(_NUMBER, f"an integer ({kind})")
        if not re.fullmatch(r"-?[0-9]+", text):
            raise ValueError(f"expected an integer ({kind}), found {text!r}")
        low, high = INTEGERS[kind]
        if not low <= int(text) <= high:
            raise ValueError(f"{text} is out of range for {kind} ({low} to {high})")
        return int(text)

    def quoted(self, kind: str) -> str:
        quote = "'" if kind == "char" else '"'
        if not self.take(quote):
            raise self.fail(f"a {kind} in {quote} quotes")
        out = []
        while not self.text.startswith(quote, self.pos):
            if self.pos >= len(self.text):
                raise self.fail(f"a closing {quote}")
            char = self.text[self.pos]
            out.append(self.escape() if char == "\\" else char)
            self.pos += 1
        self.pos += 1
        text = "".join(out)
        if kind == "char" and len(text) != 1:
            raise ValueError(f"expected one character in a char, found {text!r}")
        return text

    def escape(self) -> str:
        """The character of the escape at ``pos``; leaves ``pos`` on its last character."""
        code = self.text[self.pos + 1 : self.pos + 2]
        if code in _ESCAPES:
            self.pos += 1
            return _ESCAPES[code]
        found = re.compile(r"u\{([0-9a-fA-F]{1,6})\}").match(self.text, self.pos + 1)
        if not found or int(found.group(1), 16) > 0x10FFFF:
            raise self.fail('an escape (\\n, \\t, \\", \\u{...})')
        self.pos = found.end() - 1
        return chr(int(found.group(1), 16))

    def sequence(self, close: str, item: Any) -> list[Any]:
        out = []
        while not self.take(close):
            out.append(item())
            if not self.take(","):
                self.expect(close)
                break
        return out

    def read_list(self, ty: Type) -> list[Any]:
        self.expect("[")
        return self.sequence("]", lambda: self.value(ty.of[0]))  # type: ignore[arg-type]

    def read_tuple(self, ty: Type) -> tuple[Any, ...]:
        self.expect("(")
        types = iter(ty.of)
        items = self.sequence(")", lambda: self.value(next(types, None) or Type("unsupported")))
        if len(items) != len(ty.of):
            raise ValueError(f"expected a tuple of {len(ty.of)}, found {len(items)} item(s)")
        return tuple(items)

    def read_record(self, ty: Type) -> dict[str, Any]:
        self.expect("{")
        if self.take(":"):
            self.expect("}")
            fields: dict[str, Any] = {}
        else:
            fields = dict(self.sequence("}", lambda: self.field(ty)))
        missing = [n for n in ty.names if n not in fields]
        if missing:
            raise ValueError(f"record {{{', '.join(ty.names)}}}: missing field {missing[0]!r}")
        return {n: fields[n] for n in ty.names}

    def field(self, ty: Type) -> tuple[str, Any]:
        name = self.label()
        if name not in ty.names:
            raise ValueError(f"record {{{', '.join(ty.names)}}}: no field {name!r}")
        self.expect(":")
        return name, self.value(ty.of[ty.names.index(name)])  # type: ignore[arg-type]

    def read_flags(self, ty: Type) -> list[str]:
        self.expect("{")
        names = self.sequence("}", self.label)
        unknown = [n for n in names if n not in ty.names]
        if unknown:
            raise ValueError(f"no flag {unknown[0]!r} (flags: {', '.join(ty.names)})")
        return [n for n in ty.names if n in names]

    def read_enum(self, ty: Type) -> str:
        name = self.label(f"one of {', '.join(ty.names)}")
        if name not in ty.names:
            raise ValueError(f"expected one of {', '.join(ty.names)}, found {name!r}")
        return name

    def read_variant(self, ty: Type) -> dict[str, Any]:
        names = ty.names or ("ok", "err")
        case = self.label(f"a case of {', '.join(names)}")
        if case not in names:
            raise ValueError(f"expected a case of {', '.join(names)}, found {case!r}")
        payload_type = ty.of[names.index(case)]
        if payload_type is None:
            return {case: None}
        self.expect("(")
        payload = self.value(payload_type)
        self.expect(")")
        return {case: payload}

    read_result = read_variant

    def read_option(self, ty: Type) -> Any:
        inner = ty.of[0]
        assert inner is not None
        case = self.label("some(...) or none")
        if case == "none":
            return None
        if case != "some":
            raise ValueError(f"expected some(...) or none, found {case!r}")
        self.expect("(")
        value = self.value(inner)
        self.expect(")")
        return {"some": value} if inner.kind == "option" else value

    def read_unsupported(self, ty: Type) -> Any:
        raise ValueError(f"{ty} values cannot pass between the host and a component")
