"""Metering tax on real programs: C compiled to wasm, raw wasmtime-py against our runs.

    python benchmarks/metering_bench.py [--repeat N]

Each program in ``benchmarks/c/`` is compiled once per engine (compile time excluded) and
run as WASI ``_start`` with a new Store and instance per run, in five modes:

  raw      wasmtime-py with a default ``Config``: no fuel, no epochs
  metered  wasmtime-py, default ``Config`` plus fuel and epoch interruption only
  config   wasmtime-py with our engine's whole ``Config`` (`compiled.config`: also NaN
           canonicalization, a 1 MiB wasm stack, proposals off)
  engine   `Engine.run` under generous `Limits`: worker thread, epoch ticker and deadline
           callback, store limits, captured output
  sandbox  `Sandbox.run`: the engine run, sealed and logged

The modes take turns (round-robin, the order rotating each round) so that load from other
work hits them alike; every mode must print the same checksum. Prints a Markdown table of
medians with the taxes of metering (metered / raw) and of our whole configuration
(config / raw), and our overhead beyond the engine's settings (engine / config - 1), whose
goal is under 5 %. The wasmtime-py modes get fuel and an epoch deadline far away, and no
epoch ticker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import wasmtime
from timing import interleaved_ms

from wasm_sandbox import Limits, Sandbox
from wasm_sandbox.compiled import Compiled
from wasm_sandbox.compiled import config as engine_config
from wasm_sandbox.outcome import Outcome
from wasm_sandbox.sources import compile_c

PROGRAMS = Path(__file__).parent / "c"
LIMITS = Limits(fuel=10**12, timeout=60)
FAR_EPOCH = 1 << 40
GOAL = 0.05
MODES = ("raw", "metered", "config", "engine", "sandbox")

Run = Callable[[], str]


class Raw:
    """wasmtime-py alone: one Engine and WASI Linker; each run a new Store and instance."""

    def __init__(self, config: wasmtime.Config, *, metered: bool, stdout: Path) -> None:
        self.engine = wasmtime.Engine(config)
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        self.metered = metered
        self.stdout = stdout

    def runner(self, wasm: bytes) -> Run:
        module = wasmtime.Module(self.engine, wasm)

        def run() -> str:
            store = wasmtime.Store(self.engine)
            if self.metered:
                store.set_fuel(LIMITS.fuel)
                store.set_epoch_deadline(FAR_EPOCH)
            wasi = wasmtime.WasiConfig()
            wasi.stdout_file = str(self.stdout)
            store.set_wasi(wasi)
            self.linker.instantiate(store, module).exports(store)["_start"](store)
            return self.stdout.read_text()

        return run


def fuel_and_epochs() -> wasmtime.Config:
    """A default ``Config`` with only the two metering switches on."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    return config


def ours(sb: Sandbox, compiled: Compiled) -> tuple[Run, Run]:
    """`Engine.run` and `Sandbox.run` of ``compiled``, each returning the guest's stdout."""

    def engine() -> str:
        return _stdout(sb.engine.run(compiled, limits=LIMITS))

    def sandbox() -> str:
        return _stdout(sb.run(compiled, limits=LIMITS).outcome)

    return engine, sandbox


def _stdout(outcome: Outcome) -> str:
    if outcome.status != "ok":
        raise RuntimeError(f"guest ended {outcome.status}: {outcome.message}")
    return outcome.stdout


def measure(runs: dict[str, Run], repeat: int) -> dict[str, float]:
    """Median ms per mode, the modes interleaved; a first untimed round checks outputs."""
    outputs = {name: run() for name, run in runs.items()}
    if len(set(outputs.values())) != 1:
        raise SystemExit(f"the modes printed different output: {outputs}")
    samples = interleaved_ms(runs, repeat)
    return {name: statistics.median(values) for name, values in samples.items()}


def row(program: str, ms: dict[str, float]) -> str:
    taxes = (f"{ms[mode] / ms['raw']:.2f}x" for mode in ("metered", "config"))
    beyond = ms["engine"] / ms["config"] - 1
    verdict = "met" if beyond < GOAL else f"missed by {100 * (beyond - GOAL):.1f} points"
    cells = [program, *(f"{ms[m]:.1f}" for m in MODES), *taxes, f"{100 * beyond:+.1f} %"]
    return "| " + " | ".join([*cells, verdict]) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(
        "| program | raw ms | metered ms | config ms | engine ms | sandbox ms "
        "| metered / raw | config / raw | engine / config - 1 | goal < 5 % |"
    )
    print("|" + " --- |" * 10)
    with tempfile.TemporaryDirectory() as home, Sandbox(home) as sb:
        out = Path(home)
        raw = Raw(wasmtime.Config(), metered=False, stdout=out / "raw.txt")
        metered = Raw(fuel_and_epochs(), metered=True, stdout=out / "metered.txt")
        config = Raw(engine_config(), metered=True, stdout=out / "config.txt")
        for path in sorted(PROGRAMS.glob("*.c")):
            wasm = compile_c(path.read_text())
            engine, sandbox = ours(sb, sb.engine.compile(wasm))
            plain = (raw.runner(wasm), metered.runner(wasm), config.runner(wasm))
            runs = dict(zip(MODES, (*plain, engine, sandbox), strict=True))
            print(row(path.stem, measure(runs, args.repeat)), flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
