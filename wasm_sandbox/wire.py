"""Wire messages: the JSON objects the REST API, the CLI's ``--json`` and the front end exchange.

One `TypedDict` per object. Those named after a schema of ``jupyter/openapi.json`` (``Execution``,
``Record``, ``Health``, ...) have exactly its properties and required keys; the front end's
``labextension/src/types.ts`` mirrors them; ``tests/unit/test_wire.py`` checks all three agree.
The ``Cli*`` messages are printed only by ``wasm-sandbox ... --json`` (docs/cli.md).
Keys a message may omit are in a ``total=False`` class. Pure types: importing this is free.

>>> from wasm_sandbox import wire
>>> def show(ex: wire.Execution) -> str:
...     return f"{ex['status']} #{ex['leaf_index']}"
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

JsonNumber = float | str
"""A guest's return value: JSON has no NaN or infinity, so those travel as strings
(``"NaN"``, ``"Infinity"``, ``"-Infinity"``), and so do references (``"null"``,
``"ref.extern N"``, ``"ref.func"``)."""
JsonValue = Any
"""A guest's return value: a `JsonNumber` from a core module, any JSON value from a
component (its Python value, docs/components.md)."""


class _OutcomeFacts(TypedDict):
    status: str
    exit_code: int | None
    returns: list[JsonValue]
    stdout: str
    stderr: str
    fuel_used: int
    fuel_limit: int
    memory_bytes: int
    memory_limit: int
    duration_ms: float


class Outcome(_OutcomeFacts, total=False):
    """What a run did (`wasm_sandbox.Outcome.to_json`): the guest's part of an `Execution`."""

    trap: str | None
    message: str | None
    frames: list[str]
    output_truncated: bool
    cache: str
    deterministic: bool
    fuel_lower_bound: bool
    host_log: list[list[str]]


class Execution(Outcome):
    """``wasm-sandbox run --json`` and the answer to ``POST executions`` (DESIGN.md contract)."""

    id: str
    commitment: str
    leaf_index: int
    tree_size: int
    root: str


class SealedFrame(TypedDict):
    """One wasm stack frame in a sealed result."""

    func_index: int
    func_name: str | None
    module_name: str | None
    module_offset: int


class _SealedResultFacts(TypedDict):
    status: str
    returns: list[list[str]]
    exit_code: int | None
    trap: str | None
    message: str | None
    frames: list[SealedFrame]
    stdout: str
    stderr: str
    output_truncated: bool
    fuel_used: int
    memory_bytes: int


class SealedResult(_SealedResultFacts, total=False):
    """A run's sealed result (`wasm_sandbox.Outcome.result_payload`): what the result
    commitment commits to; returns as ``[type, text]`` pairs, exact for floats;
    ``host_log`` only when the guest logged through the host log function."""

    host_log: list[list[str]]


class Disclosure(TypedDict):
    """What opens one commitment of a record: the part, its payload and its salt (hex)."""

    part: Literal["result"]
    payload: SealedResult
    salt: str


class CreatedExecution(Execution):
    """The answer to ``POST executions``: the run, and the disclosure of its result for the
    requester (who sees that result anyway), so the requester's notebook can carry a
    receipt that anyone with the log's key can check."""

    disclosure: Disclosure


class _SealedPartFacts(TypedDict):
    commitment: str
    ct_sha256: str
    ct_len: int


class SealedPartSummary(_SealedPartFacts, total=False):
    """One sealed part of a record (program, input, result, source); ``enc`` only in
    version 1 records, ``wrapped`` in a program or source sealed by content (version 3)."""

    enc: str
    wrapped: str
    size: int
    v: int


class RunKeySummary(TypedDict):
    """A record's ``key`` (versions 2 and 3): the run's one HPKE ``enc`` and its sealed
    secret."""

    enc: str
    wrapped: str


class OutcomeSummary(TypedDict):
    """A record's ``outcome``: integers and strings only."""

    status: str
    trap: str | None
    exit_code: int | None
    fuel_used: int
    memory_bytes: int
    duration_us: int


