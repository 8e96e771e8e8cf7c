"""nbval sees what a saved notebook shows: display updates and clears are applied.

nbval 0.11 keeps the first ``display_data`` of an output and drops the
``update_display_data`` and ``clear_output`` messages that follow ("unhandled iopub msg").
JupyterLab, nbclient and nbconvert apply them. A ``%%wasm`` card is displayed before the
guest starts (``wasm-sandbox: running…``) and updated with the result and its static HTML
when the run ends, so without this shim nbval would compare "running…" with the saved
result. The shim marks each display with its ``display_id``, turns updates and clears into
marked displays, and folds them into the cell's outputs before nbval compares them.

Widget views themselves (``application/vnd.jupyter.widget-view+json``) are never compared:
nbval skips that MIME type because model ids are random. The static ``text/html`` and
``text/plain`` of every card are compared, after ``notebooks/sanitize.cfg`` (used by
default when ``--nbval-sanitize-with`` is not given).

The chapters run in the user's sandbox home. Under pytest their kernels get
``$WASM_SANDBOX_HOME`` as pytest has it, or else one temporary home shared by every chapter
of the session: later chapters start with a log that already holds the earlier ones' runs,
so the sanitizers (not fresh homes) must keep the comparison stable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

try:
    from nbval.plugin import IPyNbCell, IPyNbFile
except ImportError:  # nbval is not installed: nothing to patch
    IPyNbCell = IPyNbFile = None

SHOWN = "nbval-display-id"  # metadata of a display that carries a display_id
UPDATE = "nbval-update-of"  # metadata of an update: the display_id it replaces
CLEAR = "nbval-clear-output"  # metadata of a clear: its ``wait`` flag


def _mark(msg: dict[str, Any]) -> dict[str, Any]:
    """Turn display updates and clears into display_data messages that nbval records."""
    kind, content = msg["msg_type"], msg["content"]
    if kind in ("display_data", "update_display_data"):
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id:
            key = UPDATE if kind == "update_display_data" else SHOWN
            content["metadata"] = {**(content.get("metadata") or {}), key: display_id}
            msg["msg_type"] = "display_data"
    elif kind == "clear_output":
        msg["msg_type"] = "display_data"
        msg["content"] = {"data": {}, "metadata": {CLEAR: bool(content.get("wait"))}}
    return msg


def fold(outputs: list[Any]) -> list[Any]:
    """The outputs as a notebook keeps them: updates applied in place, clears applied."""
    kept: list[Any] = []
    clear_on_next = False
    for out in outputs:
        meta = out.get("metadata") or {} if out.get("output_type") == "display_data" else {}
        if CLEAR in meta:
            if meta[CLEAR]:
                clear_on_next = True
            else:
                kept, clear_on_next = [], False
            continue
        if UPDATE in meta:
            for earlier in kept:
                if (earlier.get("metadata") or {}).get(SHOWN) == meta[UPDATE]:
                    earlier["data"] = out["data"]
            continue
        if clear_on_next:
            kept, clear_on_next = [], False
        kept.append(out)
    return kept


_HOMES: list[tempfile.TemporaryDirectory[str]] = []


def _session_home() -> str:
    """One temporary sandbox home for every chapter of this pytest session."""
    if not _HOMES:
        _HOMES.append(tempfile.TemporaryDirectory(prefix="wasm-course-home-"))
    return _HOMES[0].name


def _install() -> None:
    if IPyNbFile is None or getattr(IPyNbFile, "_wasm_sandbox_folds", False):
        return
    get_message = IPyNbFile.get_kernel_message
    compare = IPyNbCell.compare_outputs

    def get_kernel_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _mark(get_message(self, *args, **kwargs))

    def compare_outputs(self: Any, test: Any, ref: Any, skip_compare: Any = None) -> Any:
        return compare(self, fold(test), ref, skip_compare)

    setup = IPyNbFile.setup

    def setup_in_a_home(self: Any) -> None:
        os.environ.setdefault("WASM_SANDBOX_HOME", _session_home())
        setup(self)

    IPyNbFile.get_kernel_message = get_kernel_message
    IPyNbCell.compare_outputs = compare_outputs
    IPyNbFile.setup = setup_in_a_home
    IPyNbFile._wasm_sandbox_folds = True


_install()


def pytest_configure(config: Any) -> None:
    """Use ``sanitize.cfg`` next to this file unless ``--nbval-sanitize-with`` names one."""
    option = config.option
    if getattr(option, "nbval_sanitize_with", "missing") is None:
        option.nbval_sanitize_with = str(Path(__file__).with_name("sanitize.cfg"))
