"""What the REST handlers stand on: one `Sandbox`, bounded thread pools, Prometheus metrics.

No tornado here. Runs go to a pool of ``workers`` threads with room for ``queue`` more
waiting; beyond that `Pool.submit` raises `Busy` at once, so the server answers 503 with
``Retry-After`` instead of piling up work. Each run thread reads its request and hands the
guest to a worker process of the sandbox (`server_workers`, `wasm_sandbox.isolation`),
waiting without holding the GIL. Reads of the log (records,
proofs, verification) go to a second, smaller pool so that nothing that may wait on the
ledger runs on the event loop.

>>> service = Service(Settings(home="/srv/sandbox", workers=4, queue=16))  # doctest: +SKIP
>>> service.submit_run(b'{"wat": "...", "invoke": "f"}').result()          # doctest: +SKIP
Execution(...)
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from wasm_sandbox import __version__, receipts, record, wire
from wasm_sandbox.checkpoint import Checkpoint
from wasm_sandbox.envelope import SUITE_NAME, sealed_program_info
from wasm_sandbox.errors import (
    BadField,
    Busy,
    LedgerError,
    RecordNotFound,
)
from wasm_sandbox.execution import Execution
from wasm_sandbox.limits import Limits
from wasm_sandbox.outcome import STATUSES
from wasm_sandbox.sandbox import Sandbox

from .server_cosign import add_cosignature
from .server_workers import run_request

T = TypeVar("T")


class Pool:
    """A thread pool that refuses work beyond ``workers + queue`` instead of queueing it."""

    def __init__(self, workers: int, queue: int, name: str) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"{name}: need workers >= 1 and queue >= 0")
        self.workers, self.capacity = workers, workers + queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending = 0  # accepted and not finished: running + queued
        self._running = 0
        self.accepted = 0
        self.rejected = 0
        self._closed = False

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        with self._lock:
            return self._pending - self._running

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Start ``fn(*args)`` on the pool, or raise `Busy` when it is full or closed."""
        with self._lock:
            if self._closed or self._pending >= self.capacity:
                self.rejected += 1
                raise Busy("closing" if self._closed else "busy")
            self._pending += 1
            self.accepted += 1
        try:
            return self._executor.submit(self._task, fn, args)
        except RuntimeError:  # shut down between the check and the submit
            with self._lock:
                self._pending -= 1
                self.rejected += 1
            raise Busy("closing") from None

    def _task(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._lock:
            self._running += 1
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._running -= 1
                self._pending -= 1

    def close(self) -> None:
        """Refuse new work, drop what is queued, wait for what runs; idempotent."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class Settings:
    """The operator's choices (from the ``WasmSandboxServer`` traitlets)."""

    home: str | None = None
    workers: int = 2
    queue: int = 16
    read_workers: int = 4
    read_queue: int = 64
    maximum: Limits = field(default_factory=Limits)
    default: Limits = field(default_factory=Limits)
    nice: int = 10
    require_signed_by: tuple[str, ...] = ()


class Service:
    """One sandbox home served over REST. Thread-safe; `close` is idempotent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.maximum = settings.maximum
        self.default = settings.default.capped(settings.maximum)
        self.sandbox = Sandbox(
            home=settings.home or None,
            isolation="process",
            workers=settings.workers,
            nice=settings.nice,
        )
        self.workers = self.sandbox.pool
        self.runs = Pool(settings.workers, settings.queue, "wasm-sandbox-run")
        self.reads = Pool(settings.read_workers, settings.read_queue, "wasm-sandbox-read")
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(self))
        self._lock = threading.Lock()
        self._closed = False

    # -- runs ---------------------------------------------------------------------------

    def submit_run(self, body: bytes) -> Future[Execution]:
        """Queue a run of a ``POST executions`` body; raises `Busy` at once when full.

        The body is read in a worker process (JSON, base64, HPKE are not for the event
        loop); the future raises `BadField` for a body, limit or WAT source that is wrong.
        """
        return self.runs.submit(self._run, body)

    def _run(self, body: bytes) -> Execution:
        return run_request(
            self.sandbox, body, self.default, self.maximum, self.settings.require_signed_by
        )

    @staticmethod
    def created(execution: Execution) -> wire.CreatedExecution:
        """The answer to ``POST executions``: the run, and the disclosure of its result for
        the requester (who reads that result in this answer anyway)."""
        answer = {**execution.to_json(), "disclosure": receipts.disclose(execution)}
        return cast("wire.CreatedExecution", answer)

    # -- reads --------------------------------------------------------------------------

    def submit_read(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self.reads.submit(fn, *args)

    def execution(self, ref: str) -> dict[str, Any]:
        """A record with its ciphertexts, inclusion proof, receipt and verification."""
        sb = self.sandbox
        record_id = sb.resolve(ref)
        entry = sb.ledger.get(record_id)
        verification = sb.verify(record_id)
        checkpoint = self._latest_checkpoint()
        proof = sb.ledger.inclusion_proof(entry.index, checkpoint.size)
        return {
            "id": record_id,
            "leaf_index": entry.index,
            "record": record.decode(entry.leaf),
            "leaf_b64": base64.b64encode(entry.leaf).decode(),
            "ciphertexts": {k: base64.b64encode(v).decode() for k, v in entry.blobs.items()},
            "inclusion_proof": {
                "leaf_index": entry.index,
                "tree_size": checkpoint.size,
                "root": checkpoint.root.hex(),
                "hashes": [h.hex() for h in proof],
            },
            "checkpoint": checkpoint.note,
            "receipt": sb.ledger.receipt(record_id),
            "verification": verification.to_json(),
        }

    def executions(self, limit: int, after: int) -> dict[str, Any]:
        """Records with leaf index > ``after``, oldest first, at most ``limit``."""
        ledger = self.sandbox.ledger
        entries = ledger.entries(after=after, limit=limit)
        items = [{**record.decode(e.leaf), "leaf_index": e.index} for e in entries]
        size = ledger.size
        last = items[-1]["leaf_index"] if items else None
        more = last is not None and last + 1 < size
        return {"items": items, "tree_size": size, "next_after": last if more else None}

    def _latest_checkpoint(self) -> Checkpoint:
        ledger = self.sandbox.ledger
        try:
            return ledger.latest_checkpoint()
        except LedgerError:
            if ledger.size == 0:
                raise RecordNotFound("the log is empty: no checkpoint yet") from None
            raise

    def checkpoint(self) -> dict[str, Any]:
        """The latest signed note, and the witnesses' cosignature lines stored on it."""
        cp = self._latest_checkpoint()
        cosigned = self.sandbox.ledger.cosigned_note(cp.size)
        return {
            "checkpoint": cp.note,
            "origin": self.sandbox.origin,
            "tree_size": cp.size,
            "root": cp.root.hex(),
            "cosignatures": cosigned[len(cp.note) :].splitlines(),
        }

    def consistency(self, first: int, second: int | None) -> dict[str, Any]:
        """A consistency proof between two tree sizes (``second`` defaults to the current)."""
        ledger = self.sandbox.ledger
        size = ledger.size
        second = size if second is None else second
        if not 1 <= first <= size:
            raise BadField("from", f"must be between 1 and the tree size ({size})")
        if not first <= second <= size:
            raise BadField("to", f"must be between from ({first}) and the tree size ({size})")
        proof = ledger.consistency_proof(first, second)
        return {
            "from": first,
            "to": second,
            "from_root": ledger.root(first).hex(),
            "to_root": ledger.root(second).hex(),
            "hashes": [h.hex() for h in proof],
        }

    def add_cosignature(self, body: bytes) -> dict[str, Any]:
        """Store a witness's cosignature on a checkpoint once it verifies (`server_cosign`)."""
        return add_cosignature(self.sandbox.ledger, body)

    def public_keys(self) -> dict[str, Any]:
        keys = self.sandbox.keys
        public = keys.recipient_public_key()
        return {
            "recipient_public_key_pem": keys.public_pem(),
            "recipient_key_id": keys.recipient_key_id,
            "log_origin": self.sandbox.origin,
            "log_verifier_key": self.sandbox.ledger.verifier_key,
            "sealed_program": {
                "accepted": keys.has_private_key,
                "suite": SUITE_NAME,
                "info_hex": sealed_program_info(public).hex(),
            },
        }

    def metrics_text(self) -> bytes:
        return generate_latest(self.registry)

    def health(self) -> dict[str, Any]:
        """Counters only: no sandbox work, no I/O."""
        return {
            "status": "closing" if self._closed else "ok",
            "version": __version__,
            "runs_in_flight": self.runs.running,
            "runs_queued": self.runs.queued,
            "run_capacity": self.runs.capacity,
        }

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Interrupt running guests, wait for their records, close the sandbox; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        closing = threading.Thread(target=self.runs.close)  # waits for the running runs
        closing.start()
        while closing.is_alive():  # a worker may pick up a queued run meanwhile: repeat
            self.workers.interrupt()
            closing.join(0.1)
        self.reads.close()
        self.sandbox.close()


class _Collector:
    """Reads the sandbox's counters at scrape time (a private registry, not the global one)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> list[Metric]:
        service = self.service
        snap: dict[str, Any] = service.sandbox.metrics.snapshot()
        runs = CounterMetricFamily(
            "wasm_sandbox_runs", "Runs carried out and logged, by outcome status", labels=["status"]
        )
        for status in sorted({*STATUSES, *snap["runs"]}):
            runs.add_metric([status], snap["runs"].get(status, 0))
        fuel = CounterMetricFamily(
            "wasm_sandbox_fuel_used",
            "Fuel (about one per wasm instruction) used by all runs",
            value=snap["fuel_used"],
        )
        duration = HistogramMetricFamily(
            "wasm_sandbox_run_duration_seconds",
            "Wall-clock duration of runs",
            buckets=[
                ("+Inf" if math.isinf(le) else repr(float(le)), count)
                for le, count in snap["duration_buckets"]
            ],
            sum_value=snap["duration_sum"],
        )
        rejected = CounterMetricFamily(
            "wasm_sandbox_requests_rejected",
            "Requests refused with 503 because a pool was full (runs, or log reads)",
            labels=["pool"],
        )
        rejected.add_metric(["runs"], service.runs.rejected)
        rejected.add_metric(["reads"], service.reads.rejected)
        gauges = [
            (
                "wasm_sandbox_log_size",
                "Records in the transparency log",
                service.sandbox.ledger.size,
            ),
            ("wasm_sandbox_queue_depth", "Accepted runs waiting for a worker", service.runs.queued),
            ("wasm_sandbox_runs_in_flight", "Runs being carried out now", service.runs.running),
            (
                "wasm_sandbox_run_capacity",
                "Runs accepted at once (workers + queue)",
                service.runs.capacity,
            ),
        ]
        return [
            runs,
            fuel,
            duration,
            rejected,
            *(GaugeMetricFamily(name, text, value=value) for name, text, value in gauges),
        ]