class _RecordFacts(TypedDict):
    v: int
    id: str
    time: int
    recipient: str
    suite: str
    program: SealedPartSummary
    input: SealedPartSummary
    result: SealedPartSummary
    limits: dict[str, int]
    outcome: OutcomeSummary
    deterministic: bool


class DirShown(TypedDict):
    guest: str
    mode: str


class KvShown(TypedDict):
    namespace: str
    mode: str


class _PublicGrantFacts(TypedDict):
    dirs: list[DirShown]
    env: list[str]
    argv: int
    stdin_bytes: int


class PublicGrants(_PublicGrantFacts, total=False):
    """What a run could touch, as the public record says it (values stay sealed); the
    host functions only when granted."""

    kv: KvShown
    host_log: bool


class PolicyDecision(TypedDict):
    capability: str
    decision: str
    reason: str


class Policy(TypedDict):
    """The trust level of a run's module and the decisions on its manifest (docs/policy.md)."""

    level: str
    decisions: list[PolicyDecision]


class _FaceFacts(TypedDict):
    name: str
    authenticated: bool


class Face(_FaceFacts, total=False):
    """The face a run came through (the MCP server writes it): the client's name is the
    one it declared; ``user`` is the authenticated user, when there was one."""

    client: str
    user: str


class Record(_RecordFacts, total=False):
    """The canonical execution record; a row of ``wasm-sandbox log --json`` and of
    ``GET executions`` carries its ``leaf_index``."""

    source: SealedPartSummary
    key: RunKeySummary
    grants: PublicGrants
    signer: str
    policy: Policy
    face: Face
    leaf_index: int


class Replay(TypedDict):
    """A deterministic re-run compared with the record (``verify --replay``)."""

    matches: bool
    deterministic: bool
    status: str
    reason: str


class _VerificationFacts(TypedDict):
    id: str
    verified: bool
    leaf_index: int
    tree_size: int
    root: str
    checks: dict[str, str]


class Verification(_VerificationFacts, total=False):
    """``wasm-sandbox verify ID --json``; ``replay`` only when a replay was asked."""

    replay: Replay


class _CiphertextFacts(TypedDict):
    program: str
    input: str
    result: str


class Ciphertexts(_CiphertextFacts, total=False):
    """base64 of each sealed part."""

    source: str


class InclusionProof(TypedDict):
    """The RFC 6962 audit path of a record's leaf in the tree of ``tree_size`` leaves."""

    leaf_index: int
    tree_size: int
    root: str
    hashes: list[str]


class ExecutionDetail(TypedDict):
    """``GET executions/{id}``."""

    id: str
    leaf_index: int
    record: Record
    leaf_b64: str
    ciphertexts: Ciphertexts
    inclusion_proof: InclusionProof
    checkpoint: str
    receipt: str
    verification: Verification


class ExecutionPage(TypedDict):
    """``GET executions?limit=&after=``: records with leaf index > ``after``, oldest first."""

    items: list[Record]
    tree_size: int
    next_after: int | None


class Checkpoint(TypedDict):
    """``GET checkpoint?format=json``: the signed note and the witnesses' cosignature lines
    (C2SP tlog-cosignature, each ``"— <name> <base64>"``) stored on it."""

    checkpoint: str
    origin: str
    tree_size: int
    root: str
    cosignatures: list[str]


# ``GET proof/consistency?from=&to=``: functional form, since ``from`` is a keyword.
ConsistencyProof = TypedDict(
    "ConsistencyProof",
    {"from": int, "to": int, "from_root": str, "to_root": str, "hashes": list[str]},
)


class CosignatureRequest(TypedDict):
    """``POST checkpoint/cosignatures``: a witness's cosignature line on a stored checkpoint."""

    tree_size: int
    cosignature: str
    verifier_key: str


class CosignatureAdded(TypedDict):
    """The answer to ``POST checkpoint/cosignatures``: the note with every stored cosignature."""

    tree_size: int
    witness: str
    time: int
    checkpoint: str


