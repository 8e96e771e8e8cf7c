"""A real JupyterLab on 127.0.0.1 and Debian's Chromium driven by Playwright.

The server is started by the tests themselves (free port, token auth, a temporary root dir,
``WASM_SANDBOX_HOME``, settings and workspaces), with the wasm-sandbox server extension
enabled. The browser may reach nothing but http://127.0.0.1: every other request is aborted.

Without Chromium or Playwright the browser tests are skipped, except under CI (``CI`` set),
where ``.ci/run`` installs Chromium and a skip would hide a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = os.environ.get("WASM_SANDBOX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOCAL = "http://127.0.0.1"


@dataclass(frozen=True)
class Lab:
    url: str  # http://127.0.0.1:PORT/
    token: str
    root: Path
    home: Path
    log: Path


def _need(what: str) -> None:
    message = f"browser tests need {what}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI installs it in .ci/run)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _labextensions_path(tmp: Path) -> list[str]:
    """Serve this checkout's build when there is one (what a developer just built), so the
    test never runs an older installed copy; otherwise the installed extension is used."""
    build = REPO / "wasm_sandbox" / "labextension"
    if not (build / "package.json").exists():
        return []
    extra = tmp / "labextensions"
    if not extra.exists():
        extra.mkdir()
        (extra / "wasm-sandbox").symlink_to(build, target_is_directory=True)
    return [f"--LabServerApp.extra_labextensions_path={extra}"]


def _wait_ready(lab: Lab, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        lab.url + "wasm-sandbox/api/health", headers={"Authorization": f"token {lab.token}"}
    )
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}; see {lab.log}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"jupyter lab did not answer in {timeout:.0f} s; see {lab.log}")


def _prepare(tmp: Path) -> None:
    """The server's root, config and settings dirs under ``tmp`` (kept across restarts)."""
    root, config = tmp / "root", tmp / "config"
    for d in (root, config):
        d.mkdir(exist_ok=True)
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"wasm_sandbox": True}}})
    )
    # No "get notified about Jupyter news?" toast over the page (and no request for news).
    news = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))


@contextmanager
def running_lab(
    tmp: Path, home: Path, *, port: int | None = None, token: str | None = None
) -> Iterator[Lab]:
    """JupyterLab with the wasm-sandbox server extension on 127.0.0.1 (a free port unless
    given), its ``WASM_SANDBOX_HOME`` at ``home`` (its kernels inherit it), its root, config,
    settings and workspaces under ``tmp``. Stopping it and starting it again with the same
    ``tmp``, port and token is a restart of the same server, as a browser sees it.
    ``window.jupyterapp`` is exposed so tests can run JupyterLab commands."""
    _prepare(tmp)
    ARTIFACTS.mkdir(exist_ok=True)
    port, token = port or _free_port(), token or secrets.token_hex(16)
    log_name = f"jupyterlab-{Path(str(tmp)).name}-{home.name}.log"
    lab = Lab(f"{LOCAL}:{port}/", token, tmp / "root", home, ARTIFACTS / log_name)
    env = {
        **os.environ,
        "WASM_SANDBOX_HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={lab.root}",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
        *_labextensions_path(tmp),
    ]  # fmt: skip
    with lab.log.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=lab.root, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_ready(lab, proc)
        yield lab
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One JupyterLab per test module, each with its own ``WASM_SANDBOX_HOME``."""
    tmp = tmp_path_factory.mktemp("lab")
    with running_lab(tmp, tmp / "home") as lab:
        yield lab


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A fresh Chromium profile that may reach only http://127.0.0.1."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("Playwright for Python (pip install playwright; never `playwright install`)")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        _need(f"Chromium at {CHROMIUM} (apt-get install chromium fonts-liberation)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1100},
        )  # fmt: skip

        def only_local(route: object) -> None:
            url = route.request.url  # type: ignore[attr-defined]
            if url.startswith((LOCAL + ":", LOCAL + "/", "data:", "blob:")):
                route.continue_()  # type: ignore[attr-defined]
            else:
                route.abort()  # type: ignore[attr-defined]

        context.route("**/*", only_local)
        try:
            yield context
        finally:
            context.close()
