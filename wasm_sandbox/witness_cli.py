"""``wasm-sandbox witness init | cosign | check``: a witness over a log in a local sandbox
home or on a Jupyter server (its wasm-sandbox REST API: docs/witness.md).

Exit status: 0 done (cosigned, consistent), 1 refused or not consistent, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .errors import HomeError, RemoteError

EPILOG = """examples:
  wasm-sandbox witness init --home ~/witness --json      # prints the witness's verifier key
  wasm-sandbox witness cosign --home ~/witness --log ~/.local/share/wasm-sandbox
  wasm-sandbox witness check --home ~/witness --log ~/.local/share/wasm-sandbox --json
  wasm-sandbox witness cosign --home ~/witness --log http://127.0.0.1:8888/ --token TOKEN
  wasm-sandbox verify --all --witness VKEY             # require that witness's cosignature"""
_RETRIES = 3  # a concurrent cosign moved the witness on: start again from its new size


def add_witness_command(commands: Any) -> None:
    """Register ``witness`` and its subcommands on the top-level subparsers."""
    text = "a witness: cosign a log's checkpoints after checking it only grew"
    parser = commands.add_parser(
        "witness",
        help=text,
        description=text,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subs = parser.add_subparsers(dest="witness_command", required=True, metavar="ACTION")
    for name, handler, help_text in (
        ("init", cmd_init, "create a witness home and print its verifier key"),
        ("cosign", cmd_cosign, "check a log's latest checkpoint and cosign it"),
        ("check", cmd_check, "check a log against what this witness cosigned"),
    ):
        sub = subs.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--home", required=True, help="the witness's home directory")
        if name != "init":
            sub.add_argument(
                "--log", required=True, help="the log: a sandbox home, or a Jupyter server's URL"
            )
            sub.add_argument(
                "--token", help="the server's token (else $JUPYTER_TOKEN, Jupyter's runtime files)"
            )
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=handler)


def _witness(args: argparse.Namespace, create: bool = False) -> Any:
    from .witness import Witness

    return Witness(args.home, create=create)


def _log(args: argparse.Namespace) -> Any:
    """The log at ``--log``: a server URL, or a sandbox home that holds a ledger."""
    from .remote import is_url

    if is_url(args.log):
        return _ServerLog(args.log, args.token)
    if not (Path(args.log).expanduser() / "ledger.sqlite").is_file():
        raise HomeError(f"{args.log} is not a sandbox home: it has no ledger.sqlite")
    return _HomeLog(args.log)


class _HomeLog:
    """A log in a local sandbox home."""

    def __init__(self, home: str) -> None:
        from .sandbox import Sandbox

        self._sb = Sandbox(home=home)
        self._ledger = self._sb.ledger

    def __enter__(self) -> _HomeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sb.close()

    def latest(self) -> tuple[str, str]:
        """The latest checkpoint note and the log's verifier key."""
        return self._ledger.latest_checkpoint().note, self._ledger.verifier_key

    def proof(self, size: int, to: int) -> list[bytes]:
        return self._ledger.consistency_proof(size, to) if 0 < size < to else []

    def attach(self, size: int, line: str, witness_key: str) -> None:
        self._ledger.add_cosignature(size, line)


class _ServerLog:
    """A log served by a jupyter_server's wasm-sandbox REST API (docs/rest-api.md)."""

    def __init__(self, url: str, token: str | None) -> None:
        from .remote import Remote

        self._api = Remote(url, token)

    def __enter__(self) -> _ServerLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self._api.close()

    def latest(self) -> tuple[str, str]:
        note = self._api.get("checkpoint", format="json").get("checkpoint")
        key = self._api.get("keys/public").get("log_verifier_key")
        if not isinstance(note, str) or not isinstance(key, str):
            raise RemoteError(f"{self._api.api}: no checkpoint or log key in the answer")
        return note, key

    def proof(self, size: int, to: int) -> list[bytes]:
        if not 0 < size < to:
            return []
        answer = self._api.get("proof/consistency", **{"from": size, "to": to})
        try:
            return [bytes.fromhex(h) for h in answer["hashes"]]
        except (KeyError, TypeError, ValueError):
            raise RemoteError(f"{self._api.api}: malformed consistency proof") from None

    def attach(self, size: int, line: str, witness_key: str) -> None:
        body = {"tree_size": size, "cosignature": line, "verifier_key": witness_key}
        self._api.post("checkpoint/cosignatures", body)


def cmd_init(args: argparse.Namespace) -> int:
    with _witness(args, create=True) as w:
        out = {"verifier_key": w.verifier_key, "name": w.name, "home": str(w.home)}
    _emit(args, out, out["verifier_key"])
    return 0


def cmd_cosign(args: argparse.Namespace) -> int:
    from .errors import Refused
    from .witness import open_log_note

    with _witness(args) as w, _log(args) as log:
        note, key = log.latest()
        try:
            cp = open_log_note(note, key)
        except Refused as exc:
            return _refused(args, None, 0, str(exc))
        old = w.size_of(cp.origin)
        for _ in range(_RETRIES):
            try:
                line = w.add_checkpoint(note, key, old_size=old, proof=log.proof(old, cp.size))
                break
            except Refused as exc:
                if exc.conflict is None or exc.conflict == old:
                    return _refused(args, cp, old, str(exc))
                old = exc.conflict
        else:
            return _refused(args, cp, old, "the witness kept moving; try again")
        log.attach(cp.size, line, w.verifier_key)
    out = {
        "cosigned": True,
        "origin": cp.origin,
        "witnessed_size": old or None,
        "first_contact": old == 0,
        "tree_size": cp.size,
        "root": cp.root.hex(),
        "cosignature": line,
        "verifier_key": w.verifier_key,
    }
    _emit(args, out, f"cosigned {cp.origin} at size {cp.size}")
    return 0


def _refused(args: argparse.Namespace, cp: Any, old: int, reason: str) -> int:
    out = {"cosigned": False, "origin": cp and cp.origin, "witnessed_size": old or None}
    out |= {"tree_size": cp and cp.size, "reason": reason}
    _emit(args, out, f"refused: {reason}")
    return 1


def cmd_check(args: argparse.Namespace) -> int:
    from .errors import Refused
    from .witness import open_log_note

    with _witness(args) as w, _log(args) as log:
        note, key = log.latest()
        try:
            cp = open_log_note(note, key)
            proof = log.proof(w.size_of(cp.origin), cp.size)
        except Refused:
            proof = []  # check says why the note is not the log's
        out = w.check(note, key, proof)
    summary = "consistent" if out["consistent"] else f"NOT consistent: {out['reason']}"
    _emit(args, out, summary)
    return 0 if out["consistent"] else 1


def verify_witnesses(ledger: Any, cosigners: list[str]) -> list[dict[str, Any]]:
    """``verify --all --witness``: each cosigner's verdict on the latest checkpoint.

    A malformed verifier key is bad usage (SandboxError), not a missing cosignature.
    """
    from .checkpoint import parse_verifier_key
    from .witness import COSIGNATURE, check_cosigners

    for text in cosigners:
        parse_verifier_key(text, COSIGNATURE)
    return check_cosigners(ledger.cosigned_note(), cosigners)


def _emit(args: argparse.Namespace, out: dict[str, Any], line: str) -> None:
    print(json.dumps(out, sort_keys=True) if args.json else line)
