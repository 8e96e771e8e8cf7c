"""Components as guests through every face: the CLI, the Python API, batch runs, REST and a
``%%wasm`` cell in a real kernel; fuel, timeout, WASI 0.2 grants, sealing and verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wasm_sandbox import InvocationError, Limits, Outcome, Sandbox
from wasm_sandbox.sources import disassemble


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WASM_SANDBOX_HOME": str(home)}
    cmd = [sys.executable, "-m", "wasm_sandbox.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_cli_invokes_add_and_prints_its_return(home, components, tmp_path):
    calc = tmp_path / "calc.wasm"
    calc.write_bytes(components["calc"].read_bytes())
    done = cli(home, "run", str(calc), "--invoke", "add", "2", "3", "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["status"] == "ok" and printed["returns"] == [5]
    human = cli(home, "run", str(calc), "--invoke", "greet", '"bob"')
    assert 'returns "hello, bob"' in human.stdout
    verified = cli(home, "verify", printed["id"], "--replay", "--json")
    assert json.loads(verified.stdout)["verified"] is True, verified.stdout


def test_bad_wave_is_one_invocation_error_line_and_exit_2(home, components):
    done = cli(home, "run", str(components["calc"]), "--invoke", "greet", "bob")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "wasm-sandbox: greet argument 1 (name: string): "
        "expected a string in \" quotes at column 1, found 'bob'"
    ]


# (export, arguments as Python values, the same in WAVE, return value, return in WAVE)
CALLS = [
    ("add", (2, 3), ("2", "3"), 5, "5"),
    ("greet", ("ann",), ('"ann"',), "hello, ann", '"hello, ann"'),
    (
        "mid",
        ({"x": 1, "y": 2}, {"x": 3, "y": 6}),
        ("{x: 1, y: 2}", "{x: 3, y: 6}"),
        {"x": 2, "y": 4},
        "{x: 2, y: 4}",
    ),
    ("find", ([5, 6, 7], 7), ("[5, 6, 7]", "7"), 2, "some(2)"),
    ("find", ([5], 7), ("[5]", "7"), None, "none"),
    ("div", (7, 2), ("7", "2"), {"ok": 3}, "ok(3)"),
    ("div", (7, 0), ("7", "0"), {"err": "division by zero"}, 'err("division by zero")'),
    ("hue", ("green",), ("green",), "blue", "blue"),
]


@pytest.mark.parametrize(("name", "values", "waves", "value", "shown"), CALLS)
def test_each_typed_export_with_python_values_and_wave(
    sandbox, components, name, values, waves, value, shown
):
    from wasm_sandbox.wave import Wave

    by_value = sandbox.run(components["calc"], invoke=name, args=values)
    by_wave = sandbox.run(components["calc"], invoke=name, args=[Wave(w) for w in waves])
    for ex in (by_value, by_wave):
        assert ex.outcome.status == "ok", ex.outcome.message
        assert ex.outcome.returns == (value,)
        assert ex.outcome.shown_returns() == [shown]
        assert sandbox.verify(ex.id, replay=True).checks["replay"] == "ok"
        sealed = Outcome.from_result(ex.outcome.result_payload())  # how a remote run shows
        assert sealed.returns == (value,) and sealed.shown_returns() == [shown]
    assert sandbox.decrypt(by_value.id).input["args"] == list(waves)  # sealed in WAVE


def test_out_of_fuel_and_timeout_on_a_component(sandbox, components):
    calc = components["calc"]
    starved = sandbox.run(calc, invoke="spin", args=(10**12,), limits=Limits.parse(fuel="1e5"))
    assert starved.outcome.status == "out_of_fuel"
    assert starved.outcome.fuel_used == 10**5
    slow = sandbox.run(calc, invoke="spin", args=(10**15,), limits=Limits.parse(timeout="200ms"))
    assert slow.outcome.status == "timeout" and slow.outcome.fuel_used > 0
    for ex in (starved, slow):
        assert sandbox.verify(ex.id).verified
    assert sandbox.verify_log().ok


def test_process_isolation_and_the_compiled_cache(home, components):
    with Sandbox(home=home, isolation="process") as sb:
        first = sb.run(components["calc"], invoke="greet", args=("x",))
        slow = sb.run(
            components["calc"], invoke="spin", args=(10**15,), limits=Limits.parse(timeout="0.2s")
        )
    assert first.outcome.returns == ("hello, x",)
    assert slow.outcome.status == "timeout"
    with Sandbox(home=home) as sb:  # a new process's engine: compiled code from the disk
        again = sb.run(components["calc"], invoke="add", args=(1, 1))
    assert again.outcome.cache == "disk" and again.outcome.returns == (2,)


def test_a_component_that_cannot_start_is_a_logged_error(sandbox, components):
    for invoke, args in [(None, ()), ("nope", ()), ("add", (1,)), ("mid", (1, 2))]:
        ex = sandbox.run(components["calc"], invoke=invoke, args=args)
        assert ex.outcome.status == "error"
        assert isinstance(ex.error, InvocationError), ex.error


def test_component_wat_is_detected_too(sandbox, components):
    text = disassemble(components["calc"].read_bytes())
    assert text is not None and text.startswith("(component")
    ex = sandbox.run(text, invoke="add", args=(40, 2))
    assert ex.outcome.returns == (42,) and ex.lang == "wat"
    assert "export add: func(a: u32, b: u32) -> u32;" in ex.outcome.world


def test_batch_runs_of_a_component(sandbox, components):
    batch = sandbox.map(components["calc"], [(1, 2), (3, 4)], invoke="add", progress=False)
    assert [ex.outcome.returns for ex in batch] == [(3,), (7,)]


def test_wasi_02_is_deny_by_default(sandbox, components):
    wasi = components["wasi"]
    shown = {
        name: sandbox.run(wasi, invoke=name).outcome
        for name in ("args", "env", "preopens", "hello")
    }
    assert shown["args"].returns == (["main.wasm"],)
    assert shown["env"].returns == ([],)
    assert shown["preopens"].returns == (0,)
    assert shown["hello"].returns == (True,) and shown["hello"].stdout == "hello from p2\n"


def test_wasi_02_grants_and_the_output_limit(sandbox, components, tmp_path):
    from wasm_sandbox import Grants

    wasi = components["wasi"]
    grants = Grants.parse(argv=["a1"], env=["K=V"], dirs=[f"{tmp_path}:/data:ro"])
    seen = {
        name: sandbox.run(wasi, invoke=name, grants=grants).outcome.returns[0]
        for name in ("args", "env", "preopens")
    }
    assert seen == {"args": ["main.wasm", "a1"], "env": [("K", "V")], "preopens": 1}
    cut = sandbox.run(wasi, invoke="hello", limits=Limits.parse(output="5"))
    assert cut.outcome.stdout == "hello" and cut.outcome.output_truncated
    random = sandbox.run(wasi, invoke="rand")
    assert random.outcome.status == "ok" and not random.outcome.deterministic


def test_rest_post_executions_with_a_component(tmp_path, components):
    import base64

    from tests.integration.test_server_harness import start_server

    server = start_server(tmp_path, tmp_path / "home", max_timeout="1s", max_fuel="1000000000")
    try:
        wasm_b64 = base64.b64encode(components["calc"].read_bytes()).decode()
        body = {"wasm_b64": wasm_b64, "invoke": "mid", "args": ["{x: 1, y: 2}", "{x: 3, y: 4}"]}
        answer = server.post("executions", body)
        assert answer.status_code == 201, answer.text
        assert answer.json()["returns"] == [{"x": 2, "y": 3}]
        body = {"wasm_b64": wasm_b64, "invoke": "spin", "args": [10**15]}
        timed = {**body, "limits": {"timeout": "100ms"}}
        assert server.post("executions", timed).json()["status"] == "timeout"
        starved = {**body, "limits": {"fuel": "1e5"}}
        assert server.post("executions", starved).json()["status"] == "out_of_fuel"
    finally:
        server.stop()


def test_a_wasm_cell_in_a_real_kernel_shows_the_world_and_the_typed_result(tmp_path, components):
    from tests.integration.test_kernel import WIDGET_VIEW, Kernel

    text = disassemble(components["calc"].read_bytes())
    env = {**os.environ, "WASM_SANDBOX_HOME": str(tmp_path / "home")}
    kernel = Kernel(env, cwd=str(tmp_path))
    try:
        kernel.run("%load_ext wasm_sandbox")
        cell = kernel.run(f"%%wasm --invoke div 7 0 --out _ex\n{text}")
        facts = kernel.value("_ex.to_json()")
        assert facts["status"] == "ok" and facts["returns"] == [{"err": "division by zero"}]
        widget = kernel.text(cell.card[WIDGET_VIEW]["model_id"])
        for shown in (widget, cell.static["text/html"]):
            assert (
                "err(&quot;division by zero&quot;)" in shown or 'err("division by zero")' in shown
            )
            assert "WIT world" in shown and "div: func(a: u32, b: u32)" in shown
        record = kernel.run("%wasm_verify")
        assert "verified" in json.dumps(record.displays).lower()
    finally:
        kernel.close()
