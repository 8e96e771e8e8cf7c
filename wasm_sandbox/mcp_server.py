"""The MCP face: agents run code through the one pipeline, over the official MCP SDK.

Tools ``run`` (answers as ``wasm-sandbox run --json``) and ``verify`` (as ``wasm-sandbox
verify ID --json``); resource ``wasm-sandbox://checkpoint``, the latest signed checkpoint.
The operator (`Operator`) sets the most each limit may be, the languages that run and the
directories an agent may ask for by guest path; an agent asks for less, never more: a limit
above a maximum, a language not allowed or a directory not offered is refused, and nothing
runs. Every run's record carries its face: ``mcp``, the client's self-declared name and
whether the caller was authenticated (stdio: never; see `wasm_sandbox.jupyter.server_mcp`).

>>> operator = Operator(maximum=Limits.parse(timeout="2s"), langs=("wat", "wasm"))
>>> build(Sandbox(home), operator).run("stdio")                       # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from . import __version__, sources
from .errors import CompileError, GrantError, LimitsError, PolicyError, SandboxError
from .limits import DirGrant, Grants, Limits
from .run_options import Face, RunOptions
from .sandbox import Sandbox
from .wave import Wave

CHECKPOINT_URI = "wasm-sandbox://checkpoint"
#: The ASGI scope key under which the Jupyter face puts the authenticated user's name.
USER_KEY = "wasm_sandbox.user"
#: The limits an agent may ask for (in CLI units), each at most the operator's maximum.
AGENT_LIMITS = ("fuel", "memory", "timeout", "output", "dir_quota")
_WASM_B64 = base64.b64encode(b"\0asm").decode()[:5]  # "AGFzb": how base64 wasm starts
_UNITS = {"fuel": "", "timeout": " s"}  # the other limits are bytes
INSTRUCTIONS = (
    "Runs WebAssembly (WAT text, C, or a wasm binary as base64) under hard limits. Every run "
    "is sealed and appended to a transparency log; `verify` checks a record, the resource "
    f"{CHECKPOINT_URI} is the log's latest signed checkpoint."
)

T = TypeVar("T")


@dataclass(frozen=True)
class Operator:
    """What agents may ask for: limits up to ``maximum``, languages ``langs``, and the
    directories ``dirs`` by guest path (none by default: nothing of the host)."""

    maximum: Limits = field(default_factory=Limits)
    langs: tuple[str, ...] = sources.LANGS
    dirs: tuple[DirGrant, ...] = ()

    def limits(self, asked: Mapping[str, Any]) -> Limits:
        """The limits of a run: the defaults within the maximums, changed as ``asked``;
        `LimitsError` for a limit unknown or above the operator's maximum."""
        limits = Limits().capped(self.maximum)
        for name, value in asked.items():
            if name not in AGENT_LIMITS:
                raise LimitsError(f"limits.{name}: unknown (choose from {', '.join(AGENT_LIMITS)})")
            limits = Limits.parse(limits, **{name: value})
            most = getattr(self.maximum, name)
            if getattr(limits, name) > most:
                raise LimitsError(
                    f"limits.{name}: {value!r} is above the operator's maximum "
                    f"({most:g}{_UNITS.get(name, ' B')})"
                )
        return limits

    def lang(self, lang: str) -> str:
        """``lang``, or `PolicyError` when the operator does not allow it."""
        if lang not in self.langs:
            raise PolicyError(
                f"lang: {lang!r} is not allowed here (allowed: {', '.join(self.langs)})"
            )
        return lang

    def grants(self, guests: Sequence[str]) -> Grants:
        """The operator's directories at these guest paths; `GrantError` for any other."""
        offered = {d.guest: d for d in self.dirs}
        for guest in guests:
            if guest not in offered:
                shown = ", ".join(offered) or "none"
                raise GrantError(f"dirs: {guest!r} is not offered (offered: {shown})")
        return Grants(dirs=tuple(offered[g] for g in dict.fromkeys(guests)))


def program(source: str, lang: str | None) -> tuple[bytes, str]:
    """The bytes to run and their language: base64 for wasm (``lang`` ``wasm``, or a
    source that starts as a binary does), else the text itself (never a path)."""
    if lang == "wasm" or (lang is None and source.startswith(_WASM_B64)):
        try:
            return base64.b64decode(source, validate=True), "wasm"
        except binascii.Error:
            raise CompileError("source: not base64 (a wasm binary travels as base64)") from None
    return source.encode(), lang or sources.guess_lang(source)


def face_of(ctx: Context) -> Face:
    """The record's face of this request: the client's declared name; authenticated when
    the transport put a user into the request's scope (`USER_KEY`)."""
    params = ctx.request_context.session.client_params
    client = params.client_info.name if params is not None else None
    scope = getattr(ctx.request_context.request, "scope", None) or {}
    user = scope.get(USER_KEY)
    return Face("mcp", client=client, authenticated=USER_KEY in scope, user=user or None)


def _direct(fn: Callable[[], T]) -> T:
    return fn()


def build(
    sandbox: Sandbox, operator: Operator, call: Callable[[Callable[[], Any]], Any] = _direct
) -> MCPServer:
    """The MCP server of ``sandbox`` under ``operator``; ``call(fn)`` carries out each
    run (by default at once; the Jupyter face queues it on its run pool)."""
    server = MCPServer(
        "wasm-sandbox", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    @server.tool()
    def run(
        source: Annotated[str, Field(description="WAT or C text, or a wasm binary as base64")],
        ctx: Context,
        lang: Annotated[str | None, Field(description="wat, c or wasm; default: guessed")] = None,
        invoke: Annotated[str | None, Field(description="export to call; default _start")] = None,
        args: Annotated[list[int | float | str] | None, Field(description="its arguments")] = None,
        limits: Annotated[
            dict[str, int | float | str] | None,
            Field(description='CLI units, e.g. {"fuel": "1e8", "timeout": "2s"}'),
        ] = None,
        dirs: Annotated[list[str] | None, Field(description="offered guest paths")] = None,
    ) -> dict[str, Any]:
        """Run a program under limits; seal and log it. Answers as `wasm-sandbox run --json`."""
        with _tool_errors():
            wasm, kind = program(source, lang)
            options = RunOptions(
                invoke=invoke,
                args=tuple(Wave(a) if isinstance(a, str) else a for a in args or ()),
                limits=operator.limits(limits or {}),
                grants=operator.grants(dirs or ()),
                lang=operator.lang(kind),
                face=face_of(ctx),
            )
            answer: dict[str, Any] = call(lambda: sandbox.run(wasm, options)).to_json()
            return answer

    @server.tool()
    def verify(
        id: Annotated[str, Field(description="record id, 'last' or '#INDEX'")],
    ) -> dict[str, Any]:
        """Verify a logged run. Answers as `wasm-sandbox verify ID --json`."""
        with _tool_errors():
            answer: dict[str, Any] = sandbox.verify(sandbox.resolve(id)).to_json()
            return answer

    @server.resource(CHECKPOINT_URI, name="checkpoint", mime_type="text/plain")
    def checkpoint() -> str:
        """The log's latest signed checkpoint (a C2SP signed note)."""
        return sandbox.ledger.latest_checkpoint().note

    return server


@contextlib.contextmanager
def _tool_errors() -> Iterator[None]:
    """A `SandboxError` becomes the tool's one-line error."""
    try:
        yield
    except SandboxError as exc:
        raise ToolError(str(exc)) from None
