"""Running a host tool (the C compiler) confined: bubblewrap, a memory cap, a deadline.

The tool sees only the directories bound for it: read-only ones (its own install) and
writable ones (its cache, a private work directory). Nothing else of the host's file
system exists inside, there is no network, and it gets new user, pid, ipc, uts and
cgroup namespaces, no capabilities and a cleared environment. Every process of the tool
has an address-space cap (``RLIMIT_AS``, set before ``bwrap`` starts and inherited by all
its children), and the whole tree is killed at the deadline (``--die-with-parent``: when
``bwrap`` is killed, everything inside dies with it).

Without ``bwrap`` nothing runs: `ConfinementError` names the package to install.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .errors import ConfinementError

BWRAP_PACKAGE = "bubblewrap"
#: Size of the tool's private ``/tmp`` (a tmpfs, so it counts against memory).
TMP_BYTES = 64 << 20
#: How often a waiting caller hears how long the tool has been running.
TICK_SECONDS = 5.0
_OUT_OF_MEMORY = re.compile(
    r"out of memory|Allocation failed|bad_alloc|OutOfMemory|Cannot allocate memory", re.I
)
#: Runs in a fresh interpreter: cap the address space, then become bwrap.
_LIMIT_AND_EXEC = (
    "import os,resource,sys;n=int(sys.argv[1]);"
    "resource.setrlimit(resource.RLIMIT_AS,(n,n));os.execv(sys.argv[2],sys.argv[2:])"
)


@dataclass(frozen=True)
class Finished:
    """How a confined tool ended; ``limit`` is ``"memory"`` or ``"timeout"`` when one was hit."""

    returncode: int
    stderr: str
    limit: str | None = None


def bwrap() -> str:
    """The path of ``bwrap``; raises `ConfinementError` when it is not installed."""
    found = shutil.which("bwrap")
    if found is None:
        raise ConfinementError(
            f"C needs bubblewrap to confine the compiler, and bwrap is not on PATH: "
            f"install the {BWRAP_PACKAGE!r} package (apt-get install {BWRAP_PACKAGE})"
        )
    return found


def run(
    argv: Sequence[str],
    *,
    read_only: Sequence[str],
    writable: Mapping[str, str],
    env: Mapping[str, str],
    cwd: str,
    timeout: float,
    memory: int,
    tick: Callable[[float, bytes], None] | None = None,
    progress_env: str | None = None,
) -> Finished:
    """Run ``argv`` inside bubblewrap and wait at most ``timeout`` seconds.

    ``read_only`` paths appear at the same path inside; ``writable`` maps a path inside
    to a host directory. ``tick(elapsed_seconds, progress)`` is called every
    `TICK_SECONDS` while the tool runs; ``progress`` is the last chunk the tool wrote to
    the pipe whose descriptor it finds in ``$progress_env`` (zig's ``ZIG_PROGRESS``), or
    ``b""``. Raises `ConfinementError` when bwrap itself cannot start.
    """
    with _ProgressPipe() as pipe:
        if progress_env:
            env = {**env, progress_env: str(pipe.write_fd)}
        command = [sys.executable, "-I", "-S", "-c", _LIMIT_AND_EXEC, str(memory), bwrap()]
        command += [*_sandbox_args(read_only, writable, env, cwd), "--", *argv]
        start = time.monotonic()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=(pipe.write_fd,) if progress_env else (),
        )
        pipe.start()
        ticker = (lambda elapsed: tick(elapsed, pipe.latest)) if tick else None
        stderr, timed_out = _wait(proc, start + timeout, ticker, start)
    text = stderr.decode("utf-8", errors="replace")
    if timed_out:
        return Finished(proc.returncode, text, "timeout")
    if proc.returncode != 0 and text.startswith("bwrap:"):
        raise ConfinementError(f"C: cannot confine the compiler: {text.splitlines()[0]}")
    limit = "memory" if proc.returncode != 0 and _OUT_OF_MEMORY.search(text) else None
    return Finished(proc.returncode, text, limit)


def _sandbox_args(
    read_only: Sequence[str], writable: Mapping[str, str], env: Mapping[str, str], cwd: str
) -> list[str]:
    args = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    for path in read_only:
        args += ["--ro-bind", path, path]
    for inside, host in writable.items():
        args += ["--bind", host, inside]
    args += ["--clearenv", "--chdir", cwd]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return args


def _wait(
    proc: subprocess.Popen[bytes],
    deadline: float,
    tick: Callable[[float], None] | None,
    start: float,
) -> tuple[bytes, bool]:
    """The tool's stderr, and whether it was killed at the deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _kill(proc)
            return proc.communicate()[1] or b"", True
        try:
            return proc.communicate(timeout=min(left, TICK_SECONDS))[1] or b"", False
        except subprocess.TimeoutExpired:
            if tick is not None:
                tick(time.monotonic() - start)
        except BaseException:  # KeyboardInterrupt: never leave the tool running
            _kill(proc)
            proc.wait()
            raise


class _ProgressPipe:
    """A pipe the tool may write progress to; a daemon thread keeps its latest chunk."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.latest = b""

    def __enter__(self) -> _ProgressPipe:
        return self

    def start(self) -> None:
        """Read from now on; the tool holds the only write end (so EOF ends the thread)."""
        os.close(self.write_fd)
        self.write_fd = -1
        threading.Thread(target=self._read, name="wasm-sandbox-progress", daemon=True).start()

    def _read(self) -> None:
        with os.fdopen(self.read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                self.latest = chunk

    def __exit__(self, *exc: object) -> None:
        if self.write_fd >= 0:  # the tool never started: nobody reads
            os.close(self.write_fd)
            os.close(self.read_fd)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
