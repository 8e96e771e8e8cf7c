"""The MCP face's operator policy and source reading (`wasm_sandbox.mcp_server`); the server
itself is driven by the SDK's client in tests/integration/test_mcp.py."""

from __future__ import annotations

import base64

import pytest

pytest.importorskip("mcp")

from wasm_sandbox.errors import CompileError, GrantError, LimitsError, PolicyError
from wasm_sandbox.limits import DirGrant, Limits
from wasm_sandbox.mcp_server import Operator, program

OPERATOR = Operator(maximum=Limits.parse(fuel="1e6", timeout="2s", memory="16MiB"))


def test_an_agent_gets_the_defaults_within_the_maximums_and_may_ask_for_less():
    assert OPERATOR.limits({}) == Limits().capped(OPERATOR.maximum)
    asked = OPERATOR.limits({"fuel": "1e5", "timeout": "500ms", "memory": "1MiB"})
    assert (asked.fuel, asked.timeout, asked.memory) == (100_000, 0.5, 1 << 20)
    assert OPERATOR.limits({"timeout": "2s"}).timeout == 2.0  # the maximum itself is fine


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        ({"fuel": "2e6"}, r"limits.fuel: '2e6' is above the operator's maximum \(1e\+06\)"),
        ({"fuel": "none"}, "limits.fuel: 'none' is above"),
        ({"timeout": "3s"}, r"limits.timeout: '3s' is above the operator's maximum \(2 s\)"),
        ({"memory": "1GiB"}, "limits.memory: '1GiB' is above"),
        ({"max_stdin": "1"}, "limits.max_stdin: unknown"),
        ({"fuel": "lots"}, "fuel: cannot read 'lots'"),
    ],
)
def test_limits_above_the_operators_maximums_are_refused(asked, message):
    with pytest.raises(LimitsError, match=message):
        OPERATOR.limits(asked)


def test_only_the_allowed_languages_run():
    operator = Operator(langs=("wat",))
    assert operator.lang("wat") == "wat"
    with pytest.raises(PolicyError, match=r"'c' is not allowed here \(allowed: wat\)"):
        operator.lang("c")


def test_nothing_of_the_host_unless_the_operator_offers_it(tmp_path):
    with pytest.raises(GrantError, match=r"'/data' is not offered \(offered: none\)"):
        Operator().grants(["/data"])
    offered = Operator(dirs=(DirGrant(str(tmp_path), "/data"),))
    assert offered.grants(["/data", "/data"]).dirs == (DirGrant(str(tmp_path), "/data"),)
    assert offered.grants([]).dirs == ()


def test_source_is_text_or_base64_wasm_and_never_a_path(tmp_path):
    secret = tmp_path / "secret.wat"
    secret.write_text("(module)")
    assert program(str(secret), None) == (str(secret).encode(), "wat")  # text, not the file
    wasm = b"\0asm\1\0\0\0"
    encoded = base64.b64encode(wasm).decode()
    assert program(encoded, None) == (wasm, "wasm")
    assert program(encoded, "wasm") == (wasm, "wasm")
    assert program("int main(void) { return 0; }", None)[1] == "c"
    with pytest.raises(CompileError, match="not base64"):
        program("(module)", "wasm")


def test_the_command_line_sets_the_operator_and_refuses_an_unknown_language(tmp_path):
    from wasm_sandbox import cli
    from wasm_sandbox.errors import UsageProblem
    from wasm_sandbox.mcp_cli import operator_of

    line = ["mcp", "--max-timeout", "2s", "--allow-lang", "wat", "--dir", f"{tmp_path}:/data:ro"]
    operator = operator_of(cli._parser().parse_args(line))
    assert operator.maximum.timeout == 2.0 and operator.langs == ("wat",)
    assert operator.dirs == (DirGrant(str(tmp_path), "/data"),)
    assert operator_of(cli._parser().parse_args(["mcp"])) == Operator()  # all languages, no dirs
    with pytest.raises(UsageProblem, match="--allow-lang: unknown 'rust'"):
        operator_of(cli._parser().parse_args(["mcp", "--allow-lang", "rust"]))
