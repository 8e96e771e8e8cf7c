"""Checking what the log holds: one record (`verify`: its form, ciphertexts, inclusion,
commitments, public outcome against the sealed result, and a replay), or the whole log
(`verify_log`). `Sandbox.verify` and `Sandbox.verify_log` are these."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from . import python_guest, record, signing, sources
from .checkpoint import parse_verifier_key
from .envelope import key_id
from .errors import GrantError, PolicyError, SandboxError, VerificationError
from .execution import Verification
from .job import Job, execute
from .ledger import Entry, LogReport
from .limits import Grants, Limits
from .outcome import CHECKED_FIELDS, ERROR, Outcome
from .record import OpenedRecord
from .run_options import RunOptions
from .verifiedmark import VerifiedMark
from .wave import Wave

if TYPE_CHECKING:
    from .sandbox import Sandbox


def verify(sandbox: Sandbox, record_id: str, *, replay: bool = False) -> Verification:
    """Check a record: its form, ciphertexts, inclusion in the signed log and, with the
    private key, its commitments and that its public outcome is the sealed one
    (``checks["outcome"]``), and a deterministic replay when asked."""
    entry = sandbox.ledger.get(record_id)
    checks: dict[str, str] = {}
    rec = _check(checks, "record", lambda: record.decode(entry.leaf))
    if rec is not None:
        _check(checks, "ciphertexts", lambda: _raise_if(record.check_blobs(rec, entry.blobs)))
    for name, passed in sandbox.ledger.verify_entry(record_id).items():
        checks[name] = "ok" if passed else "failed"
    opened = None
    key = _opening_key(sandbox, rec["recipient"]) if rec is not None else None
    if rec is not None and key is not None:
        opened = _check(checks, "commitments", lambda: record.open_record(rec, entry.blobs, key))
    elif rec is not None:
        checks["commitments"] = (
            f"skipped: sealed to recipient {rec['recipient'][:16]}..., "
            "whose private key is not in this home"
        )
    if opened is not None:
        problem = _outcome_problem(rec["outcome"], opened.result)
        checks["outcome"] = f"failed: {problem}" if problem else "ok"
        checks.update(_policy_checks(rec, opened))
    replayed = _replay(sandbox, rec, opened) if replay and opened is not None else None
    if replayed is not None:
        checks["replay"] = "ok" if replayed["matches"] else f"failed: {replayed['reason']}"
    verified = all(v == "ok" or v.startswith("skipped") for v in checks.values())
    return Verification(
        record_id,
        verified,
        entry.index,
        sandbox.ledger.size,
        sandbox.ledger.root().hex(),
        checks,
        replayed,
    )


def _policy_checks(rec: dict[str, Any], opened: OpenedRecord) -> dict[str, str]:
    """That the public grants are the sealed ones, and the noted signer signed the program."""
    checks = {}
    if "grants" in rec:
        sealed = Grants.from_payload(opened.input["grants"], opened.stdin).public()
        same = sealed == rec["grants"]
        checks["grants"] = "ok" if same else "failed: the public grants are not the sealed ones"
    if "signer" in rec:
        try:
            signing.signer(opened.program, [parse_verifier_key(rec["signer"])])
            checks["signer"] = "ok"
        except (PolicyError, VerificationError) as exc:
            checks["signer"] = f"failed: {exc}"
    return checks


def _opening_key(sandbox: Sandbox, recipient_id: str) -> ec.EllipticCurvePrivateKey | None:
    """This home's private key, if it is the one the record was sealed to."""
    try:
        key = sandbox.keys.recipient_private_key()
    except SandboxError:
        return None
    return key if key_id(key.public_key()) == recipient_id else None


def _replay(sandbox: Sandbox, rec: dict[str, Any], opened: OpenedRecord) -> dict[str, Any]:
    """Re-run the decrypted program with the recorded limits and inputs; compare the
    result commitment with the recorded one."""
    grants = Grants.from_payload(opened.input["grants"], opened.stdin)
    if not rec["deterministic"]:
        grants = replace(grants, deterministic=True)
    options = RunOptions(
        invoke=opened.input["invoke"],
        args=tuple(Wave(a) for a in opened.input["args"]),  # as sealed: text
        limits=Limits.from_record(rec["limits"]),
    )
    with tempfile.TemporaryDirectory(prefix="wasm-sandbox-replay-") as scratch:
        try:
            options = replace(options, grants=_scratch_grants(grants, Path(scratch)))
            job = Job(_program(opened), options)
            if job.program.interpreter is not None:  # a home that has not compiled it yet
                python_guest.compile_once(sandbox.runner())
            outcome = execute(job, sandbox.runner()).outcome
        except SandboxError as exc:
            outcome = Outcome(status=ERROR, message=str(exc))
    again = record.recommit("result", rec["id"], outcome.result_payload(), opened.salts["result"])
    matches = again.hex() == rec["result"]["commitment"]
    reason = "" if matches else _difference(opened.result, outcome.result_payload())
    if not matches and not rec["deterministic"]:
        reason += " (the run was not recorded as deterministic)"
    return {
        "matches": matches,
        "deterministic": rec["deterministic"],
        "status": outcome.status,
        "reason": reason,
    }


