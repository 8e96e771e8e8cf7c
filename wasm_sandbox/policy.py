"""Trust levels and manifests: what a signed module may ask for, and every decision made.

A **trust file** (TOML: ``trust.toml`` in the home, or ``--trust FILE``) maps signer keys to a
level and sets the operator's maximums::

    [operator]                        # the most any manifest gets
    max_fuel = "1e10"                 # max_memory, max_timeout, max_output: CLI units
    kv = ["scores", "cache:ro"]       # namespaces a manifest may ask for (":ro": read only)
    host_log = true
    dirs = ["/srv/data:/data:ro"]     # HOST:GUEST[:ro|rw] a manifest may ask for by guest path

    [[signer]]
    key = "module-signer.wasm-sandbox.local/...+...+..."   # wasm-sandbox keys: signer_verifier_key
    level = "trusted"                 # or "dev"; a signer not listed is "unknown"

A **manifest** is a JSON custom section ``wasm-sandbox-manifest`` (covered by the signature,
which signs every section after it) declaring what the module needs::

    {"kv": "scores", "kv_mode": "rw", "host_log": true, "dirs": ["/data:ro"],
     "limits": {"fuel": "1e11", "timeout": "30s"}}

The effective grant is the caller's own, widened by what the manifest asks for as far as the
level allows: *trusted* up to the operator's maximums, *unknown* (unsigned or not listed) not
at all, *dev* everything it asks for, uncapped, with a loud card. Each request is a
`Decision` (``granted``, ``narrowed`` or ``refused``) and all of them go into the record's
``policy`` field (docs/policy.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import binary
from .errors import PolicyError, VerificationError
from .limits import DirGrant, KvGrant, Limits
from .run_options import RunOptions

SECTION = "wasm-sandbox-manifest"
FILE = "trust.toml"
LEVELS = ("trusted", "unknown", "dev")
_LIMITS = ("fuel", "memory", "timeout", "output")


@dataclass(frozen=True)
class Decision:
    """What became of one request of a manifest."""

    capability: str
    decision: str  # granted | narrowed | refused
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"capability": self.capability, "decision": self.decision, "reason": self.reason}


@dataclass(frozen=True)
class Trust:
    """A trust file: signer levels and the operator's maximums."""

    source: str
    levels: dict[str, str]
    maximum: Limits
    kv: dict[str, bool]  # namespace -> writable
    host_log: bool
    dirs: dict[str, DirGrant]  # by guest path

    @classmethod
    def load(cls, path: str | Path) -> Trust:
        """Read a trust file; `PolicyError` naming what is wrong."""
        import tomllib

        try:
            data = tomllib.loads(Path(path).expanduser().read_text())
        except OSError as exc:
            raise PolicyError(f"trust file {path}: cannot read it ({exc.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"trust file {path}: not TOML ({exc})") from None
        try:
            return cls._of(str(path), data)
        except (KeyError, TypeError, ValueError, VerificationError) as exc:
            raise PolicyError(f"trust file {path}: {exc}") from None

    @classmethod
    def _of(cls, source: str, data: dict[str, Any]) -> Trust:
        from .checkpoint import parse_verifier_key

        levels = {}
        for entry in data.get("signer", []):
            key, level = str(entry["key"]), str(entry.get("level", "trusted"))
            if level not in LEVELS:
                raise ValueError(f"level {level!r} (expected one of {', '.join(LEVELS)})")
            parse_verifier_key(key)
            levels[key] = level
        op = data.get("operator", {})
        maximum = Limits.parse(**{k: op.get(f"max_{k}") for k in _LIMITS})
        kv = {}
        for spec in op.get("kv", []):
            grant = KvGrant.parse(str(spec))
            kv[grant.namespace] = grant.writable
        dirs = {d.guest: d for d in (DirGrant.parse(str(s)) for s in op.get("dirs", []))}
        return cls(source, levels, maximum, kv, bool(op.get("host_log", False)), dirs)


@dataclass(frozen=True)
class Manifest:
    """What a module declares it needs (its ``wasm-sandbox-manifest`` section)."""

    kv: str | None = None
    kv_writable: bool = True
    host_log: bool = False
    dirs: tuple[tuple[str, bool], ...] = ()  # (guest path, writable)
    limits: tuple[tuple[str, str], ...] = ()

    @classmethod
    def read(cls, wasm: bytes) -> Manifest | None:
        """The module's manifest, None without one; `PolicyError` for one that is malformed."""
        try:
            data = binary.custom_section(wasm, SECTION)
        except ValueError:
            return None  # not a readable binary: wasmtime says why
        if data is None:
            return None
        import json

        try:
            obj = json.loads(data)
            return cls(
                kv=None if obj.get("kv") is None else str(obj["kv"]),
                kv_writable=obj.get("kv_mode", "rw") != "ro",
                host_log=bool(obj.get("host_log", False)),
                dirs=tuple(_guest(str(d)) for d in obj.get("dirs", [])),
                limits=tuple((str(k), str(v)) for k, v in obj.get("limits", {}).items()),
            )
        except (ValueError, AttributeError, TypeError) as exc:
            raise PolicyError(f"the module's manifest is malformed ({exc})") from None


def _guest(spec: str) -> tuple[str, bool]:
    path, _, mode = spec.partition(":")
    if not path.startswith("/") or mode not in ("", "ro", "rw"):
        raise ValueError(f"dirs: {spec!r} (expected /GUEST[:ro|rw])")
    return path, mode == "rw"


def level_of(trust: Trust | None, signer: str | None) -> str:
    """The trust level of a module signed by ``signer`` (None: unsigned)."""
    if trust is None or signer is None:
        return "unknown"
    return trust.levels.get(signer, "unknown")


def apply(
    options: RunOptions, trust: Trust | None, signer: str | None, manifest: Manifest | None
) -> tuple[RunOptions, dict[str, Any] | None]:
    """The options widened by ``manifest`` as far as the level allows, and the record's
    ``policy`` (None when there is neither a trust file nor a manifest)."""
    if trust is None and manifest is None:
        return options, None
    level = level_of(trust, signer)
    decisions: list[Decision] = []
    if manifest is not None:
        options, decisions = _widen(options, trust, level, manifest)
    policy = {"level": level, "decisions": [d.to_json() for d in decisions]}
    return options, policy


def _widen(
    options: RunOptions, trust: Trust | None, level: str, manifest: Manifest
) -> tuple[RunOptions, list[Decision]]:
    wanted = _requests(manifest)
    if level == "unknown":
        why = "the module is unsigned or its signer is not trusted: defaults only"
        return options, [Decision(what, "refused", why) for what in wanted]
    decisions: list[Decision] = []
    grants, limits = options.grants, options.limits
    if manifest.kv is not None:
        kv, decision = _kv(manifest, trust, level)
        decisions.append(decision)
        if kv is not None and grants.kv is None:
            grants = replace(grants, kv=kv)
    if manifest.host_log:
        allowed = level == "dev" or (trust is not None and trust.host_log)
        decisions.append(_yes_no("host_log", allowed, "the operator allows no host log"))
        grants = replace(grants, host_log=grants.host_log or allowed)
    for guest, writable in manifest.dirs:
        found, decision = _dir(guest, writable, trust)
        decisions.append(decision)
        if found is not None:
            grants = replace(grants, dirs=(*grants.dirs, found))
    for name, value in manifest.limits:
        limits, decision = _limit(limits, name, value, trust, level)
        decisions.append(decision)
    return replace(options, grants=grants, limits=limits), decisions


def _requests(manifest: Manifest) -> list[str]:
    return [
        *([f"kv:{manifest.kv}"] if manifest.kv else []),
        *(["host_log"] if manifest.host_log else []),
        *(f"dir:{guest}" for guest, _ in manifest.dirs),
        *(f"limit:{name}" for name, _ in manifest.limits),
    ]


def _yes_no(what: str, allowed: bool, why_not: str) -> Decision:
    return (
        Decision(what, "granted", "within the operator's maximums")
        if allowed
        else Decision(what, "refused", why_not)
    )


def _kv(manifest: Manifest, trust: Trust | None, level: str) -> tuple[KvGrant | None, Decision]:
    name = str(manifest.kv)
    what = f"kv:{name}"
    if level == "dev":
        return KvGrant.parse(name if manifest.kv_writable else f"{name}:ro"), Decision(
            what, "granted", "dev mode: granted as asked"
        )
    allowed = None if trust is None else trust.kv.get(name)
    if allowed is None:
        return None, Decision(what, "refused", "the operator allows no such namespace")
    writable = manifest.kv_writable and allowed
    grant = KvGrant.parse(name if writable else f"{name}:ro")
    if manifest.kv_writable and not allowed:
        return grant, Decision(what, "narrowed", "read-only: the operator allows no writes")
    return grant, Decision(what, "granted", "within the operator's maximums")


def _dir(guest: str, writable: bool, trust: Trust | None) -> tuple[DirGrant | None, Decision]:
    what = f"dir:{guest}"
    offered = None if trust is None else trust.dirs.get(guest)
    if offered is None:
        return None, Decision(what, "refused", "the operator offers no directory at that path")
    if writable and not offered.writable:
        return offered, Decision(what, "narrowed", "read-only: the operator allows no writes")
    return replace(offered, writable=writable), Decision(what, "granted", "offered by the operator")


def _limit(
    limits: Limits, name: str, value: str, trust: Trust | None, level: str
) -> tuple[Limits, Decision]:
    what = f"limit:{name}"
    if name not in _LIMITS:
        return limits, Decision(
            what, "refused", f"not a limit a manifest sets ({', '.join(_LIMITS)})"
        )
    try:
        asked = Limits.parse(limits, **{name: value})
    except ValueError as exc:
        return limits, Decision(what, "refused", str(exc))
    if level == "dev" or trust is None:
        return asked, Decision(what, "granted", "dev mode: granted as asked")
    capped = asked.capped(trust.maximum)
    if getattr(capped, name) < getattr(asked, name):
        return capped, Decision(what, "narrowed", "capped at the operator's maximum")
    return capped, Decision(what, "granted", "within the operator's maximums")
