"""Importing the package is cheap: wasmtime, cryptography's key types and SQLite load only
when a `Sandbox` is built or used, never for an import, a public name or ``--help``."""

import json
import subprocess
import sys

#: What an import must not load, and what a sandbox that runs loads.
HEAVY = ("wasmtime", "cryptography.hazmat.primitives.asymmetric", "sqlite3")


def _heavy_after(code: str) -> list[str]:
    """The `HEAVY` modules in ``sys.modules`` after ``code`` ran in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_importing_sandbox_loads_neither_wasmtime_nor_cryptography_nor_sqlite():
    assert _heavy_after("import wasm_sandbox\nfrom wasm_sandbox import Sandbox") == []


def test_every_public_name_resolves_and_none_loads_them():
    code = (
        "import wasm_sandbox\n"
        "for name in wasm_sandbox.__all__:\n"
        "    assert getattr(wasm_sandbox, name) is not None, name\n"
    )
    assert _heavy_after(code) == []


def test_the_command_line_help_loads_none_of_them():
    code = (
        "import contextlib, io\n"
        "from wasm_sandbox.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['run', '--help'])\n"
    )
    assert _heavy_after(code) == []


def test_a_sandbox_built_after_the_cheap_import_runs_seals_and_verifies(tmp_path):
    code = (
        "from wasm_sandbox import Sandbox\n"
        f"with Sandbox({str(tmp_path)!r}) as sb:\n"
        "    ex = sb.run('(module (func (export \"f\") (result i32) i32.const 42))', invoke='f')\n"
        "    assert ex.outcome.returns == (42,) and sb.verify(ex.id).verified\n"
    )
    assert _heavy_after(code) == list(HEAVY)
