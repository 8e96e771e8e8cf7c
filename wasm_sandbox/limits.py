"""What a guest may use (`Limits`) and what host access it is given (`Grants`).

Both are frozen dataclasses with safe defaults: a run with no options is bounded in
fuel, memory, time and output, and sees no files, no environment and no arguments.
Human units are parsed by one function each: `parse_size`, `parse_duration`, `parse_count`.

>>> Limits.parse(fuel="1e7", memory="64MiB", timeout="500ms").timeout
0.5
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import GrantError, LimitsError

WASM_PAGE = 65536
#: The largest limit a record can hold: its canonical JSON keeps integers exact up to here.
MAX_LIMIT = 2**53 - 1

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "page": WASM_PAGE,
    "pages": WASM_PAGE,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "m": 60.0, "min": 60.0}
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def _split(text: str, what: str) -> tuple[float, str]:
    match = _NUMBER.match(text)
    if not match:
        raise LimitsError(f"{what}: cannot read {text!r} (examples: 64MiB, 500ms, 1e7)")
    return float(match.group(1)), match.group(2).lower()


def parse_count(value: int | float | str, what: str = "count") -> int:
    """A non-negative integer, from ``1000``, ``"1e7"`` or ``"10_000"``."""
    if isinstance(value, str):
        number, unit = _split(value.replace("_", ""), what)
        if unit:
            raise LimitsError(f"{what}: {value!r} has a unit; give a plain number such as 1e7")
        value = number
    return _whole(value, what)


def parse_size(value: int | float | str, what: str = "size") -> int:
    """Bytes, from ``65536``, ``"64MiB"``, ``"1.5GB"`` or ``"16pages"`` (wasm pages)."""
    if isinstance(value, str):
        number, unit = _split(value.replace("_", ""), what)
        if unit not in _SIZE_UNITS:
            raise LimitsError(f"{what}: unknown unit {unit!r} in {value!r} (use B, KiB, MiB, GiB)")
        value = number * _SIZE_UNITS[unit]
    return _whole(value, what)


def parse_duration(value: int | float | str, what: str = "timeout") -> float:
    """Seconds, from ``2``, ``"2s"``, ``"500ms"`` or ``"1min"``."""
    if isinstance(value, str):
        number, unit = _split(value, what)
        if unit not in _TIME_UNITS:
            raise LimitsError(f"{what}: unknown unit {unit!r} in {value!r} (use ms, s, min)")
        value = number * _TIME_UNITS[unit]
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise LimitsError(f"{what}: must be a positive duration, got {value!r}")
    if not 0.5 <= seconds * 1000 <= MAX_LIMIT:  # the record holds whole milliseconds
        raise LimitsError(
            f"{what}: {value!r} is outside what a record holds (1 ms to 2**53 - 1 ms)"
        )
    return seconds


def _whole(value: int | float, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LimitsError(f"{what}: expected a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise LimitsError(f"{what}: must be a finite number >= 0, got {value!r}")
    if value > MAX_LIMIT:
        raise LimitsError(f"{what}: {value!r} is more than a record can hold (2**53 - 1)")
    return int(value)


@dataclass(frozen=True)
class Limits:
    """Hard limits for one run. Every field is finite; the defaults suit a notebook.

    fuel: wasm instructions (about one unit each); memory: bytes of linear memory;
    timeout: wall-clock seconds; table_elements, instances, tables, memories: counts;
    output: bytes of stdout and of stderr each kept (the rest is cut); max_stdin: bytes of
    standard input accepted (more is refused before the run). Each is at most `MAX_LIMIT`.
    """

    fuel: int = 10_000_000_000
    memory: int = 256 * 1024 * 1024
    timeout: float = 10.0
    table_elements: int = 100_000
    instances: int = 10
    tables: int = 10
    memories: int = 4
    output: int = 1024 * 1024
    max_stdin: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in (
            "fuel",
            "memory",
            "table_elements",
            "instances",
            "tables",
            "memories",
            "output",
            "max_stdin",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT:
                raise LimitsError(f"{name}: must be an integer from 0 to 2**53 - 1, got {value!r}")
        parse_duration(self.timeout)

    def check_stdin(self, stdin: bytes) -> None:
        """Raise `LimitsError` when ``stdin`` is longer than ``max_stdin``."""
        if len(stdin) > self.max_stdin:
            raise LimitsError(
                f"stdin: more than the {self.max_stdin} byte limit; "
                "raise it with --stdin-limit (Limits.max_stdin)"
            )

    @classmethod
    def parse(cls, base: Limits | None = None, **values: Any) -> Limits:
        """Limits from human units; ``None`` values keep the base (or default) value."""
        parsers = {
            "memory": parse_size,
            "output": parse_size,
            "max_stdin": parse_size,
            "timeout": parse_duration,
        }
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise LimitsError(f"unknown limit {sorted(unknown)[0]!r}")
        parsed = {
            name: parsers.get(name, parse_count)(value, name)
            for name, value in values.items()
            if value is not None
        }
        return replace(base or cls(), **parsed)

    def capped(self, maximum: Limits) -> Limits:
        """Each limit no higher than the same limit of ``maximum``."""
        return replace(self, **{k: min(v, getattr(maximum, k)) for k, v in asdict(self).items()})

    def to_record(self) -> dict[str, int]:
        """Integers only, for the canonical record (timeout in milliseconds)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["timeout_ms"] = round(values.pop("timeout") * 1000)
        return values

    @classmethod
    def from_record(cls, record: Mapping[str, int]) -> Limits:
        values = dict(record)
        values["timeout"] = values.pop("timeout_ms") / 1000
        return cls(**values)


