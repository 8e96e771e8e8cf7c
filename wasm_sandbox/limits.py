"""What a guest may use (`Limits`) and what host access it is given (`Grants`).

Both are frozen dataclasses with safe defaults: a run with no options is bounded in
fuel, memory, time and output, and sees no files, no environment and no arguments.
Human units are parsed by one function each: `parse_size`, `parse_duration`, `parse_count`
(and `parse_fuel`, a count that may be ``none``: no fuel limit, the clock still applies).

>>> Limits.parse(fuel="1e7", memory="64MiB", timeout="500ms").timeout
0.5
"""

from __future__ import annotations

import math
import os
import re
import stat
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
#: ``fuel="none"``: the largest budget the record holds exactly (2**53 - 1, months of
#: guest time), so the clock is the limit that applies and fuel is still counted.
UNLIMITED_FUEL = 2**53 - 1
_SIZE_EXAMPLES = "examples: 64MiB, 16pages, 65536"
_TIME_EXAMPLES = "examples: 500ms, 2s, 1min"
_COUNT_EXAMPLES = "examples: 1e7, 10_000"
_FUEL_EXAMPLES = "examples: 1e7, 10_000, none"


def _split(text: str, what: str, examples: str) -> tuple[float, str]:
    match = _NUMBER.match(text)
    if not match:
        raise LimitsError(f"{what}: cannot read {text!r} ({examples})")
    return float(match.group(1)), match.group(2).lower()


def parse_count(
    value: int | float | str,
    what: str = "count",
    examples: str = _COUNT_EXAMPLES,
    beyond: str = "",
) -> int:
    """A non-negative integer, from ``1000``, ``"1e7"`` or ``"10_000"``; ``beyond`` is the
    hint for a value past `MAX_LIMIT`."""
    if isinstance(value, str):
        number, unit = _split(value.replace("_", ""), what, examples)
        if unit:
            raise LimitsError(f"{what}: {value!r} has a unit; give a plain number ({examples})")
        value = number
    return _whole(value, what, beyond)


