"""Serial vs batch throughput of sealed, logged runs on this machine.

    python benchmarks/batch_bench.py [--runs N] [--work ROUNDS]

Each run is a guest doing ``--work`` loop rounds (about 20 ms by default), sealed and
logged. Serial: one `Sandbox.run` after another. Batch: `Sandbox.map` on a thread pool
sized to the cores (wasm releases the GIL; sealing and the log append stay in the caller).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from wasm_sandbox import Limits, Sandbox
from wasm_sandbox.sources import compile_wat

WORK = """(module
  (func $step (param i64) (result i64) (i64.add (local.get 0) (i64.const 1)))
  (func (export "work") (param i64) (result i64) (local i64)
    (loop (local.set 1 (call $step (local.get 1)))
          (br_if 0 (i64.lt_u (local.get 1) (local.get 0)))) (local.get 1)))"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--work", type=int, default=800_000)
    args = parser.parse_args()
    limits = Limits(fuel=10**12, timeout=60)
    with tempfile.TemporaryDirectory() as home, Sandbox(home) as sb:
        compiled = sb.engine.compile(compile_wat(WORK))
        sb.run(compiled, invoke="work", args=[args.work], limits=limits)  # warm up
        start = time.perf_counter()
        for _ in range(args.runs):
            sb.run(compiled, invoke="work", args=[args.work], limits=limits)
        serial = args.runs / (time.perf_counter() - start)
        start = time.perf_counter()
        sb.map(compiled, [(args.work,)] * args.runs, invoke="work", limits=limits, progress=False)
        batch = args.runs / (time.perf_counter() - start)
        assert sb.verify_log().ok
    print(f"{args.runs} sealed runs of a ~{1000 / serial:.0f} ms guest on {os.cpu_count()} cores")
    print(f"{'mode':<8} {'runs/s':>8} {'ratio':>6}")
    print(f"{'serial':<8} {serial:>8.1f} {1.0:>6.2f}")
    print(f"{'batch':<8} {batch:>8.1f} {batch / serial:>6.2f}")


if __name__ == "__main__":
    main()
