"""Where a run's CPU goes: instructions per run (callgrind), and cycles by library (perf).

    apt-get install valgrind linux-perf    # each part is skipped, with a line, without its tool
    python benchmarks/cpu_bench.py [--workload count|hello] [--runs N]

Wall-clock figures on a shared VM move by up to 2x between minutes. Instructions do not:
each row of `peers_bench` runs in a loop of its own under ``valgrind --tool=callgrind``,
once ``N`` and once ``3N`` times, and the difference over ``2N`` is what one run costs,
start-up and warm-up cancelled out. Instructions are not time (the interpreter's branchy
code retires fewer per cycle than the curve arithmetic of a key agreement), so ``perf
record`` of the ``Sandbox.run`` loop then splits its cycles by shared object: the
interpreter, `cryptography`'s Rust and OpenSSL, the kernel (SQLite's writes and locks,
``getrandom``), libc, SQLite, wasmtime.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from peers_bench import WORKLOADS, runners

import wasm_sandbox
from wasm_sandbox import Sandbox

ROWS = ("raw wasmtime-py", "Extism CompiledPlugin", "Engine.run", "Sandbox.run")
WARM_UP = 300


def loop(workload: str, row: str, runs: int) -> None:
    """Run one row ``runs`` times after a warm-up: what the profilers watch."""
    with tempfile.TemporaryDirectory() as home, Sandbox(home) as sb:
        rows = runners(sb, workload)
        if row not in rows:
            sys.exit(f"no row {row!r} here (Extism is not installed?)")
        fn = rows[row]
        for _ in range(WARM_UP + runs):
            fn()


def _child(workload: str, row: str, runs: int) -> list[str]:
    return [sys.executable, __file__, "--workload", workload, "--loop", row, str(runs)]


def instructions(workload: str, row: str, runs: int) -> float:
    """Instructions one run of ``row`` retires: callgrind totals of 3N and N runs, over 2N."""
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (runs, 3 * runs):
            out = Path(tmp) / f"callgrind.{n}"
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            subprocess.run(command + _child(workload, row, n), check=True, capture_output=True)
            match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
            assert match, f"no totals in {out}"
            totals.append(int(match.group(1)))
    return (totals[1] - totals[0]) / (2 * runs)


def cycles_by_object(workload: str, runs: int, top: int = 9) -> list[tuple[float, str]]:
    """``(percent, shared object)`` of the cycles of a ``Sandbox.run`` loop, largest first."""
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "perf.data")
        record = ["perf", "record", "-q", "-F", "1999", "-o", data]
        subprocess.run(record + _child(workload, "Sandbox.run", runs), check=True)
        report = ["perf", "report", "-i", data, "--sort", "dso", "--stdio"]
        text = subprocess.run(report, check=True, capture_output=True, text=True).stdout
    rows = re.findall(r"^\s+([\d.]+)%\s+(\S.*?)\s*$", text, re.MULTILINE)
    return [(float(p), name) for p, name in rows[:top]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=WORKLOADS, default="count")
    parser.add_argument("--runs", type=int, default=100, help="N (callgrind runs N and 3N)")
    parser.add_argument("--loop", nargs=2, metavar=("ROW", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop:
        loop(args.workload, args.loop[0], int(args.loop[1]))
        return
    for code in (Path(wasm_sandbox.__file__).parent, Path(__file__).parent):
        compileall.compile_dir(code, quiet=1)  # else the first child alone compiles them
    if shutil.which("valgrind"):
        rows = [r for r in ROWS if "Extism" not in r or importlib.util.find_spec("extism")]
        per_run = {row: instructions(args.workload, row, args.runs) for row in rows}
        raw = per_run["raw wasmtime-py"]
        print(f"instructions per run ({args.workload}, callgrind, {args.runs} vs {3 * args.runs})")
        for row, n in per_run.items():
            print(f"  {row:<24} {n / 1e6:7.3f} M  {n / raw:6.1f}x raw")
    else:
        print("valgrind not found: no instruction counts")
    if shutil.which("perf"):
        print(f"cycles of a Sandbox.run loop by shared object ({args.workload}, perf record)")
        for percent, name in cycles_by_object(args.workload, 60 * args.runs):
            print(f"  {percent:5.1f} %  {name}")
    else:
        print("perf not found: no split of cycles")


if __name__ == "__main__":
    main()
