"""Unsigned LEB128, the integer encoding of the WebAssembly binary format."""

from __future__ import annotations

_SMALL = [bytes((i,)) for i in range(0x80)]


def encode(n: int) -> bytes:
    """``n`` (>= 0) as unsigned LEB128, in the fewest bytes."""
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def decode(data: bytes, pos: int, bits: int = 32) -> tuple[int, int]:
    """``(value, position after it)`` of the integer at ``pos``; `ValueError` when it is
    truncated or longer than a ``bits``-bit integer needs."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= bits + 7:
            raise ValueError("LEB128 integer too long")
