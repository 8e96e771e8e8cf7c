"""The sealing and logging tax: a full `Sandbox.run` against the bare run, same process.

    python benchmarks/pipeline_bench.py [--repeat N]

For a trivial module and for a ~100 ms workload, prints the median of
  raw      wasmtime-py: new Store + Instance + call on a compiled Module, no limits
  engine   `Engine.run`: limits, fuel, epoch watch, worker thread
  sandbox  `Sandbox.run`: the engine run + three HPKE seals + commitments + record + log append
and the tax: the median over rounds of (sandbox - engine), the three taking turns in each
round, in ms and in percent. Goals: under 1.5 ms added per run, under 3 % on the 100 ms
workload.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import wasmtime
from timing import interleaved_ms

from wasm_sandbox import Limits, Sandbox
from wasm_sandbox.sources import compile_wat

TRIVIAL = """(module (func (export "f") (result i32) i32.const 42))"""
#: A loop that calls a function each round; 14 M rounds take about 100 ms metered here.
WORK = """(module
  (func $step (param i64) (result i64) (i64.add (local.get 0) (i64.const 1)))
  (func (export "f") (param i64) (result i64) (local i64)
    (loop (local.set 1 (call $step (local.get 1)))
          (br_if 0 (i64.lt_u (local.get 1) (local.get 0)))) (local.get 1)))"""


def measure(sb: Sandbox, wat: str, args: list[int], repeat: int) -> dict[str, float]:
    """Medians of raw, engine and sandbox (interleaved rounds) and of the per-round tax."""
    wasm = compile_wat(wat)
    compiled = sb.engine.compile(wasm)
    limits = Limits(fuel=10**12, timeout=60)
    raw_engine = wasmtime.Engine()
    raw_module = wasmtime.Module(raw_engine, wasm)

    def raw() -> None:
        store = wasmtime.Store(raw_engine)
        wasmtime.Instance(store, raw_module, []).exports(store)["f"](store, *args)

    def engine() -> None:
        sb.engine.run(compiled, invoke="f", args=args, limits=limits)

    def sandbox() -> None:
        sb.run(compiled, invoke="f", args=args, limits=limits)

    samples = interleaved_ms({"raw": raw, "engine": engine, "sandbox": sandbox}, repeat)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    taxes = [s - e for s, e in zip(samples["sandbox"], samples["engine"], strict=True)]
    return {**medians, "tax": statistics.median(taxes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--work", type=int, default=14_000_000, help="loop rounds (~100 ms)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, Sandbox(home) as sb:
        rows = [
            ("trivial", measure(sb, TRIVIAL, [], args.repeat)),
            ("100 ms workload", measure(sb, WORK, [args.work], max(30, args.repeat // 10))),
        ]
    print(
        f"{'workload':<16} {'raw ms':>8} {'engine ms':>10} {'sandbox ms':>11} "
        f"{'tax ms':>8} {'tax %':>7}"
    )
    for name, ms in rows:
        print(
            f"{name:<16} {ms['raw']:>8.3f} {ms['engine']:>10.3f} {ms['sandbox']:>11.3f} "
            f"{ms['tax']:>8.3f} {100 * ms['tax'] / ms['engine']:>6.1f}%"
        )


if __name__ == "__main__":
    main()
