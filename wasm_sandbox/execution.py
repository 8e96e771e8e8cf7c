"""What the pipeline hands back: a logged run (`Execution`), a check of one (`Verification`)
and what the private key opens (`Opened`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import sources
from .errors import RunFailed, SandboxError
from .outcome import EXIT, OK, Outcome


@dataclass(frozen=True)
class Execution:
    """One sealed, logged run.

    ``commitment`` is the hex Merkle leaf hash of the canonical record: it commits to the
    program, input and result commitments, the limits and the outcome. ``root`` is the
    tree's root at ``tree_size`` right after this run was appended.
    """

    id: str
    outcome: Outcome
    record: dict[str, Any] = field(repr=False)
    commitment: str
    leaf_index: int
    tree_size: int
    root: str
    checkpoint: str = field(repr=False, default="")
    lang: str = "wasm"
    result_salt: bytes = field(repr=False, default=b"")  # opens the result commitment
    #: Why a run of status ``error`` could not start (a `CompileError` at its WAT line for
    #: a module that does not validate, an `InvocationError`); None otherwise.
    error: SandboxError | None = field(repr=False, default=None, compare=False)

    @property
    def succeeded(self) -> bool:
        """Whether the guest finished normally: status ``ok``, or ``exit`` with code 0."""
        status = self.outcome.status
        return status == OK or (status == EXIT and self.outcome.exit_code == 0)

    def raise_for_status(self) -> Execution:
        """This run, or `RunFailed` (caused by `error`, if any) when it did not succeed.

        >>> sb.run(src, invoke="f").raise_for_status().outcome.returns     # doctest: +SKIP
        """
        if not self.succeeded:
            raise RunFailed(self) from self.error
        return self

    def to_json(self) -> dict[str, Any]:
        """The object ``wasm-sandbox run --json`` prints (DESIGN.md contract)."""
        return {
            "id": self.id,
            **self.outcome.to_json(),
            "commitment": self.commitment,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "root": self.root,
        }


@dataclass(frozen=True)
class Verification:
    """The result of `Sandbox.verify`: every check by name, and the verdict."""

    id: str
    verified: bool
    leaf_index: int
    tree_size: int
    root: str
    checks: dict[str, str]
    replay: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.verified

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "verified": self.verified,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "root": self.root,
            "checks": self.checks,
        }
        if self.replay is not None:
            out["replay"] = self.replay
        return out


@dataclass(frozen=True)
class Opened:
    """What `Sandbox.decrypt` recovers with the private key."""

    id: str
    program: bytes
    input: dict[str, Any]
    result: dict[str, Any]
    record: dict[str, Any]
    salts: dict[str, bytes] = field(repr=False)
    stdin: bytes = field(repr=False, default=b"")
    source: dict[str, Any] | None = None

    def shown_source(self) -> tuple[str | None, str | None]:
        """``(kind, text)`` of the program as a reader wants it: the sealed WAT or C text
        (kind ``wat`` or ``c``), else the bytes disassembled by ``wasm-tools print`` (kind
        ``disassembly``), else ``(None, None)`` for bytes that are not a printable module."""
        if self.source is not None:
            return str(self.source["lang"]), str(self.source["text"])
        text = sources.disassemble(self.program)
        return ("disassembly", text) if text is not None else (None, None)
