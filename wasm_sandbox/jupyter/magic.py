"""``%%wasm``, ``%wasm``, ``%wasm_verify`` and ``%wasm_log``: parse, dispatch, show.

The magics only parse (`command`), read settings (`settings`) and show (`view`, `html`,
`teach`); every run goes through `Sandbox.run`. Errors reach the notebook as one
``UsageError`` (a compile error with its source line and a caret, numbered as the editor
numbers the cell: the ``%%wasm`` line is line 1), unless
``%config WasmSandbox.full_tracebacks = True``. A run that failed after its bytes existed
(a module that does not validate, a missing export) is logged, and shown only as that error.
A limit hit is a result, shown on the card.

>>> %load_ext wasm_sandbox                                              # doctest: +SKIP
>>> %%wasm --invoke add 1 2
... (module (func (export "add") (param i32 i32) (result i32)
...   (i32.add (local.get 0) (local.get 1))))
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.display import display

from ..errors import CompileError, HelpRequested, RunFailed, SandboxError, UsageProblem
from . import command, html, teach, view
from .settings import WasmSandbox

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..engine import Compiled
    from ..run_options import RunOptions
    from ..sandbox import Sandbox


#: Records read per step when `%wasm_log --face` looks back through the log.
_PAGE = 200


@magics_class
class WasmMagics(Magics):
    """The magics of ``%load_ext wasm_sandbox``; their settings are ``self.settings``."""

    shell: InteractiveShell  # always given: `load_ipython_extension` passes the kernel's

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.settings = WasmSandbox(parent=shell)

    @line_cell_magic
    def wasm(self, line: str, cell: str | None = None) -> None:
        with self._errors():
            cmd = command.parse_run(line, cell)
            try:
                self._run(cmd)
            except (CompileError, RunFailed) as exc:
                raise exc if cmd.cell is None else _numbered_as_in_the_cell(exc) from None

    @line_magic
    def wasm_verify(self, line: str) -> None:
        with self._errors():
            cmd = command.parse_verify(line)
            sb = self.settings.sandbox()
            report = sb.verify(sb.resolve(cmd.ref), replay=cmd.replay)
            display(html.verification(report), raw=True)

    @line_magic
    def wasm_log(self, line: str) -> None:
        with self._errors():
            cmd = command.parse_log(line)
            display(html.log(_log_rows(self.settings.sandbox(), cmd)), raw=True)

    def _run(self, cmd: command.RunCommand) -> None:
        settings = self.settings
        sb, options = settings.sandbox(), settings.run_options(cmd)
        if cmd.server is not None:
            return self._run_on_server(sb, cmd, options)
        source = self._source(sb, cmd)
        if source is None:
            return
        shown = view.for_mode(settings.display, cmd.quiet, sb, options.limits, _title(cmd))
        shown.show()
        try:
            execution = sb.run(source, options, progress=shown.progress, status=shown.status)
        except SandboxError:  # nothing was logged: the error says it all
            shown.discard()
            raise
        except BaseException as exc:  # KeyboardInterrupt outside the guest, or a bug
            shown.abandon(exc)
            raise
        self._bind(cmd.out, execution)
        if execution.error is not None:  # logged, but it could not start: the error says it
            shown.discard()
            raise RunFailed(execution) from execution.error
        shown.finish(execution)

    def _run_on_server(self, sb: Sandbox, cmd: command.RunCommand, options: RunOptions) -> None:
        """``--server URL``: the server runs and logs it; the card shows its record."""
        from ..remote import Remote
        from . import remote_run

        assert cmd.server is not None
        program = sb.load(_text_or_path(cmd), cmd.lang, status=_status)
        with Remote(cmd.server, cmd.token) as api:
            done = remote_run.run(api, program, options, cmd.limits)
        if not cmd.quiet:
            shown = remote_run.bundle(done, _title(cmd))
            display(shown, raw=True, metadata=done.metadata())
        self._bind(cmd.out, done.execution)

    def _source(self, sb: Sandbox, cmd: command.RunCommand) -> str | Path | Compiled | None:
        """What to hand to `Sandbox.run`; compiles first only for --name, --show, --module.
        None when --name bound a module that has nothing to run."""
        if cmd.module:
            compiled = self._bound(cmd.module)
        elif cmd.name or cmd.show:
            compiled = sb.compile(_text_or_path(cmd), cmd.lang, status=_status)[1]
        else:
            return _text_or_path(cmd)
        for what in cmd.show:
            display(teach.bundle(what, compiled.wasm, compiled.module), raw=True)
        if cmd.name:
            self._bind(cmd.name, compiled)
            if cmd.invoke is None and "_start" not in compiled.functions:
                print(
                    f"{cmd.name}: compiled module bound; run it with "
                    f"%wasm --module {cmd.name} --invoke NAME [ARGS...]"
                )
                return None
        # the text again (both compiles are cached), so that its source is sealed with the run
        return compiled if cmd.module else _text_or_path(cmd)

    def _bound(self, name: str) -> Compiled:
        from ..engine import Compiled

        value = self.shell.user_ns.get(name)
        if not isinstance(value, Compiled):
            kind = "not defined" if value is None else f"a {type(value).__name__}"
            raise UsageProblem(
                f"--module {name}: {name} is {kind}, not a compiled module "
                f"(bind one with %%wasm --name {name})"
            )
        return value

    def _bind(self, name: str | None, value: Any) -> None:
        if name and value is not None:
            self.shell.user_ns[name] = value

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Bad usage and sandbox errors become one `UsageError`; help text is printed."""
        try:
            yield
        except HelpRequested as help_text:
            print(help_text)
        except SandboxError as exc:
            if self.settings.full_tracebacks:
                raise
            raise UsageError(message(exc)) from None


