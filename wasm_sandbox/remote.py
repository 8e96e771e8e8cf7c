"""A client of the wasm-sandbox REST API of a running jupyter_server: its URL, token, calls.

The URL is the server's (``http://127.0.0.1:8888/``, with its base URL if any) or its API
(``.../wasm-sandbox/api/``). The token is, first found: ``token=``, a ``?token=`` in the URL,
``$JUPYTER_TOKEN``, then the ``jpserver-*.json`` file a server on that address wrote in
Jupyter's runtime directory (``jupyter --runtime-dir``), as ``jupyter server list`` finds it::

    with Remote("http://127.0.0.1:8888/") as api:
        api.get("checkpoint", format="json")["tree_size"]

Every failure (unreachable, refused, not JSON) is one `SandboxError` line naming the route.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from .errors import RemoteError, SandboxError, UsageProblem

API_PATH = "wasm-sandbox/api/"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def is_url(text: str) -> bool:
    """Whether ``text`` names a server (``http://`` or ``https://``) rather than a directory."""
    return text.startswith(("http://", "https://"))


def server_base(url: str) -> tuple[str, str | None]:
    """``(server URL ending in "/", token in its query or None)`` of a server or API URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageProblem(f"{url}: not an http(s) server URL")
    path = parts.path.split(API_PATH.rstrip("/"), 1)[0].rstrip("/") + "/"
    token = parse_qs(parts.query).get("token", [None])[0]
    return f"{parts.scheme}://{parts.netloc}{path}", token


def find_token(base: str, given: str | None = None) -> str | None:
    """The token for the server at ``base`` (see the module docstring), or None."""
    url_token = server_base(base)[1]
    for token in (given, url_token, os.environ.get("JUPYTER_TOKEN")):
        if token:
            return token
    return _runtime_token(server_base(base)[0])


def _runtime_token(base: str) -> str | None:
    from jupyter_core.paths import jupyter_runtime_dir

    want = _address(base)
    for path in sorted(Path(jupyter_runtime_dir()).glob("jpserver-*.json")):
        try:
            info = json.loads(path.read_text("utf-8"))
            if isinstance(info, dict) and _address(str(info["url"])) == want:
                return str(info["token"]) or None
        except (OSError, ValueError, KeyError, SandboxError):
            continue
    return None


def _address(url: str) -> tuple[str, str, int | None, str]:
    """What identifies a server: scheme, host (any loopback name alike), port, base path."""
    parts = urlsplit(server_base(url)[0])
    host = parts.hostname or ""
    return (parts.scheme, "loopback" if host in _LOOPBACK else host, parts.port, parts.path)


class Remote:
    """JSON calls to one server's API, with its token. A context manager."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30) -> None:
        self.base = server_base(url)[0]
        self.api = self.base + API_PATH
        found = find_token(url, token)
        headers = {"Authorization": f"token {found}"} if found else {}
        self._client = httpx.Client(headers=headers, timeout=timeout, follow_redirects=False)

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool; idempotent."""
        self._client.close()

    def get(self, path: str, **params: Any) -> Any:
        """``GET path?params`` answered as JSON."""
        return self._call("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        """``POST path`` with a JSON body, answered as JSON."""
        return self._call("POST", path, json=body)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        where = f"{method} {self.api}{path}"
        try:
            response = self._client.request(method, self.api + path, **kw)
        except httpx.HTTPError as exc:
            raise RemoteError(f"{where}: cannot reach the server ({exc})") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_success and answer is not None:
            return answer
        message = answer.get("message") if isinstance(answer, dict) else None
        hint = " (no token, a wrong one, or not allowed: see --token, $JUPYTER_TOKEN)"
        raise RemoteError(
            f"{where}: {response.status_code} {message or response.reason_phrase}"
            + (hint if response.status_code == 403 else "")
        )
