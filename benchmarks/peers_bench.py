"""Per-run latency and throughput next to the alternatives, measured in one process.

    pip install extism            # the Extism Python SDK (optional: its row is skipped without)
    python benchmarks/peers_bench.py [--repeat N] [--batch N]

Every row runs the same module (factorial of 20, then return 0) in a new instance:
  raw wasmtime-py   new Store + Instance + call, no limits (the baseline)
  Extism            new Plugin + call
  Engine.run        our limits: fuel, memory, epoch deadline, worker thread
  Sandbox.run       Engine.run + three HPKE seals + commitments + record + signed log append
and then throughput: Sandbox.run serially vs Sandbox.map on a thread pool.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import wasmtime
from timing import median_ms

from wasm_sandbox import Sandbox
from wasm_sandbox.sources import compile_wat

MODULE = """(module
  (func $fact (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0)) (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fact (i64.sub (local.get 0) (i64.const 1)))))))
  (func (export "run") (result i32) (drop (call $fact (i64.const 20))) (i32.const 0)))"""


def latency(sb: Sandbox, wasm: bytes, repeat: int) -> list[tuple[str, float | None]]:
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, wasm)

    def raw() -> None:
        store = wasmtime.Store(engine)
        wasmtime.Instance(store, module, []).exports(store)["run"](store)

    compiled = sb.engine.compile(wasm)
    rows: list[tuple[str, float | None]] = [("raw wasmtime-py", 1000 * median_ms(raw, repeat))]
    try:
        import extism
    except ImportError:
        rows.append(("Extism (not installed)", None))
    else:
        rows.append(
            ("Extism", 1000 * median_ms(lambda: extism.Plugin(wasm).call("run", b""), repeat))
        )
    rows.append(
        ("Engine.run", 1000 * median_ms(lambda: sb.engine.run(compiled, invoke="run"), repeat))
    )
    rows.append(("Sandbox.run", 1000 * median_ms(lambda: sb.run(compiled, invoke="run"), repeat)))
    return rows


def throughput(sb: Sandbox, wasm: bytes, n: int) -> tuple[float, float]:
    compiled = sb.engine.compile(wasm)
    start = time.perf_counter()
    for _ in range(n):
        sb.run(compiled, invoke="run")
    serial = n / (time.perf_counter() - start)
    start = time.perf_counter()
    sb.map(compiled, [()] * n, invoke="run", progress=False)
    return serial, n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    wasm = compile_wat(MODULE)
    with tempfile.TemporaryDirectory() as home, Sandbox(home) as sb:
        rows = latency(sb, wasm, args.repeat)
        serial, batch = throughput(sb, wasm, args.batch)
    base = rows[0][1] or 1.0
    print(f"{'per run (new instance)':<26} {'median us':>10} {'vs raw':>8}")
    for name, value in rows:
        shown = f"{value:>10.1f} {value / base:>7.2f}x" if value else f"{'-':>10} {'-':>8}"
        print(f"{name:<26} {shown}")
    print(
        f"\nthroughput, sealed and logged: serial {serial:,.0f} runs/s, "
        f"batch {batch:,.0f} runs/s ({batch / serial:.2f}x)"
    )


if __name__ == "__main__":
    main()
