"""The house of DESIGN.md holds: the core imports no face and no Jupyter package, not even
inside a function; the faces reach neither HPKE nor wasmtime's private API, and in the core
only `wasmtime_private` (the version-checked shim) does."""

import ast
from pathlib import Path

import pytest
import wasmtime

PACKAGE = Path(__file__).resolve().parents[2] / "wasm_sandbox"
#: Faces: the command line, the MCP server and the Jupyter package; `__init__` holds the
#: extension hooks.
FACES = {
    "cli.py",
    "witness_cli.py",
    "receipts_cli.py",
    "mcp_cli.py",
    "mcp_server.py",
    "__init__.py",
}
FACE_MODULES = ("jupyter", "cli", "witness_cli", "receipts_cli", "mcp_cli", "mcp_server")
JUPYTER = ("IPython", "ipywidgets", "ipykernel", "tornado", "jupyter_server", "dask", "distributed")
PRIVATE = ("cryptography.hazmat.primitives.hpke", "wasmtime._")


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, anywhere in it, as an absolute-looking name
    (``.jupyter.html`` for ``from .jupyter.html import x``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names += [base] + [f"{base}.{alias.name}".replace("..", ".") for alias in node.names]
    return names


CORE = sorted(p for p in PACKAGE.glob("*.py") if p.name not in FACES)
FACE_FILES = sorted([*PACKAGE.glob("jupyter/*.py"), *(PACKAGE / f for f in FACES)])


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_imports_no_face_and_no_jupyter_package(path):
    for name in _imports(path):
        relative = name.lstrip(".")
        assert not (name.startswith(".") and relative.split(".")[0] in FACE_MODULES), name
        assert name.split(".")[0] not in JUPYTER, name


@pytest.mark.parametrize("path", FACE_FILES, ids=lambda p: p.name)
def test_faces_reach_neither_hpke_nor_wasmtime_internals(path):
    for name in _imports(path):
        assert not name.startswith(PRIVATE), name


def test_the_checks_see_an_import_inside_a_function(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from .jupyter.html import mimebundle\n")
    assert ".jupyter.html" in _imports(sneaky)


SHIM = PACKAGE / "wasmtime_private.py"


def _underscored(tree: ast.AST) -> set[str]:
    """The ``_name`` (not dunder) attributes, functions and classes that ``tree`` names."""
    names = set()
    for node in ast.walk(tree):
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "name", None)
        if isinstance(name, str) and name.startswith("_") and not name.startswith("__"):
            names.add(name)
    return names


#: What wasmtime-py keeps private on its objects (``_context``, ``_instance``, ...), read
#: from the installed wasmtime-py itself.
WASMTIME_PRIVATE = set().union(
    *(_underscored(ast.parse(f.read_text())) for f in Path(wasmtime.__file__).parent.rglob("*.py"))
)


def _wasmtime_private_uses(path: Path) -> list[str]:
    """Imports of ``wasmtime._*`` and uses of wasmtime's private members on objects other
    than ``self`` in ``path``."""
    uses = [name for name in _imports(path) if name.startswith("wasmtime._")]
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in WASMTIME_PRIVATE
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            uses.append(ast.unparse(node))
    return uses


@pytest.mark.parametrize("path", sorted(set(PACKAGE.rglob("*.py")) - {SHIM}), ids=lambda p: p.name)
def test_only_the_shim_touches_wasmtime_private_api(path):
    assert _wasmtime_private_uses(path) == []


def test_the_private_api_check_sees_imports_and_members(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f(store):\n    import wasmtime._wasi\n    return store._context()\n")
    assert _wasmtime_private_uses(sneaky) == ["wasmtime._wasi", "store._context"]
    shim = _wasmtime_private_uses(SHIM)
    assert "wasmtime._bindings" in shim and "instance._instance" in shim
