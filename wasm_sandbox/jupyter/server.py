"""The jupyter_server extension: the sandbox as an authenticated REST API.

Every route lives under ``{base_url}wasm-sandbox/api/``, answers JSON (``metrics`` and, on
request, ``checkpoint`` answer text) and requires Jupyter's authentication and
authorization (resource ``wasm_sandbox``; ``POST executions`` needs the ``execute``
action, ``POST checkpoint/cosignatures`` the ``write`` action, every other route ``read``).
The contract is the OpenAPI document shipped beside this module (``openapi.json``, served at
``GET openapi.json``) and docs/rest-api.md.

Operators tune it in ``jupyter_server_config.py``::

    c.WasmSandboxServer.home = "/srv/wasm-sandbox"
    c.WasmSandboxServer.max_timeout = "2s"       # requests ask for less, never more
    c.WasmSandboxServer.max_concurrent_runs = 4
    c.WasmSandboxServer.max_queued_runs = 16     # beyond that: 503 with Retry-After

Runs go to worker processes and log reads to a bounded thread pool (`server_service`); the
event loop only takes requests in and writes responses, so ``GET health`` stays fast under
load.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from importlib import resources
from typing import Any, TypeVar, cast

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from prometheus_client import CONTENT_TYPE_LATEST
from traitlets import Bool, Int, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from wasm_sandbox.errors import (
    BadField,
    Busy,
    GrantError,
    LimitsError,
    PolicyError,
    RecordNotFound,
    RequestError,
    SandboxError,
)
from wasm_sandbox.limits import Limits

from .server_service import Service, Settings
from .traits import check_limit, check_signers, limit, signers

API_PATH = "wasm-sandbox/api"
RESOURCE = "wasm_sandbox"
_SETTINGS_KEY = "wasm_sandbox_service"

_Method = TypeVar("_Method", bound=Callable[..., Awaitable[None]])
_T = TypeVar("_T")


def _authorized(action: str) -> Callable[[_Method], _Method]:
    """jupyter_server's ``authorized(action, resource=RESOURCE)``, typed: its annotation
    says it returns the method, where it returns a decorator that keeps the signature."""
    return cast("Callable[[_Method], _Method]", authorized(action, resource=RESOURCE))


class WasmSandboxServer(LoggingConfigurable):
    """Options of the wasm-sandbox REST API (``c.WasmSandboxServer.<name>``)."""

    home = Unicode(
        "",
        config=True,
        help="Sandbox home (keys and log); empty: $WASM_SANDBOX_HOME or the per-user data dir.",
    )
    max_fuel = limit("1e10", "Highest fuel a request may ask for, e.g. 1e9.")
    max_memory = limit("256MiB", "Highest linear memory a request may ask for, e.g. 64MiB.")
    max_timeout = limit("10s", "Longest wall-clock limit a request may ask for, e.g. 2s.")
    max_output = limit("1MiB", "Most stdout and stderr bytes kept per run, e.g. 64KiB.")
    max_concurrent_runs = Int(
        config=True, help="Runs carried out at once (worker processes, started by the first run)."
    )
    max_queued_runs = Int(
        16, config=True, help="Runs waiting for a worker; beyond this, requests get 503."
    )
    max_body_size = Int(
        8 * 1024 * 1024, config=True, help="Largest POST body in bytes; larger ones get 413."
    )
    retry_after = Int(1, config=True, help="Seconds suggested in Retry-After when busy.")
    freeze_gc_on_start = Bool(
        True,
        config=True,
        help="Move the objects alive when the server has started out of the garbage "
        "collector's reach (gc.freeze), so a full collection does not rescan the server's "
        "whole startup heap: on a 2-core machine such a pause took 100-350 ms and stalled "
        "every request, health included.",
    )
    require_signed_by = signers(
        help="Signer verifier keys (wasm-sandbox keys --json: signer_verifier_key): when set, "
        "POST executions runs only binaries signed as a whole by one of them; anything else "
        "is refused with 400 before it runs.",
    )
    run_nice = Int(
        10,
        config=True,
        help="Nice increment of the run worker processes (and their guests), so that a server "
        "whose guests spin on every core still answers promptly; 0 leaves the priority alone.",
    )

    @default("max_concurrent_runs")
    def _default_workers(self) -> int:
        return max(2, os.cpu_count() or 2)

    @validate("max_fuel", "max_memory", "max_timeout", "max_output")
    def _check_limit(self, proposal: Any) -> Any:
        return check_limit(proposal.trait.name.removeprefix("max_"), proposal.value)

    @validate("require_signed_by")
    def _check_signers(self, proposal: Any) -> list[str]:
        return check_signers(proposal.value)

    @validate("max_concurrent_runs", "max_queued_runs", "max_body_size", "retry_after", "run_nice")
    def _check_positive(self, proposal: Any) -> int:
        minimum = 0 if proposal.trait.name in ("max_queued_runs", "run_nice") else 1
        if proposal.value < minimum:
            raise TraitError(f"{proposal.trait.name} must be >= {minimum}")
        return int(proposal.value)

    def maximum(self) -> Limits:
        return Limits.parse(
            fuel=self.max_fuel,
            memory=self.max_memory,
            timeout=self.max_timeout,
            output=self.max_output,
        )

    def settings(self) -> Settings:
        return Settings(
            home=self.home or None,
            workers=self.max_concurrent_runs,
            queue=self.max_queued_runs,
            maximum=self.maximum(),
            nice=self.run_nice,
            require_signed_by=tuple(self.require_signed_by),
        )


class ApiError(tornado.web.HTTPError):
    """An error answered as JSON: ``{"message", "reason", "field"?}``."""

    def __init__(self, status: int, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(status, log_message=message.replace("%", "%%"))
        self.message = message
        self.field = field
        self.extra = extra


def api_error(exc: SandboxError, *, busy: str, failed: str) -> ApiError:
    """The one HTTP answer to a sandbox error: ``busy`` is the 503 message, ``failed``
    what a 500 says could not be done."""
    if isinstance(exc, Busy):
        return ApiError(503, busy)
    if isinstance(exc, BadField):
        return ApiError(400, str(exc), field=exc.field or None, **exc.extra)
    if isinstance(exc, (RequestError, GrantError, LimitsError, PolicyError)):
        return ApiError(400, str(exc))
    if isinstance(exc, RecordNotFound):
        return ApiError(404, str(exc))
    return ApiError(500, f"{failed}: {exc}")


class _Handler(APIHandler):
    """Authentication first, JSON errors with the field at fault, ``Allow`` on 405."""

    auth_resource = RESOURCE

    @property
    def service(self) -> Service:
        return cast(Service, self.settings[_SETTINGS_KEY])  # tornado's settings: dict[str, Any]

    @property
    def sandbox_options(self) -> WasmSandboxServer:
        return cast(WasmSandboxServer, self.settings["wasm_sandbox_options"])

    # as APIHandler's does: JupyterHandler.prepare has a private keyword we never pass
    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        # Before anything else, unknown users get 403: even a wrong method or an unknown route.
        if self.request.method != "OPTIONS" and not self.current_user:
            raise tornado.web.HTTPError(403)

    def allowed_methods(self) -> list[str]:
        return [
            m
            for m in ("GET", "POST")
            if getattr(type(self), m.lower()) is not getattr(tornado.web.RequestHandler, m.lower())
        ]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        if status_code == 503:
            self.set_header("Retry-After", str(self.sandbox_options.retry_after))
        if isinstance(exc, ApiError):
            reply: dict[str, Any] = {"message": exc.message, "reason": exc.reason}
            if exc.field is not None:
                reply["field"] = exc.field
            reply.update(exc.extra)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(reply))
            return
        super().write_error(status_code, **kwargs)

    def send_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(value if isinstance(value, bytes) else _dumps(value))

    async def read_json(self, fn: Callable[..., Any], *args: Any) -> bytes:
        """``fn(*args)`` encoded as JSON, both done on the read pool (pages can be large)."""
        return await self.read(lambda: _dumps(fn(*args)))

    async def read(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a log read on the read pool; sandbox errors become HTTP answers."""
        return await self.wait(
            self.service.submit_read,
            fn,
            *args,
            busy="the server is busy; retry later",
            failed="the log cannot be read",
        )

    async def wait(
        self, submit: Callable[..., Future[_T]], *args: Any, busy: str, failed: str
    ) -> _T:
        """``submit(*args)`` awaited; a `SandboxError` is answered by `api_error`."""
        try:
            return await asyncio.wrap_future(submit(*args))
        except SandboxError as exc:
            error = api_error(exc, busy=busy, failed=failed)
            if error.status_code >= 500 and not isinstance(exc, Busy):
                self.log.error("wasm-sandbox: %s: %s", failed, exc)
            raise error from None

    def int_argument(self, name: str, default: int | None, low: int, high: int) -> int | None:
        text = self.get_query_argument(name, None)
        if text is None:
            return default
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise ApiError(400, f"{name}: expected an integer, got {text!r}", field=name) from None
        if not low <= value <= high:
            raise ApiError(400, f"{name}: must be between {low} and {high}", field=name)
        return value


