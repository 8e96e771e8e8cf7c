"""Driving JupyterLab's page: open notebooks, run cells and commands, wait for the kernel."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

from .conftest import Lab

#: The notebook in the main area (JupyterLab keeps hidden ones in the DOM).
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"

# Resolves once the current notebook's kernel is idle and every code cell has a prompt
# number (a cell that raised counts: it ran).
_ALL_RAN = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session?.kernel;
  const cells = panel.content.model.sharedModel.cells.filter(c => c.cell_type === 'code');
  return kernel?.status === 'idle' && cells.every(c => c.execution_count !== null);
}"""


def open_notebook(page: Any, lab: Lab, path: str) -> Any:
    """Open `path` (relative to the server's root) in a fresh workspace; its cells."""
    page.goto(f"{lab.url}lab/tree/{path}?reset&token={lab.token}")
    cells = page.locator(f"{NOTEBOOK} .jp-Cell")
    cells.first.wait_for()
    page.locator(".lm-TabBar-tab[data-id='wasm-sandbox-audit']").wait_for()  # plugin active
    return cells


def command(page: Any, name: str, args: dict[str, Any] | None = None) -> Any:
    """Run a JupyterLab command by id (the app is exposed by the test server)."""
    return page.evaluate("([n, a]) => window.jupyterapp.commands.execute(n, a)", [name, args or {}])


def kernel_ready(page: Any, timeout: float = 60) -> None:
    """Wait until the current notebook's kernel is connected and idle."""
    page.wait_for_function(
        """async () => {
          const p = window.jupyterapp.shell.currentWidget;
          await p.sessionContext.ready;
          return p.sessionContext.session?.kernel?.status === 'idle';
        }""",
        timeout=timeout * 1000,
    )


def run_all(page: Any, timeout: float = 240) -> None:
    """Run every cell of the current notebook and wait until all of them ran."""
    kernel_ready(page)
    command(page, "notebook:run-all-cells")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(_ALL_RAN):
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"the notebook did not run through in {timeout:.0f} s")


def run_cell(page: Any, cell: Any, timeout: float = 60) -> int:
    """Run `cell` until its prompt shows a number: the first run can be dropped while the
    kernel connects."""
    prompt = cell.locator(".jp-InputPrompt")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cell.locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        wait_until = time.monotonic() + 15
        while time.monotonic() < wait_until:
            match = re.search(r"\[(\d+)\]", prompt.inner_text())
            if match:
                return int(match.group(1))
            page.wait_for_timeout(250)
    raise AssertionError(f"the cell did not run in {timeout:.0f} s: {prompt.inner_text()!r}")


def palette(page: Any, label: str) -> None:
    """Run a command from the command palette, by its label."""
    box = page.locator(".lm-CommandPalette-input")
    item = page.locator(".lm-CommandPalette-item", has_text=label).first
    for _ in range(5):
        page.keyboard.press("Escape")
        page.keyboard.press("Control+Shift+C")
        try:
            box.fill(label, timeout=3_000)
            item.click(timeout=3_000)
            return
        except Exception:  # not open or not listed yet (JupyterLab still starting): again
            page.wait_for_timeout(500)
    raise AssertionError(f"no command {label!r} in the palette")


def notebook_json(cells: list[str]) -> dict[str, Any]:
    """A notebook of code cells, for the Python 3 kernel."""
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
             "source": source}
            for source in cells
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip


def post_runs(lab: Lab, count: int) -> None:
    """Log `count` runs through the REST API."""
    body = json.dumps({"wat": '(module (func (export "one") (result i32) i32.const 1))',
                       "invoke": "one"}).encode()  # fmt: skip
    for _ in range(count):
        request = urllib.request.Request(
            lab.url + "wasm-sandbox/api/executions", data=body, method="POST",
            headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
