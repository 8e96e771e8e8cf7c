"""Rewriting a module before it is compiled, so that its fuel and memory can be read.

Fuel: wasmtime keeps a function's fuel in a register and stores it only around calls
(FIELD-NOTES.md), so a loop without calls that the clock or an interrupt stops reports 0
fuel used, live and at the end. `rewrite` makes every loop call ``$sync``, an empty
``() -> ()`` function appended at the end of the function index space (so every existing
index stays valid), once every `SYNC_EVERY` iterations: each function with loops gets one
more local, a countdown set at its entry; right after each ``loop`` header::

    local.get $n  i32.const 1  i32.sub  local.tee $n
    if  else  call $sync  i32.const SYNC_EVERY  local.set $n  end

Calling ``$sync`` at every iteration instead doubled the run time of loop-heavy C
programs (the call makes the loop spill its registers); the countdown costs a few per
cent. Fuel then also counts these instructions: 5 units per loop iteration, 2 per call of
a function with loops, 7 per sync. A body holding an instruction the decoder does not
know is not guessed at: no loop is rewritten, and the fuel figure is only a lower bound
(`Rewrite.fuel_exact`).

Memory: every memory, exported or not, is also exported under a reserved name
(`memory_export`) so the host can count all of them; `memory_share` splits one byte
budget over the declared memories.

`Rewrite.original_offset` maps an offset in the rewritten module (trap frames) back to
the original bytes.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass

from .errors import Unsupported
from .leb128 import encode as _leb

#: Loop iterations between two fuel syncs (at most this many go unseen per active loop).
SYNC_EVERY = 1000
#: Prefix of the exports the sandbox adds; a NUL no toolchain puts in a name.
RESERVED = "\0wasm-sandbox/"
_PAGE = 65536
_HUGE = 1 << 62  # a memory64 maximum may not fit the metadata: this is more than any budget
_ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}
_TYPE, _IMPORT, _FUNCTION, _MEMORY, _EXPORT, _CODE = 1, 2, 3, 5, 7, 10


def memory_export(index: int) -> str:
    """The reserved export name of memory ``index``."""
    return f"{RESERVED}memory/{index}"


@dataclass(frozen=True)
class Rewrite:
    """A rewritten module and what the host needs to read it.

    ``memory_caps``: each memory's declared maximum in bytes (None: none declared), in
    index order; ``segments``: ``(new offset, original offset, length)`` of every run of
    bytes copied unchanged, in order.
    """

    wasm: bytes
    fuel_exact: bool
    memory_caps: tuple[int | None, ...] = ()
    memories_exported: bool = False
    sync_index: int | None = None
    segments: tuple[tuple[int, int, int], ...] = ()

    def original_offset(self, offset: int) -> int:
        """``offset`` in the rewritten module as an offset in the original (inserted
        bytes map to the original offset right after them)."""
        if not self.segments or offset < 0:
            return offset
        i = bisect.bisect_right(self.segments, (offset, 1 << 64, 0)) - 1
        if i < 0:
            return offset
        new, old, length = self.segments[i]
        return old + min(offset - new, length)

    def to_bytes(self) -> bytes:
        """The metadata (not the module) as bytes, for the compiled-module cache."""
        caps = [-1 if c is None else c for c in self.memory_caps]
        flat = [x for seg in self.segments for x in seg]
        head = struct.pack(
            "<BBqII",
            self.fuel_exact,
            self.memories_exported,
            -1 if self.sync_index is None else self.sync_index,
            len(caps),
            len(self.segments),
        )
        return head + struct.pack(f"<{len(caps)}q{len(flat)}Q", *caps, *flat)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Rewrite:
        """The metadata written by `to_bytes` (``wasm`` is left empty)."""
        exact, exported, sync, ncaps, nseg = struct.unpack_from("<BBqII", blob)
        values = struct.unpack_from(f"<{ncaps}q{3 * nseg}Q", blob, struct.calcsize("<BBqII"))
        caps, flat = values[:ncaps], values[ncaps:]
        return cls(
            b"",
            bool(exact),
            tuple(None if c < 0 else c for c in caps),
            bool(exported),
            None if sync < 0 else sync,
            tuple(zip(flat[0::3], flat[1::3], flat[2::3], strict=True)),
        )


def unchanged(wasm: bytes, caps: tuple[int | None, ...] = ()) -> Rewrite:
    """The original module, its fuel figure only a lower bound."""
    return Rewrite(bytes(wasm), False, caps)


def memory_share(budget: int, caps: tuple[int | None, ...]) -> int:
    """The largest per-memory limit under which all memories together stay within
    ``budget`` bytes, given their declared maxima (a memory never outgrows its own)."""
    left, bounded = budget, sorted(c for c in caps if c is not None)
    open_ended = len(caps) - len(bounded)
    for i, cap in enumerate(bounded):
        share = left // (len(bounded) - i + open_ended)
        if cap > share:
            return share
        left -= cap
    return left // open_ended if open_ended else budget


def rewrite(wasm: bytes) -> Rewrite:
    """``wasm`` with fuel synced from every loop and every memory exported.

    Expects a module wasmtime has validated. Raises `Unsupported` (or ``IndexError``) for
    bytes it cannot read; when only the code is unknown, the memories are still exported
    and ``fuel_exact`` is False.
    """
    module = _Module(wasm)
    try:
        bodies = module.bodies()
    except (Unsupported, IndexError):
        bodies = None
    return module.emit(bodies)


class _Module:
    """Pass one: the section layout and the facts the rewrite needs."""

    def __init__(self, wasm: bytes) -> None:
        if wasm[:8] != b"\0asm\x01\0\0\0":
            raise Unsupported("not a core module")
        self.data = wasm
        self.sections: list[tuple[int, int, int, int]] = []  # id, header start, body, end
        self.types = self.funcs = self.imported_funcs = 0
        self.params: list[int | None] = []  # parameters of each type (None: not a function)
        self.func_types: list[int] = []  # type of each defined function
        self.names: set[str] = set()
        self.caps: list[int | None] = []
        pos = 8
        while pos < len(wasm):
            sid, body = wasm[pos], pos + 1
            size, body = _uleb(wasm, body)
            self.sections.append((sid, pos, body, body + size))
            pos = body + size
        if pos != len(wasm):
            raise Unsupported("a section runs past the end")
        for sid, _, body, end in self.sections:
            self._read(sid, body, end)

    def _read(self, sid: int, pos: int, end: int) -> None:
        d = self.data
        if sid == _TYPE:
            count, pos = _uleb(d, pos)
            for _ in range(count):  # a recursion group (GC) or one type
                if d[pos] == 0x4E:
                    n, pos = _uleb(d, pos + 1)
                else:
                    n = 1
                for _ in range(n):
                    params, pos = _subtype(d, pos)
                    self.params.append(params)
                self.types += n
        elif sid == _IMPORT:
            count, pos = _uleb(d, pos)
            for _ in range(count):
                pos = _skip_name(d, _skip_name(d, pos))
                kind, pos = d[pos], pos + 1
                pos = self._import(kind, pos)
        elif sid == _FUNCTION:
            count, pos = _uleb(d, pos)
            for _ in range(count):
                index, pos = _uleb(d, pos)
                self.func_types.append(index)
            self.funcs += count
        elif sid == _MEMORY:
            count, pos = _uleb(d, pos)
            for _ in range(count):
                cap, pos = _memory_cap(d, pos)
                self.caps.append(cap)
        elif sid == _EXPORT:
            count, pos = _uleb(d, pos)
            for _ in range(count):
                n, start = _uleb(d, pos)
                self.names.add(d[start : start + n].decode("utf-8", "replace"))
                pos = _skip_leb(d, start + n + 1)

    def _import(self, kind: int, pos: int) -> int:
        d = self.data
        if kind == 0:
            self.imported_funcs += 1
            return _skip_leb(d, pos)
        if kind == 1:  # table: reftype, limits
            return _skip_limits(d, _skip_valtype(d, pos))
        if kind == 2:
            cap, pos = _memory_cap(d, pos)
            self.caps.append(cap)
            return pos
        if kind == 3:  # global: valtype, mutability
            return _skip_valtype(d, pos) + 1
        if kind == 4:  # tag: attribute, type
            return _skip_leb(d, pos + 1)
        raise Unsupported(f"import kind 0x{kind:02x}")

    def section(self, sid: int) -> tuple[int, int, int, int] | None:
        return next((s for s in self.sections if s[0] == sid), None)

    def bodies(self) -> list[_Body]:
        """Every function body, with the offsets right after each loop's block type."""
        code = self.section(_CODE)
        if code is None:
            return []
        d, bodies = self.data, []
        count, pos = _uleb(d, code[2])
        if count != len(self.func_types):
            raise Unsupported("the code and function sections disagree")
        for index in range(count):
            size, start = _uleb(d, pos)
            pos = start + size
            params = self.params[self.func_types[index]]
            if params is None:
                raise Unsupported("a function whose type is not a function type")
            bodies.append(_scan_body(d, start, pos, params))
        if pos != code[3]:
            raise Unsupported("the code section has bytes past its bodies")
        return bodies

    def emit(self, bodies: list[_Body] | None) -> Rewrite:
        """Pass two: the rewritten bytes."""
        caps = tuple(self.caps)
        export = bool(caps) and not any(n.startswith(RESERVED) for n in self.names)
        looping = bodies is not None and any(b.loops for b in bodies)
        sync = self.funcs + self.imported_funcs if looping else None
        if sync is None and not export:
            return Rewrite(self.data, bodies is not None, caps)
        out = _Out(self.data)
        out.copy(0, 8)
        # entries appended to each section: (how many, their bytes)
        extra = {_EXPORT: (len(caps), self._exports())} if export else {}
        if sync is not None:  # $sync: type () -> (), its function entry, an empty body
            extra |= {_TYPE: (1, b"\x60\x00\x00"), _FUNCTION: (1, _leb(self.types))}
            extra[_CODE] = (1, b"\x02\x00\x0b")
        present = {s[0] for s in self.sections}
        for sid, head, body, end in self.sections:
            for missing in sorted(extra.keys() - present, key=_ORDER.__getitem__):
                if _ORDER.get(sid, 0) > _ORDER[missing]:
                    out.section(missing, *extra.pop(missing))
            if sid == _CODE and sync is not None:
                out.code(bodies or [], sync, extra.pop(_CODE)[1])
            elif sid in extra:
                out.vector(sid, body, end, *extra.pop(sid))
            else:
                out.copy(head, end)
        for missing in sorted(extra, key=_ORDER.__getitem__):
            out.section(missing, *extra[missing])
        return Rewrite(bytes(out.buf), bodies is not None, caps, export, sync, tuple(out.segments))

    def _exports(self) -> bytes:
        items = []
        for index in range(len(self.caps)):
            name = memory_export(index).encode()
            items.append(_leb(len(name)) + name + b"\x02" + _leb(index))
        return b"".join(items)


