"""Start-up of a fresh process: ``from wasm_sandbox import Sandbox`` and the command line's
``--help``, each against bare ``python -c pass`` measured in the same rounds.

    python benchmarks/startup_bench.py [--rounds N] [--tree DIR ...]

Each ``--tree`` is a checkout whose ``wasm_sandbox`` is put first on ``PYTHONPATH`` (an old
commit's, to compare before and after); without one, the installed package is measured.
Each is byte-compiled first.
Prints, per command, the median and the interquartile range over the rounds of its wall
time minus bare Python's median.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from timing import interleaved_ms

SCRIPT = str(Path(sys.executable).with_name("wasm-sandbox"))
CASES = {
    "import wasm_sandbox; from wasm_sandbox import Sandbox": [
        sys.executable,
        "-c",
        "import wasm_sandbox; from wasm_sandbox import Sandbox",
    ],
    "wasm-sandbox --help": [SCRIPT, "--help"],
    "wasm-sandbox run --help": [SCRIPT, "run", "--help"],
}
BARE = "bare python -c pass"


def byte_compiled(tree: str | None) -> None:
    """Byte-compile the package of ``tree`` (or the installed one), as an installed package
    is: under ``PYTHONDONTWRITEBYTECODE`` a checkout never is, and every start would time the
    compiler."""
    spec = importlib.util.find_spec("wasm_sandbox")
    assert spec is not None and spec.origin is not None
    package = Path(tree, "wasm_sandbox") if tree else Path(spec.origin).parent
    compileall.compile_dir(package, quiet=1)


def started(command: list[str], tree: str | None, cwd: str) -> Callable[[], object]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (tree, env.get("PYTHONPATH")) if p)
    return lambda: subprocess.run(command, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--tree", action="append", default=[], help="a checkout to measure")
    args = parser.parse_args()
    trees = [os.path.abspath(t) for t in args.tree] or [None]
    for tree in trees:
        byte_compiled(tree)
    with tempfile.TemporaryDirectory() as cwd:  # no stray module of the caller's directory
        runs = {BARE: started([sys.executable, "-c", "pass"], None, cwd)}
        for case, command in CASES.items():
            for tree in trees:
                runs[f"{case}  [{tree or 'installed'}]"] = started(command, tree, cwd)
        load = os.getloadavg()[0]
        samples = interleaved_ms(runs, args.rounds)
    bare = statistics.median(samples.pop(BARE))
    print(f"{args.rounds} rounds, load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"{BARE}: {bare:.0f} ms")
    for name, ms in samples.items():
        q1, _, q3 = statistics.quantiles(ms, n=4)
        print(
            f"+{statistics.median(ms) - bare:4.0f} ms (IQR +{q1 - bare:.0f}..+{q3 - bare:.0f})"
            f"  {name}"
        )


if __name__ == "__main__":
    main()
