"""A guest's stdout and stderr, kept in memory and cut at the output limit.

wasmtime writes each stream into a pipe of its own: ``stdout_file`` names the pipe's write
end (``/proc/self/fd/N``), which wasmtime opens for itself, and every ``fd_write`` is then one
system call on the guest's own thread. (Through ``stdout_custom`` each write went to a wasmtime
thread and back into Python, about 0.1 ms a write: benchmarks/RESULTS.md, "WASI output".)

The run reads its pipes once the guest has returned (its writes are complete by then). A
guest that writes more than a pipe holds (64 KiB) must not wait for that, so from the first
epoch tick of its run on (`hand_over`, called by the engine's ticker) one drainer thread reads
its pipes whenever they have data. Not sooner: waking that thread takes the GIL from the run,
which cost a short run 0.4 ms. Past the limit, output is read and dropped: the guest's writes
still succeed, and the run is marked truncated.
"""

from __future__ import annotations

import os
import selectors
import threading

import wasmtime

_CHUNK = 1 << 16


class Capture:
    """A WASI output stream kept in memory, cut at ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False
        self._fd: int | None = None  # the pipe's read end, once attached

    def attach(self, config: wasmtime.WasiConfig, stream: str) -> None:
        """Route the guest's ``stream`` (``"stdout"`` or ``"stderr"``) of ``config`` here."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            setattr(config, f"{stream}_file", f"/proc/self/fd/{write_end}")  # opened now
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # wasmtime holds its own, blocking, descriptor of it
        self._fd = read_end
        _DRAINER.watch(read_end, self)

    def finish(self) -> None:
        """Once the guest has returned: read the rest and close the pipe."""
        if self._fd is None:
            return
        _DRAINER.forget(self._fd)
        self.read_available()
        os.close(self._fd)
        self._fd = None

    def read_available(self) -> bool:
        """Read what the pipe holds now; False at its end (wasmtime closed its end)."""
        assert self._fd is not None
        while True:
            try:
                data = os.read(self._fd, _CHUNK)
            except BlockingIOError:
                return True
            if not data:
                return False
            self._keep(data)

    def _keep(self, data: bytes) -> None:
        room = self.limit - self.size
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.chunks.append(data)
            self.size += len(data)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


class _Drainer:
    """One daemon thread that reads the pipes handed over to it. A pipe is read by it or by
    its run's `Capture.finish`, never both at once (``_lock``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        self._waiting: dict[int, Capture] = {}  # attached, not handed over yet

    def watch(self, fd: int, capture: Capture) -> None:
        """Read ``fd`` into ``capture`` from the next `hand_over` on."""
        with self._lock:
            self._waiting[fd] = capture

    def hand_over(self) -> None:
        """Have the thread read every pipe attached before now."""
        with self._lock:
            if not self._waiting:
                return
            selector = self._selector
            if selector is None:
                selector = selectors.DefaultSelector()
                threading.Thread(  # should it fail to start, the next tick tries again
                    target=self._serve, args=(selector,), name="wasm-sandbox-output", daemon=True
                ).start()
                self._selector = selector
            for fd, capture in self._waiting.items():
                selector.register(fd, selectors.EVENT_READ, capture)
            self._waiting.clear()

    def forget(self, fd: int) -> None:
        with self._lock:
            waiting, selector = self._waiting.pop(fd, None), self._selector
            if waiting is None and selector is not None and fd in selector.get_map():
                selector.unregister(fd)

    def _serve(self, selector: selectors.BaseSelector) -> None:
        while True:
            for key, _ in selector.select():
                with self._lock:
                    if selector.get_map().get(key.fd) is not key:
                        continue  # forgotten since (its descriptor may be another's now)
                    try:
                        more = key.data.read_available()
                    except OSError:  # never let this thread die: later guests need it
                        more = False
                    if not more:
                        selector.unregister(key.fd)  # at its end: nothing more to wait for

    def forked(self) -> None:
        """In a forked child: neither the parent's thread nor its epoll are this process's."""
        self._lock = threading.Lock()
        if self._selector is not None:
            self._selector.close()  # this process's copy of the descriptor only
        self._selector, self._waiting = None, {}


_DRAINER = _Drainer()
os.register_at_fork(after_in_child=_DRAINER.forked)
#: What the engine's ticker calls at every tick.
hand_over = _DRAINER.hand_over
