"""The run options shared by every face that parses a command line (CLI, ``%%wasm``)."""

from __future__ import annotations

import argparse

from .sources import LANGS
from .worker import ISOLATIONS


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--invoke``, ``--lang``, the limits (``--fuel`` ...) and the grants (``--dir`` ...)."""
    parser.add_argument(
        "--invoke",
        nargs="+",
        metavar=("NAME", "ARG"),
        help="call this export with these arguments (default: WASI _start)",
    )
    parser.add_argument(
        "--lang", choices=LANGS, help="language of the source (default: by suffix or content)"
    )
    parser.add_argument(
        "--fuel", help="instruction budget, e.g. 1e8; none: no limit, the clock applies"
    )
    parser.add_argument("--memory", help="linear memory limit, e.g. 64MiB or 16pages")
    parser.add_argument("--timeout", help="wall-clock limit, e.g. 2s or 500ms")
    parser.add_argument("--output", help="bytes of stdout and of stderr kept, e.g. 64KiB")
    parser.add_argument("--dir-quota", help="bytes the read-write grants may grow by, e.g. 100MiB")
    parser.add_argument(
        "--dir",
        dest="dirs",
        action="append",
        default=[],
        metavar="HOST[:GUEST][:ro|rw]",
        help="grant a directory (read-only unless :rw); repeatable",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="grant an environment variable; repeatable",
    )
    parser.add_argument(
        "--arg", dest="argv", action="append", default=[], help="a WASI argv entry; repeatable"
    )
    parser.add_argument("--stdin", metavar="TEXT", help="text for the guest's standard input")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="virtual clock and seeded randomness, so the run can be replayed",
    )
    parser.add_argument(
        "--kv",
        metavar="NAMESPACE[:ro]",
        help="grant the host key-value store, this namespace of it (shared by the runs "
        "granted it; read-only with :ro)",
    )
    parser.add_argument(
        "--kv-quota", metavar="SIZE", help="bytes the --kv namespace may hold (default 1MiB)"
    )
    parser.add_argument(
        "--host-log", action="store_true", help="grant the host's structured log function"
    )
    parser.add_argument(
        "--require-signed-by",
        action="append",
        default=[],
        metavar="VKEY",
        help="run only a binary signed as a whole by this signer verifier key "
        "(wasm-sandbox keys --json: signer_verifier_key); repeatable: any of them",
    )
    parser.add_argument(
        "--trust",
        metavar="FILE",
        help="trust file: signer levels and the operator's maximums, within which a trusted "
        "signer's manifest widens the grants (default: trust.toml in the home, if any)",
    )
    parser.add_argument(
        "--isolation",
        choices=ISOLATIONS,
        help="run the guest and its compilation on a thread of this process, or in a "
        "worker process killed at the deadline (default: thread for the CLI, process in "
        "Jupyter)",
    )
