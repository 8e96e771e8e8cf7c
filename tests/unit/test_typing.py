"""The package type-checks under `mypy --strict` (settings: pyproject's `[tool.mypy]`)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # about 7 s without mypy's cache, under 1 s with it
def test_mypy_strict_reports_no_error_in_the_package():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "wasm_sandbox"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"mypy --strict wasm_sandbox:\n{result.stdout}{result.stderr}"
