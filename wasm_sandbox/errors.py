"""The exception tree of wasm_sandbox.

A guest's misbehaviour (a trap, a timeout, running out of fuel) is an ``Outcome``,
never an exception. Exceptions are for input and state that the caller must fix::

    SandboxError                  root: catch this to catch everything below
    ├── LimitsError               a limit or grant value that cannot be parsed or is unsafe
    ├── GrantError                a grant that cannot be honoured (missing directory, ...)
    ├── CompileError              source that does not become a valid module (line, column)
    │   └── ConfinementError      the C compiler cannot be confined (no bubblewrap, ...)
    ├── Unsupported               bytes the module rewriter does not know (run unrewritten)
    ├── InvocationError           missing export, wrong argument count or type
    ├── PolicyError               a module the policy refuses: unsigned, altered, another signer
    ├── KeyStoreError             a key file that is missing, corrupt, foreign or too open
    │   └── HomeError             a home, keys/ or cache/ that is unusable or others can write
    ├── EnvelopeError             a sealed part that cannot be opened or checked
    │   ├── DecryptionError       HPKE open failed (wrong key, tampered enc or ciphertext)
    │   └── CommitmentMismatch    the opened plaintext does not match its commitment
    ├── LedgerError               the log cannot be read or written as asked
    │   ├── RecordNotFound        no record with that id or index
    │   └── VerificationError     a proof, root, signature or stored value does not check
    │       └── Refused           a witness will not cosign (fork, rollback, stale size)
    ├── RunFailed                 a logged run that did not succeed (`raise_for_status`)
    ├── RequestError              a request that cannot be used as given
    │   ├── BadField              a REST body or query field at fault (HTTP 400)
    │   └── UsageProblem          an option or argument: command line, %%wasm line, setting
    ├── HelpRequested             ``-h``/``--help`` in an option line: carries the usage text
    ├── FileError                 a file the caller named that cannot be read or written
    ├── WorkerError               a worker process that cannot start or failed outside the guest
    ├── RemoteError               a server that cannot be reached, refuses, or answers oddly
    └── Busy                      a service's pool and queue are full, or it is closing

Foreign exceptions become these at one boundary each: wasmtime's in the engine rooms
(``compiled``, ``component``, ``sources``, ``traps``), sqlite3's in ``ledger``,
``witness`` and ``kvstore``, cryptography's in ``envelope``, ``keys`` and ``checkpoint``,
``OSError`` where a file is opened. ``tests/unit/test_errors.py`` fails when a class outside
this tree appears or a foreign exception is caught elsewhere;
``tests/integration/test_cli_errors.py`` when bad input on the command line ends in a
traceback.
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """Root of every error raised by wasm_sandbox."""


class LimitsError(SandboxError, ValueError):
    """A limit or grant value that cannot be parsed or is out of range."""


class GrantError(SandboxError):
    """A grant that cannot be honoured, such as a directory that does not exist."""


class CompileError(SandboxError):
    """Source that does not become a valid module.

    ``line`` and ``column`` are 1-based positions in the source text when known.
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        source_line: str | None = None,
    ) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.source_line = source_line


class ConfinementError(CompileError):
    """A host tool (the C compiler) cannot be confined: bubblewrap is missing, or this
    system does not allow the namespaces it needs. The tool is then never run."""


class Unsupported(SandboxError, ValueError):
    """The module rewriter (`wasm_sandbox.instrument`) meets bytes it does not know; the
    module then runs as it is and its fuel figure is a lower bound. Never reaches a caller."""


class InvocationError(SandboxError):
    """An export that is missing, or arguments that do not fit its signature."""


class PolicyError(SandboxError):
    """A module the run's policy refuses before it runs: unsigned, altered after signing,
    or signed by none of the required keys (the message names which)."""


class KeyStoreError(SandboxError):
    """A key file that is missing, corrupt, of the wrong kind or readable by others."""


class HomeError(KeyStoreError):
    """A home, ``keys/``, ``cache/`` or key file that is unusable or that others can write."""


class EnvelopeError(SandboxError):
    """A sealed part that cannot be opened or re-checked."""


class DecryptionError(EnvelopeError):
    """HPKE could not open a ciphertext: wrong key, or tampered ``enc``/ciphertext/context."""


class CommitmentMismatch(EnvelopeError):
    """An opened plaintext does not hash to the commitment recorded for it."""


class LedgerError(SandboxError):
    """The transparency log cannot be read or written as asked."""


class RecordNotFound(LedgerError, KeyError):
    """No record with that id or index."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "record not found"


class VerificationError(LedgerError):
    """A proof, root, signature or stored value that does not verify."""


class Refused(VerificationError):
    """The witness will not cosign: the log forked, was rewritten or rolled back, or the
    request does not start from the size the witness holds (``conflict``: that size)."""

    def __init__(self, message: str, conflict: int | None = None) -> None:
        super().__init__(message)
        self.conflict = conflict


class RunFailed(SandboxError):
    """A run that was carried out and logged but did not succeed (a trap, a timeout, an
    ``error``...), raised by `Execution.raise_for_status`; ``execution`` is that run."""

    def __init__(self, execution: Any) -> None:
        outcome = execution.outcome
        super().__init__(outcome.message or f"the run ended with status {outcome.status}")
        self.execution = execution


class RequestError(SandboxError, ValueError):
    """A request to a face (a REST body, an option line) that cannot be used as given."""


class BadField(RequestError):
    """A REST request that cannot be honoured; ``field`` names the part at fault
    (``limits.fuel``), ``extra`` adds facts such as the line and column of a WAT error."""

    def __init__(self, field: str, message: str, **extra: Any) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.extra = extra

    def __reduce__(self) -> tuple[Any, ...]:  # it travels back from worker processes
        return (_bad_field, (self.field, self.message, self.extra))


def _bad_field(field: str, message: str, extra: dict[str, Any]) -> BadField:
    return BadField(field, message, **extra)


class UsageProblem(RequestError):
    """An option or argument that cannot be used as given: on the command line, in a
    ``%%wasm`` line, in a setting (the message is one line)."""


class HelpRequested(SandboxError):
    """``-h``/``--help`` was given; the message is the usage text."""


class FileError(SandboxError):
    """A file or directory the caller named that cannot be read, written or created."""


def describe(exc: OSError) -> str:
    """An `OSError` in the system's words, without ``[Errno N]`` (``afile: File exists``)."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename is not None else reason


class WorkerError(SandboxError):
    """A worker process (process isolation) that cannot start, or that failed outside the
    guest; a worker killed while running a guest is an outcome (``crashed``) instead."""


class RemoteError(SandboxError):
    """A wasm-sandbox server that cannot be reached, refuses the request, or answers
    something it should not."""


class Busy(SandboxError):
    """A service's pool and its queue are full, or the service is closing: try again later."""
