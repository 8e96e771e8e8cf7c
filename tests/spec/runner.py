"""The official WebAssembly spec tests through `Sandbox.run`, one fresh instance per assertion.

    python -m tests.spec.runner [FILE.wast ...]     # prints the tally of each file

Each ``.wast`` is converted by ``wasm-tools json-from-wast``; every assertion becomes one
sealed and logged run of the module it names. What a run cannot express is skipped with a
reason (`Tally.skipped`): modules that import (the ``spectest`` module or a registered
one), exported globals, state an earlier call left behind (each run is a new instance),
signatures the host refuses at the call boundary (`wasm_sandbox.call`).
"""

from __future__ import annotations

import collections
import json
import math
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wasm_sandbox import CompileError, InvocationError, Limits, Sandbox, instrument
from wasm_sandbox.binary import interface
from wasm_sandbox.outcome import Outcome

SPEC = Path(__file__).resolve().parents[1] / "testdata" / "spec"
WASM_TOOLS = str(Path(sys.executable).with_name("wasm-tools"))
LIMITS = Limits(fuel=1_000_000_000, timeout=10.0)
STATEFUL = "needs state an earlier call left (each run is a new instance)"
FLOATS = {"f32": ("<I", "<f"), "f64": ("<Q", "<d")}


class Skip(Exception):
    """An assertion the runner cannot express; the message is the reason."""


@dataclass
class Tally:
    """What happened to one file's assertions."""

    passed: collections.Counter[str] = field(default_factory=collections.Counter)
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        reasons = ", ".join(f"{why}: {n}" for why, n in sorted(self.skipped.items()))
        return (
            f"{name}: passed {sum(self.passed.values())} {dict(sorted(self.passed.items()))}, "
            f"skipped {sum(self.skipped.values())} ({reasons}), failed {len(self.failures)}"
        )


@dataclass
class _Module:
    wasm: bytes
    imports: bool
    stateful: bool  # a table, memory or global an earlier call may have changed
    called: bool = False


def convert(wast: Path, out: Path) -> list[dict[str, Any]]:
    """The commands of ``wast`` (its modules written under ``out``)."""
    target = out / f"{wast.stem}.json"
    subprocess.run(
        [WASM_TOOLS, "json-from-wast", str(wast), "-o", str(target), "--wasm-dir", str(out)],
        check=True,
        capture_output=True,
    )
    commands: list[dict[str, Any]] = json.loads(target.read_text())["commands"]
    return commands


