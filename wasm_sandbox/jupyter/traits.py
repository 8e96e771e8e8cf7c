"""The traitlets glue the Jupyter faces share: a limit option in CLI units, checked when set.

``%config WasmSandbox.fuel`` (the magics) and ``c.WasmSandboxServer.max_fuel`` (the REST
API) are both `limit` traits; `check_limit` refuses a value `Limits.parse` cannot read.
"""

from __future__ import annotations

from typing import Any

from traitlets import Float, Int, TraitError, Unicode, Union

from ..errors import LimitsError
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
