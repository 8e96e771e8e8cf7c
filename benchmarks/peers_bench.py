"""Per-run latency next to the alternatives, side by side in one process.

    pip install -e '.[bench]'     # Extism 1.1.1 (its rows are skipped without it)
    python benchmarks/peers_bench.py [--rounds N] [--per-round N]

Two workloads, a fresh instance per run: a trivial export (``count``, returns 0: Extism
raises on a non-zero return) and a WASI hello world (``_start`` writes one line). Rows:
  raw wasmtime-py   new Store (+ WASI config and linker) + Instance + call; fuel and epoch on
  Extism            ``Plugin(CompiledPlugin(manifest))`` + call: the module compiled once
  Engine.run        our limits: fuel, memory, epoch deadline, worker thread, the Outcome
  Sandbox.run       Engine.run + one HPKE key agreement + commitments + record + log append
Each round runs every row ``--per-round`` times, rows taking turns in a rotating order; a
row's figure is the median over rounds of its per-run mean, with the spread (min-max of the
rounds) and the load average at start and end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import wasmtime

from wasm_sandbox import Sandbox
from wasm_sandbox.sources import compile_wat

COUNT = """(module (func (export "count") (result i32) i32.const 0))"""
HELLO = r"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello, world\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 13))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
WORKLOADS = {"count": (COUNT, "count", False), "hello": (HELLO, "_start", True)}
FUEL = 10_000_000


def raw_runner(wasm: bytes, export: str, wasi: bool) -> Callable[[], Any]:
    """New Store + Instance + call under fuel and an epoch deadline (a WASI linker per run,
    as a host must give each run its own WASI context)."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module(engine, wasm)

    def run() -> Any:
        store = wasmtime.Store(engine)
        store.set_fuel(FUEL)
        store.set_epoch_deadline(1_000)
        if wasi:
            store.set_wasi(wasmtime.WasiConfig())
            linker = wasmtime.Linker(engine)
            linker.define_wasi()
            instance = linker.instantiate(store, module)
        else:
            instance = wasmtime.Instance(store, module, [])
        return instance.exports(store)[export](store)

    return run


def extism_runner(wasm: bytes, export: str, wasi: bool) -> Callable[[], Any] | None:
    """Extism's precompiled plugin: a new Plugin from it, then one call; None without Extism."""
    try:
        from extism import Plugin
        from extism.extism import CompiledPlugin
    except ImportError:
        return None
    compiled = CompiledPlugin({"wasm": [{"data": wasm}]}, wasi=wasi)
    return lambda: Plugin(compiled, wasi=wasi).call(export, b"")


def runners(sb: Sandbox, workload: str) -> dict[str, Callable[[], Any]]:
    """The rows of one workload, each checked once before timing."""
    wat, export, wasi = WORKLOADS[workload]
    wasm = compile_wat(wat)
    compiled = sb.engine.compile(wasm)
    rows: dict[str, Callable[[], Any] | None] = {
        "raw wasmtime-py": raw_runner(wasm, export, wasi),
        "Extism CompiledPlugin": extism_runner(wasm, export, wasi),
        "Engine.run": lambda: sb.engine.run(compiled, invoke=None if wasi else export),
        "Sandbox.run": lambda: sb.run(compiled, invoke=None if wasi else export),
    }
    ready = {name: fn for name, fn in rows.items() if fn is not None}
    for fn in ready.values():
        fn()
    return ready


def rounds_ms(
    rows: dict[str, Callable[[], Any]], rounds: int, per_round: int
) -> dict[str, list[float]]:
    """Per-run mean (ms) of each row in each round, rows taking turns in a rotating order."""
    names = list(rows)
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            fn = rows[name]
            start = time.perf_counter()
            for _ in range(per_round):
                fn()
            out[name].append((time.perf_counter() - start) * 1000 / per_round)
    return out


def summary(samples: list[float]) -> tuple[float, float, float]:
    """Median, min and max of the rounds."""
    return statistics.median(samples), min(samples), max(samples)


def measure(sb: Sandbox, rounds: int, per_round: int) -> dict[str, dict[str, list[float]]]:
    """Every workload's rows, measured in interleaved rounds."""
    return {w: rounds_ms(runners(sb, w), rounds, per_round) for w in WORKLOADS}


def report(results: dict[str, dict[str, list[float]]]) -> None:
    print(f"{'per run, fresh instance':<24}" + "".join(f"{w:>28}" for w in results))
    names = list(next(iter(results.values())))
    for name in names:
        cells = ""
        for rows in results.values():
            med, lo, hi = summary(rows[name])
            cells += f"{med:>9.3f} ms ({lo:.3f}-{hi:.3f})"
        print(f"{name:<24}{cells}")
    for w, rows in results.items():
        med = {name: statistics.median(v) for name, v in rows.items()}
        line = f"{w}: Sandbox.run - raw = {med['Sandbox.run'] - med['raw wasmtime-py']:.3f} ms"
        extism = med.get("Extism CompiledPlugin")
        if extism:
            line += f", Sandbox.run / Extism = {med['Sandbox.run'] / extism:.2f}x"
            line += f", Engine.run / Extism = {med['Engine.run'] / extism:.2f}x"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--per-round", type=int, default=400)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as home, Sandbox(home) as sb:
        results = measure(sb, args.rounds, args.per_round)
    print(
        f"{args.rounds} rounds x {args.per_round} runs; "
        f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    report(results)


if __name__ == "__main__":
    main()