def _program(opened: OpenedRecord) -> sources.Program:
    """The program to replay: the sealed wasm, or the sealed Python code on this install's
    interpreter, which must be the one the record names."""
    source = opened.source or {}
    if source.get("lang") != "python":
        return sources.Program(opened.program, "wasm")
    if source.get("interpreter") != python_guest.INTERPRETER_SHA256:
        used = str(source.get("interpreter"))[:16]
        raise VerificationError(
            f"replay: the run used the Python interpreter {used}..., "
            f"this install pins {python_guest.INTERPRETER_SHA256[:16]}..."
        )
    try:
        return sources.python_program(opened.program.decode())
    except UnicodeDecodeError:
        raise VerificationError("replay: the sealed Python code is not UTF-8") from None


def verify_log(sandbox: Sandbox, *, full: bool = False) -> LogReport:
    """Recompute the log: every record, stored hash and checkpoint, the chain of checkpoints,
    and compare it with the high-water mark (a log emptied or rolled back below it fails); a
    clean log raises the mark. Records before the last clean audit's verified mark are taken
    as checked while their rows are unchanged, unless ``full`` (`wasm_sandbox.verifiedmark`)."""
    mark = VerifiedMark(sandbox.keys.dir, sandbox.ledger.path)
    since = None if full else mark.read()
    seen = sandbox.high_water.read()
    report = sandbox.ledger.verify_all(check_entry=_check_entry, seen=seen, since=since)
    report = _with_chain(report, sandbox.ledger.verify_chain(report.verified_from))
    if report.ok and report.verified_tree is not None:
        sandbox.high_water.raise_to(report.tree_size, report.verified_tree.root)
        mark.write(report.verified_tree)
    return report


def _check(checks: dict[str, str], name: str, fn: Callable[[], Any]) -> Any:
    try:
        value = fn()
    except SandboxError as exc:
        checks[name] = f"failed: {exc}"
        return None
    checks[name] = "ok"
    return value


def _scratch_grants(grants: Grants, scratch: Path) -> Grants:
    """``grants`` with each writable directory replaced by a copy under ``scratch``, so a
    replay never changes the host. Read-only grants stay: the guest cannot write them."""
    dirs = []
    for i, grant in enumerate(grants.dirs):
        if grant.writable:
            copy = scratch / str(i)
            try:
                shutil.copytree(grant.host, copy, symlinks=True)
            except (OSError, shutil.Error) as exc:
                raise GrantError(f"replay: cannot copy {grant.host!r} ({exc})") from None
            grant = replace(grant, host=str(copy))
        dirs.append(grant)
    return replace(grants, dirs=tuple(dirs))


def _raise_if(problem: str | None) -> None:
    if problem:
        raise VerificationError(problem)


def _check_entry(entry: Entry) -> str | None:
    """The ledger's per-entry hook: the leaf is a valid record and its blobs match it (the
    audit has checked each blob stored by content against its SHA-256 already)."""
    try:
        rec = record.decode(entry.leaf)
    except SandboxError as exc:
        return str(exc)
    if rec["id"] != entry.record_id:
        return f"record id {rec['id']} stored under id {entry.record_id}"
    return record.check_blobs(rec, entry.blobs, {n: d.hex() for n, d in entry.refs.items()})


def _difference(before: dict[str, Any], after: dict[str, Any]) -> str:
    changed = [k for k in sorted(before) if before.get(k) != after.get(k)]
    return "result differs in " + ", ".join(changed) if changed else "result differs"


def _with_chain(report: LogReport, chain: list[tuple[int, str]]) -> LogReport:
    """``report`` failed by the breaks `Ledger.verify_chain` found (a deleted checkpoint)."""
    if not chain:
        return report
    first_bad = report.first_bad or {"checkpoint": chain[0][0]}
    problems = report.problems + tuple(message for _, message in chain)
    return replace(report, ok=False, first_bad=first_bad, problems=problems, verified_tree=None)


def _outcome_problem(summary: dict[str, Any], result: dict[str, Any]) -> str | None:
    """How the record's public outcome differs from the sealed result, if it does."""
    wrong = [f for f in CHECKED_FIELDS if summary.get(f) != result.get(f)]
    if not wrong:
        return None
    return "the public outcome disagrees with the sealed result on " + ", ".join(
        f"{f} ({summary.get(f)!r} vs sealed {result.get(f)!r})" for f in wrong
    )
