"""Signed modules through every face: ``wasm-sandbox sign``, ``--require-signed-by`` and its
three refusals on the command line, in ``%wasm`` and over REST; the record notes the signer
and the public grants, and ``verify`` checks both against what was sealed."""

import base64
import json
import subprocess
import sys

import pytest
import wasmtime

from tests import programs
from tests.integration.test_server_harness import start_server

IPython = pytest.importorskip("IPython")
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402


def cli(home, *args, check=None):
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *map(str, args), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


def signer_key(home):
    return json.loads(cli(home, "keys", "--json", check=0).stdout)["signer_verifier_key"]


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A home, its signer key, and add.wasm three ways: signed by it, unsigned, appended
    to after signing, and signed by another home."""
    root = tmp_path_factory.mktemp("signed")
    home, other = root / "home", root / "other"
    (root / "add.wat").write_text(programs.ADD)
    out = json.loads(
        cli(home, "sign", root / "add.wat", "-o", root / "signed.wasm", "--json", check=0).stdout
    )
    assert out["signer_verifier_key"] == signer_key(home)
    cli(other, "sign", root / "add.wat", "-o", root / "foreign.wasm", check=0)
    (root / "unsigned.wasm").write_bytes(wasmtime.wat2wasm(programs.ADD))
    appended = (root / "signed.wasm").read_bytes() + b"\x00\x04\x03abc"
    (root / "appended.wasm").write_bytes(appended)
    return root, home, signer_key(home)


REFUSALS = [
    ("unsigned.wasm", "not signed"),
    ("appended.wasm", "altered after signing"),
    ("foreign.wasm", "not by a required key"),
]


def test_cli_runs_a_signed_module_and_notes_its_signer_and_grants(signed):
    root, home, key = signed
    data = root / "data"
    data.mkdir(exist_ok=True)
    run = cli(home, "run", root / "signed.wasm", "--invoke", "add", "2", "3",
              "--require-signed-by", key, "--dir", f"{data}:/data:ro", "--env", "TOKEN=s3cret",
              "--arg", "x", "--json", check=0)  # fmt: skip
    assert json.loads(run.stdout)["returns"] == [5]
    [row] = json.loads(cli(home, "log", "-n", "1", "--json", check=0).stdout)
    assert row["signer"] == key
    assert row["grants"] == {
        "dirs": [{"guest": "/data", "mode": "ro"}],
        "env": ["TOKEN"],
        "argv": 1,
        "stdin_bytes": 0,
    }
    assert "s3cret" not in json.dumps(row) and str(data) not in json.dumps(row)
    report = json.loads(cli(home, "verify", "last", "--json", check=0).stdout)
    assert report["checks"]["grants"] == "ok" and report["checks"]["signer"] == "ok"


@pytest.mark.parametrize(("name", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_cli_refuses_before_anything_runs(signed, name, reason):
    root, home, key = signed
    before = cli(home, "log", "--json", "-n", "1000", check=0).stdout
    proc = cli(home, "run", root / name, "--invoke", "add", "1", "2", "--require-signed-by", key)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and reason in proc.stderr
    assert cli(home, "log", "--json", "-n", "1000", check=0).stdout == before  # nothing ran


def test_without_a_requirement_an_unsigned_module_runs_and_notes_no_signer(signed):
    root, home, _ = signed
    cli(home, "run", root / "unsigned.wasm", "--invoke", "add", "1", "2", check=0)
    [row] = json.loads(cli(home, "log", "-n", "1", "--json", check=0).stdout)
    assert "signer" not in row


def test_a_batch_logs_each_refused_submission_as_an_error_row(signed):
    root, home, key = signed
    files = [root / "signed.wasm", root / "unsigned.wasm"]
    proc = cli(home, "run", *files, "--invoke", "add", "1", "2", "--require-signed-by", key,
               "--json", check=0)  # fmt: skip
    first, second = json.loads(proc.stdout)
    assert first["status"] == "ok" and second["status"] == "error"
    assert "not signed" in second["message"]


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "wasm_sandbox")
    return shell


def magic(ip, line):
    with capture_output() as cap:
        result = ip.run_cell(line)
    return result, cap


def test_the_magic_setting_and_option_require_a_signer(ip, signed):
    from wasm_sandbox.jupyter.settings import WasmSandbox

    root, home, key = signed
    [settings] = [c for c in ip.configurables if isinstance(c, WasmSandbox)]
    settings.home, settings.display = str(home), "text"
    try:
        result, _ = magic(ip, f"%wasm {root / 'signed.wasm'} --invoke add 2 3 --out ex")
        assert result.success and ip.user_ns["ex"].record.get("signer") == key
        settings.require_signed_by = [key]
        for name, reason in REFUSALS:
            result, _ = magic(ip, f"%wasm {root / name} --invoke add 2 3")
            assert not result.success and reason in str(result.error_in_exec), name
        result, _ = magic(ip, f"%wasm {root / 'signed.wasm'} --invoke add 2 3 --out ex")
        assert result.success and list(ip.user_ns["ex"].outcome.returns) == [5]
        settings.require_signed_by = []
        result, _ = magic(ip, f"%wasm {root / 'unsigned.wasm'} --require-signed-by {key}")
        assert not result.success and "not signed" in str(result.error_in_exec)
    finally:
        settings.require_signed_by = []
        settings.close()


def test_rest_refuses_what_the_operators_signers_did_not_sign(signed, tmp_path):
    root, _, key = signed
    server = start_server(tmp_path, tmp_path / "home", require_signed_by=[key])
    try:

        def post(name):
            wasm = base64.b64encode((root / name).read_bytes()).decode()
            return server.post("executions", {"wasm_b64": wasm, "invoke": "add", "args": [2, 3]})

        ok = post("signed.wasm")
        assert ok.status_code == 201, ok.text
        detail = server.get(f"executions/{ok.json()['id']}").json()
        assert detail["record"]["signer"] == key
        assert detail["verification"]["checks"]["signer"] == "ok"
        for name, reason in REFUSALS:
            refused = post(name)
            assert refused.status_code == 400 and reason in refused.json()["message"], name
        wat = server.post("executions", {"wat": programs.ADD, "invoke": "add", "args": [1, 1]})
        assert wat.status_code == 400 and "not signed" in wat.json()["message"]
    finally:
        server.stop()
