"""Over 2,000 generated modules (WebAssembly 3.0 proposals on) and 2,000 mutants, run in
child processes (a crash is a finding).

Longer campaigns: ``python -m tests.hardening.campaign --seed N --count M``.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Two children, one per core, each with its own seed range: (seed, smith attempts,
#: mutants). About 7 % of attempts yield no module, so 2,200 attempts give over 2,000.
SHARDS = [("101", "1100", "1000"), ("202", "1100", "1000")]
MODULES = 2000
#: The campaign's own limit fires first (and says how far it got), well before pytest's.
TIME_LIMIT = 480


@pytest.mark.slow
@pytest.mark.timeout(TIME_LIMIT + 240)
def test_generated_and_mutated_modules_never_crash_the_host():
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.hardening.campaign",
                "--seed",
                seed,
                "--count",
                count,
                "--mutations",
                mutants,
                "--time-limit",
                str(TIME_LIMIT),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed, count, mutants in SHARDS
    ]
    outputs = [child.communicate(timeout=TIME_LIMIT + 120)[0] for child in children]
    for child, output in zip(children, outputs, strict=True):
        assert child.returncode == 0, output[-3000:]
        assert "FINDING" not in output and "log verified True" in output
    modules = [int(re.search(r"^modules (\d+),", out, re.M).group(1)) for out in outputs]
    assert sum(modules) >= MODULES, modules
    print("\n".join(outputs))
