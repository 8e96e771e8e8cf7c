"""Counters of what the sandbox did, kept in memory for a face to expose (Prometheus)."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

from .outcome import Outcome

#: Upper bounds (seconds) of the run-duration histogram's buckets.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0)


@dataclass
class Metrics:
    """Runs by status, fuel used, and a histogram of run durations. Thread-safe."""

    runs: Counter[str] = field(default_factory=Counter)
    fuel_used: int = 0
    duration_counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe(self, outcome: Outcome) -> None:
        seconds = outcome.duration_ms / 1000
        with self._lock:
            self.runs[outcome.status] += 1
            self.fuel_used += outcome.fuel_used
            self.duration_counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
            self.duration_sum += seconds

    def snapshot(self) -> dict[str, object]:
        """A consistent copy: ``runs``, ``fuel_used``, ``duration_buckets`` (cumulative)."""
        with self._lock:
            cumulative, total = [], 0
            for count in self.duration_counts:
                total += count
                cumulative.append(total)
            return {
                "runs": dict(self.runs),
                "fuel_used": self.fuel_used,
                "duration_buckets": list(
                    zip((*DURATION_BUCKETS, float("inf")), cumulative, strict=True)
                ),
                "duration_sum": self.duration_sum,
                "duration_count": total,
            }
