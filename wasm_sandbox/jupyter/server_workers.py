"""Carrying out one ``POST executions`` body: read it, run it, return the logged run.

The server's `Sandbox` uses process isolation (`wasm_sandbox.isolation`): each guest and
its compilation run in one of a pool of warm worker processes, and a worker that dies or
overstays its deadline (plus a grace) is killed and replaced. That run alone ends as
``crashed``, ``timeout`` or ``compile_limit``, sealed and logged like any other; the runs
in flight in other workers never notice. Reading the body, sealing and appending happen in
the server's run threads.
"""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives.asymmetric import ec

from wasm_sandbox.errors import BadField, CompileError, KeyStoreError
from wasm_sandbox.execution import Execution
from wasm_sandbox.limits import Grants, Limits
from wasm_sandbox.run_options import RunOptions
from wasm_sandbox.sandbox import Sandbox

from .server_request import parse


def run_request(
    sandbox: Sandbox,
    body: bytes,
    default: Limits,
    maximum: Limits,
    require_signed_by: tuple[str, ...] = (),
) -> Execution:
    """Read a ``POST executions`` body, run it, return the logged `Execution`.

    Raises `BadField` for a body, limit or WAT source that is wrong, `PolicyError` for a
    binary none of the ``require_signed_by`` keys signed (nothing logged either). A run
    that was logged as status ``error`` (a missing export, arguments that do not fit) is
    returned like any other result.
    """
    request = parse(body, functools.partial(_private_key, sandbox))
    options = RunOptions(
        invoke=request.invoke,
        args=tuple(request.args),
        limits=request.limits_within(default, maximum),
        grants=Grants(argv=request.argv, deterministic=request.deterministic),
        lang=request.lang,
        recipient=request.recipient,
        require_signed_by=require_signed_by,
    )
    try:
        return sandbox.run(request.program, options, stdin=request.stdin)
    except CompileError as exc:  # never became a module: nothing was logged
        where = {"line": exc.line, "column": exc.column}
        raise BadField(request.source_field, str(exc), **where) from None


def _private_key(sandbox: Sandbox) -> ec.EllipticCurvePrivateKey:
    """The key that opens sealed programs, or `BadField` when this home has none."""
    try:
        if not sandbox.keys.has_private_key:
            raise KeyStoreError("this home seals to an imported key it cannot open")
        return sandbox.keys.recipient_private_key()
    except KeyStoreError as exc:
        message = f"this server cannot open sealed programs ({exc})"
        raise BadField("sealed_program", message) from None
