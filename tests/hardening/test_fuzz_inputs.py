"""Input fuzzing: option parsers and the record decoder give clear errors, never crashes."""

import contextlib
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wasm_sandbox import SandboxError, record
from wasm_sandbox.cli import main
from wasm_sandbox.errors import HelpRequested, UsageProblem
from wasm_sandbox.jupyter.command import (
    parse_log,
    parse_run,
    parse_verify,
)
from wasm_sandbox.limits import Grants, Limits

OPTIONS = [
    "--invoke",
    "--fuel",
    "--memory",
    "--timeout",
    "--output",
    "--dir",
    "--env",
    "--arg",
    "--stdin",
    "--lang",
    "--json",
    "--deterministic",
    "--recipient",
    "--all",
    "--replay",
    "-n",
    "--limit",
    "--home",
    "--name",
    "--out",
    "--quiet",
    "--show",
    "--file",
    "--module",
    "--help",
]
WORDS = st.one_of(
    st.sampled_from(OPTIONS),
    st.text(max_size=12),
    st.sampled_from(
        [
            "1e7",
            "64MiB",
            "500ms",
            "-1",
            "0",
            "nan",
            "a:b:c:ro",
            "K=V",
            "fact",
            "last",
            "#0",
            "c",
            "wat",
            "wasm",
        ]
    ),
)
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    command=st.sampled_from(["run", "verify", "log", "checkpoint", "proof", "keys", "decrypt"]),
    words=st.lists(WORDS, max_size=6),
)
def test_cli_parsing_never_tracebacks(tmp_path, command, words):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([command, *words, "--home", str(tmp_path / "home")])
        except SystemExit as exc:  # argparse: usage errors and --help
            code = exc.code
    assert code in (0, 1, 2), (command, words, err.getvalue())
    assert "Traceback" not in err.getvalue()


@SETTINGS
@given(line=st.lists(WORDS, max_size=8).map(" ".join), cell=st.none() | st.text(max_size=30))
def test_magic_option_parsing_raises_only_usage_problems(line, cell):
    for parse in (
        lambda: parse_run(line, cell),
        lambda: parse_verify(line),
        lambda: parse_log(line),
    ):
        with contextlib.suppress(UsageProblem, HelpRequested, SandboxError):
            parse()


@SETTINGS
@given(
    values=st.dictionaries(
        st.sampled_from(["fuel", "memory", "timeout", "output"]),
        st.text(max_size=10) | st.integers() | st.floats(),
    )
)
def test_limit_parsing_raises_only_limits_errors(values):
    try:
        limits = Limits.parse(**values)
    except SandboxError:
        return
    assert limits.fuel >= 0 and limits.timeout > 0


@SETTINGS
@given(
    dirs=st.lists(st.text(max_size=12), max_size=3), env=st.lists(st.text(max_size=8), max_size=3)
)
def test_grant_parsing_raises_only_sandbox_errors(dirs, env):
    with contextlib.suppress(SandboxError):
        Grants.parse(dirs=dirs, env=env).to_payload()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@SETTINGS
@given(data=st.binary(max_size=300) | JSONISH.map(lambda v: json.dumps(v).encode()))
def test_record_decoder_raises_only_envelope_errors(data):
    with contextlib.suppress(SandboxError):
        record.decode(data)


@pytest.fixture(scope="module")
def real_record():
    import tempfile

    from tests import programs
    from wasm_sandbox import Sandbox

    with tempfile.TemporaryDirectory() as home, Sandbox(home) as sb:
        yield record.encode(sb.run(programs.ADD, invoke="add", args=[1, 2]).record)


@SETTINGS
@given(position=st.integers(min_value=0), value=st.integers(0, 255))
def test_a_mutated_real_record_decodes_or_fails_cleanly(real_record, position, value):
    data = bytearray(real_record)
    data[position % len(data)] = value
    try:
        decoded = record.decode(bytes(data))
    except SandboxError:
        return
    assert record.encode(decoded) == bytes(data)