@dataclass(frozen=True)
class DirGrant:
    """A host directory visible to the guest at ``guest`` (read-only unless ``writable``)."""

    host: str
    guest: str
    writable: bool = False

    @classmethod
    def parse(cls, spec: str) -> DirGrant:
        """``HOST[:GUEST][:ro|rw]``; the guest path defaults to the host directory's name."""
        if "\0" in spec:
            raise LimitsError(f"--dir: {spec!r} contains a NUL character")
        parts = spec.split(":")
        writable = False
        if len(parts) > 1 and parts[-1] in ("ro", "rw"):
            writable = parts.pop() == "rw"
        if len(parts) > 2 or not parts[0]:
            raise LimitsError(f"--dir: cannot read {spec!r} (use HOST[:GUEST][:ro|rw])")
        host = parts[0]
        guest = parts[1] if len(parts) == 2 and parts[1] else "/" + Path(host).resolve().name
        return cls(host=host, guest=guest, writable=writable)


@dataclass(frozen=True)
class Grants:
    """Host access for one run. The default grants nothing: no files, env, args or stdin."""

    dirs: tuple[DirGrant, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    argv: tuple[str, ...] = ()
    stdin: bytes = b""
    deterministic: bool = False

    @classmethod
    def parse(
        cls,
        *,
        dirs: Iterable[str | DirGrant] = (),
        env: Iterable[str] | Mapping[str, str] = (),
        argv: Iterable[str] = (),
        stdin: bytes | str | None = None,
        deterministic: bool = False,
    ) -> Grants:
        """Grants from CLI-style strings: ``dirs=["data:/data:ro"]``, ``env=["K=V"]``."""
        pairs = env.items() if isinstance(env, Mapping) else (_env_pair(item) for item in env)
        return cls(
            dirs=tuple(d if isinstance(d, DirGrant) else DirGrant.parse(d) for d in dirs),
            env=tuple((str(k), str(v)) for k, v in pairs),
            argv=tuple(str(a) for a in argv),
            stdin=stdin.encode() if isinstance(stdin, str) else (stdin or b""),
            deterministic=deterministic,
        )

    def check(self) -> None:
        """Raise `GrantError` for a granted directory that does not exist, or an argument
        or variable that cannot be a C string."""
        for text in (*self.argv, *(part for pair in self.env for part in pair)):
            if "\0" in text:
                raise GrantError(f"{text!r}: arguments and variables cannot contain NUL")
        for grant in self.dirs:
            if not os.path.isdir(grant.host):
                raise GrantError(f"--dir: {grant.host!r} is not a directory")
            if not grant.guest.startswith("/"):
                raise GrantError(f"--dir: guest path {grant.guest!r} must be absolute")

    def to_payload(self) -> dict[str, Any]:
        """The grants as JSON-able data, for the sealed input (stdin is sealed as raw bytes
        after it, see `wasm_sandbox.record`)."""
        return {
            "dirs": [[d.host, d.guest, d.writable] for d in self.dirs],
            "env": [list(pair) for pair in self.env],
            "argv": list(self.argv),
            "deterministic": self.deterministic,
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any], stdin: bytes = b"") -> Grants:
        """The grants of a sealed input; stdin travels beside them, as raw bytes."""
        return cls(
            dirs=tuple(DirGrant(h, g, bool(w)) for h, g, w in data["dirs"]),
            env=tuple((k, v) for k, v in data["env"]),
            argv=tuple(data["argv"]),
            stdin=stdin,
            deterministic=bool(data["deterministic"]),
        )


def _env_pair(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise LimitsError(f"--env: expected NAME=VALUE, got {item!r}")
    return name, value
