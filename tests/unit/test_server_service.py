"""The service under the REST handlers: admission control, runs, reads, metrics, closing."""

import base64
import json
import os
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from tests import programs
from wasm_sandbox import record
from wasm_sandbox.errors import BadField, Busy, DecryptionError
from wasm_sandbox.jupyter.server_service import Pool, Service, Settings
from wasm_sandbox.limits import Limits
from wasm_sandbox.sources import compile_wat


def test_a_pool_refuses_beyond_workers_plus_queue_and_counts():
    pool = Pool(workers=2, queue=1, name="t")
    gate = threading.Event()
    futures = [pool.submit(gate.wait, 10) for _ in range(3)]
    with pytest.raises(Busy):
        pool.submit(gate.wait, 10)
    assert (pool.accepted, pool.rejected, pool.capacity) == (3, 1, 3)
    gate.set()
    assert all(f.result(10) for f in futures)
    assert (pool.running, pool.queued) == (0, 0)
    assert pool.submit(lambda: 7).result(10) == 7  # room again
    pool.close()
    with pytest.raises(Busy):
        pool.submit(lambda: 1)


def test_a_pool_needs_a_worker():
    with pytest.raises(ValueError):
        Pool(workers=0, queue=1, name="t")


@pytest.fixture
def service(home):
    svc = Service(
        Settings(
            home=str(home), workers=2, queue=2, maximum=Limits.parse(fuel="1e8", timeout="500ms")
        )
    )
    yield svc
    svc.close()


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_runs_are_capped_logged_and_counted(service):
    ex = service.submit_run(body(wat=programs.LOOP, invoke="spin", limits={"fuel": "1e12"})).result(
        30
    )
    assert ex.outcome.status in ("out_of_fuel", "timeout") and ex.outcome.fuel_limit == 10**8
    failed = service.submit_run(body(wat=programs.ADD, invoke="nope")).result(30)
    assert failed.outcome.status == "error"  # logged, and returned rather than raised
    page = service.executions(limit=10, after=-1)
    assert [item["id"] for item in page["items"]] == [ex.id, failed.id]
    assert page["next_after"] is None and page["tree_size"] == 2
    detail = service.execution(ex.id)
    assert detail["verification"]["verified"] and detail["inclusion_proof"]["tree_size"] == 2

    families = {f.name: f for f in text_string_to_metric_families(service.metrics_text().decode())}
    runs = {s.labels["status"]: s.value for s in families["wasm_sandbox_runs"].samples}
    assert runs["error"] == 1 and sum(runs.values()) == 2
    assert families["wasm_sandbox_log_size"].samples[0].value == 2
    assert families["wasm_sandbox_run_capacity"].samples[0].value == 4


def test_bad_bodies_fail_in_the_future_and_log_nothing(service):
    cases = [
        (b"{", "", {}),
        (body(wat="(module\n (func i33.add))"), "wat", {"line": 2, "column": 8}),
        (body(wat=programs.ADD, limits={"fuel": "lots"}), "limits.fuel", {}),
    ]
    for raw, field, extra in cases:
        with pytest.raises(BadField) as err:
            service.submit_run(raw).result(30)
        assert err.value.field == field and err.value.extra == extra
    assert service.sandbox.ledger.size == 0


def test_an_empty_log_has_no_checkpoint_and_no_proofs(service):
    from wasm_sandbox import RecordNotFound

    with pytest.raises(RecordNotFound, match="empty"):
        service.checkpoint()
    with pytest.raises(BadField) as err:
        service.consistency(1, None)
    assert err.value.field == "from"
    assert service.health()["status"] == "ok"