@tornado.web.stream_request_body
class ExecutionsHandler(_Handler):
    """``POST executions`` runs a program; ``GET executions`` pages through the log."""

    def initialize(self) -> None:
        self._body = bytearray()
        self._too_large = False

    # as APIHandler's does: JupyterHandler.prepare has a private keyword we never pass
    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        length = self.request.headers.get("Content-Length")
        if (
            length is not None
            and length.isdigit()
            and int(length) > self.sandbox_options.max_body_size
        ):
            raise self._too_large_error()

    def data_received(self, chunk: bytes) -> None:
        if self._too_large:
            return  # keep reading (so the answer reaches the client) but keep nothing
        if len(self._body) + len(chunk) > self.sandbox_options.max_body_size:
            self._too_large = True
            self._body = bytearray()
            return
        self._body += chunk

    def _too_large_error(self) -> ApiError:
        return ApiError(413, f"request body larger than {self.sandbox_options.max_body_size} bytes")

    @tornado.web.authenticated
    @_authorized("execute")
    async def post(self) -> None:
        if self._too_large:
            raise self._too_large_error()
        execution = await self.wait(
            self.service.submit_run,
            bytes(self._body),
            busy="all sandbox workers are busy and the queue is full; retry later",
            failed="the run could not be completed and logged",
        )
        self.set_header("Location", url_path_join(self.request.path, execution.id))
        self.send_json(self.service.created(execution), status=201)

    @tornado.web.authenticated
    @_authorized("read")
    async def get(self) -> None:
        limit = self.int_argument("limit", 50, 1, 1000)
        after = self.int_argument("after", -1, -1, 2**53 - 1)
        self.send_json(await self.read_json(self.service.executions, limit, after))