class _Out:
    """The rewritten module being written, with the map of copied runs."""

    def __init__(self, data: bytes) -> None:
        self.data, self.buf = data, bytearray()
        self.segments: list[tuple[int, int, int]] = []

    def copy(self, start: int, end: int) -> None:
        if end > start:
            self.segments.append((len(self.buf), start, end - start))
            self.buf += self.data[start:end]

    def section(self, sid: int, count: int, entries: bytes) -> None:
        """A new vector section of ``count`` ``entries``."""
        payload = _leb(count) + entries
        self.buf += bytes([sid]) + _leb(len(payload)) + payload

    def vector(self, sid: int, body: int, end: int, added: int, entries: bytes) -> None:
        """Section ``sid`` (a vector) with ``added`` more ``entries`` at its end."""
        count, first = _uleb(self.data, body)
        payload = len(_leb(count + added)) + (end - first) + len(entries)
        self.buf += bytes([sid]) + _leb(payload) + _leb(count + added)
        self.copy(first, end)
        self.buf += entries

    def code(self, bodies: list[_Body], sync: int, appended: bytes) -> None:
        """The code section, each body with loops given its countdown and fuel syncs."""
        parts = [_rewritten(body, sync) for body in bodies]
        sizes = [sum(len(p) if isinstance(p, bytes) else p[1] - p[0] for p in ps) for ps in parts]
        count = len(bodies) + 1
        payload = len(_leb(count)) + sum(len(_leb(n)) + n for n in sizes) + len(appended)
        self.buf += bytes([_CODE]) + _leb(payload) + _leb(count)
        for pieces, size in zip(parts, sizes, strict=True):
            self.buf += _leb(size)
            for piece in pieces:
                if isinstance(piece, bytes):
                    self.buf += piece
                else:
                    self.copy(*piece)
        self.buf += appended


