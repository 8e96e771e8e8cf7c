"""The magics in an in-process IPython shell (``get_ipython().run_cell(...)``).

The widget card and a real kernel are tested in tests/integration/test_kernel.py; here the
display mode is mostly ``text`` so each run publishes one static bundle.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import programs
from tests.async_run import run_async
from wasm_sandbox import CompileError
from wasm_sandbox.jupyter.settings import WasmSandbox

IPython = pytest.importorskip("IPython")
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "wasm_sandbox")
    return shell


@pytest.fixture
def settings(ip, home):
    [found] = [c for c in ip.configurables if isinstance(c, WasmSandbox)]
    found.home, found.display, found.full_tracebacks = str(home), "text", False
    yield found
    found.close()


def run(ip, code):
    with capture_output() as cap:
        ip.run_cell(code)
    return cap


def html_of(cap) -> str:
    return "\n".join(o.data.get("text/html", "") for o in cap.outputs)


def test_load_ext_imports_nothing_heavy():
    code = (
        "import sys; from IPython.core.interactiveshell import InteractiveShell as S;"
        "S.instance().run_line_magic('load_ext', 'wasm_sandbox');"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'wasmtime', 'cryptography', 'ipywidgets', 'rfc8785'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_reload_keeps_one_configurable(ip, settings):
    ip.run_line_magic("reload_ext", "wasm_sandbox")
    found = [c for c in ip.configurables if isinstance(c, WasmSandbox)]
    assert len(found) == 1
    assert ip.magics_manager.registry["WasmMagics"].settings is found[0]


def test_run_shows_the_static_view_and_stores_the_execution(ip, settings):
    cap = run(ip, f"%%wasm --invoke add 1 2 --out ex\n{programs.ADD}")
    [shown] = cap.outputs
    ex = ip.user_ns["ex"]
    assert ex.outcome.returns == (3,)
    assert 'data-status="ok"' in shown.data["text/html"]
    assert ex.commitment in shown.data["text/html"] and ex.commitment in shown.data["text/plain"]


def test_python_values_are_interpolated(ip, settings):
    ip.user_ns["n"] = 20
    run(ip, f"%%wasm --invoke add {{n}} {{n + 2}} --out ex\n{programs.ADD}")
    assert ip.user_ns["ex"].outcome.returns == (42,)


def test_compile_error_is_one_usage_error_with_a_caret(ip, settings):
    # the editor numbers the %%wasm line 1, so the body's second line is the cell's line 3
    cap = run(ip, '%%wasm --invoke f\n(module\n  (func (export "f") (i32.nope)))')
    assert cap.stderr == (
        "UsageError: WAT line 3, column 23: unknown operator or unexpected token\n"
        '   3 |   (func (export "f") (i32.nope)))\n'
        "     |                       ^\n"
    )
    assert not cap.outputs


def test_a_file_keeps_its_own_line_numbers(ip, settings, tmp_path):
    path = tmp_path / "bad.wat"
    path.write_text('(module\n  (func (export "f") (i32.nope)))')
    cap = run(ip, f"%wasm {path} --invoke f")
    assert cap.stderr.startswith("UsageError: WAT line 2, column 23:")


def test_type_error_is_one_line_at_the_cell_line_and_the_run_is_logged(ip, settings):
    body = '(module\n  (func (export "f") (result i32)\n    (i32.add (i32.const 1) (f32.const 2))))'
    cap = run(ip, f"%%wasm --invoke f --out bad\n{body}")
    leaf = settings.sandbox().ledger.size - 1
    assert cap.stderr == (
        "UsageError: WAT line 4, column 6: type mismatch: expected i32, found f32"
        f" (run logged as #{leaf})\n"
        "   4 |     (i32.add (i32.const 1) (f32.const 2))))\n"
        "     |      ^\n"
    )
    assert not cap.outputs  # no card beside the error
    assert ip.user_ns["bad"].outcome.status == "error"
    assert settings.sandbox().verify(ip.user_ns["bad"].id).verified


def test_help_works_on_an_empty_cell(ip, settings):
    for cell in ("%%wasm --help", "%%wasm -h\n", "%%wasm --invoke f --help\n\n"):
        cap = run(ip, cell)
        assert cap.stdout.startswith("usage: %%wasm") and not cap.stderr, cell
    cap = run(ip, "%%wasm --invoke f")
    assert cap.stderr.startswith("UsageError: %%wasm: nothing to run; give a cell body")
    cap = run(ip, "%%wasmx --help")  # another magic's name: left to IPython
    assert "Cell magic `%%wasmx` not found" in cap.stderr


def test_fuel_none_is_accepted(ip, settings):
    run(ip, f"%%wasm --invoke spin --fuel none --timeout 200ms --out ex\n{programs.LOOP}")
    outcome = ip.user_ns["ex"].outcome
    assert outcome.status == "timeout" and outcome.fuel_limit == 2**53 - 1


def test_full_tracebacks_raise_the_original_error(ip, settings):
    settings.full_tracebacks = True
    with pytest.raises(CompileError):
        ip.run_cell_magic("wasm", "", "(module (func (i32.nope)))")


def test_help_is_printed(ip, settings):
    cap = run(ip, "%wasm --help")
    assert cap.stdout.startswith("usage: %wasm") and not cap.stderr


def test_magic_docstrings_carry_the_usage(ip):
    magic = ip.find_cell_magic("wasm")
    assert "--invoke NAME [ARG ...]" in magic.__doc__
    assert "--replay" in ip.find_line_magic("wasm_verify").__doc__


def test_failed_invocation_is_one_line_logged_and_reported(ip, settings):
    cap = run(ip, f"%%wasm --invoke nope --out bad\n{programs.ADD}")
    leaf = settings.sandbox().ledger.size - 1
    assert cap.stderr == (
        "UsageError: no exported function 'nope' (exported functions: add)"
        f" (run logged as #{leaf})\n"
    )
    assert not cap.outputs  # the error is the whole report: no card beside it
    assert ip.user_ns["bad"].leaf_index == leaf


def test_missing_directory_grant(ip, settings, tmp_path):
    cap = run(ip, f"%%wasm --dir {tmp_path / 'nope'}\n{programs.HELLO}")
    assert cap.stderr.startswith("UsageError: --dir: ") and "is not a directory" in cap.stderr


def test_name_binds_a_module_and_module_runs_it(ip, settings):
    cap = run(ip, f"%%wasm --name fact_mod\n{programs.FACT}")
    assert "%wasm --module fact_mod --invoke NAME" in cap.stdout and not cap.outputs
    run(ip, "%wasm --module fact_mod --invoke fact 5 --out ex")
    assert ip.user_ns["ex"].outcome.returns == (120,)


def test_module_must_be_a_compiled_module(ip, settings):
    ip.user_ns["not_a_module"] = 3
    cap = run(ip, "%wasm --module not_a_module --invoke f")
    assert "not_a_module is a int, not a compiled module" in cap.stderr


def test_name_with_start_runs_at_once(ip, settings):
    cap = run(ip, f"%%wasm --name hello_mod --out ex\n{programs.HELLO}")
    assert ip.user_ns["ex"].outcome.stdout == "hello, sandbox\n"
    assert "hello_mod" in ip.user_ns and len(cap.outputs) == 1


@pytest.mark.parametrize(
    ("what", "expected"),
    [("imports", "wasi_snapshot_preview1.fd_write"), ("hex", "section 10: code")],
)
def test_show_views_come_before_the_result(ip, settings, what, expected):
    cap = run(ip, f"%%wasm --show {what}\n{programs.HELLO}")
    teaching, result = cap.outputs
    assert (
        expected in teaching.data["text/plain"] and "wasm-sandbox: ok" in result.data["text/plain"]
    )


def test_grants_reach_the_guest(ip, settings, tmp_path, probe_wasm):
    path = tmp_path / "probe.wasm"
    path.write_bytes(probe_wasm)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f.txt").write_text("granted")
    run(ip, f"%wasm {path} --arg env --arg GREETING --env GREETING=hi --out ex")
    assert ip.user_ns["ex"].outcome.stdout.strip() == "hi"
    run(ip, f"%wasm {path} --arg echo --stdin 'piped in' --out ex")
    assert ip.user_ns["ex"].outcome.stdout == "piped in"
    run(ip, f"%wasm {path} --dir {tmp_path / 'data'}:/data --arg read --arg /data/f.txt --out ex")
    assert ip.user_ns["ex"].outcome.stdout == "granted"


def test_quiet_shows_nothing(ip, settings):
    cap = run(ip, f"%%wasm --invoke add 2 2 --quiet --out ex\n{programs.ADD}")
    assert not cap.outputs and not cap.stdout and ip.user_ns["ex"].outcome.returns == (4,)


def test_verify_and_log(ip, settings):
    run(ip, f"%%wasm --invoke add 2 2 --out ex\n{programs.ADD}")
    verified = run(ip, "%wasm_verify last").outputs[0].data
    assert verified["text/plain"].startswith(f"VERIFIED {ip.user_ns['ex'].id}")
    logged = run(ip, "%wasm_log -n 1").outputs[0].data
    assert f"#{ip.user_ns['ex'].leaf_index}" in logged["text/plain"]
    missing = run(ip, "%wasm_verify ffffffff")
    assert missing.stderr.startswith("UsageError: ") and "\n" not in missing.stderr.strip()


def test_card_mode_publishes_widget_and_static_view(ip, settings):
    settings.display = "both"
    cap = run(ip, f"%%wasm --invoke add 1 1 --out ex\n{programs.ADD}")
    first, final, static = cap.outputs
    assert first.transient["display_id"] == final.transient["display_id"] and final.update
    assert "application/vnd.jupyter.widget-view+json" in final.data
    assert ip.user_ns["ex"].commitment in static.data["text/html"]
    assert ip.user_ns["ex"].commitment in cap.stdout  # "both" also prints the text view


def test_recipient_setting_seals_to_another_key(ip, settings, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from wasm_sandbox.envelope import key_id

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "teacher.pem").write_bytes(pem)
    settings.recipient = str(tmp_path / "teacher.pem")
    try:
        run(ip, f"%%wasm --invoke add 1 1 --out ex\n{programs.ADD}")
    finally:
        settings.recipient = ""
    assert ip.user_ns["ex"].record["recipient"] == key_id(other)


def test_a_run_with_show_or_name_seals_the_cell_text(ip, settings):
    run(ip, f"%%wasm --show imports --name add_mod --invoke add 1 2 --out ex\n{programs.ADD}")
    kind, text = settings.sandbox().decrypt(ip.user_ns["ex"].id).shown_source()
    assert kind == "wat" and text == programs.ADD + "\n"  # the body as IPython passes it


def test_wasm_log_face_lists_what_an_agent_ran_through_mcp(ip, settings):
    mcp = pytest.importorskip("mcp")
    from wasm_sandbox.mcp_server import Operator, build

    async def agent_run() -> dict:
        server = build(settings.sandbox(), Operator())
        info = mcp.Implementation(name="an-agent", version="1")
        async with mcp.Client(server, client_info=info) as client:
            call = {"source": programs.ADD, "invoke": "add", "args": [1, 2]}
            ran = await client.call_tool("run", call)
            return ran.structured_content

    run(ip, f"%%wasm --invoke add 1 1 --out mine\n{programs.ADD}")
    agent = run_async(agent_run)
    run(ip, f"%%wasm --invoke add 2 2 --out later\n{programs.ADD}")
    listed = run(ip, "%wasm_log --face mcp").outputs[0].data["text/plain"].splitlines()
    assert listed[0] == "1 run(s), newest first"
    assert listed[2].startswith(f"#{agent['leaf_index']} ") and agent["id"][:12] in listed[2]
    everything = run(ip, "%wasm_log").outputs[0].data["text/plain"]
    assert everything.startswith("3 run(s)")
    assert settings.sandbox().record(agent["id"])["face"]["client"] == "an-agent"
