"""The option lines of the magics, parsed into frozen dataclasses.

Parsing only: nothing here runs anything, imports IPython or touches the sandbox.
Every problem is one `UsageProblem` whose message names the option at fault; ``-h`` /
``--help`` raise `HelpRequested` carrying the usage text.

>>> parse_run("--invoke add 1 2 --fuel 1e6", "(module ...)").invoke
'add'
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, fields
from typing import Any, NoReturn

from ..errors import HelpRequested, UsageProblem
from ..options import add_run_options

#: The run options that are limits, for ``Limits.parse``.
LIMIT_OPTIONS = ("fuel", "memory", "timeout", "output", "dir_quota")

SHOWS = ("wat", "hex", "imports")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def __init__(self, prog: str, description: str) -> None:
        super().__init__(prog=prog, description=description, add_help=False, allow_abbrev=False)
        self.add_argument("-h", "--help", action="store_true", help="show this help")

    def error(self, message: str) -> NoReturn:
        raise UsageProblem(f"{self.prog}: {message} (see {self.prog} --help)")

    def parse(self, line: str) -> argparse.Namespace:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageProblem(f"{self.prog}: cannot split the options: {exc}") from None
        ns = self.parse_args(words)
        if ns.help:
            raise HelpRequested(self.format_help())
        return ns


@dataclass(frozen=True)
class RunCommand:
    """What ``%%wasm`` / ``%wasm`` was asked to do. Limits are kept as typed (human units)."""

    cell: str | None = None
    file: str | None = None
    module: str | None = None
    lang: str | None = None
    invoke: str | None = None
    args: tuple[str, ...] = ()
    fuel: str | None = None
    memory: str | None = None
    timeout: str | None = None
    output: str | None = None
    dir_quota: str | None = None
    dirs: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()
    stdin: str | None = None
    deterministic: bool = False
    kv: str | None = None
    kv_quota: str | None = None
    host_log: bool = False
    isolation: str | None = None
    require_signed_by: tuple[str, ...] = ()
    trust: str | None = None
    name: str | None = None
    out: str | None = None
    quiet: bool = False
    show: tuple[str, ...] = ()
    server: str | None = None
    token: str | None = None

    @property
    def limits(self) -> dict[str, str | None]:
        """The limit options, for ``Limits.parse``."""
        return {k: getattr(self, k) for k in LIMIT_OPTIONS}


@dataclass(frozen=True)
class VerifyCommand:
    ref: str = "last"
    replay: bool = False


@dataclass(frozen=True)
class LogCommand:
    limit: int = 20
    face: str | None = None


def _run_parser(prog: str) -> _Parser:
    p = _Parser(prog, "Run WebAssembly under hard limits; seal the run and log it.")
    p.add_argument("file", nargs="?", metavar="PATH", help=".wasm, .wat or .c file to run")
    p.add_argument("--file", dest="file_opt", metavar="PATH", help="same as PATH")
    p.add_argument("--module", metavar="VAR", help="run a module bound earlier with --name VAR")
    add_run_options(p)
    p.add_argument("--name", metavar="VAR", help="bind the compiled module to VAR")
    p.add_argument("--out", metavar="VAR", help="store the Execution in VAR")
    p.add_argument("--quiet", action="store_true", help="show nothing (use with --out)")
    p.add_argument(
        "--show", action="append", default=[], choices=SHOWS, help="also show the module"
    )
    p.add_argument(
        "--server",
        metavar="URL",
        help="run on this wasm-sandbox server (a grader's) instead of here: the program "
        "travels sealed to the server's key and the server's log holds the run",
    )
    p.add_argument(
        "--token", help="the server's token (default: $JUPYTER_TOKEN, or Jupyter's runtime files)"
    )
    return p


def parse_run(line: str, cell: str | None = None) -> RunCommand:
    """Parse the line of ``%%wasm`` (``cell`` is the body) or of ``%wasm`` (``cell=None``)."""
    prog = "%wasm" if cell is None else "%%wasm"
    ns = _run_parser(prog).parse(line)
    if ns.file and ns.file_opt:
        raise UsageProblem(f"{prog}: give the file once, as PATH or as --file PATH")
    invoke = ns.invoke or [None]
    values: dict[str, Any] = {
        **{f.name: getattr(ns, f.name) for f in fields(RunCommand) if hasattr(ns, f.name)},
        "cell": cell if cell and cell.strip() else None,
        "file": ns.file or ns.file_opt,
        "invoke": invoke[0],
        "args": tuple(invoke[1:]),
    }
    lists = ("dirs", "env", "argv", "show", "require_signed_by")
    values.update({k: tuple(values[k]) for k in lists})
    command = RunCommand(**values)
    _check_run(prog, command)
    return command


def _check_run(prog: str, cmd: RunCommand) -> None:
    given = [what for what, v in (("a cell body", cmd.cell), ("a file", cmd.file)) if v]
    if cmd.module:
        given.append("--module")
    if len(given) > 1:
        raise UsageProblem(f"{prog}: {' and '.join(given)} given; run one program at a time")
    if not given:
        need = "a file (%wasm PATH)" if prog == "%wasm" else "a cell body"
        raise UsageProblem(f"{prog}: nothing to run; give {need}, --file PATH or --module VAR")
    conflicts = (
        (cmd.module and cmd.lang, "--module runs a compiled module; --lang does not apply"),
        (cmd.module and cmd.name, "--module VAR is already bound; --name binds a new module"),
        (cmd.quiet and cmd.show, "--quiet shows nothing, --show shows the module: pick one"),
        (cmd.name and cmd.name == cmd.out, "--name and --out need two different variables"),
        (
            cmd.lang == "python" and (cmd.name or cmd.show),
            "--name and --show take WebAssembly; Python code runs on the interpreter",
        ),
    )
    for clash, message in conflicts + _server_conflicts(cmd):
        if clash:
            raise UsageProblem(f"{prog}: {message}")
    for option in ("module", "name", "out"):
        value = getattr(cmd, option)
        if value is not None and not value.isidentifier():
            raise UsageProblem(f"{prog}: --{option} needs a Python variable name, got {value!r}")


def _server_conflicts(cmd: RunCommand) -> tuple[tuple[object, str], ...]:
    """What a server cannot be asked for: the host's files and environment stay here."""
    remote = cmd.server is not None
    return (
        (cmd.token and not remote, "--token goes with --server URL"),
        (remote and (cmd.dirs or cmd.env), "--server: a server grants no --dir or --env"),
        (remote and (cmd.module or cmd.name), "--server runs source, not a bound module"),
        (remote and cmd.isolation, "--server: the server decides where guests run"),
        (remote and cmd.require_signed_by, "--server: the server's operator sets the signers"),
        (remote and cmd.trust, "--server: the server's operator sets the trust file"),
        (remote and cmd.dir_quota, "--server: --dir-quota needs --dir, which a server lacks"),
    )