@dataclass
class _Body:
    """One function body: ``[start, end)`` holds its locals vector and its code."""

    start: int
    end: int
    locals_at: int  # first byte after the locals count
    code_at: int  # first instruction
    locals: int  # declared locals
    counter: int  # index the added countdown local gets
    loops: list[int]  # offsets right after each loop's block type


def _rewritten(body: _Body, sync: int) -> list[bytes | tuple[int, int]]:
    """A body as new bytes and ``(start, end)`` runs of the original."""
    if not body.loops:
        return [(body.start, body.end)]
    n = _leb(body.counter)
    reset = b"\x41" + _SYNC_EVERY + b"\x21" + n
    check = (
        b"\x20" + n + b"\x41\x01\x6b\x22" + n + b"\x04\x40\x05\x10" + _leb(sync) + reset + b"\x0b"
    )
    pieces: list[bytes | tuple[int, int]] = [
        _leb(body.locals + 1),
        (body.locals_at, body.code_at),
        b"\x01\x7f" + reset,  # the countdown: one i32, set at entry
    ]
    at = body.code_at
    for cut in body.loops:
        pieces += [(at, cut), check]
        at = cut
    pieces.append((at, body.end))
    return pieces


def _sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


_SYNC_EVERY = _sleb(SYNC_EVERY)


