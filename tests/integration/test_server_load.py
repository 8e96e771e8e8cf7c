"""Load on a real server: many concurrent runs, infinite loops among them, health meanwhile."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests import programs
from tests.integration.test_server_harness import API, start_server
from wasm_sandbox import Sandbox

WORKERS, QUEUE = 4, 96  # room for exactly 100 runs at once
LOOP_TIMEOUT = "1s"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    srv = start_server(
        root, root / "home", max_concurrent_runs=WORKERS, max_queued_runs=QUEUE, max_timeout="2s"
    )
    # The worker processes start with the first run (a server whose REST API is never used
    # starts none); make that run here, so the tests measure a service that is up.
    first = srv.post("executions", {"wat": programs.ADD, "invoke": "add", "args": [1, 2]})
    assert first.status_code == 201, first.text
    yield srv
    srv.stop()


#: The probe runs in its own small process: a pause of the (large) test process, such as a
#: full garbage collection, must not count against the server.
PROBE = """
import http.client, json, sys, threading, time
host, port, path, token = sys.argv[1:]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
conn, seen = http.client.HTTPConnection(host, int(port), timeout=5), []
while not stop.is_set():
    start = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": "token " + token})
    response = conn.getresponse()
    body = response.read()
    load = json.loads(body) if response.status == 200 else {}
    seen.append([time.perf_counter() - start, response.status,
                 load.get("runs_in_flight", 0) + load.get("runs_queued", 0)])
    stop.wait(0.02)
print(json.dumps(seen))
"""


class HealthProbe:
    """Polls ``GET health`` every 20 ms from another process: latencies and peak load."""

    def __init__(self, server) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self._args = [sys.executable, "-c", PROBE, host, port, f"/{API}/health", server.token]
        self.latencies: list[float] = []
        self.failures: list[int] = []
        self.peak = 0

    def __enter__(self) -> HealthProbe:
        self._process = subprocess.Popen(
            self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        time.sleep(0.3)  # let it start polling before the load does
        return self

    def __exit__(self, *exc: object) -> None:
        out, _ = self._process.communicate("", timeout=30)
        seen = json.loads(out)
        self.latencies = [latency for latency, _, _ in seen]
        self.failures = [status for _, status, _ in seen if status != 200]
        self.peak = max((load for _, _, load in seen), default=0)


def job(i: int) -> tuple[dict, tuple[str, object]]:
    """The i-th request and what its answer must hold: sums, echoes and infinite loops."""
    if i % 5 == 0:
        loop = {"wat": programs.LOOP, "invoke": "spin", "limits": {"timeout": LOOP_TIMEOUT}}
        return loop, ("timeout", None)
    if i % 5 == 1:
        return {"wat": programs.ECHO, "stdin": f"request {i}"}, ("ok", f"request {i}")
    return {"wat": programs.ADD, "invoke": "add", "args": [i, 1000 * i]}, ("ok", [1001 * i])


async def post_all(server, bodies: list[dict]) -> list[httpx.Response]:
    """POST every body at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(headers=server.headers(), timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(client.post(server.api("executions"), json=body) for body in bodies)
        )


def test_100_concurrent_runs_complete_isolated_while_health_answers(server):
    """100 requests sent at once (20 of them infinite loops stopped after 1 s): all are in the
    server together, and health keeps answering throughout (its latency is printed, not
    asserted: timings belong in benchmarks/), even while the event loop takes the 100 in. All
    complete, each with its own result."""
    size_before = server.get("executions?limit=1").json()["tree_size"]
    jobs = [job(i) for i in range(100)]
    with HealthProbe(server) as probe:
        responses = _run_in_thread(post_all(server, [body for body, _ in jobs]))
    assert [r.status_code for r in responses] == [201] * 100, {r.text for r in responses}
    for (_, (status, expected)), response in zip(jobs, responses, strict=True):
        ex = response.json()
        assert ex["status"] == status, ex
        if isinstance(expected, str):
            assert ex["stdout"] == expected
        elif expected is not None:
            assert ex["returns"] == expected
    assert len({r.json()["id"] for r in responses}) == 100
    assert server.get("executions?limit=1").json()["tree_size"] == size_before + 100

    assert probe.peak >= 80, probe.peak  # they really were in the server at the same time
    assert not probe.failures and len(probe.latencies) >= 20
    print(
        f"health: {len(probe.latencies)} probes, peak load {probe.peak}, slowest "
        f"{[round(x * 1000, 1) for x in sorted(probe.latencies)[-3:]]} ms"
    )


def test_beyond_capacity_requests_are_refused_and_none_is_lost(server):
    """160 requests at once for room for 100: the rest get 503 at once; every 201 is logged."""
    size_before = server.get("executions?limit=1").json()["tree_size"]
    rejected_before = _rejected(server)
    sent = 160
    body = {"wat": programs.LOOP, "invoke": "spin", "limits": {"timeout": "200ms"}}
    with HealthProbe(server) as probe:
        responses = _run_in_thread(post_all(server, [body] * sent))
    codes = [r.status_code for r in responses]
    accepted, refused = codes.count(201), codes.count(503)
    assert accepted + refused == sent, sorted(set(codes))
    assert refused > 0 and accepted >= WORKERS + QUEUE
    for r in responses:
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) >= 1 and r.json()["message"]
        else:
            assert r.json()["status"] == "timeout"
    page = server.get(f"executions?after={size_before - 1}&limit=1000").json()
    logged = {item["id"] for item in page["items"]}
    assert logged == {r.json()["id"] for r in responses if r.status_code == 201}
    assert page["tree_size"] == size_before + accepted
    assert _rejected(server) == rejected_before + refused
    print(
        f"burst: {accepted} accepted, {refused} refused; health slowest "
        f"{[round(x * 1000, 1) for x in sorted(probe.latencies)[-3:]]} ms"
    )
    # While 160 connections arrive at once, health waits its turn behind their intake by the
    # event loop (about half a millisecond of jupyter_server work each): never refused.
    assert not probe.failures and max(probe.latencies) < 0.25, sorted(probe.latencies)[-5:]
    with Sandbox(home=server.home) as sb:
        assert sb.verify_log().ok


def _rejected(server) -> float:
    text = server.get("metrics").text
    prefix = 'wasm_sandbox_requests_rejected_total{pool="runs"}'
    line = next(x for x in text.splitlines() if x.startswith(prefix))
    return float(line.split()[-1])


def _run_in_thread(coro):
    """``asyncio.run`` on a thread of its own: earlier tests in the same session (kernels,
    nbval) may leave an event loop installed in the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
