"""A witness over HTTP: the real CLI in a subprocess against a real ``jupyter server``.

The witness fetches the server's checkpoint and a consistency proof, cosigns, and hands the
cosignature back with ``POST checkpoint/cosignatures``; the server stores it only if it
verifies. A server whose home is rolled back or forked is refused and flagged.
"""

import base64
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests import programs
from tests.integration.test_server_harness import free_port, start_server
from tests.unit.test_wire import conforms
from wasm_sandbox import Sandbox, wire
from wasm_sandbox.witness import Witness


def cli(*args, env=None):
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    out = json.loads(proc.stdout) if proc.stdout.startswith("{") else None
    return proc.returncode, out, proc.stderr


def add(server, a, b):
    body = {"wat": programs.ADD, "invoke": "add", "args": [a, b]}
    assert server.post("executions", body).status_code == 201


@pytest.fixture
def witness(tmp_path):
    home = tmp_path / "witness"
    code, out, _ = cli("witness", "init", "--home", home, "--json")
    assert code == 0
    return home, out["verifier_key"]


@pytest.fixture
def server(tmp_path):
    srv = start_server(tmp_path / "server", tmp_path / "home")
    yield srv
    srv.stop()


def cosign(server, witness_home, *extra, env=None):
    return cli(
        "witness", "cosign", "--home", witness_home, "--log", server.url, "--json", *extra, env=env
    )


def check(server, witness_home):
    argv = ["--home", witness_home, "--log", server.url, "--token", server.token, "--json"]
    return cli("witness", "check", *argv)


def test_a_cosign_over_http_is_stored_in_the_servers_log(server, witness):
    home, vkey = witness
    add(server, 1, 2)
    add(server, 3, 4)
    code, out, err = cosign(server, home, "--token", server.token)
    assert code == 0, err
    assert out["cosigned"] and out["first_contact"] and out["tree_size"] == 2
    code, report, _ = cli("verify", "--all", "--home", server.home, "--witness", vkey, "--json")
    assert code == 0 and report["verified"] and report["witnesses"][0]["cosigned"]
    code, out, _ = check(server, home)
    assert code == 0 and out["consistent"] and out["witnessed_size"] == 2

    add(server, 5, 6)  # not witnessed until the next cosign, which proves consistency 2 -> 3
    assert cli("verify", "--all", "--home", server.home, "--witness", vkey)[0] == 1
    code, out, err = cosign(server, home, env={"JUPYTER_TOKEN": server.token})
    assert code == 0, err
    assert (out["witnessed_size"], out["tree_size"], out["first_contact"]) == (2, 3, False)
    assert cli("verify", "--all", "--home", server.home, "--witness", vkey)[0] == 0


def test_the_token_is_found_in_jupyters_runtime_files(server, witness):
    home, _ = witness
    add(server, 1, 1)
    runtime = {"JUPYTER_RUNTIME_DIR": str(server.home.parent / "server" / "runtime")}
    code, out, err = cosign(server, home, env={**runtime, "JUPYTER_TOKEN": ""})
    assert code == 0 and out["cosigned"], err


def test_a_wrong_token_or_no_server_is_one_line(server, witness):
    home, _ = witness
    add(server, 1, 1)
    code, out, err = cosign(server, home, "--token", "wrong")
    assert code == 2 and out is None and err.count("\n") == 1 and " 403 " in err
    dead = f"http://127.0.0.1:{free_port()}/"
    code, _, err = cli("witness", "check", "--home", home, "--log", dead, "--token", "t")
    assert code == 2 and "cannot reach the server" in err and err.count("\n") == 1
    with Witness(home) as w:  # nothing was cosigned
        assert w.size_of(server.get("keys/public").json()["log_origin"]) == 0


