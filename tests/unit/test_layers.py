"""The house of DESIGN.md holds: the core imports no face and no Jupyter package, not even
inside a function; the faces reach neither HPKE nor wasmtime's private API."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "wasm_sandbox"
#: Faces: the command line and the Jupyter package; `__init__` holds the extension hooks.
FACES = {"cli.py", "witness_cli.py", "receipts_cli.py", "__init__.py"}
FACE_MODULES = ("jupyter", "cli", "witness_cli", "receipts_cli")
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
