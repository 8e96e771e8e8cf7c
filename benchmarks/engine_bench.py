"""Engine benchmarks, each a ratio against a baseline measured in the same run.

    python benchmarks/engine_bench.py [--repeat N]

1. start-up: cold compile + run vs warm (module cache hit) run of the same module; the compile
   step alone from the memory cache and from the disk cache vs a miss; a C source from the C
   cache vs compiled by zig (when ``ziglang`` is installed);
2. per-run overhead: `Engine.run` (limits, worker thread, epoch watch) vs raw wasmtime-py
   (new Store + Instance + call on a compiled Module, no limits);
3. parallelism: two CPU-bound guests on two threads vs one guest (the GIL is released).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import threading
from pathlib import Path

import wasmtime
from timing import median_ms

from wasm_sandbox.engine import Engine
from wasm_sandbox.limits import Limits
from wasm_sandbox.sources import compile_c, compile_wat

FACT = """(module (func $f (export "fact") (param i64) (result i64)
  (if (result i64) (i64.eqz (local.get 0)) (then (i64.const 1))
    (else (i64.mul (local.get 0) (call $f (i64.sub (local.get 0) (i64.const 1))))))))"""
BUSY = """(module (func (export "busy") (param i64) (result i64) (local i64)
  (loop (local.set 1 (i64.add (local.get 1) (i64.const 1)))
        (br_if 0 (i64.lt_u (local.get 1) (local.get 0)))) (local.get 1)))"""


def startup(repeat: int) -> list[tuple[str, float, float]]:
    engine = Engine()
    counter = iter(range(10**9))

    def cold() -> None:  # a module no cache has seen: the name changes each time
        wasm = compile_wat(FACT.replace("fact", f"fact{next(counter)}"))
        compiled = engine.compile(wasm)
        engine.run(compiled, invoke=compiled.module.exports[0].name, args=[20])

    wasm = compile_wat(FACT)
    engine.compile(wasm)

    def warm() -> None:
        engine.run(engine.compile(wasm), invoke="fact", args=[20])

    raw_engine = wasmtime.Engine()
    raw_module = wasmtime.Module(raw_engine, wasm)

    def raw() -> None:
        store = wasmtime.Store(raw_engine)
        wasmtime.Instance(store, raw_module, []).exports(store)["fact"](store, 20)

    cold_ms, warm_ms, raw_ms = (median_ms(f, repeat) for f in (cold, warm, raw))
    engine.close()
    return [
        ("cold start (compile + run) vs warm", cold_ms, warm_ms),
        ("warm Engine.run vs raw wasmtime-py", warm_ms, raw_ms),
    ]


def compile_cache(repeat: int) -> list[tuple[str, float, float]]:
    """``Engine.compile`` of new bytes (a miss) vs the same bytes again (memory) and vs bytes
    another engine compiled (disk); a C source compiled by zig vs read from the C cache."""
    wasms = [compile_wat(FACT.replace("fact", f"fact_c{i}")) for i in range(repeat)]
    with tempfile.TemporaryDirectory() as tmp:
        engine, fresh = (Engine(cache_dir=Path(tmp) / "modules") for _ in range(2))
        first, again = iter(wasms), iter(wasms)
        miss = median_ms(lambda: engine.compile(next(first)), repeat)
        memory = median_ms(lambda: engine.compile(wasms[0]), repeat)
        disk = median_ms(lambda: fresh.compile(next(again)), repeat)
        engine.close()
        fresh.close()
        rows = [("compile: miss vs memory cache", miss, memory)]
        rows.append(("compile: miss vs disk cache", miss, disk))
        if importlib.util.find_spec("ziglang") is not None:
            source = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'
            cache, n = Path(tmp) / "c", iter(range(10**9))
            cold = median_ms(lambda: compile_c(f"{source}// {next(n)}\n", cache=cache), 3)
            hit = median_ms(lambda: compile_c(source, cache=cache), 20)
            rows.append(("C: zig compile vs C cache hit", cold, hit))
    return rows


def parallel(n: int) -> tuple[str, float, float]:
    engine = Engine()
    compiled = engine.compile(compile_wat(BUSY))
    limits = Limits(fuel=10 * n, timeout=60)

    def one() -> None:
        engine.run(compiled, invoke="busy", args=[n], limits=limits)

    def two() -> None:
        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    one_ms, two_ms = median_ms(one, 3), median_ms(two, 3)
    engine.close()
    return ("two CPU-bound guests on 2 threads vs one", two_ms, one_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--loop", type=int, default=200_000_000, help="iterations per guest")
    args = parser.parse_args()
    rows = [*startup(args.repeat), *compile_cache(args.repeat), parallel(args.loop)]
    print(f"{'measure':<44} {'median ms':>10} {'baseline ms':>12} {'ratio':>7}")
    for name, value, base in rows:
        print(f"{name:<44} {value:>10.3f} {base:>12.3f} {value / base:>7.2f}")


if __name__ == "__main__":
    main()
