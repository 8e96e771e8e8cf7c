"""The REST API as a client sees it: a real ``jupyter server`` process, a token, real runs."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from tests import programs
from tests.contract import RUN_JSON_KEYS
from tests.integration.test_server_harness import REPO, start_server
from wasm_sandbox import DecryptionError, Sandbox, merkle, record
from wasm_sandbox.checkpoint import open_note
from wasm_sandbox.envelope import key_id
from wasm_sandbox.errors import BadField
from wasm_sandbox.jupyter.server import openapi_document
from wasm_sandbox.jupyter.server_request import open_program, seal_program
from wasm_sandbox.keys import KeyStore
from wasm_sandbox.sources import compile_wat

MAX_TIMEOUT = 1.0
MAX_FUEL = 10**9


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    srv = start_server(
        root,
        root / "home",
        max_timeout=f"{MAX_TIMEOUT}s",
        max_fuel=str(MAX_FUEL),
        max_body_size=64 * 1024,
    )
    yield srv
    srv.stop()


def run(server, body, status=201):
    response = server.post("executions", body)
    assert response.status_code == status, response.text
    return response.json()


# -- authentication, routes, methods ---------------------------------------------------------

ROUTES = [
    ("GET", "health", None, 200),
    ("GET", "metrics", None, 200),
    ("GET", "openapi.json", None, 200),
    ("GET", "keys/public", None, 200),
    ("GET", "executions", None, 200),
    ("POST", "executions", {"wat": programs.ADD, "invoke": "add", "args": [1, 2]}, 201),
    ("GET", "checkpoint", None, 200),
    ("GET", "executions/last", None, 200),
    ("GET", "proof/consistency?from=1", None, 200),
    ("GET", "no/such/route", None, 404),
    ("DELETE", "executions", None, 405),
    ("POST", "health", {}, 405),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), ROUTES)
def test_every_route_needs_the_token(server, method, path, body, expected):
    kw = {"json": body} if body is not None else {}
    for token in (None, "wrong-token"):
        refused = server.request(method, path, token=token, **kw)
        assert refused.status_code == 403, (token, refused.text)
        assert "message" in refused.json()
    answered = server.request(method, path, **kw)
    assert answered.status_code == expected, answered.text
    if expected == 405:
        assert answered.headers["Allow"] and answered.json()["message"]
    if expected == 404:
        assert answered.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(("method", "path", "body", "expected"), ROUTES[:-3])
def test_every_route_asks_the_authorizer(server, method, path, body, expected):
    action = "execute" if method == "POST" else "read"
    kw = {"json": body} if body is not None else {}
    denied = server.request(method, path, headers={"X-Deny": f"{action}:wasm_sandbox"}, **kw)
    assert denied.status_code == 403, denied.text
    other = "read" if action == "execute" else "execute"
    allowed = server.request(method, path, headers={"X-Deny": f"{other}:wasm_sandbox"}, **kw)
    assert allowed.status_code == expected, allowed.text


def test_the_token_also_works_as_a_query_parameter(server):
    assert httpx.get(server.api("health"), params={"token": server.token}).status_code == 200


# -- POST executions -------------------------------------------------------------------------


def test_a_run_answers_like_the_cli_and_is_logged_and_verified(server):
    response = server.post("executions", {"wat": programs.FACT, "invoke": "fact", "args": [10]})
    assert response.status_code == 201
    ex = response.json()
    assert set(ex) >= RUN_JSON_KEYS
    assert (ex["status"], ex["returns"]) == ("ok", [3628800])
    assert response.headers["Location"].endswith(f"/wasm-sandbox/api/executions/{ex['id']}")

    detail = server.get(f"executions/{ex['id']}").json()
    assert detail["verification"]["verified"], detail["verification"]
    assert merkle.leaf_hash(record.encode(detail["record"])).hex() == ex["commitment"]
    proof = detail["inclusion_proof"]
    assert merkle.verify_inclusion(
        bytes.fromhex(ex["commitment"]),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["root"]),
    )
    keys = server.get("keys/public").json()
    signed = open_note(detail["checkpoint"], keys["log_verifier_key"])
    assert (signed.size, signed.root.hex()) == (proof["tree_size"], proof["root"])


def test_stdin_args_and_wasm_binaries(server):
    echoed = run(server, {"wat": programs.ECHO, "stdin": "ping 42"})
    assert (echoed["status"], echoed["exit_code"], echoed["stdout"]) == ("ok", 0, "ping 42")
    wasm = base64.b64encode(compile_wat(programs.ADD)).decode()
    added = run(server, {"wasm_b64": wasm, "invoke": "add", "args": ["0x10", 1]})
    assert added["returns"] == [17]


def test_limits_are_capped_by_the_operator(server):
    ex = run(
        server,
        {
            "wat": programs.LOOP,
            "invoke": "spin",
            "limits": {"fuel": "1e15", "timeout": "10min", "memory": "1GiB"},
        },
    )
    assert ex["status"] in ("timeout", "out_of_fuel")
    assert ex["fuel_limit"] == MAX_FUEL and ex["memory_limit"] == 256 * 1024**2
    assert ex["duration_ms"] < MAX_TIMEOUT * 1000 * 3
    small = run(server, {"wat": programs.LOOP, "invoke": "spin", "limits": {"fuel": 1000}})
    assert (small["status"], small["fuel_limit"]) == ("out_of_fuel", 1000)


def test_guest_misbehaviour_is_a_logged_result(server):
    assert run(server, {"wat": programs.TRAP, "invoke": "boom"})["trap"] == "unreachable"
    missing = run(server, {"wat": programs.ADD, "invoke": "sub"})
    assert missing["status"] == "error" and "no exported function 'sub'" in missing["message"]
    assert server.get(f"executions/{missing['id']}").json()["record"]["outcome"]["status"] == (
        "error"
    )
    nan = run(
        server, {"wat": '(module (func (export "f") (result f64) f64.const nan))', "invoke": "f"}
    )
    assert nan["returns"] == ["NaN"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"wat": "(module (func i33.add))"}, "wat"),
        ({"wasm_b64": "not base64!"}, "wasm_b64"),
        ({"wat": programs.ADD, "wasm_b64": "AA=="}, "wasm_b64"),
        ({}, "wat"),
        ({"wat": 42}, "wat"),
        ({"wat": programs.ADD, "invoke": "add", "args": [1, True]}, "args[1]"),
        ({"wat": programs.ADD, "limits": {"fuel": "lots"}}, "limits.fuel"),
        ({"wat": programs.ADD, "limits": {"timeout": "-1s"}}, "limits.timeout"),
        ({"wat": programs.ADD, "limits": {"cpu": 1}}, "limits.cpu"),
        ({"wat": programs.ADD, "fuel": 1}, "fuel"),
        ({"wat": programs.ADD, "recipient_public_key_pem": "nope"}, "recipient_public_key_pem"),
        ({"sealed_program": {"enc": "AA==", "ciphertext": ""}}, "sealed_program.enc"),
    ],
)
def test_bad_requests_name_the_field(server, body, field):
    error = run(server, body, status=400)
    assert error["field"] == field and error["message"]


def test_a_wat_syntax_error_has_its_position_and_logs_nothing(server):
    before = server.get("health").json()
    size = server.get("executions?limit=1").json()["tree_size"]
    error = run(server, {"wat": "(module\n  (func i33.add))"}, status=400)
    assert (error["line"], error["field"]) == (2, "wat")
    assert server.get("executions?limit=1").json()["tree_size"] == size
    assert before["status"] == "ok"


@pytest.mark.parametrize("raw", [b"{", b"[1]", b"\xff", b'{"wat": 1, "wat": 2}', b"NaN"])
def test_malformed_bodies_are_400(server, raw):
    response = server.request("POST", "executions", content=raw)
    assert response.status_code == 400, response.text


def test_a_body_over_the_limit_is_413(server):
    big = {"wat": "(module)" + " " * (64 * 1024)}
    assert server.post("executions", big).status_code == 413

    def chunks():  # no Content-Length: the limit holds while streaming too
        yield b'{"wat": "'
        for _ in range(100):
            yield b" " * 1024
        yield b'"}'

    response = server.request("POST", "executions", content=chunks())
    assert response.status_code == 413


# -- sealing ---------------------------------------------------------------------------------


def test_a_sealed_program_opens_only_at_the_server_and_its_result_only_at_the_client(server):
    client = ec.generate_private_key(ec.SECP256R1())
    client_pem = (
        client.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    keys = server.get("keys/public").json()
    assert keys["sealed_program"]["accepted"]
    server_key = KeyStore.load_public_pem(keys["recipient_public_key_pem"])
    sealed = seal_program(programs.FACT, server_key)

    for wrong in (client, ec.generate_private_key(ec.SECP256R1())):  # only the server opens it
        with pytest.raises(BadField):
            open_program(
                base64.b64decode(sealed["enc"]), base64.b64decode(sealed["ciphertext"]), wrong
            )
    ex = run(
        server,
        {
            "sealed_program": sealed,
            "invoke": "fact",
            "args": [5],
            "recipient_public_key_pem": client_pem,
        },
    )
    assert ex["returns"] == [120]

    detail = server.get(f"executions/{ex['id']}").json()
    rec = detail["record"]
    blobs = {k: base64.b64decode(v) for k, v in detail["ciphertexts"].items()}
    assert rec["recipient"] == key_id(client.public_key())
    opened = record.open_record(rec, blobs, client)
    assert opened.program == compile_wat(programs.FACT)
    assert opened.source == {"lang": "wat", "text": programs.FACT}  # the teacher reads the WAT
    assert opened.result["returns"] == [["i64", "120"]] and opened.input["args"] == ["5"]
    server_private = KeyStore(server.home).recipient_private_key()
    with pytest.raises(DecryptionError):
        record.open_record(rec, blobs, server_private)
    checks = detail["verification"]["checks"]
    assert checks["record"] == checks["ciphertexts"] == checks["inclusion_proof"] == "ok"


def test_a_sealed_program_that_does_not_open_is_refused(server):
    key = KeyStore.load_public_pem(server.get("keys/public").json()["recipient_public_key_pem"])
    sealed = seal_program(compile_wat(programs.ADD), key)
    tampered = base64.b64decode(sealed["ciphertext"])
    tampered = base64.b64encode(bytes([tampered[0] ^ 1]) + tampered[1:]).decode()
    error = run(server, {"sealed_program": {**sealed, "ciphertext": tampered}}, status=400)
    assert error["field"] == "sealed_program"
    other = seal_program(programs.ADD, ec.generate_private_key(ec.SECP256R1()).public_key())
    assert run(server, {"sealed_program": other}, status=400)["field"] == "sealed_program"
    binary = run(server, {"sealed_program": sealed, "invoke": "add", "args": [2, 3]})
    assert binary["returns"] == [5]


# -- the log ---------------------------------------------------------------------------------


def test_paging_through_the_log(server):
    for n in range(3):
        run(server, {"wat": programs.ADD, "invoke": "add", "args": [n, n]})
    size = server.get("executions?limit=1").json()["tree_size"]
    seen, after = [], -1
    while after is not None:
        page = server.get(f"executions?limit=2&after={after}").json()
        assert len(page["items"]) <= 2
        seen += [item["leaf_index"] for item in page["items"]]
        after = page["next_after"]
    assert seen == list(range(size))
    for bad in ("limit=0", "limit=x", "after=-2", "limit=1001"):
        error = server.get(f"executions?{bad}")
        assert error.status_code == 400 and error.json()["field"] == bad.split("=")[0]


def test_a_record_by_id_last_and_index(server):
    ex = run(server, {"wat": programs.ADD, "invoke": "add", "args": [2, 2]})
    assert server.get("executions/last").json()["id"] == ex["id"]
    assert server.get(f"executions/{quote('#')}{ex['leaf_index']}").json()["id"] == ex["id"]
    missing = server.get("executions/" + "0" * 32)
    assert missing.status_code == 404 and missing.json()["message"]


def test_checkpoint_as_text_and_json_and_consistency_proofs(server):
    run(server, {"wat": programs.ADD, "invoke": "add", "args": [1, 1]})
    old = server.get("checkpoint?format=json").json()
    run(server, {"wat": programs.ADD, "invoke": "add", "args": [1, 1]})
    text = server.get("checkpoint")
    assert text.headers["Content-Type"].startswith("text/plain")
    verifier = server.get("keys/public").json()["log_verifier_key"]
    new = open_note(text.text, verifier)
    assert new.size == old["tree_size"] + 1
    as_json = server.get("checkpoint", headers={"Accept": "application/json"}).json()
    assert as_json["checkpoint"] == text.text

    proof = server.get(f"proof/consistency?from={old['tree_size']}&to={new.size}").json()
    assert proof["from_root"] == old["root"] and proof["to_root"] == new.root.hex()
    assert merkle.verify_consistency(
        old["tree_size"],
        new.size,
        bytes.fromhex(old["root"]),
        new.root,
        [bytes.fromhex(h) for h in proof["hashes"]],
    )
    for bad, field in (
        ("", "from"),
        ("from=0", "from"),
        ("from=2&to=1", "to"),
        (f"from={new.size + 1}", "from"),
        ("from=x", "from"),
    ):
        error = server.get(f"proof/consistency?{bad}")
        assert error.status_code == 400 and error.json()["field"] == field, bad


def test_public_keys_are_the_homes(server):
    keys = server.get("keys/public").json()
    store = KeyStore(server.home)
    assert keys["recipient_public_key_pem"] == store.public_pem()
    assert keys["recipient_key_id"] == store.recipient_key_id
    assert keys["log_verifier_key"].startswith(keys["log_origin"] + "+")


def test_health_and_metrics(server):
    health = server.get("health").json()
    assert health["status"] == "ok" and health["run_capacity"] >= 2
    run(server, {"wat": programs.TRAP, "invoke": "boom"})
    response = server.get("metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    runs = {
        s.labels["status"]: s.value
        for s in families["wasm_sandbox_runs"].samples
        if s.name == "wasm_sandbox_runs_total"
    }
    assert runs["trap"] >= 1 and runs["ok"] >= 1
    size = server.get("executions?limit=1").json()["tree_size"]
    assert families["wasm_sandbox_log_size"].samples[0].value == size
    count = next(
        s
        for s in families["wasm_sandbox_run_duration_seconds"].samples
        if s.name.endswith("_count")
    )
    assert count.value == sum(runs.values())
    for name in (
        "wasm_sandbox_queue_depth",
        "wasm_sandbox_runs_in_flight",
        "wasm_sandbox_fuel_used",
        "wasm_sandbox_requests_rejected",
    ):
        assert name in families


def test_the_served_openapi_document_is_the_packaged_one(server):
    served = server.get("openapi.json").json()
    packaged = openapi_document()
    assert served["paths"] == packaged["paths"] and served["servers"] == [{"url": "/"}]


# -- one log for the server and a kernel ----------------------------------------------------

KERNEL_CODE = """
from wasm_sandbox import Sandbox
with Sandbox(home={home!r}) as sb:
    ex = sb.run({program!r}, invoke="add", args=[20, 22])
    print("RESULT", ex.id, ex.outcome.returns[0], ex.leaf_index)
