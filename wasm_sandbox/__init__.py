"""wasm-sandbox: run WebAssembly under hard limits; seal every run and log it.

>>> from wasm_sandbox import Sandbox, Limits
>>> with Sandbox() as sb:                                                # doctest: +SKIP
...     sb.run("prog.wat", invoke="main", limits=Limits.parse(fuel="1e7")).outcome.status
'ok'

Importing this package, or any name in ``__all__``, is cheap: wasmtime, cryptography, SQLite
and Jupyter are imported when a `Sandbox` is built or first used, so scripts, ``--help`` and
``%load_ext`` start fast (``tests/unit/test_lazy_import.py`` checks it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "BadField": "errors",
    "Busy": "errors",
    "CommitmentMismatch": "errors",
    "CompileError": "errors",
    "ConfinementError": "errors",
    "DecryptionError": "errors",
    "DirGrant": "limits",
    "EnvelopeError": "errors",
    "Execution": "execution",
    "FileError": "errors",
    "GrantError": "errors",
    "Grants": "limits",
    "HelpRequested": "errors",
    "HomeError": "errors",
    "InvocationError": "errors",
    "KvGrant": "limits",
    "KeyStoreError": "errors",
    "LedgerError": "errors",
    "Limits": "limits",
    "LimitsError": "errors",
    "Outcome": "outcome",
    "PolicyError": "errors",
    "RecordNotFound": "errors",
    "Refused": "errors",
    "RemoteError": "errors",
    "RequestError": "errors",
    "RunFailed": "errors",
    "RunOptions": "run_options",
    "Sandbox": "sandbox",
    "SandboxError": "errors",
    "Unsupported": "errors",
    "UsageProblem": "errors",
    "Verification": "execution",
    "VerificationError": "errors",
    "WorkerError": "errors",
}

__all__ = [
    "BadField",
    "Busy",
    "CommitmentMismatch",
    "CompileError",
    "ConfinementError",
    "DecryptionError",
    "DirGrant",
    "EnvelopeError",
    "Execution",
    "FileError",
    "GrantError",
    "Grants",
    "HelpRequested",
    "HomeError",
    "InvocationError",
    "KeyStoreError",
    "KvGrant",
    "LedgerError",
    "Limits",
    "LimitsError",
    "Outcome",
    "PolicyError",
    "RecordNotFound",
    "Refused",
    "RemoteError",
    "RequestError",
    "RunFailed",
    "RunOptions",
    "Sandbox",
    "SandboxError",
    "Unsupported",
    "UsageProblem",
    "Verification",
    "VerificationError",
    "WorkerError",
    "__version__",
]

if TYPE_CHECKING:
    from .errors import (
        BadField,
        Busy,
        CommitmentMismatch,
        CompileError,
        ConfinementError,
        DecryptionError,
        EnvelopeError,
        FileError,
        GrantError,
        HelpRequested,
        HomeError,
        InvocationError,
        KeyStoreError,
        LedgerError,
        LimitsError,
        PolicyError,
        RecordNotFound,
        Refused,
        RemoteError,
        RequestError,
        RunFailed,
        SandboxError,
        Unsupported,
        UsageProblem,
        VerificationError,
        WorkerError,
    )
    from .execution import Execution, Verification
    from .limits import DirGrant, Grants, KvGrant, Limits
    from .outcome import Outcome
    from .run_options import RunOptions
    from .sandbox import Sandbox


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wasm_sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext wasm_sandbox``: register ``%%wasm`` and friends."""
    from .jupyter.magic import load_ipython_extension as load

    load(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "wasm_sandbox.jupyter.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (``pip install`` builds it into ``labextension/``)."""
    return [{"src": "labextension", "dest": "wasm-sandbox"}]