class SealedProgramInfo(TypedDict):
    """How to seal a program to the server (``PublicKeys.sealed_program``)."""

    accepted: bool
    suite: str
    info_hex: str


class PublicKeys(TypedDict):
    """``GET keys/public``."""

    recipient_public_key_pem: str
    recipient_key_id: str
    log_origin: str
    log_verifier_key: str
    sealed_program: SealedProgramInfo


class Health(TypedDict):
    """``GET health``: counters only."""

    status: Literal["ok", "closing"]
    version: str
    runs_in_flight: int
    runs_queued: int
    run_capacity: int


class _ErrorFacts(TypedDict):
    message: str


class Error(_ErrorFacts, total=False):
    """Every REST error answer; ``field`` names the request field at fault."""

    reason: str | None
    field: str
    line: int | None
    column: int | None
    traceback: str


class Limits(TypedDict, total=False):
    """``RunRequest.limits``, in the CLI's units (``1e8``, ``"64MiB"``, ``"500ms"``)."""

    fuel: float | str
    memory: float | str
    timeout: float | str
    output: float | str
    dir_quota: float | str


class SealedProgram(TypedDict):
    """A program sealed to the server's key (HPKE; docs/rest-api.md)."""

    enc: str
    ciphertext: str


class RunRequest(TypedDict, total=False):
    """``POST executions``: exactly one of ``wat``, ``python``, ``wasm_b64``,
    ``sealed_program`` (whose text is WAT, or Python with ``lang``)."""

    wat: str
    python: str
    wasm_b64: str
    sealed_program: SealedProgram
    lang: Literal["wat", "python"] | None
    invoke: str | None
    args: list[float | str] | None
    stdin: str | None
    argv: list[str] | None
    deterministic: bool | None
    limits: Limits | None
    recipient_public_key_pem: str | None


class _CliLogFacts(TypedDict):
    verified: bool
    tree_size: int
    first_bad: dict[str, Any] | None
    problems: list[str]


class CliLogReport(_CliLogFacts, total=False):
    """``wasm-sandbox verify --all --json``: ``high_water`` is the largest tree this home saw
    (docs/home.md), ``incremental`` whether the first ``verified_from`` records were taken as
    checked by the last clean audit (docs/home.md), ``witnesses`` the cosignature checks of
    ``--witness`` (docs/witness.md)."""

    high_water: dict[str, Any] | None
    incremental: bool
    verified_from: int
    witnesses: list[dict[str, Any]]


class CliKeys(TypedDict):
    """``wasm-sandbox keys --json``; ``protected``: the private keys are passphrase-encrypted;
    ``signer_verifier_key``: what ``--require-signed-by`` takes for ``wasm-sandbox sign``."""

    recipient_public_key_pem: str
    recipient_key_id: str
    has_private_key: bool
    log_origin: str
    log_verifier_key: str
    signer_verifier_key: str
    protected: bool


class CliSigned(TypedDict):
    """``wasm-sandbox sign FILE -o OUT --json``."""

    output: str
    size: int
    sha256: str
    signer_verifier_key: str


class CliCheckpoint(TypedDict):
    """``wasm-sandbox checkpoint --json``."""

    checkpoint: str


class CliReceipt(TypedDict):
    """``wasm-sandbox proof ID --json``."""

    receipt: str
    log_verifier_key: str


class CliDecrypted(TypedDict):
    """``wasm-sandbox decrypt ID --json``; ``source_kind`` is ``wat``, ``c``, ``python``,
    ``disassembly`` or None (with ``source`` None); ``stdin`` is base64."""

    id: str
    program: str
    source: str | None
    source_kind: str | None
    input: dict[str, Any]
    result: dict[str, Any]
    stdin: str
    commitments_ok: bool


class CliDecryptFailed(TypedDict):
    """``wasm-sandbox decrypt ID --json`` when a part does not open (exit 1)."""

    id: str
    commitments_ok: bool
    error: str
