"""Option lines of the magics (`command`), the `WasmSandbox` settings, and error messages."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from wasm_sandbox import CompileError, Limits
from wasm_sandbox.errors import HelpRequested, UsageProblem
from wasm_sandbox.jupyter import command
from wasm_sandbox.jupyter.command import parse_run
from wasm_sandbox.jupyter.magic import message
from wasm_sandbox.jupyter.settings import WasmSandbox
from wasm_sandbox.limits import UNLIMITED_FUEL

CELL = "(module)"


def test_run_options_are_parsed():
    cmd = parse_run(
        "--invoke add 1 -2 --fuel 1e6 --memory 1MiB --timeout 2s --output 1KiB "
        "--dir data:/data:ro --dir out:rw --env A=1 --arg=-v --stdin 'hi there' "
        "--deterministic --out ex --show wat --show imports",
        CELL,
    )
    assert (cmd.cell, cmd.invoke, cmd.args) == (CELL, "add", ("1", "-2"))
    assert cmd.limits == {
        "fuel": "1e6",
        "memory": "1MiB",
        "timeout": "2s",
        "output": "1KiB",
        "dir_quota": None,
    }
    assert cmd.dirs == ("data:/data:ro", "out:rw") and cmd.env == ("A=1",)
    assert cmd.argv == ("-v",) and cmd.stdin == "hi there" and cmd.deterministic
    assert cmd.out == "ex" and cmd.show == ("wat", "imports")


def test_line_magic_takes_a_path_or_file_option():
    assert parse_run("prog.wasm --invoke f").file == "prog.wasm"
    assert parse_run("--file prog.wasm").file == "prog.wasm"
    assert parse_run("--module m --invoke f 3").module == "m"


def test_empty_cell_with_file_runs_the_file():
    assert parse_run("--file prog.wasm", "\n  \n").file == "prog.wasm"


@pytest.mark.parametrize(
    ("line", "cell", "problem"),
    [
        ("--bogus", CELL, "unrecognized arguments: --bogus"),
        ("--fu 1", CELL, "unrecognized arguments: --fu"),  # no abbreviations
        ("--invoke", CELL, "--invoke: expected at least one argument"),
        ("--lang rust", CELL, "invalid choice: 'rust'"),
        ("--show everything", CELL, "invalid choice: 'everything'"),
        ("x.wasm", CELL, "a cell body and a file given"),
        ("x.wasm --file y.wasm", None, "give the file once"),
        ("", None, "nothing to run; give a file (%wasm PATH)"),
        ("", "  ", "nothing to run; give a cell body"),
        ("--module m", CELL, "a cell body and --module given"),
        ("--module m --lang c", None, "--lang does not apply"),
        ("--module m --name n", None, "--name binds a new module"),
        ("--quiet --show hex", CELL, "--quiet shows nothing"),
        ("--name v --out v", CELL, "two different variables"),
        ("--out 2x", CELL, "--out needs a Python variable name"),
        ("--stdin 'open", CELL, "cannot split the options"),
    ],
)
def test_bad_lines_are_one_line_problems(line, cell, problem):
    with pytest.raises(UsageProblem) as info:
        parse_run(line, cell)
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_problem_names_the_magic():
    with pytest.raises(UsageProblem, match=r"^%%wasm: .*\(see %%wasm --help\)$"):
        parse_run("--bogus", CELL)
    with pytest.raises(UsageProblem, match=r"^%wasm: "):
        parse_run("--bogus")


def test_help_is_requested_not_printed():
    with pytest.raises(HelpRequested) as info:
        parse_run("--help", CELL)
    assert "usage: %%wasm" in str(info.value) and "--invoke NAME [ARG ...]" in str(info.value)


def test_verify_and_log_lines():
    assert command.parse_verify("") == command.VerifyCommand("last", False)
    assert command.parse_verify("#3 --replay") == command.VerifyCommand("#3", True)
    assert command.parse_log("") == command.LogCommand(20)
    assert command.parse_log("-n 5").limit == 5
    assert command.parse_log("--face mcp -n 3") == command.LogCommand(3, "mcp")
    with pytest.raises(UsageProblem, match="at least 1"):
        command.parse_log("-n 0")
    with pytest.raises(UsageProblem, match="invalid int value"):
        command.parse_log("-n many")


def test_usage_of_each_magic():
    assert command.usage("%wasm_log").startswith("usage: %wasm_log [-h] [-n LIMIT]")
    assert "--replay" in command.usage("%wasm_verify")
    assert "--deterministic" in command.usage("%wasm")


# --- settings ---------------------------------------------------------------------------------


def test_settings_default_to_the_core_limits():
    assert WasmSandbox().limits() == Limits()


def test_run_options_override_settings():
    settings = WasmSandbox(fuel="1e8", timeout=30)
    limits = settings.limits(parse_run("--memory 16pages", CELL))
    assert (limits.fuel, limits.timeout, limits.memory) == (10**8, 30.0, 16 * 65536)
    assert settings.limits(parse_run("--fuel 5", CELL)).fuel == 5


def test_fuel_none_as_a_setting_and_as_an_option():
    settings = WasmSandbox(fuel="none")
    assert settings.limits().fuel == UNLIMITED_FUEL
    assert WasmSandbox().limits(parse_run("--fuel none", CELL)).fuel == UNLIMITED_FUEL


@pytest.mark.parametrize(
    ("name", "value"), [("fuel", "lots"), ("memory", "1 parsec"), ("timeout", "0s")]
)
def test_bad_setting_is_refused(name, value):
    settings = WasmSandbox()
    with pytest.raises(TraitError, match=name):
        setattr(settings, name, value)


def test_settings_feed_grants(tmp_path):
    settings = WasmSandbox(deterministic=True)
    grants = settings.grants(
        parse_run(f"--dir {tmp_path}:/data --env K=V --arg x --stdin hi", CELL)
    )
    assert grants.deterministic and grants.env == (("K", "V"),) and grants.argv == ("x",)
    assert grants.stdin == b"hi" and grants.dirs[0].guest == "/data"
    assert not grants.dirs[0].writable


def test_settings_are_configurable_from_a_config_file():
    from traitlets.config import Config

    config = Config()
    config.WasmSandbox.fuel = "1e6"
    config.WasmSandbox.display = "text"
    settings = WasmSandbox(config=config)
    assert settings.limits().fuel == 10**6 and settings.display == "text"


def test_every_setting_has_help():
    traits = WasmSandbox.class_traits(config=True)
    assert set(traits) >= {"fuel", "memory", "timeout", "home", "recipient", "display"}
    assert all(t.help for t in traits.values())


def test_home_defaults_to_the_environment(home):
    assert WasmSandbox().home == str(home)


def test_recipient_that_cannot_be_read(tmp_path):
    from wasm_sandbox import KeyStoreError

    with pytest.raises(KeyStoreError, match="cannot read"):
        WasmSandbox(recipient=str(tmp_path / "missing.pem")).recipient_key()


# --- messages ---------------------------------------------------------------------------------


def test_compile_error_message_has_the_line_and_a_caret():
    exc = CompileError("WAT line 2, column 5: oops", line=2, column=5, source_line="  (bad)")
    assert message(exc) == "WAT line 2, column 5: oops\n   2 |   (bad)\n     |     ^"


def test_other_errors_are_one_line():
    assert message(UsageProblem("first\nsecond")) == "first"
    assert message(CompileError("no position")) == "no position"


def test_dir_quota_is_an_option_and_a_setting():
    cmd = parse_run("--dir-quota 1MiB", "(module)")
    assert WasmSandbox(dir_quota="8MiB").limits(cmd).dir_quota == 1 << 20
    assert WasmSandbox(dir_quota="8MiB").limits().dir_quota == 8 << 20
    with pytest.raises(TraitError):
        WasmSandbox(dir_quota="lots")