def test_closing_cancels_running_guests_and_is_idempotent(home):
    import time

    service = Service(Settings(home=str(home), maximum=Limits.parse(timeout="10min")))
    future = service.submit_run(body(wat=programs.LOOP, invoke="spin", limits={"timeout": "10min"}))
    while service.runs.running == 0:
        time.sleep(0.01)
    service.close()
    assert future.result(10).outcome.status == "interrupted"  # not the 10 min timeout; logged
    service.close()
    assert service.health()["status"] == "closing"
    with pytest.raises(Busy):
        service.submit_run(body(wat=programs.ADD, invoke="add", args=[1, 2]))


def test_a_worker_that_dies_fails_only_its_own_run_which_is_logged_as_crashed(home):
    """Guests run in worker processes: one killed mid-run is a logged ``crashed`` run, while
    the run in the other worker finishes and the next run works."""
    import os
    import signal
    import time

    maximum = Limits.parse(timeout="1min", fuel="none")  # the clock, not fuel, ends the loop
    service = Service(Settings(home=str(home), workers=2, maximum=maximum))
    try:
        assert service.workers.pids() == []  # the processes start with the first run
        spin = body(wat=programs.LOOP, invoke="spin", limits={"timeout": "3s", "fuel": "none"})
        doomed = service.submit_run(spin)
        while not (pids := service.workers.pids()):
            time.sleep(0.01)
        other = service.submit_run(spin)
        time.sleep(1.0)  # both guests are spinning
        os.kill(pids[0], signal.SIGKILL)
        crashed = doomed.result(30)
        assert crashed.outcome.status == "crashed"
        assert (
            "SIGKILL" in crashed.outcome.message and "running the guest" in crashed.outcome.message
        )
        assert other.result(30).outcome.status == "timeout"
        ex = service.submit_run(body(wat=programs.ADD, invoke="add", args=[2, 3])).result(60)
        assert list(ex.outcome.returns) == [5]
        assert pids[0] not in service.workers.pids()
        logged = [r["outcome"]["status"] for r in service.sandbox.log()]
        assert sorted(logged) == ["crashed", "ok", "timeout"]
        assert service.sandbox.verify_log().ok
        assert service.health()["runs_in_flight"] == 0
    finally:
        service.close()


def test_closing_during_a_compile_bomb_interrupts_it_and_logs_it(home):
    import base64
    import time

    from tests.hardening.bombs import nested_loops

    service = Service(Settings(home=str(home), maximum=Limits.parse(timeout="10min")))
    wasm_b64 = base64.b64encode(nested_loops(74_000)).decode()
    future = service.submit_run(body(wasm_b64=wasm_b64, limits={"timeout": "10min"}))
    while not service.workers.pids():
        time.sleep(0.01)
    time.sleep(0.5)  # compiling
    service.close()
    ex = future.result(10)
    assert ex.outcome.status == "interrupted"
    assert ex.outcome.message == "interrupted while compiling the module"
    assert service.sandbox.ledger.size == 1


def test_a_large_program_sealed_to_a_client_opens_from_the_detail_with_its_key(service):
    client = ec.generate_private_key(ec.SECP256R1())
    pem = client.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wasm = compile_wat(programs.ADD) + b"\x00\x84\x20\x03pad" + os.urandom(4096)  # a custom section
    wasm_b64 = base64.b64encode(wasm).decode()
    request = body(
        wasm_b64=wasm_b64, invoke="add", args=[1, 2], recipient_public_key_pem=pem.decode()
    )
    runs = [service.submit_run(request).result(30) for _ in range(2)]
    assert [ex.outcome.returns for ex in runs] == [(3,), (3,)]
    details = [service.execution(ex.id) for ex in runs]
    assert [d["record"]["v"] for d in details] == [3, 3]
    assert details[0]["ciphertexts"]["program"] == details[1]["ciphertexts"]["program"]
    for d in details:
        blobs = {k: base64.b64decode(v) for k, v in d["ciphertexts"].items()}
        assert record.open_record(d["record"], blobs, client).program == wasm
        with pytest.raises(DecryptionError):
            record.open_record(d["record"], blobs, service.sandbox.keys.recipient_private_key())
