"""``wasm-sandbox verify-notebook NB.ipynb --log-key VKEY``: check a saved notebook's receipts.

Needs no home and no private key. Exit status: 0 every ``%%wasm`` output verified, 1 one did
not, 2 bad usage (an unreadable notebook).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .errors import FileError

EPILOG = """examples:
  wasm-sandbox verify-notebook lab.ipynb --log-key "$(cat log.vkey)"
  wasm-sandbox verify-notebook lab.ipynb --log-key VKEY --witness WVKEY --json"""


def add_verify_notebook_command(commands: Any) -> None:
    """Register ``verify-notebook`` on the top-level subparsers."""
    text = "check the receipts saved in a notebook's %%wasm outputs, offline"
    sub = commands.add_parser(
        "verify-notebook",
        help=text,
        description=text,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("notebook", metavar="NB.ipynb")
    sub.add_argument("--log-key", required=True, metavar="VKEY", help="the log's verifier key")
    sub.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="VKEY",
        help="also require a valid cosignature by this witness (repeatable)",
    )
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(handler=cmd_verify_notebook)


def cmd_verify_notebook(args: argparse.Namespace) -> int:
    from . import receipts

    try:
        notebook = receipts.load(args.notebook)
    except OSError as exc:
        raise FileError(f"cannot read {args.notebook}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise FileError(f"cannot read {args.notebook}: {exc}") from None
    report = receipts.verify_notebook(notebook, args.log_key, args.witness)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for o in report["outputs"]:
            verdict = "verified" if o["verified"] else "NOT verified: " + "; ".join(o["problems"])
            print(f"cell {o['cell']} record {o['record_id'] or '?'}: {verdict}")
        print(f"{len(report['outputs'])} %%wasm output(s); verified: {report['verified']}")
    return 0 if report["verified"] else 1
