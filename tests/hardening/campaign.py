"""A fuzzing campaign against the sandbox: generated modules and mutated bytes.

    python -m tests.hardening.campaign --seed 1 --count 2000 [--mutations 2000] [--time-limit 600]

Each generated module (``wasm-tools smith`` from seeded random bytes) is compiled and each
of its exported functions run under tight limits; every mutated module (truncated or with
flipped bits) is compiled and, when valid, run. Every attempt must end as an `Outcome` or
a `SandboxError`; anything else is a finding, printed with the seed that reproduces it.
One run in ten goes through the whole pipeline (sealed and logged); the log is verified at
the end. Exit status 0 when there are no findings; 1 with findings; 3 when the time limit
ran out first (the message says how far it got).
"""

from __future__ import annotations

import argparse
import collections
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from wasm_sandbox import Limits, Sandbox, SandboxError
from wasm_sandbox.outcome import STATUSES

TIGHT = Limits(
    fuel=200_000,
    memory=1 << 20,
    timeout=0.25,
    table_elements=1000,
    instances=2,
    tables=2,
    memories=2,
    output=4096,
)
SMITH_FLAGS = [
    "--min-funcs",
    "1",
    "--min-exports",
    "1",
    "--max-memory32-bytes",
    "1048576",
    "--max-memory64-bytes",
    "1048576",
    "--max-memories",
    "3",
]
#: The WebAssembly 3.0 proposals the sandbox turns on (`compiled.WASM3`): most modules use
#: them, so that GC, typed references, exceptions, tail calls, memory64 and multi-memory
#: reach the host (binary.py, call.py, instrument.py, traps.py).
ON = [
    "--gc-enabled",
    "--exceptions-enabled",
    "--tail-call-enabled",
    "--memory64-enabled",
    "--multi-value-enabled",
    "--reference-types-enabled",
]
#: Proposals the sandbox turns off; most modules avoid them so that they get to run.
OFF = [
    "--custom-descriptors-enabled",
    "--compact-imports-enabled",
    "--threads-enabled",
    "--shared-everything-threads-enabled",
    "--extended-const-enabled",
    "--wide-arithmetic-enabled",
    "--custom-page-sizes-enabled",
]
#: An argument of each type; any other type is passed as 0 and must be refused with an
#: `InvocationError` at the call boundary, never reach wasmtime-py's type API.
_DEFAULTS = {"i32": 0, "i64": 0, "f32": 0.0, "f64": 0.0, "externref": 1, "funcref": None}
#: wasm-tools of this interpreter's environment (the test tools install it beside python).
WASM_TOOLS = str(Path(sys.executable).with_name("wasm-tools"))


def smith(seed: int) -> bytes | None:
    """A valid module from ``wasm-tools smith``, or None when the seed yields none."""
    rng = random.Random(seed)
    entropy = rng.randbytes(rng.randint(64, 4096))
    flags = SMITH_FLAGS + (["--max-imports", "0"] if rng.random() < 0.8 else [])
    if rng.random() < 0.85:
        flags += [arg for flag in OFF for arg in (flag, "false")]
    if rng.random() < 0.9:
        flags += [arg for flag in ON for arg in (flag, "true")]
    proc = subprocess.run(
        [WASM_TOOLS, "smith", *flags], input=entropy, capture_output=True, timeout=60
    )
    return proc.stdout if proc.returncode == 0 else None


def mutations(wasm: bytes, seed: int) -> Iterator[bytes]:
    """Truncations and bit flips of ``wasm``."""
    rng = random.Random(seed)
    yield wasm[: rng.randrange(len(wasm))]
    for flips in (1, 2, 8):
        data = bytearray(wasm)
        for _ in range(flips):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        yield bytes(data)


class Campaign:
    """Runs attempts and keeps the tally and the findings."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.tally: collections.Counter[str] = collections.Counter()
        self.findings: list[str] = []
        self.attempts = 0

    def attempt(self, wasm: bytes, label: str) -> None:
        try:
            compiled = self.sb.engine.compile(wasm)
        except SandboxError:
            self.tally["compile_error"] += 1
            return
        except Exception as exc:  # a finding
            self.findings.append(f"{label}: compile raised {type(exc).__name__}: {exc}")
            return
        for name, (params, _results) in list(compiled.functions.items())[:3]:
            self._run(compiled, name, [_DEFAULTS.get(p, 0) for p in params], label)

    def _run(self, compiled, name: str, args: list, label: str) -> None:
        self.attempts += 1
        try:
            if self.attempts % 10 == 0:
                outcome = self.sb.run(compiled, invoke=name, args=args, limits=TIGHT).outcome
            else:
                outcome = self.sb.engine.run(compiled, invoke=name, args=args, limits=TIGHT)
        except SandboxError as exc:
            self.tally[type(exc).__name__] += 1
            return
        except Exception as exc:  # a finding
            self.findings.append(f"{label} {name}: raised {type(exc).__name__}: {exc}")
            return
        if outcome.status not in STATUSES:
            self.findings.append(f"{label} {name}: unknown status {outcome.status!r}")
        self.tally[outcome.status] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=2000, help="generated modules")
    parser.add_argument("--mutations", type=int, default=2000, help="mutated modules")
    parser.add_argument(
        "--time-limit", type=float, default=None, help="seconds before it stops, unfinished"
    )
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.time_limit if args.time_limit else float("inf")
    with tempfile.TemporaryDirectory() as home, Sandbox(home) as sb:
        campaign = Campaign(sb)
        valid: list[bytes] = []
        for i in range(args.count):
            if time.monotonic() > deadline:
                return _out_of_time(args, f"{i} of {args.count} generated modules, no mutants")
            seed = args.seed * 1_000_003 + i
            wasm = smith(seed)
            if wasm is None:
                campaign.tally["smith_declined"] += 1
                continue
            valid.append(wasm)
            campaign.attempt(wasm, f"smith seed {seed}")
        done = 0
        for i, wasm in enumerate(valid):
            for mutant in mutations(wasm, args.seed + i):
                if done >= args.mutations:
                    break
                if time.monotonic() > deadline:
                    return _out_of_time(
                        args,
                        f"all {args.count} generated modules, {done} of {args.mutations} mutants",
                    )
                campaign.attempt(mutant, f"mutation {i} of seed {args.seed}")
                done += 1
        report = sb.verify_log()
    print(
        f"modules {len(valid)}, mutants {done}, runs {campaign.attempts}, "
        f"logged {report.tree_size}, log verified {report.ok}"
    )
    print("tally:", dict(sorted(campaign.tally.items())))
    for finding in campaign.findings:
        print("FINDING:", finding)
    return 0 if not campaign.findings and report.ok else 1


def _out_of_time(args: argparse.Namespace, progress: str) -> int:
    print(f"TIME LIMIT: stopped after {args.time_limit:g} s, seed {args.seed}: done {progress}")
    return 3


if __name__ == "__main__":
    sys.exit(main())
