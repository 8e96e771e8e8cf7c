"""The shim over wasmtime-py's private API refuses a wasmtime-py it was not written for."""

import importlib.metadata
import re
from pathlib import Path

import pytest

from wasm_sandbox import wasmtime_private
from wasm_sandbox.wasmtime_private import check, release, supported

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_release_reads_the_leading_numbers_of_real_version_strings():
    assert release("50.0.1") == (50, 0, 1)
    assert release("51.0.0rc1") == (51, 0, 0)
    assert release("50.0.0.dev3") == (50, 0, 0)
    assert release("unknown") == ()


@pytest.mark.parametrize("version", ["50.0.0", "50.0.1", "50.2.0"])
def test_releases_in_the_pinned_range_are_supported(version):
    assert supported(version)
    check(version)


@pytest.mark.parametrize("version", ["49.0.0", "49.99.1", "51.0.0", "51.0.0rc1", "100.0.0", ""])
def test_releases_outside_the_range_are_refused_naming_it(version):
    assert not supported(version)
    with pytest.raises(ImportError, match=r"wasmtime-py >=50,<51 \(.* is installed\)"):
        check(version)


def test_the_range_is_the_one_pyproject_pins_and_holds_the_installed_release():
    low, high = re.search(r'"wasmtime>=([\d.]+),<([\d.]+)"', PYPROJECT.read_text()).groups()
    assert (release(low), release(high)) == (wasmtime_private.OLDEST, wasmtime_private.NEWER)
    assert supported(importlib.metadata.version("wasmtime"))
