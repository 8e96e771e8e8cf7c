"""``%%wasm --server URL``: a run on a grader's wasm-sandbox server, shown with its receipt.

The kernel never holds the server log's keys. It turns the cell into a program here (WAT
travels as text, C is compiled here and travels as wasm), seals it to the key the server
publishes (``GET keys/public``), posts it (``POST executions``) and reads the server's record
back (``GET executions/{id}``). Before anything is shown, the output is checked as
``wasm-sandbox verify-notebook`` will check it later: the receipt against the server's log
key, the shown values against the disclosed result. The output's metadata carries the
receipt and the disclosure, so anyone with the server's log key can check the saved notebook.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from .. import merkle, receipts, record
from ..errors import UsageProblem, VerificationError
from ..execution import Execution
from ..keys import KeyStore
from ..outcome import Outcome
from ..remote import Remote
from ..run_options import RunOptions
from ..sources import Program
from . import html
from .server_request import seal_program


@dataclass(frozen=True)
class RemoteRun:
    """A run the server carried out and logged, as its answers describe it."""

    server: str
    log_key: str
    execution: Execution
    receipt: str
    disclosure: dict[str, Any]
    blobs: dict[str, bytes]

    def metadata(self) -> dict[str, Any]:
        """The output metadata `wasm_sandbox.receipts.verify_output` reads."""
        meta = {"receipt": self.receipt, "disclosure": self.disclosure, "server": self.server}
        return {receipts.METADATA_KEY: meta}

    def line(self) -> str:
        """How to check the saved output: with the server's log key."""
        return (
            f"run on {self.server}: record #{self.execution.leaf_index} of its log; "
            f"verifiable receipt inside: wasm-sandbox verify-notebook NB.ipynb "
            f"--log-key {self.log_key}"
        )


def run(
    remote: Remote, program: Program, options: RunOptions, limits: Mapping[str, str | None]
) -> RemoteRun:
    """Run ``program`` on the server with ``options``; ``limits`` are the limits the user
    gave (the server's defaults apply to the others, its maximum caps them all)."""
    keys = remote.get("keys/public")
    server_key = KeyStore.load_public_pem(str(keys["recipient_public_key_pem"]).encode())
    created = remote.post("executions", request(program, options, limits, server_key))
    detail = remote.get(f"executions/{created['id']}")
    return _checked(remote.base, str(keys["log_verifier_key"]), program, created, detail)


def request(
    program: Program, options: RunOptions, limits: Mapping[str, str | None], server_key: Any
) -> dict[str, Any]:
    """The ``POST executions`` body: the program sealed to ``server_key``, and the options."""
    text = program.text if program.lang in ("wat", "python") else None
    body: dict[str, Any] = {
        "sealed_program": seal_program(program.wasm if text is None else text, server_key),
        **({"lang": "python"} if program.lang == "python" else {}),
        "argv": list(options.grants.argv),
        "deterministic": options.grants.deterministic,
        "limits": {name: value for name, value in limits.items() if value is not None},
    }
    if options.invoke is not None:
        body.update(invoke=options.invoke, args=[str(a) for a in options.args])
    if options.grants.stdin:
        try:
            body["stdin"] = options.grants.stdin.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageProblem("--server: stdin must be UTF-8 text to travel") from None
    return body


def _checked(server: str, log_key: str, program: Program, created: Any, detail: Any) -> RemoteRun:
    """The run the answers describe, refused unless it checks as a saved output would."""
    try:
        leaf = base64.b64decode(detail["leaf_b64"], validate=True)
        rec = record.decode(leaf)
        blobs = {k: base64.b64decode(v) for k, v in detail["ciphertexts"].items()}
        disclosure = created["disclosure"]
        execution = _execution(rec, program.lang, created, detail["checkpoint"], disclosure)
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError(f"{server}: an answer of the server is malformed ({exc})") from None
    if rec["id"] != created["id"] or merkle.leaf_hash(leaf).hex() != created["commitment"]:
        raise VerificationError(f"{server}: the logged record is not the run it answered with")
    done = RemoteRun(server, log_key, execution, str(detail["receipt"]), disclosure, blobs)
    problems = receipts.verify_output({"data": bundle(done), "metadata": done.metadata()}, log_key)
    if not problems["verified"]:
        raise VerificationError(f"{server}: " + "; ".join(problems["problems"]))
    return done


def _execution(
    rec: dict[str, Any], lang: str, created: Any, checkpoint: str, disclosure: Any
) -> Execution:
    summary, limits = rec["outcome"], rec["limits"]
    outcome = Outcome.from_result(
        disclosure["payload"],
        fuel_limit=limits["fuel"],
        memory_limit=limits["memory"],
        fuel_lower_bound=summary.get("fuel_lower_bound", False),
        duration_ms=summary["duration_us"] / 1000,
        deterministic=rec["deterministic"],
    )
    return Execution(
        id=rec["id"],
        outcome=outcome,
        record=rec,
        commitment=created["commitment"],
        leaf_index=created["leaf_index"],
        tree_size=created["tree_size"],
        root=created["root"],
        checkpoint=checkpoint,
        lang=lang,
        result_salt=bytes.fromhex(disclosure["salt"]),
    )


def bundle(done: RemoteRun, title: str = "") -> dict[str, str]:
    """The static card of the server's run, saying where it ran and how to check it."""
    shown = html.mimebundle(done.execution, done.blobs, title)
    shown["text/html"] += f"<div><small>{escape(done.line())}</small></div>"
    shown["text/plain"] += f"\n{done.line()}"
    return shown
