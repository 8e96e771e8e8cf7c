"""A real ``jupyter server``: compile bombs end at the operator's maximum, a trivial run
behind them is not held up, and a SIGKILLed server leaves no worker process behind."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests import programs
from tests.hardening.bombs import many_functions, nested_loops
from tests.integration.test_isolation import alive, wait_gone
from tests.integration.test_server_harness import start_server


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_compile_bombs_end_at_the_operators_maximum_and_a_sigkill_leaves_no_worker(tmp_path):
    srv = start_server(tmp_path, tmp_path / "home", max_concurrent_runs=2, max_timeout="1s")
    try:
        bombs = [nested_loops(74_000), many_functions(100_000)]
        bodies = [{"wasm_b64": base64.b64encode(b).decode()} for b in bombs]
        trivial = {"wat": programs.ADD, "invoke": "add", "args": [2, 3]}
        with ThreadPoolExecutor(3) as pool:
            sent = [pool.submit(srv.post, "executions", body) for body in bodies]
            behind = pool.submit(srv.post, "executions", trivial)
            answers = [f.result() for f in sent]
            assert behind.result().json()["returns"] == [5]
        assert [a.status_code for a in answers] == [201, 201]
        assert [a.json()["status"] for a in answers] == ["compile_limit"] * 2
        assert all("1 s timeout" in a.json()["message"] for a in answers)

        assert srv.post("executions", trivial).json()["returns"] == [5]  # a worker is up
        workers = children(srv.process.pid)
        assert workers and all(alive(p) for p in workers)
        srv.process.kill()
        srv.process.wait(10)
        assert wait_gone(workers) == []
    finally:
        srv.stop()
