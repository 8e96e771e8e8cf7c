"""The audit panel trusts no server: it pins the log key and checks every checkpoint it sees
against the one it saw before, across a restart of the server on the same URL.

Two real servers in turn behind one URL: the first one's log, then either a log under a new
key (the panel trusted the first key on first use and says so) or a fork (the same signing key,
other records). The panel must flag each, and verify nothing from the second server.
Screenshots: artifacts/trust-*.png.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import ARTIFACTS, Lab, _free_port, running_lab
from .ui import command, post_runs

pytestmark = pytest.mark.slow

OPEN_PANEL = "wasm-sandbox:open-audit-panel"
VERIFY_LATEST = "wasm-sandbox:verify-latest"


def _get(lab: Lab, path: str) -> Any:
    request = urllib.request.Request(
        lab.url + "wasm-sandbox/api/" + path, headers={"Authorization": f"token {lab.token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _open_panel(page: Any, lab: Lab, tree_size: int) -> Any:
    """Load JupyterLab, open the audit panel, wait until it shows the tree of `tree_size`."""
    page.goto(f"{lab.url}lab?reset&token={lab.token}")
    page.locator(".lm-TabBar-tab[data-id='wasm-sandbox-audit']").wait_for()
    command(page, OPEN_PANEL)
    panel = page.locator("#wasm-sandbox-audit")
    panel.locator(f".jp-WasmSandbox-tree-size:text-is('{tree_size}')").wait_for()
    return panel


def _verify_latest(page: Any, panel: Any) -> tuple[str | None, list[str]]:
    """Run *Verify Latest*: the verdict and each check's line."""
    panel.locator(".jp-WasmSandbox-detail").evaluate("n => n.replaceChildren()")
    command(page, VERIFY_LATEST)
    verdict = panel.locator(".jp-WasmSandbox-verdict[data-verified]")
    verdict.wait_for(timeout=30_000)
    checks = panel.locator(".jp-WasmSandbox-checks li").all_inner_texts()
    return verdict.get_attribute("data-verified"), checks


def _new_page(browser_context: Any) -> tuple[Any, list[str]]:
    page = browser_context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def _wasm_sandbox(*args: str | Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *map(str, args), "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_a_key_trusted_on_first_use_is_shown_and_another_key_is_flagged(
    tmp_path: Path, browser_context: Any
) -> None:
    port, token = _free_port(), secrets.token_hex(16)
    page, errors = _new_page(browser_context)
    with running_lab(tmp_path, tmp_path / "home", port=port, token=token) as lab:
        post_runs(lab, 2)
        first_key = _get(lab, "keys/public")["log_verifier_key"]
        panel = _open_panel(page, lab, 2)
        pin = panel.locator(".jp-WasmSandbox-trust")
        assert pin.get_attribute("data-source") == "tofu"
        assert pin.is_visible() and "trusted on first use" in pin.inner_text()
        assert first_key in (pin.locator("code").get_attribute("title") or "")
        assert panel.locator(".jp-WasmSandbox-alarm").count() == 0
        assert panel.locator(".jp-WasmSandbox-pinned").get_attribute("data-trusted") == "true"
        verified, checks = _verify_latest(page, panel)
        assert verified == "true", checks
        assert any(c.startswith("✓ browser: log consistency") for c in checks), checks
        assert any(c.startswith("✓ browser: signature") for c in checks), checks
        page.goto("about:blank")  # nothing of JupyterLab's left polling a stopped server

    # The same URL, another home: a log under a new key.
    with running_lab(tmp_path, tmp_path / "other-home", port=port, token=token) as lab:
        post_runs(lab, 3)
        assert _get(lab, "keys/public")["log_verifier_key"] != first_key
        panel = _open_panel(page, lab, 3)
        alarm = panel.locator(".jp-WasmSandbox-alarm[data-alarm='key-changed']")
        alarm.wait_for()
        assert "another log key" in alarm.inner_text(), alarm.inner_text()
        assert panel.locator(".jp-WasmSandbox-pinned").get_attribute("data-trusted") == "false"
        verified, checks = _verify_latest(page, panel)
        page.screenshot(path=str(ARTIFACTS / "trust-key-changed.png"))
        assert verified == "false", checks
        assert any(c.startswith("✗ browser: log consistency") for c in checks), checks
        assert any(c.startswith("✗ browser: signature") for c in checks), checks
    assert not errors, errors
    page.close()


def test_a_fork_under_the_same_keys_is_flagged_and_witnesses_are_shown(
    tmp_path: Path, browser_context: Any
) -> None:
    port, token = _free_port(), secrets.token_hex(16)
    home, fork, witness = tmp_path / "home", tmp_path / "fork", tmp_path / "witness"
    page, errors = _new_page(browser_context)
    witness_key = _wasm_sandbox("witness", "init", "--home", witness)["verifier_key"]
    with running_lab(tmp_path, home, port=port, token=token) as lab:
        post_runs(lab, 2)
        log_key = _get(lab, "keys/public")["log_verifier_key"]
        _wasm_sandbox("witness", "cosign", "--home", witness, "--log", home)
        settings = tmp_path / "settings" / "wasm-sandbox"
        settings.mkdir(parents=True)
        (settings / "audit.jupyterlab-settings").write_text(
            json.dumps({"logVerifierKey": log_key, "witnesses": [witness_key]})
        )
        panel = _open_panel(page, lab, 2)
        panel.locator(".jp-WasmSandbox-trust[data-source='settings']").wait_for()
        assert "pinned from your settings" in panel.locator(".jp-WasmSandbox-trust").inner_text()
        cosigned = panel.locator(".jp-WasmSandbox-cosignatures li[data-status='valid']")
        cosigned.wait_for()
        assert witness_key.split("+")[0] == cosigned.get_attribute("data-witness")
        assert panel.locator(".jp-WasmSandbox-alarm").count() == 0
        verified, checks = _verify_latest(page, panel)
        assert verified == "true", checks
        page.goto("about:blank")

    # A fork: the same signing key (so the same origin), other records, on the same URL.
    shutil.copytree(home / "keys", fork / "keys")
    with running_lab(tmp_path, fork, port=port, token=token) as lab:
        post_runs(lab, 3)
        assert _get(lab, "keys/public")["log_verifier_key"] == log_key
        panel = _open_panel(page, lab, 3)
        alarm = panel.locator(".jp-WasmSandbox-alarm[data-alarm='inconsistent']")
        alarm.wait_for()
        text = alarm.inner_text()
        assert "inconsistent with the one it showed before" in text, text
        # The witness cosigned the other branch: nothing of it on this checkpoint.
        missing = panel.locator(".jp-WasmSandbox-cosignatures li[data-status='missing']")
        assert missing.count() == 1
        verified, checks = _verify_latest(page, panel)
        page.screenshot(path=str(ARTIFACTS / "trust-fork.png"))
        assert verified == "false", checks
        assert any(c.startswith("✗ browser: log consistency") for c in checks), checks
        # The checkpoint itself is signed by the pinned key: only consistency catches a fork.
        assert any(c.startswith("✓ browser: signature") for c in checks), checks
    assert not errors, errors
    page.close()
