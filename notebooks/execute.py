"""Run course notebooks top to bottom in a fresh kernel and save them with their outputs.

    python3 notebooks/execute.py                   # every chapter, 01_... to 07_...
    python3 notebooks/execute.py notebooks/03_capabilities.ipynb

Run it after editing a chapter, then check the result with nbval (see docs/course.md).
Widget state is saved in the notebook's metadata, so JupyterLab shows the cards without
a kernel; cell timings are not recorded, so a re-run changes only what really changed.
The chapters share one sandbox home: ``$WASM_SANDBOX_HOME`` if set, else a temporary one
(as under pytest, see conftest.py), so the saved outputs never show your own log's positions.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(path: Path) -> float:
    """Execute one notebook in place (cwd: its directory); return the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        store_widget_state=True,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    seconds = time.perf_counter() - start
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str]) -> int:
    os.environ.setdefault("WASM_SANDBOX_HOME", tempfile.mkdtemp(prefix="wasm-course-home-"))
    paths = [Path(a).resolve() for a in argv] or sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        print(f"{path.name}: {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
