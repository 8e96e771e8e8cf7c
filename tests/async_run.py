"""Running a coroutine from a test: on a thread of its own, because the browser tests'
Playwright (sync API) keeps an event loop running in the main thread for the whole session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn, *args).result()
