"""What the fuel-sync rewrite (`wasm_sandbox.instrument`) costs.

    python benchmarks/instrument_bench.py [--functions N] [--iterations N] [--repeat N]

Prints: the rewrite's speed (MB/s) on a generated module of N functions, each with two
loops, and on the C probe of the course; the compile time of that module with and without
the rewrite (the engine also validates the original first); and the run time of a counting
loop of N iterations, rewritten against original (a tight loop: the worst case); and the
C programs of `metering_bench.py` (``benchmarks/c/``) as WASI ``_start`` under our
``compiled.config()``, original and rewritten taking turns (medians of the per-round ratios, so
load from other work hits both alike), with the fuel each used.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import wasmtime

from wasm_sandbox import instrument
from wasm_sandbox.compiled import config as engine_config
from wasm_sandbox.sources import compile_c

PROBE = Path(__file__).parents[1] / "notebooks" / "programs" / "probe.wasm"
PROGRAMS = Path(__file__).parent / "c"
COUNT = """(module (func (export "count") (param i64) (result i64) (local i64)
  (loop $l (local.set 1 (i64.add (local.get 1) (i64.const 1)))
    (br_if $l (i64.lt_u (local.get 1) (local.get 0)))) (local.get 1)))"""


def many_functions(n: int) -> bytes:
    body = """(func (param i32) (result i32) (local i32)
      (loop $a (local.set 1 (i32.add (local.get 1) (i32.load offset=8 (local.get 0))))
        (br_if $a (i32.lt_u (local.get 1) (i32.const 100))))
      (block $b (loop $c (br_if $b (i32.eqz (local.get 0)))
        (local.set 0 (i32.sub (local.get 0) (i32.const 1))) (br $c)))
      (i32.add (local.get 1) (local.get 0)))"""
    return bytes(wasmtime.wat2wasm("(module (memory 1) " + body * n + ")"))


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def rewrite_speed(name: str, wasm: bytes) -> None:
    seconds = best_of(3, lambda: instrument.rewrite(wasm))
    out = instrument.rewrite(wasm)
    print(
        f"| rewrite {name} | {len(wasm) / 1e6:.2f} MB | {seconds * 1000:.0f} ms"
        f" | {len(wasm) / 1e6 / seconds:.1f} MB/s | exact {out.fuel_exact} |"
    )


def compile_cost(wasm: bytes) -> None:
    engine = wasmtime.Engine(engine_config())
    plain = best_of(2, lambda: wasmtime.Module(engine, wasm))

    def ours() -> None:
        wasmtime.Module.validate(engine, wasm)
        wasmtime.Module(engine, instrument.rewrite(wasm).wasm)

    mine = best_of(2, ours)
    print(
        f"| compile, original vs validate + rewrite + compile | {plain * 1000:.0f} ms"
        f" | {mine * 1000:.0f} ms | {mine / plain:.2f}x | |"
    )


def loop_cost(iterations: int) -> None:
    engine = wasmtime.Engine(engine_config())
    wasm = bytes(wasmtime.wat2wasm(COUNT))
    results = {}
    for label, code in (("original", wasm), ("rewritten", instrument.rewrite(wasm).wasm)):
        module = wasmtime.Module(engine, code)
        samples, fuel = [], 0
        for _ in range(5):
            store = wasmtime.Store(engine)
            store.set_fuel(10**15)
            store.set_epoch_deadline(1 << 40)
            count = wasmtime.Instance(store, module, []).exports(store)["count"]
            start = time.perf_counter()
            count(store, iterations)
            samples.append(time.perf_counter() - start)
            fuel = 10**15 - store.get_fuel()
        results[label] = (statistics.median(samples), fuel)
    (t0, f0), (t1, f1) = results["original"], results["rewritten"]
    print(
        f"| tight counting loop, {iterations:.0e} iterations | {t0 * 1000:.0f} ms"
        f" | {t1 * 1000:.0f} ms | {t1 / t0:.2f}x | fuel {f0:,} -> {f1:,} |"
    )


def wasi_run(engine: wasmtime.Engine, module: wasmtime.Module) -> tuple[float, int]:
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    store.set_fuel(10**15)
    store.set_epoch_deadline(1 << 40)
    start = linker.instantiate(store, module).exports(store)["_start"]
    began = time.perf_counter()
    start(store)
    return time.perf_counter() - began, 10**15 - store.get_fuel()


def program_cost(repeat: int) -> None:
    engine = wasmtime.Engine(engine_config())
    for path in sorted(PROGRAMS.glob("*.c")):
        wasm = compile_c(path.read_text())
        pair = [wasmtime.Module(engine, w) for w in (wasm, instrument.rewrite(wasm).wasm)]
        ratios, times, fuels = [], ([], []), [0, 0]
        for i in range(repeat):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            got = {k: wasi_run(engine, pair[k]) for k in order}
            for k in (0, 1):
                times[k].append(got[k][0])
                fuels[k] = got[k][1]
            ratios.append(got[1][0] / got[0][0])
        print(
            f"| {path.stem}: time, fuel | {statistics.median(times[0]) * 1000:.0f} ms,"
            f" {fuels[0] / 1e6:.0f} M | {statistics.median(times[1]) * 1000:.0f} ms,"
            f" {fuels[1] / 1e6:.0f} M | {statistics.median(ratios):.3f}x"
            f" | fuel {fuels[1] / fuels[0]:.3f}x |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=10**8)
    parser.add_argument("--repeat", type=int, default=7, help="rounds per C program")
    args = parser.parse_args()
    big = many_functions(args.functions)
    print("| measure | original | rewritten | ratio | note |")
    print("| --- | --- | --- | --- | --- |")
    rewrite_speed(f"{args.functions} functions", big)
    if PROBE.exists():
        rewrite_speed("probe.wasm (C)", PROBE.read_bytes())
    compile_cost(big)
    loop_cost(args.iterations)
    program_cost(args.repeat)


if __name__ == "__main__":
    main()
