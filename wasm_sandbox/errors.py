"""The exception tree of wasm_sandbox.

A guest's misbehaviour (a trap, a timeout, running out of fuel) is an ``Outcome``,
never an exception. Exceptions are for input and state that the caller must fix::

    SandboxError                  root: catch this to catch everything below
    ├── LimitsError               a limit or grant value that cannot be parsed or is unsafe
    ├── GrantError                a grant that cannot be honoured (missing directory, ...)
    ├── CompileError              source that does not become a valid module (line, column)
    │   └── ConfinementError      the C compiler cannot be confined (no bubblewrap, ...)
    ├── InvocationError           missing export, wrong argument count or type
    ├── KeyStoreError             a key file that is missing, corrupt, foreign or too open
    │   └── HomeError             a home, keys/ or cache/ that is unusable or others can write
    ├── EnvelopeError             a sealed part that cannot be opened or checked
    │   ├── DecryptionError       HPKE open failed (wrong key, tampered enc or ciphertext)
    │   └── CommitmentMismatch    the opened plaintext does not match its commitment
    └── LedgerError               the log cannot be read or written as asked
        ├── RecordNotFound        no record with that id or index
        └── VerificationError     a proof, root, signature or stored value does not check
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


class InvocationError(SandboxError):
    """An export that is missing, or arguments that do not fit its signature."""


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


class RunFailed(SandboxError):
    """A run that was carried out and logged but did not succeed (a trap, a timeout, an
    ``error``...), raised by `Execution.raise_for_status`; ``execution`` is that run."""

    def __init__(self, execution: Any) -> None:
        outcome = execution.outcome
        super().__init__(outcome.message or f"the run ended with status {outcome.status}")
        self.execution = execution