class ExecutionHandler(_Handler):
    """``GET executions/{id}``: the record, its ciphertexts, proofs and verification."""

    @tornado.web.authenticated
    @_authorized("read")
    async def get(self, ref: str) -> None:
        self.send_json(await self.read_json(self.service.execution, ref))


class CheckpointHandler(_Handler):
    """``GET checkpoint``: the latest signed note (text), or JSON when asked for."""

    @tornado.web.authenticated
    @_authorized("read")
    async def get(self) -> None:
        fmt = self.get_query_argument("format", None)
        if fmt not in (None, "text", "json"):
            raise ApiError(400, f"format: expected text or json, got {fmt!r}", field="format")
        data = await self.read(self.service.checkpoint)
        wants_json = fmt == "json" or (fmt is None and _prefers_json(self.request))
        if wants_json:
            self.send_json(data)
        else:
            self.finish(data["checkpoint"], set_content_type="text/plain; charset=utf-8")


class ConsistencyHandler(_Handler):
    """``GET proof/consistency?from=&to=``: RFC 6962 consistency proof between two sizes."""

    @tornado.web.authenticated
    @_authorized("read")
    async def get(self) -> None:
        first = self.int_argument("from", None, 1, 2**53 - 1)
        if first is None:
            raise ApiError(400, "from: required (a tree size >= 1)", field="from")
        second = self.int_argument("to", None, 1, 2**53 - 1)
        self.send_json(await self.read_json(self.service.consistency, first, second))


class CosignatureHandler(_Handler):
    """``POST checkpoint/cosignatures``: a witness's cosignature, stored once it verifies."""

    MAX_BODY = 64 * 1024  # a verifier key and one signature line need well under 1 KiB

    @tornado.web.authenticated
    @_authorized("write")
    async def post(self) -> None:
        body = self.request.body
        if len(body) > self.MAX_BODY:
            raise ApiError(413, f"request body larger than {self.MAX_BODY} bytes")
        self.send_json(await self.read_json(self.service.add_cosignature, body), status=201)


class KeysHandler(_Handler):
    """``GET keys/public``: what clients seal to, and what verifies the log."""

    @tornado.web.authenticated
    @_authorized("read")
    async def get(self) -> None:
        self.send_json(await self.read_json(self.service.public_keys))


