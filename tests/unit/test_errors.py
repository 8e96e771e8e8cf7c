"""One error tree: every exception class of the package is drawn in `wasm_sandbox.errors`
and derives `SandboxError`, the tree in its docstring is the tree in its code, and foreign
exceptions (wasmtime, sqlite3, cryptography) are caught only at their boundary rooms."""

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import wasm_sandbox
from wasm_sandbox import errors

PACKAGE = Path(wasm_sandbox.__file__).parent
#: Not errors the package raises to anyone: the HTTP answer itself (tornado's HTTPError).
HTTP_ANSWERS = {"wasm_sandbox.jupyter.server.ApiError"}
#: Where each foreign library's exceptions may be caught and turned into ours.
BOUNDARIES = {
    "wasmtime": {"compiled.py", "component.py", "sources.py", "traps.py"},
    "sqlite3": {"kvstore.py", "ledger.py", "witness.py"},
    "cryptography": {"envelope.py", "keys.py", "checkpoint.py"},
}
CRYPTO_ERRORS = {"InvalidTag", "InvalidSignature", "UnsupportedAlgorithm"}


def _modules():
    yield wasm_sandbox
    for info in pkgutil.walk_packages(wasm_sandbox.__path__, "wasm_sandbox."):
        yield importlib.import_module(info.name)


def _exception_classes():
    for module in _modules():
        for _, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__ == module.__name__ and issubclass(value, BaseException):
                yield value


def test_every_exception_class_is_drawn_in_errors_and_derives_sandbox_error():
    found = {f"{c.__module__}.{c.__qualname__}" for c in _exception_classes()}
    outside = found - HTTP_ANSWERS - {f"wasm_sandbox.errors.{n}" for n in _tree_names()}
    assert not outside, f"exceptions defined outside errors.py: {sorted(outside)}"
    for name in _tree_names():
        assert issubclass(getattr(errors, name), errors.SandboxError), name


def _tree_names():
    return {n for n, c in vars(errors).items() if isinstance(c, type) and issubclass(c, Exception)}


def test_the_docstring_tree_is_the_class_tree():
    drawn = {}  # name -> parent, read off the indentation of the drawing
    at_depth = {}
    for line in errors.__doc__.splitlines():
        match = re.match(r"^(\s*[│├└─ ]*)([A-Z]\w+)\s", line)
        if not match or not line.startswith("    "):
            continue
        depth = len(match.group(1)) // 4
        at_depth[depth] = match.group(2)
        drawn[match.group(2)] = at_depth.get(depth - 1)
    assert set(drawn) == _tree_names()
    for name, parent in drawn.items():
        cls = getattr(errors, name)
        sandbox_bases = [b for b in cls.__bases__ if issubclass(b, errors.SandboxError)]
        assert [b.__name__ for b in sandbox_bases] == ([parent] if parent else []), name


def _caught(path: Path):
    """The dotted names of every exception ``path`` catches (``sqlite3.Error``)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            kinds = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            yield from (ast.unparse(k) for k in kinds)


def _library(name: str) -> str | None:
    if name.split(".")[-1] in CRYPTO_ERRORS:
        return "cryptography"
    root = name.split(".")[0]
    return root if root in BOUNDARIES else None


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_foreign_exceptions_are_caught_only_at_their_boundary(path):
    for name in _caught(path):
        library = _library(name)
        if library is not None:
            assert path.name in BOUNDARIES[library], f"{path.name} catches {name}"


def test_the_boundary_check_sees_a_catch(tmp_path):
    stray = tmp_path / "stray.py"
    stray.write_text("try:\n    pass\nexcept (ValueError, sqlite3.OperationalError):\n    pass\n")
    assert [_library(n) for n in _caught(stray)] == [None, "sqlite3"]


def test_bad_field_survives_pickling_across_worker_processes():
    import pickle

    exc = pickle.loads(pickle.dumps(errors.BadField("wat", "line 2: bad", line=2, column=5)))
    assert (exc.field, exc.message, exc.extra, str(exc)) == (
        "wat",
        "line 2: bad",
        {"line": 2, "column": 5},
        "wat: line 2: bad",
    )


def test_describe_speaks_the_systems_words(tmp_path):
    try:
        tmp_path.mkdir()
    except OSError as exc:
        assert errors.describe(exc) == f"{tmp_path}: File exists"
