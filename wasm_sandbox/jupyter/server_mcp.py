"""The MCP face inside jupyter_server: streamable HTTP at ``{base_url}wasm-sandbox/mcp``.

Behind Jupyter's authentication like the REST API (403 without a token; ``POST`` and
``DELETE`` need the ``execute`` action on ``wasm_sandbox``, ``GET`` ``read``), with the
operator's choices as ``c.WasmSandboxMCP.<name>``::

    c.WasmSandboxMCP.max_timeout = "2s"          # agents ask for less, never more
    c.WasmSandboxMCP.allow_langs = ["wat", "wasm"]
    c.WasmSandboxMCP.dirs = ["/srv/data:/data:ro"]

The SDK's transport is an ASGI application and tornado is no ASGI server, so `McpHandler` is
a small bridge: it hands each request to the SDK's session manager as one ASGI call (the
scope from the tornado request, the body as one message) and writes back what the SDK sends,
flushing each chunk, so JSON answers and SSE streams both pass. Runs wait on the REST API's
run pool. The Jupyter user goes into the scope (`wasm_sandbox.mcp_server.USER_KEY`), so the
record says the run was authenticated, and as whom.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import MutableMapping
from typing import Any

import tornado.iostream
import tornado.web
from mcp.server import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from traitlets import Bool, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from wasm_sandbox.errors import LimitsError
from wasm_sandbox.limits import DirGrant, Limits
from wasm_sandbox.mcp_server import USER_KEY, Operator, build
from wasm_sandbox.sources import LANGS

from .server import _authorized, _Handler
from .server_service import Service
from .traits import check_limit, limit

MCP_PATH = "wasm-sandbox/mcp"
_ENDPOINT_KEY = "wasm_sandbox_mcp"
#: Request headers the SDK never sees: Jupyter's credentials stay with Jupyter.
_WITHHELD = {b"authorization", b"cookie"}


class WasmSandboxMCP(LoggingConfigurable):
    """The operator's choices for agents (``c.WasmSandboxMCP.<name>``)."""

    enabled = Bool(True, config=True, help="Serve MCP at {base_url}wasm-sandbox/mcp.")
    max_fuel = limit("1e10", "Highest fuel an agent's run may ask for, e.g. 1e9.")
    max_memory = limit("256MiB", "Highest linear memory an agent's run may ask for.")
    max_timeout = limit("10s", "Longest wall-clock limit an agent's run may ask for.")
    max_output = limit("1MiB", "Most stdout and stderr bytes kept per agent's run.")
    allow_langs = List(
        Unicode(), default_value=list(LANGS), config=True, help="Languages agents may run."
    )
    dirs = List(
        Unicode(),
        config=True,
        help="Directories agents may ask for by guest path, as HOST:GUEST[:ro|rw]; "
        "none by default: nothing of the host.",
    )

    @validate("max_fuel", "max_memory", "max_timeout", "max_output")
    def _check_limit(self, proposal: Any) -> Any:
        return check_limit(proposal.trait.name.removeprefix("max_"), proposal.value)

    @validate("allow_langs")
    def _check_langs(self, proposal: Any) -> list[str]:
        unknown = sorted(set(proposal.value) - set(LANGS))
        if unknown:
            raise TraitError(f"allow_langs: unknown {unknown[0]!r} (choose from {LANGS})")
        return list(proposal.value)

    @validate("dirs")
    def _check_dirs(self, proposal: Any) -> list[str]:
        try:
            [DirGrant.parse(d) for d in proposal.value]
        except LimitsError as exc:
            raise TraitError(f"dirs: {exc}") from None
        return list(proposal.value)

    def operator(self) -> Operator:
        maximum = Limits.parse(
            fuel=self.max_fuel,
            memory=self.max_memory,
            timeout=self.max_timeout,
            output=self.max_output,
        )
        return Operator(
            maximum=maximum,
            langs=tuple(self.allow_langs),
            dirs=tuple(DirGrant.parse(d) for d in self.dirs),
        )


class Endpoint:
    """The SDK's session manager, running on the server's event loop from the first request
    until `close`."""

    def __init__(self, server: MCPServer, max_body: int) -> None:
        server.streamable_http_app(max_request_body_size=max_body)  # creates the manager
        self._manager = server.session_manager
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def manager(self) -> StreamableHTTPSessionManager:
        if self._task is None:
            self._task = asyncio.create_task(self._serve())
        await self._ready.wait()
        return self._manager

    async def _serve(self) -> None:
        async with self._manager.run():
            self._ready.set()
            await self._stop.wait()

    async def close(self) -> None:
        """Stop the session manager (its sessions end); idempotent."""
        self._stop.set()
        if self._task is not None:
            await self._task


class McpHandler(_Handler):
    """``POST``/``GET``/``DELETE`` on the MCP endpoint, bridged to the SDK."""

    def initialize(self) -> None:
        self._gone = asyncio.Event()  # the client went away, or the SDK is done
        self._body_sent = False
        self._named: set[str] = set()

    def on_connection_close(self) -> None:
        self._gone.set()

    def allowed_methods(self) -> list[str]:
        return ["GET", "POST", "DELETE"]

    @tornado.web.authenticated
    @_authorized("execute")
    async def post(self) -> None:
        await self._bridge()

    @tornado.web.authenticated
    @_authorized("read")
    async def get(self) -> None:
        await self._bridge()

    @tornado.web.authenticated
    @_authorized("execute")
    async def delete(self) -> None:
        await self._bridge()

    async def _bridge(self) -> None:
        endpoint: Endpoint = self.settings[_ENDPOINT_KEY]
        manager = await endpoint.manager()
        try:
            await manager.handle_request(self._scope(), self._receive, self._send)
        finally:
            self._gone.set()  # whatever still waits for the body or a disconnect: done
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            await self.finish()

    def _scope(self) -> dict[str, Any]:
        request, user = self.request, self.current_user
        host, _, port = request.host.rpartition(":")
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.protocol,
            "path": request.path,
            "raw_path": request.path.encode(),
            "root_path": "",
            "query_string": request.query.encode(),
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in request.headers.get_all()
                if k.lower().encode("latin-1") not in _WITHHELD
            ],
            "client": (request.remote_ip, 0),
            "server": (host or request.host, int(port) if port.isdigit() else 80),
            USER_KEY: getattr(user, "username", None) or str(user),
        }

    async def _receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.request.body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.set_status(message["status"])
            for raw_name, raw_value in message.get("headers", []):
                name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
                if name.lower() in self._named:
                    self.add_header(name, value)
                else:
                    self.set_header(name, value)
                    self._named.add(name.lower())
        elif message["type"] == "http.response.body" and not self._gone.is_set():
            self.write(message.get("body", b""))
            if message.get("more_body"):
                await self.flush()


def mount(serverapp: Any, service: Service, base_url: str, max_body: int) -> Endpoint | None:
    """Route the MCP endpoint (unless ``c.WasmSandboxMCP.enabled`` is False); returns it."""
    options = WasmSandboxMCP(parent=serverapp)
    if not options.enabled:
        return None

    def call(fn: Any) -> Any:
        return service.runs.submit(fn).result()

    server = build(service.sandbox, options.operator(), call)
    endpoint = Endpoint(server, max_body)
    web_app = serverapp.web_app
    web_app.settings[_ENDPOINT_KEY] = endpoint
    path = f"{base_url.rstrip('/')}/{MCP_PATH}"
    web_app.add_handlers(".*$", [(f"{path}/?$", McpHandler)])
    serverapp.log.info("wasm-sandbox: MCP (streamable HTTP) at %s", path)
    return endpoint
