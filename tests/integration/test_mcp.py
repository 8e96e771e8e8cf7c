"""The MCP face driven by the SDK's own client: ``wasm-sandbox mcp`` over stdio in a real
subprocess, and streamable HTTP inside a real jupyter_server, with and without the token."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from tests import programs
from tests.async_run import run_async
from tests.contract import RUN_JSON_KEYS

mcp = pytest.importorskip("mcp")
httpx2 = pytest.importorskip("httpx2")
from mcp import Client, Implementation, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from tests.integration.test_server_harness import start_server  # noqa: E402
from wasm_sandbox.checkpoint import open_note  # noqa: E402

pytestmark = pytest.mark.slow
AGENT = Implementation(name="test-agent", version="1.0")
ADD_CALL = {"source": programs.ADD, "invoke": "add", "args": [1, 2]}
ADD_WASM = base64.b64encode(wasmtime.wat2wasm(programs.ADD)).decode()
C_HELLO = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'


def cli_json(home: Path, *args: str) -> object:
    out = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *args, "--home", str(home), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def stdio(home: Path, *operator: str) -> Client:
    """A client of ``wasm-sandbox mcp --home HOME OPERATOR...`` in a subprocess."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "wasm_sandbox.cli", "mcp", "--home", str(home), *operator],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return Client(params, client_info=AGENT, mode="legacy")


async def drive(client: Client) -> dict[str, object]:
    """Run a guest, verify it, read the checkpoint, and ask for what the operator refuses."""
    async with client:
        ran = await client.call_tool("run", ADD_CALL)
        verified = await client.call_tool("verify", {"id": ran.structured_content["id"]})
        note = (await client.read_resource("wasm-sandbox://checkpoint")).contents[0].text
        refused = {
            name: await client.call_tool("run", {**ADD_CALL, **change})
            for name, change in {
                "timeout": {"limits": {"timeout": "5s"}},
                "fuel": {"limits": {"fuel": "none"}},
                "lang": {"source": C_HELLO, "lang": "c"},
                "dir": {"dirs": ["/etc"]},
            }.items()
        }
        binary = await client.call_tool("run", {**ADD_CALL, "source": ADD_WASM})
    return {"ran": ran, "verified": verified, "note": note, "refused": refused, "wasm": binary}


def check_answers(home: Path, seen: dict[str, object], face: dict[str, object]) -> None:
    ran, verified, refused = seen["ran"], seen["verified"], seen["refused"]
    assert not ran.is_error, ran.content
    answer = ran.structured_content
    assert set(answer) >= RUN_JSON_KEYS and answer["returns"] == [3]
    path = home.parent / "add.wat"
    path.write_text(programs.ADD)
    by_cli = cli_json(home, "run", str(path), "--invoke", "add", "1", "2")
    assert set(answer) == set(by_cli)
    by_tool, by_cli_verify = verified.structured_content, cli_json(home, "verify", answer["id"])
    assert set(by_tool) == set(by_cli_verify) and by_tool["verified"] is True
    assert by_tool["checks"] == by_cli_verify["checks"]  # the log grew since: size and root
    keys = cli_json(home, "keys")
    checkpoint = open_note(seen["note"], keys["log_verifier_key"])
    assert checkpoint.size >= answer["tree_size"]
    messages = {name: r.content[0].text for name, r in refused.items() if r.is_error}
    assert "above the operator's maximum" in messages["timeout"]
    assert "above the operator's maximum" in messages["fuel"]
    assert "'c' is not allowed" in messages["lang"]
    assert "'/etc' is not offered" in messages["dir"]
    assert seen["wasm"].structured_content["returns"] == [3]
    rows = {r["id"]: r for r in cli_json(home, "log", "-n", "100")}
    assert rows[answer["id"]]["face"] == face
    assert rows[seen["wasm"].structured_content["id"]]["face"] == face
    assert "face" not in rows[by_cli["id"]]  # other faces leave it out
    assert len(rows) == 3  # the two agent runs and the CLI's: nothing refused was logged


def test_stdio_runs_verifies_reads_the_checkpoint_and_refuses_beyond_the_operator(tmp_path):
    home = tmp_path / "home"
    operator = ["--max-timeout", "2s", "--max-fuel", "1e9", "--allow-lang", "wat"]
    operator += ["--allow-lang", "wasm"]
    seen = run_async(drive, stdio(home, *operator))
    face = {"name": "mcp", "client": "test-agent", "authenticated": False}
    check_answers(home, seen, face)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mcp-server")
    mcp_options = {"max_timeout": "2s", "max_fuel": "1e9", "allow_langs": ["wat", "wasm"]}
    srv = start_server(root, root / "home", extra={"WasmSandboxMCP": mcp_options})
    yield srv
    srv.stop()


def http(server, token: str | None) -> Client:
    headers = {} if token is None else {"Authorization": f"token {token}"}
    transport = streamable_http_client(
        f"{server.url}/wasm-sandbox/mcp", http_client=httpx2.AsyncClient(headers=headers)
    )
    return Client(transport, client_info=AGENT)


def test_http_with_the_token_runs_and_records_the_jupyter_user(server):
    seen = run_async(drive, http(server, server.token))
    user = server.get("executions").json()["items"][-1]["face"]["user"]
    face = {"name": "mcp", "client": "test-agent", "authenticated": True, "user": user}
    check_answers(server.home, seen, face)
    assert user  # the Jupyter user of the token


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test-agent", "version": "1"},
    },
}


@pytest.mark.parametrize("token", [None, "wrong"])
def test_http_without_the_token_is_403_and_runs_nothing(server, token):
    before = server.get("executions").json()["tree_size"]
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"token {token}"
    answer = httpx2.post(f"{server.url}/wasm-sandbox/mcp", json=INITIALIZE, headers=headers)
    assert answer.status_code == 403
    with pytest.raises(Exception):  # noqa: B017 (the SDK's client: whatever it raises)
        run_async(drive, http(server, token))
    assert server.get("executions").json()["tree_size"] == before
