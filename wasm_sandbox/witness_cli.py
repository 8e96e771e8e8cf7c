"""``wasm-sandbox witness init | cosign | check``: a witness over a log in a local sandbox home.

Exit status: 0 done (cosigned, consistent), 1 refused or not consistent, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .errors import SandboxError

EPILOG = """examples:
  wasm-sandbox witness init --home ~/witness --json      # prints the witness's verifier key
  wasm-sandbox witness cosign --home ~/witness --log ~/.local/share/wasm-sandbox
  wasm-sandbox witness check --home ~/witness --log ~/.local/share/wasm-sandbox --json
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
            sub.add_argument("--log", required=True, help="the log: a sandbox home directory")
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=handler)


def _witness(args: argparse.Namespace, create: bool = False) -> Any:
    from .witness import Witness

    return Witness(args.home, create=create)


def _log(args: argparse.Namespace) -> Any:
    """The sandbox at ``--log``, refusing URLs and directories that hold no ledger."""
    from .sandbox import Sandbox

    if args.log.startswith(("http://", "https://")):
        raise SandboxError("witnessing a log over HTTP is not supported yet: give its home")
    if not (Path(args.log).expanduser() / "ledger.sqlite").is_file():
        raise SandboxError(f"{args.log} is not a sandbox home: it has no ledger.sqlite")
    return Sandbox(home=args.log)


def _proof(ledger: Any, size: int, to: int) -> list[bytes]:
    return ledger.consistency_proof(size, to) if 0 < size < to else []


def cmd_init(args: argparse.Namespace) -> int:
    with _witness(args, create=True) as w:
        out = {"verifier_key": w.verifier_key, "name": w.name, "home": str(w.home)}
    _emit(args, out, out["verifier_key"])
    return 0


def cmd_cosign(args: argparse.Namespace) -> int:
    from .witness import Refused

    with _witness(args) as w, _log(args) as sb:
        cp, key = sb.ledger.latest_checkpoint(), sb.ledger.verifier_key
        old = w.size_of(cp.origin)
        for _ in range(_RETRIES):
            try:
                line = w.add_checkpoint(
                    cp.note, key, old_size=old, proof=_proof(sb.ledger, old, cp.size)
                )
                break
            except Refused as exc:
                if exc.conflict is None or exc.conflict == old:
                    return _refused(args, cp, old, str(exc))
                old = exc.conflict
        else:
            return _refused(args, cp, old, "the witness kept moving; try again")
        sb.ledger.add_cosignature(cp.size, line)
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
    out = {"cosigned": False, "origin": cp.origin, "witnessed_size": old or None}
    out |= {"tree_size": cp.size, "reason": reason}
    _emit(args, out, f"refused: {reason}")
    return 1


def cmd_check(args: argparse.Namespace) -> int:
    with _witness(args) as w, _log(args) as sb:
        cp, key = sb.ledger.latest_checkpoint(), sb.ledger.verifier_key
        old = w.size_of(cp.origin)
        out = w.check(cp.note, key, _proof(sb.ledger, old, cp.size))
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
