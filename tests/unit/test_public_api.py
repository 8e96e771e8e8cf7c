"""The public API is ``wasm_sandbox.__all__``: sorted, complete, and every name resolves."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import wasm_sandbox
from wasm_sandbox import errors

INIT = Path(wasm_sandbox.__file__)


def _type_checking_imports() -> set[str]:
    """The names ``__init__`` imports under ``if TYPE_CHECKING:`` (what type checkers see)."""
    tree = ast.parse(INIT.read_text())
    [block] = [
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    ]
    return {alias.name for node in block.body for alias in node.names}


def test_all_is_sorted_and_is_what_dir_shows():
    assert wasm_sandbox.__all__ == sorted(wasm_sandbox.__all__)
    assert len(set(wasm_sandbox.__all__)) == len(wasm_sandbox.__all__)
    assert dir(wasm_sandbox) == wasm_sandbox.__all__


def test_all_is_exactly_the_lazy_table_and_what_type_checkers_see():
    lazy = set(wasm_sandbox._EXPORTS)
    assert set(wasm_sandbox.__all__) == lazy | {"__version__"}
    assert _type_checking_imports() == lazy


def test_every_name_resolves_to_the_object_of_its_module_in_a_fresh_interpreter():
    code = (
        "import importlib, wasm_sandbox as w\n"
        "for name, module in w._EXPORTS.items():\n"
        "    value = getattr(w, name)\n"
        "    assert value is getattr(importlib.import_module('wasm_sandbox.' + module), name)\n"
        "    assert value.__module__ == 'wasm_sandbox.' + module, name\n"
        "from wasm_sandbox import *\n"
        "print(len(w.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(wasm_sandbox.__all__)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchThing"):
        wasm_sandbox.NoSuchThing  # noqa: B018


def test_every_public_error_is_exported():
    public = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, Exception)
        and value.__module__ == errors.__name__
        and not name.startswith("_")
    }
    assert public - set(wasm_sandbox.__all__) == set()