def message(exc: BaseException) -> str:
    """One line for the user; a compile error adds its source line and a caret, a run that
    was logged although it could not start says where."""
    logged = exc.execution if isinstance(exc, RunFailed) else None
    if logged is not None and logged.error is not None:
        exc = logged.error
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    text = lines[0]
    if logged is not None:
        text += f" (run logged as #{logged.leaf_index})"
    if isinstance(exc, CompileError) and exc.source_line is not None and exc.line:
        gutter = f"{exc.line:>4} | "
        caret = " " * (len(gutter) - 2) + "| " + " " * max((exc.column or 1) - 1, 0) + "^"
        text += f"\n{gutter}{exc.source_line.expandtabs(1)}\n{caret}"
    return text


def _numbered_as_in_the_cell(exc: CompileError | RunFailed) -> CompileError | RunFailed:
    """The error with the line number the editor shows: the ``%%wasm`` line is line 1, so
    line N of the body is line N + 1 of the cell."""
    if isinstance(exc, RunFailed):
        error = exc.execution.error
        if not isinstance(error, CompileError):
            return exc
        moved_run = RunFailed(replace(exc.execution, error=_numbered_as_in_the_cell(error)))
        moved_run.__cause__ = exc.__cause__
        return moved_run
    if not exc.line:
        return exc
    moved = copy.copy(exc)  # keeps column and source line
    moved.args = (re.sub(rf"\bline {exc.line}\b", f"line {exc.line + 1}", str(exc), count=1),)
    moved.line = exc.line + 1
    return moved


_CELL_MAGIC_LINE = re.compile(r"%%wasm(\s|$)")


def _empty_cell_body(lines: list[str]) -> list[str]:
    """``%%wasm --help`` alone in a cell: IPython refuses a cell magic with an empty body
    before calling it, so give it a blank one (the magic treats it as no body)."""
    if lines and _CELL_MAGIC_LINE.match(lines[0]) and not "".join(lines[1:]).strip():
        return [lines[0].rstrip("\n") + "\n", "\n"]
    return lines


def _text_or_path(cmd: command.RunCommand) -> str | Path:
    return cmd.cell if cmd.cell is not None else Path(str(cmd.file)).expanduser()


def _title(cmd: command.RunCommand) -> str:
    what = cmd.module or (Path(cmd.file).name if cmd.file else "cell")
    call = f"{cmd.invoke}({', '.join(cmd.args)})" if cmd.invoke else "_start"
    return f"{what}: {call}"


def _status(note: str) -> None:
    print(f"wasm-sandbox: {note}", flush=True)


def _usage(prog: str, summary: str) -> str:
    return f"{summary}\n\n{command.usage(prog)}"


WasmMagics.wasm.__doc__ = _usage(
    "%%wasm",
    """Run WebAssembly under hard limits; seal the run and append it to the log.

    %%wasm [options]        the cell is WAT (or C with --lang c, Python with --lang python)
    %wasm PATH [options]    a .wasm, .wat, .c or .py file
    %wasm --module VAR --invoke NAME [ARGS...]   a module bound earlier with --name VAR

Python values go in with {expr}: %wasm prog.wasm --invoke fact {n}. Defaults of every
option: %config WasmSandbox.""",
)
WasmMagics.wasm_verify.__doc__ = _usage("%wasm_verify", "Verify a logged run (default: last).")
WasmMagics.wasm_log.__doc__ = _usage("%wasm_log", "The audit trail, newest first.")


def _log_rows(sb: Sandbox, cmd: command.LogCommand) -> list[dict[str, Any]]:
    """The newest ``cmd.limit`` records, of ``cmd.face`` only when it is given (read back
    through the log a page at a time until enough are found)."""
    if cmd.face is None:
        return sb.log(limit=cmd.limit)
    found: list[dict[str, Any]] = []
    before = sb.ledger.size
    while before > 0 and len(found) < cmd.limit:
        page = sb.log(limit=_PAGE, before=before)
        found += [r for r in page if r.get("face", {}).get("name") == cmd.face]
        before -= _PAGE
    return found[: cmd.limit]


def _execution_bundle(execution: Any) -> dict[str, str]:
    """The static card of an `Execution` (IPython's mime-bundle printer)."""
    return html.mimebundle(execution)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and list ``WasmSandbox`` in ``%config``."""
    magics = WasmMagics(ipython)
    ipython.register_magics(magics)
    # An `Execution` shown as a cell's value gets its static card. Registered here, by
    # name, so the core knows no face and `%load_ext` imports no wasmtime.
    formatter = ipython.display_formatter.mimebundle_formatter
    formatter.for_type_by_name("wasm_sandbox.execution", "Execution", _execution_bundle)
    cleanup = ipython.input_transformers_cleanup
    cleanup[:] = [t for t in cleanup if getattr(t, "__name__", "") != _empty_cell_body.__name__]
    cleanup.append(_empty_cell_body)
    ipython.configurables[:] = [
        c for c in ipython.configurables if not isinstance(c, WasmSandbox)
    ] + [magics.settings]
