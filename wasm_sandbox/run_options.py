"""`RunOptions`: everything a caller decides about one run, as one frozen value.

Every face builds one (the CLI and ``%%wasm`` from their options, the REST API from a
request body) and hands it to `Sandbox.run`, `Sandbox.map` or `Sandbox.map_programs`;
the pipeline's steps and the runners read it. An option added here reaches every face.

>>> opts = RunOptions(invoke="add", args=(1, 2), limits=Limits.parse(fuel="1e6"))
>>> opts.updated(stdin="hi").grants.stdin
b'hi'
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .limits import Grants, Limits

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from .checkpoint import VerifierKey


@dataclass(frozen=True)
class Face:
    """The face a run came through, as its record says: ``name`` (``"mcp"``), the
    client's self-declared name, and whether the caller was authenticated (as ``user``)."""

    name: str
    client: str | None = None
    authenticated: bool = False
    user: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The record's ``face`` field: the absent names left out."""
        out: dict[str, Any] = {"name": self.name, "authenticated": self.authenticated}
        out.update({k: v for k, v in (("client", self.client), ("user", self.user)) if v})
        return out


@dataclass(frozen=True)
class RunOptions:
    """What to call, under which limits and grants, sealed to whom, run where.

    ``invoke`` names the export to call with ``args`` (default: WASI ``_start``); ``lang``
    says what the source is (default: by suffix or content); ``recipient`` is the public
    key the run is sealed to (default: the home's own); ``isolation`` (``"thread"`` or
    ``"process"``) overrides the sandbox's runner. Standard input is ``grants.stdin``.
    ``require_signed_by`` holds signer verifier keys (``wasm-sandbox keys --json``,
    ``signer_verifier_key``): when given, only a binary signed as a whole by one of them
    runs (`wasm_sandbox.signing`). ``trust`` is a trust file (default: the home's
    ``trust.toml`` if there is one) that lets a trusted signer's manifest widen the grants
    (`wasm_sandbox.policy`).
    """

    invoke: str | None = None
    args: tuple[Any, ...] = ()
    limits: Limits = field(default_factory=Limits)
    grants: Grants = field(default_factory=Grants)
    lang: str | None = None
    recipient: ec.EllipticCurvePublicKey | None = None
    isolation: str | None = None
    require_signed_by: tuple[str, ...] = ()
    trust: str | None = None
    face: Face | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "require_signed_by", tuple(self.require_signed_by))

    def updated(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` (field names, plus ``stdin=`` for ``grants.stdin``);
        ``None`` for ``limits`` or ``grants`` means the defaults. Raises `TypeError` for
        a name that is no option, as a misspelt keyword argument would."""
        unknown = set(changes) - _NAMES - {"stdin"}
        if unknown:
            raise TypeError(f"unknown run option(s): {', '.join(sorted(unknown))}")
        stdin = changes.pop("stdin", None)
        for name, default in (("limits", Limits), ("grants", Grants)):
            if name in changes and changes[name] is None:
                changes[name] = default()
        options = replace(self, **changes)
        if stdin is None:
            return options
        data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        return replace(options, grants=replace(options.grants, stdin=data))

    def check(self) -> None:
        """Raise `GrantError` or `LimitsError` for grants or stdin that cannot be honoured,
        `VerificationError` for a required signer key that does not parse: before a run
        starts, never after."""
        self.grants.check()
        self.limits.check_stdin(self.grants.stdin)
        self.signers()

    def signers(self) -> tuple[VerifierKey, ...]:
        """The ``require_signed_by`` keys, parsed."""
        if not self.require_signed_by:
            return ()
        from .checkpoint import parse_verifier_key

        return tuple(parse_verifier_key(k) for k in self.require_signed_by)


_NAMES = frozenset(f.name for f in fields(RunOptions))