def _uleb(d: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = d[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise Unsupported("LEB128 integer too long")


def _skip_leb(d: bytes, pos: int) -> int:
    while d[pos] & 0x80:
        pos += 1
    return pos + 1


def _skip_name(d: bytes, pos: int) -> int:
    n, pos = _uleb(d, pos)
    return pos + n


def _skip_valtype(d: bytes, pos: int) -> int:
    """A value type: one byte, or 0x63/0x64 (ref null / ref) and a heap type."""
    return _skip_leb(d, pos + 1 if d[pos] in (0x63, 0x64) else pos)


def _skip_valtypes(d: bytes, pos: int) -> int:
    n, pos = _uleb(d, pos)
    for _ in range(n):
        pos = _skip_valtype(d, pos)
    return pos


def _subtype(d: bytes, pos: int) -> tuple[int | None, int]:
    """A type definition (optional ``sub`` and supertypes, then the type): its number of
    parameters (None: not a function type) and its end."""
    if d[pos] in (0x50, 0x4F):
        n, pos = _uleb(d, pos + 1)
        for _ in range(n):
            pos = _skip_leb(d, pos)
    form, pos = d[pos], pos + 1
    if form == 0x60:  # func: parameters, results
        params, _ = _uleb(d, pos)
        return params, _skip_valtypes(d, _skip_valtypes(d, pos))
    if form in (0x5E, 0x5F):  # array: one field; struct: a vector of fields
        n, pos = (1, pos) if form == 0x5E else _uleb(d, pos)
        for _ in range(n):
            pos = _skip_valtype(d, pos) + 1  # storage type (i8 and i16 are one byte), mutability
        return None, pos
    raise Unsupported(f"type form 0x{form:02x}")


def _skip_limits(d: bytes, pos: int) -> int:
    return _memory_cap(d, pos)[1]


def _memory_cap(d: bytes, pos: int) -> tuple[int | None, int]:
    """A memory's (or table's) limits: its maximum in bytes (None: none) and the end."""
    flags = d[pos]
    if flags & ~0x0F:
        raise Unsupported(f"limits flags 0x{flags:02x}")
    pos = _skip_leb(d, pos + 1)
    cap = None
    if flags & 0x01:
        cap, pos = _uleb(d, pos)
    page = _PAGE
    if flags & 0x08:
        log2, pos = _uleb(d, pos)
        page = 1 << log2
    return (None if cap is None else min(cap * page, _HUGE)), pos


# Immediates of each one-byte opcode (WebAssembly 3.0 core spec, 5.4).
_NONE, _IDX, _IDX2, _BLOCK, _LOOP, _MEMARG, _F32, _F64, _BRTABLE, _SELECT = range(10)
_TRYTABLE, _FB, _FC, _FD, _FE, _BAD = range(10, 16)
_KIND = [_BAD] * 256
for _op in (0x00, 0x01, 0x05, 0x0A, 0x0B, 0x0F, 0x19, 0x1A, 0x1B, 0xD1, 0xD3, 0xD4):
    _KIND[_op] = _NONE  # ...; ref.is_null, ref.eq, ref.as_non_null
for _op in range(0x45, 0xC5):  # numeric, sign extension
    _KIND[_op] = _NONE
for _op in (0x07, 0x08, 0x09, 0x0C, 0x0D, 0x10, 0x12, 0x14, 0x15, 0x18, 0x3F, 0x40, 0x41, 0x42):
    _KIND[_op] = _IDX
for _op in (*range(0x20, 0x27), 0xD0, 0xD2, 0xD5, 0xD6):
    _KIND[_op] = _IDX  # locals, globals, tables; ref.null's heap type, ref.func; br_on_(non_)null
for _op in range(0x28, 0x3F):
    _KIND[_op] = _MEMARG
_KIND[0x02] = _KIND[0x04] = _KIND[0x06] = _BLOCK  # block, if, legacy try
_KIND[0x03] = _LOOP
_KIND[0x11] = _KIND[0x13] = _IDX2  # (return_)call_indirect type table
_KIND[0x0E], _KIND[0x1C], _KIND[0x1F] = _BRTABLE, _SELECT, _TRYTABLE
_KIND[0x43], _KIND[0x44] = _F32, _F64
_KIND[0xFB], _KIND[0xFC], _KIND[0xFD], _KIND[0xFE] = _FB, _FC, _FD, _FE
del _op

# Number of LEB immediates of each prefixed opcode (absent: unknown).
_FC_IDX = {**dict.fromkeys(range(8), 0), 8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2}
_FC_IDX |= {15: 1, 16: 1, 17: 1, 19: 0, 20: 0, 21: 0, 22: 0}
_FB_IDX = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 2, 6: 1, 7: 1, 8: 2, 9: 2, 10: 2, 11: 1}
_FB_IDX |= {12: 1, 13: 1, 14: 1, 15: 0, 16: 1, 17: 2, 18: 2, 19: 2, 20: 1, 21: 1, 22: 1}
_FB_IDX |= {23: 1, 26: 0, 27: 0, 28: 0, 29: 0, 30: 0}
_FD_MEMARG = frozenset((*range(12), 92, 93))
_FD_LAST = 0x113  # relaxed SIMD ends at 0x113


def _scan_body(d: bytes, start: int, end: int, params: int) -> _Body:
    """Decode one function body, finding its loops."""
    n, pos = _uleb(d, start)
    locals_at, declared = pos, params
    for _ in range(n):
        count, pos = _uleb(d, pos)
        declared += count
        pos = _skip_valtype(d, pos)
    body = _Body(start, end, locals_at, pos, n, declared, [])
    loops, kinds = body.loops, _KIND
    while pos < end:
        kind = kinds[d[pos]]
        pos += 1
        if kind == _NONE:
            continue
        if kind == _IDX:
            while d[pos] & 0x80:
                pos += 1
            pos += 1
        elif kind == _MEMARG:
            pos = _memarg(d, pos)
        elif kind == _LOOP:
            pos = _skip_valtype(d, pos)
            loops.append(pos)
        elif kind == _BLOCK:
            pos = _skip_valtype(d, pos)
        else:
            pos = _rare(kind, d, pos)
    if pos != end or d[end - 1] != 0x0B:
        raise Unsupported("a function body does not end where its size says")
    return body


def _memarg(d: bytes, pos: int) -> int:
    flags, pos = _uleb(d, pos)
    if flags & 0x40:  # multi-memory: a memory index follows
        pos = _skip_leb(d, pos)
    return _skip_leb(d, pos)


def _rare(kind: int, d: bytes, pos: int) -> int:
    """The immediates of the less frequent opcodes."""
    if kind == _IDX2:
        return _skip_leb(d, _skip_leb(d, pos))
    if kind == _F32:
        return pos + 4
    if kind == _F64:
        return pos + 8
    if kind == _BRTABLE:
        n, pos = _uleb(d, pos)
        for _ in range(n + 1):
            pos = _skip_leb(d, pos)
        return pos
    if kind == _SELECT:
        return _skip_valtypes(d, pos)
    if kind == _TRYTABLE:
        pos = _skip_valtype(d, pos)
        n, pos = _uleb(d, pos)
        for _ in range(n):
            catch, pos = d[pos], pos + 1
            if catch > 3:
                raise Unsupported(f"catch kind {catch}")
            pos = _skip_leb(d, pos if catch > 1 else _skip_leb(d, pos))
        return pos
    if kind in (_FB, _FC):
        sub, pos = _uleb(d, pos)
        if kind == _FB and sub in (24, 25):  # br_on_cast(_fail): flags, label, two heap types
            return _skip_leb(d, _skip_leb(d, _skip_leb(d, pos + 1)))
        count = (_FB_IDX if kind == _FB else _FC_IDX).get(sub)
        if count is None:
            raise Unsupported(f"opcode 0x{0xFB if kind == _FB else 0xFC:02X} {sub}")
        for _ in range(count):
            pos = _skip_leb(d, pos)
        return pos
    if kind == _FD:
        return _simd(d, pos)
    if kind == _FE:
        sub, pos = _uleb(d, pos)
        if sub == 3:  # atomic.fence
            return pos + 1
        if sub in (0, 1, 2) or 0x10 <= sub <= 0x4E:
            return _memarg(d, pos)
        raise Unsupported(f"opcode 0xFE {sub}")
    raise Unsupported(f"opcode 0x{d[pos - 1]:02X}")


def _simd(d: bytes, pos: int) -> int:
    sub, pos = _uleb(d, pos)
    if sub in _FD_MEMARG:
        return _memarg(d, pos)
    if sub in (12, 13):  # v128.const, i8x16.shuffle
        return pos + 16
    if 21 <= sub <= 34:  # extract / replace lane
        return pos + 1
    if 84 <= sub <= 91:  # load / store lane
        return _memarg(d, pos) + 1
    if sub > _FD_LAST:
        raise Unsupported(f"opcode 0xFD {sub}")
    return pos
