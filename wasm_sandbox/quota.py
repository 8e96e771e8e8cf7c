"""How far a run's read-write grants have grown, against the directory quota."""

from __future__ import annotations

import time
from typing import Any

from . import outcome as st
from .limits import Grants, bytes_used

#: Seconds between two looks at how much the read-write grants have grown, at least, and
#: at least this many times what the last look took (so looking costs at most ~1/5 of a run).
QUOTA_INTERVAL = 0.05
QUOTA_COST_FACTOR = 4


class Quota:
    """How far the read-write grants have grown since the run started, looked at from the
    epoch callback at most every `QUOTA_INTERVAL` (or `QUOTA_COST_FACTOR` times what a look
    took, for a tree of many files) and once at the end.

    A guest can overshoot by what it writes between two looks (its write rate times
    `QUOTA_INTERVAL`) plus what one host call writes (the run's deadline bounds that call)
    before it is stopped; what it wrote stays on disk.
    """

    def __init__(self, grants: Grants, quota: int) -> None:
        self.hosts = [d.host for d in grants.dirs if d.writable]
        self.quota = quota
        self.start = bytes_used(self.hosts) if self.hosts else 0
        self.grown = 0
        self.next_look = time.monotonic() + QUOTA_INTERVAL

    def exceeded(self, at_end: bool = False) -> bool:
        if not self.hosts:
            return False
        now = time.monotonic()
        if at_end or now >= self.next_look:
            self.grown = max(self.grown, bytes_used(self.hosts) - self.start)
            cost = time.monotonic() - now  # a big tree is looked at less often
            self.next_look = now + max(QUOTA_INTERVAL, QUOTA_COST_FACTOR * cost)
        return self.grown > self.quota

    def facts(self) -> dict[str, Any]:
        return {
            "status": st.QUOTA,
            "message": f"the read-write grants grew by {self.grown} bytes, past the "
            f"{self.quota} byte quota",
        }
