"""The JupyterLab extension in a real browser, as a user would see it.

One notebook, opened from disk: ``%load_ext``, a ``%%wasm --lang c`` cell (highlighted as C
when the notebook opens) and a Python cell holding WebAssembly text (not highlighted as WAT).
The audit panel is opened over a log that already fills a page (runs posted to the REST API).
The test types a new cell, turns it into a ``%%wasm`` cell by typing the magic line, checks the
WAT keywords take the keyword style, runs it, reads fuel and commitment from the widget card,
sees the run appear on top of the panel by itself, pages, verifies it there, and tries the other
palette commands. Screenshot: artifacts/labextension.png.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.async_run import run_async

from .conftest import ARTIFACTS, Lab
from .ui import NOTEBOOK, notebook_json, palette, post_runs, run_all, run_cell

pytestmark = pytest.mark.slow

WAT_BODY = """(module
  (func (export "add") (param i32 i32) (result i32)
    local.get 0
    local.get 1
    i32.add))"""
MAGIC_LINE = "%%wasm --invoke add 2 3"
PAGE_SIZE = 15  # records on one page of the audit panel
C_CELL = """%%wasm --lang c
#include <stdio.h>
int main(void) { puts("hi"); return 0; }"""

# The style of the element holding the first text node that starts with `word`, in a cell.
STYLE_OF = """(cell, word) => {
  const content = cell.querySelector('.cm-content');
  const walker = document.createTreeWalker(content, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const at = n.textContent.indexOf(word);
    if (at >= 0 && (at === 0 || /[\\s(]/.test(n.textContent[at - 1]))) {
      const s = getComputedStyle(n.parentElement);
      return {weight: s.fontWeight, color: s.color, italic: s.fontStyle === 'italic',
              text: n.textContent};
    }
  }
  return null;
}"""


def _style(cell: Any, word: str) -> dict[str, Any]:
    style = cell.evaluate(STYLE_OF, word)
    assert style is not None, f"{word!r} not found in the cell"
    return style


def _bold(style: dict[str, Any]) -> bool:
    return int(style["weight"]) >= 600


# The panel's width, and what sticks out to the right of it.
OVERFLOW = """n => {
  const right = n.getBoundingClientRect().right;
  const out = e => Math.round(e.getBoundingClientRect().right - right);
  const wider = [...n.querySelectorAll('*')].filter(e => out(e) > 0)
    .map(e => `${e.tagName.toLowerCase()}.${e.className} ${out(e)} px`);
  return {width: n.clientWidth, scroll: n.scrollWidth, wider: wider.slice(0, 8)};
}"""


def _looks(button: Any) -> dict[str, str]:
    return button.evaluate(
        "b => { const s = getComputedStyle(b); "
        "return {cursor: s.cursor, opacity: s.opacity, background: s.backgroundColor}; }"
    )


def _digits(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text))


def test_installed_extension_is_enabled() -> None:
    """`jupyter labextension list` shows the prebuilt extension that pip installed."""
    out = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", "list"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    line = next((ln for ln in text.splitlines() if "wasm-sandbox" in ln), None)
    assert line is not None, text
    assert "enabled" in line and "OK" in line, line


def test_highlight_run_and_verify_in_the_audit_panel(lab: Lab, browser_context: Any) -> None:
    started = time.monotonic()
    cells_source = ["%load_ext wasm_sandbox", C_CELL, WAT_BODY]
    (lab.root / "demo.ipynb").write_text(json.dumps(notebook_json(cells_source)))
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(30_000)
    page.goto(f"{lab.url}lab/tree/demo.ipynb?reset&token={lab.token}")
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    cells.nth(2).locator(".cm-line").first.wait_for()
    page.locator(".lm-TabBar-tab[data-id='wasm-sandbox-audit']").wait_for()  # plugin active

    # The audit panel, from the command palette, over a log that already fills one page.
    post_runs(lab, PAGE_SIZE)
    palette(page, "Open WebAssembly Audit Trail")
    panel = page.locator("#wasm-sandbox-audit")
    rows = panel.locator(".jp-WasmSandbox-record")
    panel.locator(f".jp-WasmSandbox-record[data-leaf-index='{PAGE_SIZE - 1}']").wait_for()
    assert rows.count() == PAGE_SIZE
    # At its default width the panel needs no horizontal scrolling, and the list says, for
    # each run, what the public record tells of what ran (the call itself is sealed).
    width = panel.evaluate(OVERFLOW)
    assert not width["wider"], f"the audit panel overflows its {width['width']} px: {width}"
    ran = rows.first.locator(".jp-WasmSandbox-ran")
    assert re.fullmatch(r"\d+ B program", ran.inner_text()), ran.inner_text()
    assert "sealed" in (ran.get_attribute("title") or "")
    # One page only: both paging buttons are disabled and look it.
    newer, older = panel.locator(".jp-WasmSandbox-newer"), panel.locator(".jp-WasmSandbox-older")
    assert newer.is_disabled() and older.is_disabled()
    assert _looks(newer)["cursor"] == "not-allowed" and float(_looks(newer)["opacity"]) < 1
    refresh_look = _looks(panel.locator(".jp-WasmSandbox-refresh"))
    assert _looks(newer)["background"] != refresh_look["background"], refresh_look

    # Opened from disk: the %%wasm --lang c cell is C (`#include` is not a Python comment),
    # the Python cell with WebAssembly text stays Python (`module` is a plain name).
    include = _style(cells.nth(1), "#include")
    assert not include["italic"], f"`#include` styled as a Python comment: {include}"
    python_module = _style(cells.nth(2), "module")
    assert not _bold(python_module), f"`module` in a Python cell is a keyword: {python_module}"

    # Type a new cell: WebAssembly text first (still Python), then the magic line on top.
    cells.nth(2).locator(".cm-content").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    new = cells.nth(3)
    new.locator(".cm-content").click()
    page.keyboard.insert_text(WAT_BODY)
    page.wait_for_timeout(200)
    assert not _bold(_style(new, "module")), "WAT keywords highlighted before the magic line"
    page.keyboard.press("Control+Home")
    page.keyboard.type(MAGIC_LINE)
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    for keyword in ("module", "func", "param", "result"):
        wat = _style(new, keyword)
        assert _bold(wat), f"`{keyword}` in the %%wasm cell is not styled as a keyword: {wat}"
        assert wat["color"] != python_module["color"], (keyword, wat, python_module)
    assert new.locator(".cm-line").first.inner_text() == MAGIC_LINE

    # Run it: the widget card shows fuel and commitment.
    run_cell(page, cells.nth(0))
    run_cell(page, new)
    card = new.locator(".jp-OutputArea-output:has(.wasm-sandbox-card)")
    commitment_code = card.locator("tr:has(th:text-is('run commitment')) code[title]")
    commitment_code.wait_for(timeout=60_000)
    commitment = commitment_code.get_attribute("title") or ""
    assert re.fullmatch(r"[0-9a-f]{64}", commitment), commitment
    fuel_text = card.get_by_text(re.compile(r"^[\d,]+ / [\d,]+ \(")).first.inner_text()
    fuel_used = _digits(fuel_text.split("/")[0])
    assert fuel_used > 0, fuel_text
    assert card.get_by_text(re.compile(r"^fuel$")).count() == 1  # one fuel row
    # The static fallback is in the notebook (for nbconvert) but hidden behind the live card.
    fallback = new.locator(".wasm-sandbox-fallback")
    assert fallback.count() == 1 and not fallback.is_visible()
    assert new.locator(".jp-OutputArea-child:visible").count() == 1

    # The panel refreshed by itself: the new run is on top, the oldest moved to the next page.
    row = panel.locator(f".jp-WasmSandbox-record[data-commitment='{commitment}']")
    row.wait_for(timeout=20_000)
    assert rows.first.get_attribute("data-commitment") == commitment
    assert int(row.get_attribute("data-leaf-index") or -1) >= PAGE_SIZE
    assert _digits(row.locator(".jp-WasmSandbox-fuel").inner_text()) == fuel_used
    assert _digits(panel.locator(".jp-WasmSandbox-tree-size").inner_text()) > PAGE_SIZE
    assert newer.is_disabled() and older.is_enabled()
    assert _looks(older)["cursor"] != "not-allowed" and _looks(older)["opacity"] == "1"
    older.click()
    panel.locator(".jp-WasmSandbox-record[data-leaf-index='0']").wait_for()
    assert older.is_disabled() and newer.is_enabled()
    newer.click()

    # Select it, Verify: the server's checks and the browser's own.
    row.click()
    panel.locator(".jp-WasmSandbox-verify").click()
    verdict = panel.locator(".jp-WasmSandbox-verdict[data-verified]")
    verdict.wait_for(timeout=20_000)
    checks = panel.locator(".jp-WasmSandbox-checks li").all_inner_texts()
    panel.locator(".jp-WasmSandbox-checks li").last.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "labextension.png"))
    assert verdict.get_attribute("data-verified") == "true", "\n".join(checks)
    assert any(c.startswith("✓ browser: inclusion") for c in checks), checks

    # The other two palette commands: verify the latest run, insert an example cell.
    panel.locator(".jp-WasmSandbox-detail").evaluate("n => n.replaceChildren()")
    palette(page, "Verify Latest WebAssembly Run")
    verdict.wait_for(timeout=20_000)
    assert verdict.get_attribute("data-verified") == "true", verdict.inner_text()
    new.locator(".cm-content").click()
    palette(page, "Insert %%wasm Example Cell")
    example = cells.nth(4)
    example.locator(".cm-line").first.wait_for()
    assert example.locator(".cm-line").first.inner_text().startswith("%%wasm")
    assert _bold(_style(example, "module"))
    # Deleting the magic line makes it a Python cell again.
    example.locator(".cm-content").click()
    page.keyboard.press("Control+Home")
    page.keyboard.press("Shift+End")
    page.keyboard.press("Delete")
    page.wait_for_timeout(200)
    assert not _bold(_style(example, "module")), "still WAT after the magic line was deleted"
    assert not errors, errors
    print(f"browser test: {time.monotonic() - started:.1f} s; checks: {checks}")


def test_launcher_opens_a_webassembly_notebook(lab: Lab, browser_context: Any) -> None:
    """The launcher's WebAssembly section: a new notebook with a starter cell that runs."""
    page = browser_context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{lab.url}lab?reset&token={lab.token}")
    section = page.locator(".jp-Launcher-section", has_text="WebAssembly")
    notebook = section.locator(".jp-LauncherCard", has_text="WebAssembly Notebook")
    notebook.wait_for()
    assert section.locator(".jp-LauncherCard", has_text="WebAssembly Audit Trail").count() == 1
    notebook.click()
    cells = page.locator(f"{NOTEBOOK} .jp-Cell")
    cells.nth(1).locator(".cm-line").first.wait_for()
    assert cells.count() == 2
    assert cells.nth(0).locator(".cm-content").inner_text() == "%load_ext wasm_sandbox"
    assert cells.nth(1).locator(".cm-line").first.inner_text().startswith("%%wasm --invoke")
    run_all(page)
    card = cells.nth(1).locator(".wasm-sandbox-card")
    card.locator(".wasm-sandbox-status[data-status='ok']").wait_for()
    page.close()


def test_an_agents_run_shows_in_the_audit_panel_and_verifies(
    lab: Lab, browser_context: Any
) -> None:
    """An agent runs a guest through the MCP endpoint of the same server (the SDK's own
    client, with the token); the panel names the face and the browser verifies the run."""
    import httpx2
    from mcp import Client, Implementation
    from mcp.client.streamable_http import streamable_http_client

    async def agent() -> str:
        headers = {"Authorization": f"token {lab.token}"}
        transport = streamable_http_client(
            f"{lab.url}wasm-sandbox/mcp", http_client=httpx2.AsyncClient(headers=headers)
        )
        async with Client(
            transport, client_info=Implementation(name="panel-agent", version="1")
        ) as c:
            ran = await c.call_tool("run", {"source": WAT_BODY, "invoke": "add", "args": [4, 5]})
        assert ran.structured_content["returns"] == [9], ran
        return str(ran.structured_content["id"])

    record_id = run_async(agent)
    page = browser_context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{lab.url}lab?reset&token={lab.token}")
    page.locator(".lm-TabBar-tab[data-id='wasm-sandbox-audit']").wait_for()
    palette(page, "Open WebAssembly Audit Trail")
    panel = page.locator("#wasm-sandbox-audit")
    row = panel.locator(f".jp-WasmSandbox-record[data-id='{record_id}']")
    row.wait_for()
    assert re.search(r"via mcp \(panel-agent, as \S+", row.inner_text()), row.inner_text()
    row.click()
    panel.locator(".jp-WasmSandbox-verify").click()
    verdict = panel.locator(".jp-WasmSandbox-verdict[data-verified]")
    verdict.wait_for(timeout=20_000)
    checks = panel.locator(".jp-WasmSandbox-checks li").all_inner_texts()
    assert verdict.get_attribute("data-verified") == "true", "\n".join(checks)
