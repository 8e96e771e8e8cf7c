"""``wasm-sandbox course``: JupyterLab on the tutorial notebooks, chapter 1 open.

The course is the ``notebooks/`` folder of a source checkout (an editable install), or the
copy a wheel installs under ``<prefix>/share/wasm-sandbox/notebooks``; a wheel's copy is
first copied to a folder of the user's (``--dir``), so students edit their own notebooks.
The chapters' runs land in the user's sandbox home, the one the audit panel shows.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

FIRST_CHAPTER = "01_first_sandbox.ipynb"


def shipped_notebooks() -> Path | None:
    """The course folder of this installation, or None if it has none."""
    for folder in (
        Path(__file__).resolve().parents[1] / "notebooks",  # a source checkout
        Path(sys.prefix) / "share" / "wasm-sandbox" / "notebooks",  # a wheel
    ):
        if (folder / FIRST_CHAPTER).is_file():
            return folder
    return None


def course_dir(target: Path | None) -> Path:
    """Where the course runs: ``target`` (filled with a copy on first use), else the
    checkout's own folder, else a copy in ``./wasm-sandbox-course``."""
    shipped = shipped_notebooks()
    if shipped is None:
        raise FileNotFoundError("this installation has no course notebooks")
    in_checkout = shipped.parent.joinpath("pyproject.toml").is_file()
    if target is None and in_checkout:
        return shipped
    target = target or Path("wasm-sandbox-course")
    if not (target / FIRST_CHAPTER).exists():
        shutil.copytree(shipped, target, dirs_exist_ok=True)
    return target


def lab_command(folder: Path, extra: list[str]) -> list[str]:
    """The ``jupyter lab`` command line that serves ``folder`` with chapter 1 open."""
    root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={folder.resolve()}",
        *root,
        *extra,
        str((folder / FIRST_CHAPTER).resolve()),
    ]


def launch(target: Path | None, extra: list[str]) -> None:
    """Replace this process with JupyterLab on the course (never returns)."""
    folder = course_dir(target)
    print(f"wasm-sandbox: the course is in {folder.resolve()}", file=sys.stderr, flush=True)
    command = lab_command(folder, extra)
    os.execv(command[0], command)
