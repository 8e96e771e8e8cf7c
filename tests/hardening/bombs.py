"""Generators of modules that are cheap to send and expensive to compile.

Both are valid modules with one empty function type. Compile time and memory of nested
blocks grow about quadratically with the depth (measured: depth 16,000, 48 KB: 1.2 s and
370 MB; the issue's 223 KB module: 38-47 s and 1 GB).
"""

from __future__ import annotations


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + _leb(len(payload)) + payload


def _vec(items: list[bytes]) -> bytes:
    return _leb(len(items)) + b"".join(items)


def module(bodies: list[bytes]) -> bytes:
    """A module of functions of type () -> () with these bodies (locals and code)."""
    types = _section(1, _vec([b"\x60\x00\x00"]))
    funcs = _section(3, _vec([b"\x00"] * len(bodies)))
    code = _section(10, _vec([_leb(len(b)) + b for b in bodies]))
    return b"\0asm\x01\0\0\0" + types + funcs + code


def nested_loops(depth: int) -> bytes:
    """One function of ``depth`` nested ``loop`` blocks (3 bytes a level)."""
    return module([b"\x00" + b"\x03\x40" * depth + b"\x0b" * depth + b"\x0b"])


def many_functions(count: int) -> bytes:
    """``count`` empty functions (4 bytes each)."""
    return module([b"\x00\x0b"] * count)