class HealthHandler(_Handler):
    """``GET health``: counters from memory, no sandbox work."""

    _track_activity = False

    @tornado.web.authenticated
    @_authorized("read")
    async def get(self) -> None:
        self.send_json(self.service.health())


class MetricsHandler(_Handler):
    """``GET metrics``: Prometheus text exposition from a private registry."""

    _track_activity = False

    @tornado.web.authenticated
    @_authorized("read")
    async def get(self) -> None:
        text = await self.read(self.service.metrics_text)
        self.finish(text, set_content_type=CONTENT_TYPE_LATEST)


class OpenAPIHandler(_Handler):
    """``GET openapi.json``: the document that describes these handlers."""

    @tornado.web.authenticated
    @_authorized("read")
    async def get(self) -> None:
        document = dict(openapi_document())
        document["servers"] = [{"url": self.base_url.rstrip("/") or "/"}]
        self.send_json(document)


class NotFoundHandler(_Handler):
    """Anything else under the API prefix: a JSON 404 (after authentication)."""

    # as APIHandler's does: JupyterHandler.prepare has a private keyword we never pass
    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        raise ApiError(404, f"no such route: {self.request.path}")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3 document shipped in this package."""
    text = resources.files(__package__).joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


ROUTES: list[tuple[str, type[_Handler]]] = [
    ("executions", ExecutionsHandler),
    ("executions/([^/]+)", ExecutionHandler),
    ("checkpoint", CheckpointHandler),
    ("proof/consistency", ConsistencyHandler),
    ("checkpoint/cosignatures", CosignatureHandler),
    ("keys/public", KeysHandler),
    ("health", HealthHandler),
    ("metrics", MetricsHandler),
    ("openapi.json", OpenAPIHandler),
]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Create the service, register the routes and close the service when the server stops."""
    options = WasmSandboxServer(parent=serverapp)
    service = Service(options.settings())
    web_app = serverapp.web_app
    web_app.settings[_SETTINGS_KEY] = service
    web_app.settings["wasm_sandbox_options"] = options
    base = url_path_join(web_app.settings["base_url"], API_PATH)
    handlers: list[tuple[str, Any]] = [(f"{base}/{path}$", cls) for path, cls in ROUTES]
    handlers.append((f"{base}(/.*)?$", NotFoundHandler))
    web_app.add_handlers(".*$", handlers)
    _close_on_stop(serverapp, service, _mount_mcp(serverapp, service, options))
    serverapp.log.info(
        "wasm-sandbox: REST API at %s/ (home %s, %d workers, queue %d)",
        base,
        service.sandbox.home,
        options.max_concurrent_runs,
        options.max_queued_runs,
    )


async def _start_jupyter_server_extension(serverapp: Any) -> None:
    """Once every extension is loaded and the loop runs: freeze the startup heap (see
    ``WasmSandboxServer.freeze_gc_on_start``)."""
    options = serverapp.web_app.settings.get("wasm_sandbox_options")
    if options is not None and options.freeze_gc_on_start:
        gc.collect()
        gc.freeze()


def _mount_mcp(serverapp: Any, service: Service, options: WasmSandboxServer) -> Any:
    """The MCP endpoint (`server_mcp`), when the MCP SDK (the ``mcp`` extra) is installed."""
    if importlib.util.find_spec("mcp") is None:
        serverapp.log.info("wasm-sandbox: no MCP endpoint (pip install 'wasm-sandbox[mcp]')")
        return None
    from .server_mcp import mount

    return mount(serverapp, service, serverapp.web_app.settings["base_url"], options.max_body_size)


def _close_on_stop(serverapp: Any, service: Service, mcp: Any = None) -> None:
    """Close ``service`` (after the ``mcp`` endpoint, if any) when the server cleans up its
    extensions.

    A module-style extension gets no stop hook (only ExtensionApps do), so we chain onto the
    server's own ``cleanup_extensions``, which ``ServerApp._cleanup`` awaits on shutdown.
    """
    original = serverapp.cleanup_extensions

    async def cleanup_extensions() -> None:
        try:
            await original()
        finally:
            if mcp is not None:
                await mcp.close()
            await asyncio.get_running_loop().run_in_executor(None, service.close)
            serverapp.log.info("wasm-sandbox: sandbox closed")

    serverapp.cleanup_extensions = cleanup_extensions


def _prefers_json(request: Any) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/plain" not in accept


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()
