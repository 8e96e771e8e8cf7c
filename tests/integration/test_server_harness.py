"""A real ``jupyter server`` in a subprocess on 127.0.0.1 with a token, for the REST tests.

Not a test module by itself (it holds no tests); ``test_server*.py`` import it. The server
finds the extension through the repository's ``jupyter-config/`` directory (the same file
that is installed into ``etc/jupyter/jupyter_server_config.d/``), so these tests also check
that the shipped config enables the extension.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
API = "wasm-sandbox/api"
#: Other installed server extensions are switched off: faster start, nothing in between.
OTHERS_OFF = {
    name: False
    for name in ("jupyterlab", "jupyter_lsp", "jupyter_server_terminals", "notebook_shim")
}


@dataclass
class Server:
    """A running server: ``url`` is ``http://127.0.0.1:PORT``, ``home`` the sandbox home."""

    url: str
    token: str
    home: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    options: dict[str, Any] = field(default_factory=dict)

    def api(self, path: str = "") -> str:
        return f"{self.url}/{API}/{path}"

    def headers(self, token: str | None = "") -> dict[str, str]:
        """Auth headers: the right token by default, ``None`` for none, or the one given."""
        if token is None:
            return {}
        return {"Authorization": f"token {token or self.token}"}

    def request(
        self, method: str, path: str, *, token: str | None = "", timeout: float = 30, **kw: Any
    ) -> httpx.Response:
        headers = {**self.headers(token), **kw.pop("headers", {})}
        return httpx.request(method, self.api(path), headers=headers, timeout=timeout, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        if body is not None:
            kw["json"] = body
        return self.request("POST", path, **kw)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a service manager would; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"server did not stop in {timeout} s\n{self.log()}") from None
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: An authorizer that refuses ``action:resource`` when a request names it in ``X-Deny``, so
#: tests can see which action and resource each route asks Jupyter's authorizer about.
DENY_AUTHORIZER = """
from jupyter_server.auth.authorizer import Authorizer

class HeaderAuthorizer(Authorizer):
    def is_authorized(self, handler, user, action, resource):
        return handler.request.headers.get("X-Deny") != f"{action}:{resource}"
"""


def start_server(
    root: Path, home: Path, *, extra: dict[str, Any] | None = None, **options: Any
) -> Server:
    """Start ``jupyter server`` with ``c.WasmSandboxServer.<name> = value`` for each option
    (and ``extra``: more configuration, by class).

    The server's authorizer is `DENY_AUTHORIZER` (it allows everything unless asked not to).
    """
    for sub in ("config", "data", "runtime", "notebooks", "python"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "python" / "header_authorizer.py").write_text(DENY_AUTHORIZER)
    config = {
        "ServerApp": {
            "jpserver_extensions": OTHERS_OFF,
            "authorizer_class": "header_authorizer.HeaderAuthorizer",
        },
        "WasmSandboxServer": {"home": str(home), **options},
        **(extra or {}),
    }
    (root / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
    token, port = os.urandom(16).hex(), free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_CONFIG_PATH": str(REPO / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(root / "python"), os.environ.get("PYTHONPATH")])
        ),
    }
    env.pop("WASM_SANDBOX_HOME", None)  # the traitlet must be what picks the home
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.open_browser=False",
                "--ServerApp.allow_root=True",
                f"--ServerApp.root_dir={root / 'notebooks'}",
                f"--IdentityProvider.token={token}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
        )
    server = Server(f"http://127.0.0.1:{port}", token, home, process, log_path, options)
    _wait_until_up(server)
    return server


def _wait_until_up(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"jupyter server exited early:\n{server.log()}")
        if "wasm_sandbox | extension failed" in server.log():
            server.stop()
            raise AssertionError(f"the extension did not load:\n{server.log()}")
        try:
            if server.get("health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"jupyter server did not answer in {timeout} s:\n{server.log()}")
