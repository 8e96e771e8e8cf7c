"""Sealing one finished run: the half of `Sandbox.seal` that needs no private key and no log.

`seal` turns a `Job` and its `Outcome` into a `Sealed` run (record id, the sealed parts,
the record, its canonical leaf and the ciphertexts) from the recipient's *public* key, the
clock and, for a large program sealed by content, its content keys (never the home's content
secret), so a batch's worker processes seal while the caller only appends
(`Sandbox.append`). A `Sealed` pickles and holds no secret: not the run's key, only the
result commitment's salt, which every `Execution` hands to its caller anyway.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from . import record
from .envelope import key_id
from .errors import SandboxError
from .outcome import Outcome

if TYPE_CHECKING:
    from .job import Job


@dataclass(frozen=True)
class Sealed:
    """A sealed run ready to append: its record, leaf and blobs, and what its `Execution`
    reports besides the log position (outcome, error, language, result salt)."""

    id: str
    record: dict[str, Any] = field(repr=False)
    leaf: bytes = field(repr=False)
    blobs: dict[str, bytes] = field(repr=False)
    outcome: Outcome
    lang: str = "wasm"
    result_salt: bytes = field(repr=False, default=b"")
    error: SandboxError | None = field(repr=False, default=None, compare=False)


def content_keys(job: Job, public: ec.EllipticCurvePublicKey, secret: bytes) -> dict[str, bytes]:
    """The content keys of the job's program and source to ``public``, from the home's
    content ``secret`` (`wasm_sandbox.record.shared_content_keys`)."""
    return record.shared_content_keys(secret, public, job.program.sealed, job.program.source)


def seal(
    job: Job,
    outcome: Outcome,
    public: ec.EllipticCurvePublicKey,
    error: SandboxError | None = None,
    content: Mapping[str, bytes] | None = None,
) -> Sealed:
    """Seal program, source, input and result of a finished ``job`` to ``public`` (a large
    program or source by content, with its `content_keys`), and build its record (timed
    now)."""
    options, program = job.options, job.program
    rid = record.new_id()
    grants = options.grants
    inputs = {
        "invoke": options.invoke,
        "args": list(outcome.call_args)  # a component's: in WAVE
        if outcome.call_args is not None
        else [str(a) for a in options.args],
        "grants": grants.to_payload(),
    }
    sealed, result = program.sealed, outcome.result_payload()
    parts = record.seal_run(
        rid, sealed, inputs, result, public, program.source, grants.stdin, content_keys=content
    )
    rec = record.build(
        rid,
        int(time.time() * 1000),
        key_id(public),
        parts,
        len(sealed),
        options.limits.to_record(),
        outcome.summary(),
        outcome.deterministic,
        grants=grants.public(),
        signer=job.signer,
        policy=job.policy,
        face=None if options.face is None else options.face.to_record(),
    )
    return Sealed(
        id=rid,
        record=rec,
        leaf=record.encode(rec),
        blobs=record.blobs(parts),
        outcome=outcome,
        lang=program.lang,
        result_salt=parts["result"].salt,
        error=error,
    )
