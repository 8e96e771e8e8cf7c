"""The cost of process isolation, and how fast deadlines end what would not stop.

    python benchmarks/isolation_bench.py [--repeat N] [--no-bombs]

Prints, for a trivial module and a ~100 ms workload, the median of a full `Sandbox.run`
(compile from the cache, run, seal, log) with ``isolation="thread"`` and with
``isolation="process"`` (a warm worker), taking turns in each round, and their ratio; the
cost of starting a worker (what a one-shot CLI run pays); and, unless ``--no-bombs``, the
wall time and the parent's peak RSS for generated compile bombs under ``--timeout 1s``
(deadline + grace = 2 s), against compiling them unguarded in a child.
"""

from __future__ import annotations

import argparse
import functools
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import interleaved_ms, median_ms

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.hardening.bombs import many_functions, nested_loops
from wasm_sandbox import Limits, Sandbox
from wasm_sandbox.pool import GRACE, WorkerPool

TRIVIAL = """(module (func (export "f") (result i32) i32.const 42))"""
WORK = """(module
  (func $step (param i64) (result i64) (i64.add (local.get 0) (i64.const 1)))
  (func (export "f") (param i64) (result i64) (local i64)
    (loop (local.set 1 (call $step (local.get 1)))
          (br_if 0 (i64.lt_u (local.get 1) (local.get 0)))) (local.get 1)))"""
UNGUARDED = """
import sys, time, resource, wasmtime
wasm = open(sys.argv[1], "rb").read()
config = wasmtime.Config(); config.consume_fuel = True; config.epoch_interruption = True
start = time.perf_counter(); wasmtime.Module(wasmtime.Engine(config), wasm)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10)
"""


def per_run(sb: Sandbox, repeat: int) -> None:
    limits = Limits(fuel=10**12, timeout=60)
    for name, wat, args in (("trivial", TRIVIAL, []), ("100 ms work", WORK, [14_000_000])):
        runs = {
            iso: functools.partial(sb.run, wat, invoke="f", args=args, limits=limits, isolation=iso)
            for iso in ("thread", "process")
        }
        for fn in runs.values():
            fn()  # compiled, cached, worker warm
        samples = interleaved_ms(runs, repeat)
        thread, process = (statistics.median(samples[k]) for k in ("thread", "process"))
        added = statistics.median(
            p - t for t, p in zip(samples["thread"], samples["process"], strict=True)
        )
        print(
            f"{name:12} thread {thread:8.3f} ms  process {process:8.3f} ms  "
            f"x{process / thread:5.2f}  (+{added:.3f} ms per run)"
        )


def worker_start(home: Path, repeat: int) -> None:
    def start_one() -> None:
        pool = WorkerPool(home / "cache")
        pool.warm(1)
        pool.close()

    print(f"start a worker process: {median_ms(start_one, repeat):.1f} ms")


def bombs(sb: Sandbox) -> None:
    for name, wasm in (
        ("nested loops 223 KB", nested_loops(74_000)),
        ("100k functions", many_functions(100_000)),
    ):
        path = Path(tempfile.mkstemp(suffix=".wasm")[1])
        path.write_bytes(wasm)
        done = subprocess.run(
            [sys.executable, "-c", UNGUARDED, str(path)], capture_output=True, text=True
        )
        seconds, rss = done.stdout.split()
        print(f"{name:20} unguarded compile {float(seconds):6.2f} s, {rss} MB peak RSS")
        for iso in ("thread", "process"):
            start = time.perf_counter()
            ex = sb.run(wasm, limits=Limits.parse(timeout="1s"), isolation=iso)
            wall = time.perf_counter() - start
            print(
                f"{'':20} {iso:7} {ex.outcome.status} after {wall:5.2f} s "
                f"(deadline 1 s + {GRACE:g} s grace)"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    print(f"this (parent) process's peak RSS: {peak} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-bombs", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Sandbox(home=tmp) as sb:
        per_run(sb, args.repeat)
        worker_start(Path(tmp), max(3, args.repeat // 10))
        if not args.no_bombs:
            bombs(sb)


if __name__ == "__main__":
    main()
