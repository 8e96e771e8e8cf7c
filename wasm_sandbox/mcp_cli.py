"""``wasm-sandbox mcp``: the MCP server (`wasm_sandbox.mcp_server`) on stdio.

The SDK (``pip install 'wasm-sandbox[mcp]'``) is imported only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from .errors import UsageProblem
from .worker import ISOLATIONS

EPILOG = """examples:
  wasm-sandbox mcp --home ~/agent-runs
  wasm-sandbox mcp --max-timeout 2s --max-memory 64MiB --allow-lang wat --allow-lang wasm
  wasm-sandbox mcp --dir data:/data:ro     # the agent may ask for /data, nothing else"""


def add_mcp_command(commands: Any) -> None:
    """Register ``mcp`` on the top-level subparsers."""
    text = "serve this sandbox to MCP clients (agents) over stdio"
    p = commands.add_parser(
        "mcp",
        help=text,
        description=text,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--home", help="keys and ledger directory ($WASM_SANDBOX_HOME)")
    for name, example in (("fuel", "1e9"), ("memory", "64MiB"), ("timeout", "2s")):
        p.add_argument(f"--max-{name}", help=f"most {name} a run may ask for, e.g. {example}")
    p.add_argument("--max-output", help="most stdout and stderr bytes kept, e.g. 64KiB")
    p.add_argument(
        "--allow-lang",
        action="append",
        default=[],
        metavar="LANG",
        help="a language agents may run (repeatable; default: every one)",
    )
    p.add_argument(
        "--dir",
        dest="dirs",
        action="append",
        default=[],
        metavar="HOST:GUEST[:ro|rw]",
        help="a directory agents may ask for by its guest path (repeatable; default: none)",
    )
    p.add_argument(
        "--isolation",
        choices=ISOLATIONS,
        default="process",
        help="where guests run (default: process, a worker killed at the deadline)",
    )
    p.set_defaults(handler=cmd_mcp)


def operator_of(args: argparse.Namespace) -> Any:
    """The `Operator` of the command line."""
    from .limits import DirGrant, Limits
    from .mcp_server import Operator
    from .sources import LANGS

    unknown = sorted(set(args.allow_lang) - set(LANGS))
    if unknown:
        raise UsageProblem(f"--allow-lang: unknown {unknown[0]!r} (choose from {', '.join(LANGS)})")
    maximum = Limits.parse(
        fuel=args.max_fuel, memory=args.max_memory, timeout=args.max_timeout, output=args.max_output
    )
    return Operator(
        maximum=maximum,
        langs=tuple(dict.fromkeys(args.allow_lang)) or LANGS,
        dirs=tuple(DirGrant.parse(d) for d in args.dirs),
    )


def cmd_mcp(args: argparse.Namespace) -> int:
    operator = operator_of(args)  # bad settings fail here, before the SDK loads
    try:
        from .mcp_server import build
    except ImportError as exc:
        missing = f"mcp: the MCP SDK is missing ({exc}); pip install 'wasm-sandbox[mcp]'"
        raise UsageProblem(missing) from None
    from .sandbox import Sandbox

    with Sandbox(home=args.home, isolation=args.isolation) as sb:
        build(sb, operator).run("stdio")
    return 0
