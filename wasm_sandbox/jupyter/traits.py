"""The traitlets glue the Jupyter faces share: a limit option in CLI units, and a list of
signer keys, each checked when set.

``%config WasmSandbox.fuel`` (the magics) and ``c.WasmSandboxServer.max_fuel`` (the REST
API) are both `limit` traits; `check_limit` refuses a value `Limits.parse` cannot read.
Both faces' ``require_signed_by`` are `signers` traits, checked by `check_signers`.
"""

from __future__ import annotations

from typing import Any

from traitlets import Float, Int, List, TraitError, Unicode, Union

from ..errors import LimitsError, VerificationError
from ..limits import Limits


def limit(default_value: int | str, help: str) -> Union:
    """A configurable limit: a number or a string in CLI units (``"2s"``, ``"64MiB"``)."""
    return Union([Int(), Float(), Unicode()], default_value=default_value, help=help).tag(
        config=True
    )


def check_limit(field: str, value: Any) -> Any:
    """``value`` if `Limits` reads it as its ``field``, else `TraitError` (what traitlets
    shows for a bad ``%config`` or config file value)."""
    try:
        Limits.parse(**{field: value})
    except LimitsError as exc:
        raise TraitError(str(exc)) from None
    return value


def signers(help: str) -> List[str]:
    """A configurable list of signer verifier keys (``signer_verifier_key``)."""
    return List(Unicode(), help=help).tag(config=True)


def check_signers(value: list[str]) -> list[str]:
    """``value`` if every entry is a verifier key, else `TraitError` naming the problem."""
    from ..checkpoint import parse_verifier_key  # cryptography: not when the extension loads

    for key in value:
        try:
            parse_verifier_key(key)
        except VerificationError as exc:
            raise TraitError(f"require_signed_by: {exc}") from None
    return value
