"""A guest's stdout and stderr, kept in memory and cut at the output limit."""

from __future__ import annotations

import threading

import wasmtime

from . import wasmtime_private

#: Seconds a run waits for wasmtime to release a stream after the store is gone.
RELEASE_WAIT = 2.0


class Capture:
    """A WASI output stream kept in memory, cut at ``limit`` bytes.

    wasmtime calls it, and finally releases it, from its own (tokio) threads, the release
    only after the store is gone. A release still pending when the interpreter exits calls
    into a finalized Python and aborts the process, so `attach` routes the release here and
    `wait_released` lets the run wait for it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.released: threading.Event | None = None  # set once attached

    def attach(self, config: wasmtime.WasiConfig, stream: str) -> None:
        """Route the guest's ``stream`` (``"stdout"`` or ``"stderr"``) of ``config`` here."""
        self.released = threading.Event()
        wasmtime_private.route_output(config, stream, self)

    def release(self) -> None:
        assert self.released is not None  # wasmtime releases only what was attached
        self.released.set()

    def wait_released(self) -> None:
        if self.released is not None:
            self.released.wait(RELEASE_WAIT)

    def __call__(self, data: bytes) -> None:
        room = self.limit - self.size
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.chunks.append(data)
            self.size += len(data)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")