def parse_fuel(value: int | float | str, what: str = "fuel") -> int:
    """A count as `parse_count`, or ``"none"`` for no fuel limit (`UNLIMITED_FUEL`)."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return UNLIMITED_FUEL
    return parse_count(value, what, _FUEL_EXAMPLES, beyond="; give none for no limit")


def parse_size(value: int | float | str, what: str = "size") -> int:
    """Bytes, from ``65536``, ``"64MiB"``, ``"1.5GB"`` or ``"16pages"`` (wasm pages)."""
    if isinstance(value, str):
        number, unit = _split(value.replace("_", ""), what, _SIZE_EXAMPLES)
        if unit not in _SIZE_UNITS:
            raise LimitsError(
                f"{what}: unknown unit {unit!r} in {value!r} (use B, KiB, MiB, GiB or pages; "
                f"{_SIZE_EXAMPLES})"
            )
        value = number * _SIZE_UNITS[unit]
    return _whole(value, what)


def parse_duration(value: int | float | str, what: str = "timeout") -> float:
    """Seconds, from ``2``, ``"2s"``, ``"500ms"`` or ``"1min"``."""
    if isinstance(value, str):
        number, unit = _split(value, what, _TIME_EXAMPLES)
        if unit not in _TIME_UNITS:
            raise LimitsError(
                f"{what}: unknown unit {unit!r} in {value!r} (use us, ms, s or min; "
                f"{_TIME_EXAMPLES})"
            )
        value = number * _TIME_UNITS[unit]
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise LimitsError(f"{what}: must be a positive duration, got {value!r} ({_TIME_EXAMPLES})")
    if not 0.5 <= seconds * 1000 <= MAX_LIMIT:  # the record holds whole milliseconds
        raise LimitsError(
            f"{what}: {value!r} is outside what a record holds (1 ms to 2**53 - 1 ms)"
        )
    return seconds


def _whole(value: int | float, what: str, beyond: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LimitsError(f"{what}: expected a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise LimitsError(f"{what}: must be a finite number >= 0, got {value!r}")
    if value > MAX_LIMIT:
        raise LimitsError(f"{what}: {value!r} is more than a record can hold (2**53 - 1){beyond}")
    return int(value)


@dataclass(frozen=True)
class Limits:
    """Hard limits for one run. Every field is finite; the defaults suit a notebook.

    fuel: wasm instructions (about one unit each; `UNLIMITED_FUEL` for none);
    memory: bytes of linear memory; timeout: wall-clock seconds;
    table_elements, instances, tables, memories: counts;
    output: bytes of stdout and of stderr each kept (the rest is cut);
    dir_quota: bytes by which the read-write grants may grow during the run;
    max_stdin: bytes of standard input accepted (more is refused before the run).
    Each is at most `MAX_LIMIT`.
    """

    fuel: int = 10_000_000_000
    memory: int = 256 * 1024 * 1024
    timeout: float = 10.0
    table_elements: int = 100_000
    instances: int = 10
    tables: int = 10
    memories: int = 4
    output: int = 1024 * 1024
    dir_quota: int = 256 * 1024 * 1024
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
            "dir_quota",
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
            "fuel": parse_fuel,
            "memory": parse_size,
            "output": parse_size,
            "dir_quota": parse_size,
            "max_stdin": parse_size,
            "timeout": parse_duration,
        }
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise LimitsError(f"unknown limit {sorted(unknown)[0]!r}")
        parsed: dict[str, Any] = {  # int or float, by field
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
        """The limits of a record (one written before a limit existed gets its default)."""
        values: dict[str, Any] = dict(record)
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


_NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class KvGrant:
    """A namespace of the home's key-value store (`wasm_sandbox.hostapi`), writable unless
    ``writable`` is False, with a byte and a key quota; ``store`` is the SQLite file (the
    sandbox fills in its home's)."""

    namespace: str
    writable: bool = True
    max_bytes: int = 1 << 20
    max_keys: int = 1000
    store: str = ""

    @classmethod
    def parse(cls, spec: str, quota: int | float | str | None = None) -> KvGrant:
        """``NAMESPACE[:ro|rw]``, and the byte quota in size units (default 1 MiB)."""
        name, _, mode = spec.partition(":")
        if not _NAMESPACE.fullmatch(name) or mode not in ("", "ro", "rw"):
            raise LimitsError(f"--kv: cannot read {spec!r} (use NAMESPACE[:ro|rw]: letters, "
                              "digits, '.', '_', '-', at most 64)")  # fmt: skip
        bytes_ = cls.max_bytes if quota is None else parse_size(quota, "--kv-quota")
        return cls(name, writable=mode != "ro", max_bytes=bytes_)


@dataclass(frozen=True)
class Grants:
    """Host access for one run. The default grants nothing: no files, env, args or stdin,
    no host function (``kv``: a key-value namespace; ``host_log``: the structured log)."""

    dirs: tuple[DirGrant, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    argv: tuple[str, ...] = ()
    stdin: bytes = b""
    deterministic: bool = False
    kv: KvGrant | None = None
    host_log: bool = False

    @classmethod
    def parse(
        cls,
        *,
        dirs: Iterable[str | DirGrant] = (),
        env: Iterable[str] | Mapping[str, str] = (),
        argv: Iterable[str] = (),
        stdin: bytes | str | None = None,
        deterministic: bool = False,
        kv: str | KvGrant | None = None,
        kv_quota: int | float | str | None = None,
        host_log: bool = False,
    ) -> Grants:
        """Grants from CLI-style strings: ``dirs=["data:/data:ro"]``, ``env=["K=V"]``,
        ``kv="scores:ro"``."""
        pairs = env.items() if isinstance(env, Mapping) else (_env_pair(item) for item in env)
        return cls(
            dirs=tuple(d if isinstance(d, DirGrant) else DirGrant.parse(d) for d in dirs),
            env=tuple((str(k), str(v)) for k, v in pairs),
            argv=tuple(str(a) for a in argv),
            stdin=stdin.encode() if isinstance(stdin, str) else (stdin or b""),
            deterministic=deterministic,
            kv=KvGrant.parse(kv, kv_quota) if isinstance(kv, str) else kv,
            host_log=host_log,
        )

    def check(self) -> None:
        """Raise `GrantError` for a granted directory that is not a real directory (a
        symlink anywhere on its path, or a FIFO, device or socket inside it), or an
        argument or variable that cannot be a C string."""
        for text in (*self.argv, *(part for pair in self.env for part in pair)):
            if "\0" in text:
                raise GrantError(f"{text!r}: arguments and variables cannot contain NUL")
        for grant in self.dirs:
            if not grant.guest.startswith("/"):
                raise GrantError(f"--dir: guest path {grant.guest!r} must be absolute")
            os.close(open_granted_dir(grant.host))
            _refuse_special_files(grant.host)

    def to_payload(self) -> dict[str, Any]:
        """The grants as JSON-able data, for the sealed input (stdin is sealed as raw bytes
        after it, see `wasm_sandbox.record`)."""
        return {
            "dirs": [[d.host, d.guest, d.writable] for d in self.dirs],
            "env": [list(pair) for pair in self.env],
            "argv": list(self.argv),
            "deterministic": self.deterministic,
            **self._host_payload(),
        }

    def _host_payload(self) -> dict[str, Any]:
        """The host function grants, only when there are any (older inputs lack them)."""
        kv = self.kv
        return {
            **({"kv": [kv.namespace, kv.writable, kv.max_bytes, kv.max_keys]} if kv else {}),
            **({"host_log": True} if self.host_log else {}),
        }

    def public(self) -> dict[str, Any]:
        """What the public record says the guest could touch: guest paths and modes,
        environment variable names, how many argv entries and stdin bytes (host paths and
        values may be secret: they are only in the sealed input)."""
        return {
            "dirs": [{"guest": d.guest, "mode": "rw" if d.writable else "ro"} for d in self.dirs],
            "env": [name for name, _ in self.env],
            "argv": len(self.argv),
            "stdin_bytes": len(self.stdin),
            **({"kv": {"namespace": self.kv.namespace, "mode": _mode(self.kv)}} if self.kv else {}),
            **({"host_log": True} if self.host_log else {}),
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
            kv=KvGrant(*data["kv"]) if "kv" in data else None,
            host_log=bool(data.get("host_log", False)),
        )


def _mode(grant: KvGrant) -> str:
    return "rw" if grant.writable else "ro"


def open_granted_dir(host: str) -> int:
    """An ``O_DIRECTORY`` descriptor of ``host``, reached one component at a time without
    following any symlink, so the directory checked is the directory granted.
    Raises `GrantError` naming the symlink and the real path to grant instead."""
    path = os.path.abspath(host)
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    walked = ""
    try:
        for part in Path(path).parts[1:]:
            walked += "/" + part
            try:
                child = os.open(part, _NOFOLLOW_DIR, dir_fd=fd)
            except OSError as exc:
                raise GrantError(_why_not_a_dir(host, walked, exc)) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _why_not_a_dir(host: str, walked: str, exc: OSError) -> str:
    if os.path.islink(walked):
        return (
            f"--dir: {host!r} goes through the symlink {walked} -> {os.readlink(walked)}; "
            f"grants never follow symlinks (grant the real path {os.path.realpath(host)!r})"
        )
    return f"--dir: {host!r} is not a directory ({walked}: {exc.strerror or exc})"


def _refuse_special_files(host: str) -> None:
    """Refuse a FIFO, device or socket in the granted tree (or a symlink to one): opening
    one could block the guest inside a host call. Files made after this scan are the
    deadline's to stop."""
    top = os.path.realpath(host)
    for root, dirs, files in os.walk(host):
        for name in (*dirs, *files):
            path = os.path.join(root, name)
            if os.path.islink(path) and not _inside(os.path.realpath(path), top):
                raise GrantError(
                    f"--dir: {path} is a symlink to {os.readlink(path)!r}, outside the grant"
                )
            try:
                mode = os.stat(path).st_mode  # follows a symlink: what an open would reach
            except OSError:  # a dangling symlink: opening it fails, it cannot block
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                kind = _KINDS.get(stat.S_IFMT(mode), "special file")
                raise GrantError(
                    f"--dir: {path} is a {kind}; grants hold only regular files and directories"
                )


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


_KINDS = {
    stat.S_IFIFO: "FIFO",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}


def bytes_used(hosts: Iterable[str]) -> int:
    """Bytes held by the files under ``hosts``, each counted as the larger of its size
    and its allocated blocks (a sparse file counts at its full size)."""
    total = 0
    for host in hosts:
        for root, _dirs, files in os.walk(host):
            for name in files:
                try:
                    info = os.lstat(os.path.join(root, name))
                except OSError:  # removed while we looked
                    continue
                total += max(info.st_size, info.st_blocks * 512)
    return total


def _env_pair(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise LimitsError(f"--env: expected NAME=VALUE, got {item!r}")
    return name, value
