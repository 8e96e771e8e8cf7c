"""The timing helpers the benchmark scripts share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall-clock milliseconds of ``repeat`` calls of ``fn``."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def interleaved_ms(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """``repeat`` wall-clock samples (ms) of each run, taking turns in a rotating order so that
    drift in the machine's load falls on every run alike; sample ``i`` of each is one round."""
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeat):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(median_ms(runs[name], 1))
    return samples