"""


def test_server_and_kernel_records_share_one_log_and_verify_together(server):
    from jupyter_client.manager import start_new_kernel

    first = run(server, {"wat": programs.ADD, "invoke": "add", "args": [1, 1]})
    outputs: list[dict] = []
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        reply = kc.execute_interactive(
            textwrap.dedent(KERNEL_CODE.format(home=str(server.home), program=programs.ADD)),
            timeout=60,
            output_hook=outputs.append,
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok"
    printed = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    _, kernel_id, value, index = printed.split()
    assert value == "42" and int(index) > first["leaf_index"]
    last = run(server, {"wat": programs.ADD, "invoke": "add", "args": [2, 2]})
    assert last["leaf_index"] > int(index)

    kernel_record = server.get(f"executions/{kernel_id}").json()
    assert kernel_record["verification"]["verified"], kernel_record["verification"]
    with Sandbox(home=server.home) as sb:
        assert sb.verify_log().ok
        assert sb.verify(last["id"]).verified and sb.record(kernel_id)["id"] == kernel_id


# -- stopping -------------------------------------------------------------------------------


def test_stopping_the_server_cancels_runs_and_closes_the_sandbox(tmp_path):
    srv = start_server(tmp_path, tmp_path / "home", max_timeout="60s")
    spin = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import httpx, json
            r = httpx.post({srv.api("executions")!r}, headers={srv.headers()!r}, timeout=60,
                           json={{"wat": {programs.LOOP!r}, "invoke": "spin",
                                  "limits": {{"timeout": "60s"}}}})
            print(r.status_code)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: srv.get("health").json()["runs_in_flight"] == 1)
        assert srv.stop(timeout=20) == 0
    finally:
        spin.wait(30)
    assert "wasm-sandbox: sandbox closed" in srv.log()
    with Sandbox(home=srv.home) as sb:  # the cancelled run was still logged, and the log is whole
        assert [r["outcome"]["status"] for r in sb.log()] == ["interrupted"]
        assert sb.verify_log().ok


def _wait_for(condition, timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_shipped_config_enables_the_extension():
    config = json.loads(
        (REPO / "jupyter-config/jupyter_server_config.d/wasm_sandbox.json").read_text()
    )
    assert config == {"ServerApp": {"jpserver_extensions": {"wasm_sandbox": True}}}
