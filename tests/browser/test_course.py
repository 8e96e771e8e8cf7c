"""The course in a real JupyterLab: chapter 1's runs land in the audit panel, and the live
fuel gauge moves while a guest runs.

The server (one for this module) has its own ``WASM_SANDBOX_HOME``; its kernels inherit it,
as a student's kernels inherit the user's home. Screenshot: artifacts/course.png.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from typing import Any

import pytest

from .conftest import ARTIFACTS, REPO, Lab
from .ui import kernel_ready, notebook_json, open_notebook, run_all, run_cell

pytestmark = pytest.mark.slow

CHAPTER = REPO / "notebooks" / "01_first_sandbox.ipynb"
#: The line by which a chapter used to log to a throwaway home instead of the user's.
THROWAWAY_HOME = re.compile(r'^\s*os\.environ\["WASM_SANDBOX_HOME"\]\s*=.*\n?', re.M)
#: A loop that calls a function each round: today's engine reports its fuel while it runs.
CALLING_LOOP = """(module
  (func $step (param i64) (result i64) (i64.add (local.get 0) (i64.const 1)))
  (func (export "spin") (local i64)
    (loop (local.set 0 (call $step (local.get 0))) (br 0))))"""
#: A tight loop: no calls, so no fuel figure reaches the gauge until the engine counts it.
TIGHT_LOOP = """(module (func (export "spin") (loop $l (br $l))))"""


def _copy_chapter(lab: Lab) -> str:
    """Chapter 1 with its examples, in the server's root, logging to the server's home."""
    dest = lab.root / "course"
    shutil.copytree(CHAPTER.parent / "examples", dest / "examples")
    shutil.copy(CHAPTER.parent / "course_checks.py", dest)  # the exercises' check cells
    nb = json.loads(CHAPTER.read_text())
    for cell in nb["cells"]:
        cell["source"] = THROWAWAY_HOME.sub("", "".join(cell["source"]))
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (dest / CHAPTER.name).write_text(json.dumps(nb))
    return f"course/{CHAPTER.name}"


def _logged_ids(lab: Lab) -> list[str]:
    """The ids of the server home's log, newest first (read with the library itself)."""
    from wasm_sandbox import Sandbox

    with Sandbox(home=lab.home) as sb:
        return [r["id"] for r in sb.log(limit=1000)]


def test_chapter_1_runs_are_listed_in_the_audit_panel(lab: Lab, browser_context: Any) -> None:
    page = browser_context.new_page()
    page.set_default_timeout(30_000)
    open_notebook(page, lab, _copy_chapter(lab))
    run_all(page)
    logged = _logged_ids(lab)
    assert len(logged) >= 10, f"chapter 1 logged {len(logged)} runs in the server's home"

    page.locator(".lm-TabBar-tab[data-id='wasm-sandbox-audit']").click()
    panel = page.locator("#wasm-sandbox-audit")
    # asked afresh each time: every refresh renders the checkpoint again, so an element
    # taken once may be a detached one that keeps showing an older size
    page.wait_for_function(
        "want => document.querySelector('#wasm-sandbox-audit .jp-WasmSandbox-tree-size')"
        "?.textContent === want",
        arg=str(len(logged)),
    )
    rows = panel.locator(".jp-WasmSandbox-record")
    panel.locator(f".jp-WasmSandbox-record[data-id='{logged[0]}']").wait_for()
    shown = [rows.nth(i).get_attribute("data-id") for i in range(rows.count())]
    assert shown == logged[: len(shown)] and len(shown) == min(15, len(logged))
    page.screenshot(path=str(ARTIFACTS / "course.png"))
    page.close()


def _gauge_readings(page: Any, cell: Any, seconds: float) -> list[int]:
    """The card's fuel figures, sampled while the cell is still running."""
    fuel = cell.locator(".wasm-sandbox-card .wasm-sandbox-fuel")
    fuel.wait_for()
    readings: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cell.locator(".wasm-sandbox-card [data-status='running']").count() == 0:
            break  # the run is over: later figures are not live
        readings.append(int(re.sub(r"[^0-9]", "", fuel.inner_text().split("/")[0]) or 0))
        page.wait_for_timeout(150)
    return readings


@pytest.mark.parametrize(
    "wat",
    [
        pytest.param(CALLING_LOOP, id="calling-loop"),
        pytest.param(TIGHT_LOOP, id="tight-loop"),
    ],
)
def test_live_fuel_gauge_moves_while_the_guest_runs(
    lab: Lab, browser_context: Any, wat: str
) -> None:
    source = f"%%wasm --invoke spin --timeout 2.5 --fuel none\n{wat}"
    name = f"gauge-{abs(hash(wat))}.ipynb"
    (lab.root / name).write_text(json.dumps(notebook_json(["%load_ext wasm_sandbox", source])))
    page = browser_context.new_page()
    page.set_default_timeout(30_000)
    cells = open_notebook(page, lab, name)
    kernel_ready(page)
    run_cell(page, cells.nth(0))
    cells.nth(1).locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    readings = _gauge_readings(page, cells.nth(1), 10)
    cells.nth(1).locator(".wasm-sandbox-card [data-status='timeout']").wait_for()
    moving = sorted(set(r for r in readings if r > 0))
    assert len(moving) >= 2, f"the gauge did not move while the guest ran: {readings}"
    assert readings == sorted(readings), readings
    page.close()