class Runner:
    """Runs one file's commands in order against one sandbox."""

    def __init__(self, sb: Sandbox, where: Path) -> None:
        self.sb, self.where = sb, where
        self.modules: dict[str | None, _Module] = {}
        self.tally = Tally()

    def run(self, commands: list[dict[str, Any]]) -> Tally:
        for command in commands:
            kind = command["type"]
            try:
                getattr(self, "_" + kind, self._unknown)(command)
            except Skip as why:
                self.tally.skipped[str(why)] += 1
            except AssertionError as failure:
                self.tally.failures.append(f"line {command['line']} {kind}: {failure}")
            else:
                if kind.startswith("assert_"):
                    self.tally.passed[kind] += 1
        return self.tally

    # -- commands ------------------------------------------------------------------------

    def _module(self, command: dict[str, Any]) -> None:
        wasm = (self.where / command["filename"]).read_bytes()
        module = _Module(wasm, bool(interface(wasm).imports), _has_state(wasm))
        self.modules[None] = module
        if "name" in command:
            self.modules[command["name"]] = module

    def _register(self, command: dict[str, Any]) -> None:
        pass  # modules that import from it are skipped: a run links no other module

    def _action(self, command: dict[str, Any]) -> None:
        self._invoke(command["action"])

    def _assert_return(self, command: dict[str, Any]) -> None:
        module = self._module_of(command["action"])
        after_calls = module.called and module.stateful
        outcome = self._invoke(command["action"])
        expected = command["expected"]
        ok = (
            outcome.status == "ok"
            and len(outcome.returns) == len(expected)
            and all(map(_matches, outcome.returns, expected))
        )
        if not ok and after_calls:
            raise Skip(STATEFUL)
        assert ok, f"{outcome.status} {outcome.message or ''}: {outcome.returns} for {expected}"

    def _assert_trap(self, command: dict[str, Any]) -> None:
        if "action" not in command:
            raise Skip("a start function's trap at instantiation")
        outcome = self._invoke(command["action"])
        assert outcome.status == "trap", f"{outcome.status} instead of a trap"

    def _assert_exhaustion(self, command: dict[str, Any]) -> None:
        outcome = self._invoke(command["action"])
        assert (outcome.status, outcome.trap) == ("trap", "stack_overflow"), outcome.message

    def _assert_exception(self, command: dict[str, Any]) -> None:
        outcome = self._invoke(command["action"])
        assert (outcome.status, outcome.trap) == ("trap", "uncaught_exception"), outcome.message

    def _assert_invalid(self, command: dict[str, Any]) -> None:
        self._refused(command)

    def _assert_malformed(self, command: dict[str, Any]) -> None:
        self._refused(command)

    def _assert_unlinkable(self, command: dict[str, Any]) -> None:
        wasm = (self.where / command["filename"]).read_bytes()
        functions = interface(wasm).functions
        invoke = next((name for name, (params, _) in functions.items() if not params), None)
        if invoke is None:
            raise Skip("an unlinkable module without an export to call")
        ex = self.sb.run(wasm, invoke=invoke, limits=LIMITS)
        assert ex.outcome.status == "error" and "import" in (ex.outcome.message or ""), ex.outcome

    def _unknown(self, command: dict[str, Any]) -> None:
        raise Skip(f"command {command['type']}")

    # -- helpers -------------------------------------------------------------------------

    def _refused(self, command: dict[str, Any]) -> None:
        path = self.where / command["filename"]
        text = command.get("module_type") == "text"
        source = path.read_text(errors="replace") if text else path.read_bytes()
        try:
            ex = self.sb.run(source, lang="wat" if text else "wasm", limits=LIMITS)
        except CompileError:
            return  # text that never became a module: nothing is logged
        assert isinstance(ex.error, CompileError), f"not refused: {ex.outcome.message}"

    def _module_of(self, action: dict[str, Any]) -> _Module:
        if action["type"] != "invoke":
            raise Skip("reads an exported global")
        module = self.modules.get(action.get("module"))
        if module is None:
            raise Skip("a module defined by a command the runner skips")
        if module.imports:
            raise Skip("imports (spectest or a registered module)")
        return module

    def _invoke(self, action: dict[str, Any]) -> Outcome:
        module = self._module_of(action)
        module.called = True
        args = [_arg(a) for a in action["args"]]
        ex = self.sb.run(module.wasm, invoke=action["field"], args=args, limits=LIMITS)
        if isinstance(ex.error, InvocationError) and "in its signature" in str(ex.error):
            raise Skip("a signature the host refuses")
        assert ex.error is None, f"{type(ex.error).__name__}: {ex.error}"
        return ex.outcome


def _has_state(wasm: bytes) -> bool:
    """Whether the module has a table, a memory or a global (sections 4, 5, 6)."""
    return any(section[0] in (4, 5, 6) for section in instrument._Module(wasm).sections)


def _arg(value: dict[str, Any]) -> Any:
    kind, text = value["type"], value.get("value")
    if kind in ("i32", "i64"):
        return int(text)
    if kind in FLOATS:
        bits, fmt = FLOATS[kind]
        return struct.unpack(fmt, struct.pack(bits, int(text)))[0]
    if kind in ("externref", "funcref"):
        return None if text == "null" else int(text)
    raise Skip(f"a {kind} argument")


def _matches(got: Any, want: dict[str, Any]) -> bool:
    kind, text = want["type"], want.get("value")
    if kind == "either":
        return any(_matches(got, alt) for alt in want["values"])
    if kind in ("i32", "i64"):
        bits = 32 if kind == "i32" else 64
        return isinstance(got, int) and (got - int(text)) % (1 << bits) == 0
    if kind in FLOATS:
        if str(text).startswith("nan:"):
            return isinstance(got, float) and math.isnan(got)
        bits, fmt = FLOATS[kind]
        expected = struct.unpack(fmt, struct.pack(bits, int(text)))[0]
        if math.isnan(expected):
            return math.isnan(got)
        return struct.pack(fmt, got) == struct.pack(fmt, expected)
    if kind == "refnull":  # any null reference
        return got == "null"
    if kind == "externref":
        return got == ("null" if text == "null" else f"ref.extern {text}")
    if kind == "funcref":
        return got == ("null" if text == "null" else "ref.func")
    raise Skip(f"a {kind} result")


def run_file(sb: Sandbox, wast: Path) -> Tally:
    """Every command of one ``.wast`` file through ``sb``."""
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        return Runner(sb, where).run(convert(wast, where))


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted(SPEC.glob("*.wast"))
    failed = 0
    with tempfile.TemporaryDirectory() as home, Sandbox(home) as sb:
        for wast in files:
            tally = run_file(sb, wast)
            print(tally.line(wast.stem))
            for failure in tally.failures[:5]:
                print("   ", failure)
            failed += len(tally.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