def _verify_parser(prog: str = "%wasm_verify") -> _Parser:
    p = _Parser(prog, "Verify a logged run: record, ciphertexts, inclusion, commitments.")
    p.add_argument("ref", nargs="?", default="last", help="record id, id prefix, last or #INDEX")
    p.add_argument("--replay", action="store_true", help="also re-run it deterministically")
    return p


def _log_parser(prog: str = "%wasm_log") -> _Parser:
    p = _Parser(prog, "The audit trail: logged runs, newest first.")
    p.add_argument("-n", "--limit", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--face", help="only runs whose record names this face (e.g. mcp: agents)")
    return p


def parse_verify(line: str) -> VerifyCommand:
    """``%wasm_verify [ID|last|#INDEX] [--replay]``."""
    ns = _verify_parser().parse(line)
    return VerifyCommand(ref=ns.ref, replay=ns.replay)


def parse_log(line: str) -> LogCommand:
    """``%wasm_log [-n N] [--face NAME]``."""
    ns = _log_parser().parse(line)
    if ns.limit < 1:
        raise UsageProblem(f"%wasm_log: -n must be at least 1, got {ns.limit}")
    return LogCommand(limit=ns.limit, face=ns.face)


def usage(prog: str) -> str:
    """The usage text of ``%%wasm``, ``%wasm``, ``%wasm_verify`` or ``%wasm_log``."""
    parsers = {"%wasm_verify": _verify_parser, "%wasm_log": _log_parser}
    return parsers.get(prog, _run_parser)(prog).format_help()