def test_a_server_rolled_back_or_forked_is_refused_and_flagged(tmp_path, witness):
    home, vkey = witness
    log, backup = tmp_path / "home", tmp_path / "backup"
    first = start_server(tmp_path / "s1", log)
    try:
        add(first, 1, 2)
        add(first, 3, 4)
    finally:
        first.stop()
    shutil.copytree(log, backup)  # the owner keeps a copy of the home at size 2
    second = start_server(tmp_path / "s2", log)
    try:
        add(second, 5, 6)
        assert cosign(second, home, "--token", second.token)[0] == 0  # witnessed at size 3
    finally:
        second.stop()
    shutil.rmtree(log)
    shutil.copytree(backup, log)  # rolled back to the copy, same keys
    third = start_server(tmp_path / "s3", log)
    try:
        code, out, _ = cosign(third, home, "--token", third.token)
        assert code == 1 and not out["cosigned"] and "rolled back" in out["reason"]
        assert (out["witnessed_size"], out["tree_size"]) == (3, 2)
        code, out, _ = check(third, home)
        assert code == 1 and not out["consistent"] and "rolled back" in out["reason"]

        with Sandbox(log) as sb:  # the copy grows another way: a fork under the same keys
            sb.run(programs.TRAP, invoke="boom")
        code, out, _ = cosign(third, home, "--token", third.token)
        assert code == 1 and "forked" in out["reason"] and out["tree_size"] == 3
        code, out, _ = check(third, home)
        assert code == 1 and "forked" in out["reason"]
        assert third.get("checkpoint", params={"format": "json"}).json()["tree_size"] == 3
    finally:
        third.stop()
    with Sandbox(log) as sb, Witness(home) as w:  # the refusals did not move the witness
        assert w.size_of(sb.origin) == 3
    assert cli("verify", "--all", "--home", log, "--witness", vkey)[0] == 1


# -- the route itself ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def route(tmp_path_factory):
    """A server with a checkpoint of size 2, and a valid cosignature line for it."""
    root = tmp_path_factory.mktemp("route")
    srv = start_server(root / "server", root / "home")
    add(srv, 1, 2)
    add(srv, 3, 4)
    with Sandbox(srv.home) as sb:
        cp, log_key = sb.ledger.latest_checkpoint(), sb.ledger.verifier_key
    with Witness(root / "witness", create=True) as w:
        line = w.add_checkpoint(cp.note, log_key, old_size=0, proof=[])
        body = {"tree_size": 2, "cosignature": line, "verifier_key": w.verifier_key}
    yield srv, body
    srv.stop()


def stored(server):
    with Sandbox(server.home) as sb:
        return [sb.ledger.cosigned_note(n) for n in (1, 2)]


def test_the_route_stores_a_cosignature_that_verifies(route):
    server, signed = route
    answer = server.post("checkpoint/cosignatures", signed)
    assert answer.status_code == 201, answer.text
    value = answer.json()
    assert conforms(value, wire.CosignatureAdded) == [] and value["tree_size"] == 2
    assert value["checkpoint"].endswith(signed["cosignature"] + "\n")
    assert server.post("checkpoint/cosignatures", signed).status_code == 201  # idempotent
    assert stored(server)[1].count(signed["cosignature"]) == 1


def _flip(line: str) -> str:
    name, b64 = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    return f"{name} {base64.b64encode(bytes(raw)).decode()}"


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"cosignature": "flip"}, 400, "cosignature"),  # a signature bit changed
        ({"tree_size": 1}, 400, "cosignature"),  # signed for another checkpoint
        ({"tree_size": 9}, 404, None),
        ({"verifier_key": "not-a-key"}, 400, "verifier_key"),
        ({"cosignature": "two\nlines"}, 400, "cosignature"),
        ({"tree_size": True}, 400, "tree_size"),
        ({"extra": 1}, 400, "extra"),
    ],
)
def test_the_route_refuses_what_does_not_verify(route, change, status, field):
    server, signed = route
    body = {**signed, **change}
    if change.get("cosignature") == "flip":
        body["cosignature"] = _flip(signed["cosignature"])
    before = stored(server)
    answer = server.post("checkpoint/cosignatures", body)
    assert answer.status_code == status, answer.text
    assert answer.json().get("field") == field
    assert stored(server) == before


def test_the_route_needs_the_token_and_the_write_action(route):
    server, signed = route
    for token in (None, "wrong"):
        assert server.post("checkpoint/cosignatures", signed, token=token).status_code == 403
    denied = {"X-Deny": "write:wasm_sandbox"}
    assert server.post("checkpoint/cosignatures", signed, headers=denied).status_code == 403
    allowed = {"X-Deny": "execute:wasm_sandbox"}
    assert server.post("checkpoint/cosignatures", signed, headers=allowed).status_code == 201
