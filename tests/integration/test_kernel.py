"""The magics in a real IPython kernel, driven through jupyter_client.

One kernel per module (``WASM_SANDBOX_HOME`` in a temporary directory). Each run's facts are
read back twice, as a front end would see them: from the card's widget state (``comm_open``
and ``comm_msg`` on iopub) and from the static HTML published with it.
"""

from __future__ import annotations

import html
import json
import os
import queue
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import wasmtime

from tests import programs

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipywidgets")

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Grows memory a page at a time until the limit refuses, then returns the pages it has.
MEMORY_BOMB = """(module (memory (export "memory") 1)
  (func (export "bomb") (result i32)
    (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (memory.size)))"""


@dataclass
class Cell:
    """Everything one execute request produced."""

    messages: list[dict[str, Any]]
    reply: dict[str, Any]
    interrupted_to_idle: float | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        by_id: dict[str, dict[str, Any]] = {}
        for msg in self.messages:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "clear_output":
                self.outputs.clear()
            elif kind == "display_data":
                out = {"data": content["data"]}
                self.outputs.append(out)
                if content.get("transient", {}).get("display_id"):
                    by_id[content["transient"]["display_id"]] = out
            elif kind == "update_display_data":
                by_id[content["transient"]["display_id"]]["data"] = content["data"]
            elif kind in ("stream", "execute_result", "error"):
                self.outputs.append({"kind": kind, **content})

    def stream(self, name: str) -> str:
        return "".join(o["text"] for o in self.outputs if o.get("name") == name)

    @property
    def displays(self) -> list[dict[str, Any]]:
        return [o["data"] for o in self.outputs if "data" in o]

    @property
    def card(self) -> dict[str, Any]:
        cards = [d for d in self.displays if WIDGET_VIEW in d]
        assert len(cards) == 1, f"expected one card, got {self.outputs}"
        return cards[0]

    @property
    def static(self) -> dict[str, Any]:
        """The card's static fallback: the output after the widget."""
        shown = [d for d in self.displays if "wasm-sandbox-fallback" in d.get("text/html", "")]
        assert len(shown) == 1, f"expected one static fallback, got {self.outputs}"
        return shown[0]


class Kernel:
    """A running ipykernel and the widget models it has published."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self.km = jupyter_client.KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.models: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def run(
        self, code: str, timeout: float = 60, during: Callable[[float], None] | None = None
    ) -> Cell:
        """Execute ``code``; ``during(elapsed)`` is called while waiting (to interrupt)."""
        msg_id = self.kc.execute(code)
        messages, start, interrupted = [], time.monotonic(), None
        while True:
            if during is not None and interrupted is None and during(time.monotonic() - start):
                interrupted = time.monotonic()
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                assert time.monotonic() - start < timeout, f"no idle after {timeout} s: {code}"
                continue
            self._track(msg)  # widget updates of a button click have the click as parent
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        to_idle = time.monotonic() - interrupted if interrupted else None
        return Cell(messages, self._reply(msg_id), to_idle)

    def value(self, expr: str) -> Any:
        """A JSON-able value computed in the kernel."""
        cell = self.run(f"import json as _j; print(_j.dumps({expr}))")
        assert cell.reply["status"] == "ok", cell.outputs
        return json.loads(cell.stream("stdout"))

    def click(self, model_id: str) -> Cell:
        """Press a button as a front end does, and wait until the kernel has handled it."""
        data = {"method": "custom", "content": {"event": "click"}}
        self.kc.session.send(
            self.kc.shell_channel.socket, "comm_msg", {"comm_id": model_id, "data": data}
        )
        return self.run("pass")  # queued after the click on the same channel

    def text(self, model_id: str) -> str:
        """Every value and description in the widget tree under ``model_id``."""
        state = self.models[model_id]
        parts = [str(state.get(k, "")) for k in ("description", "value", "max")]
        for child in state.get("children", []):
            parts.append(self.text(child.removeprefix("IPY_MODEL_")))
        return "\n".join(parts)

    def find(self, root: str, model_name: str) -> list[str]:
        """Ids of the models called ``model_name`` in the tree under ``root``."""
        state = self.models[root]
        found = [root] if state.get("_model_name") == model_name else []
        for child in state.get("children", []):
            found += self.find(child.removeprefix("IPY_MODEL_"), model_name)
        return found

    def _track(self, msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "comm_open" and content.get("target_name") == "jupyter.widget":
            self.models[content["comm_id"]] = dict(content["data"]["state"])
        elif msg["msg_type"] == "comm_msg" and content["data"].get("method") == "update":
            state = content["data"]["state"]
            self.models.setdefault(content["comm_id"], {}).update(state)
            self.updates[content["comm_id"]].append(state)

    def _reply(self, msg_id: str) -> dict[str, Any]:
        while True:
            reply = self.kc.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    base = tmp_path_factory.mktemp("kernel")
    env = {**os.environ, "WASM_SANDBOX_HOME": str(base / "home")}
    k = Kernel(env, cwd=str(base))
    cell = k.run("%load_ext wasm_sandbox")
    assert cell.reply["status"] == "ok" and not cell.outputs, cell.outputs
    yield k
    k.close()


def run_wasm(kernel: Kernel, line: str, body: str | None = None) -> tuple[Cell, dict[str, Any]]:
    """Run ``%%wasm line`` (or ``%wasm line`` without a body); return the cell and the
    run's facts as ``Execution.to_json()`` gives them."""
    code = f"%%wasm {line} --out _ex\n{body}" if body is not None else f"%wasm {line} --out _ex"
    cell = kernel.run(code)
    return cell, kernel.value("_ex.to_json()")


def assert_shows(kernel: Kernel, cell: Cell, facts: dict[str, Any], label: str) -> None:
    """The card's widget state and its static HTML both carry the run's facts."""
    card = cell.card
    widget_text = kernel.text(card[WIDGET_VIEW]["model_id"])
    static = cell.static["text/html"]
    for where, text in (("widget", widget_text), ("static HTML", static)):
        expected = [
            f'data-status="{facts["status"]}"',
            label,
            f"{facts['fuel_used']:,} / {facts['fuel_limit']:,}",
            f"{facts['memory_bytes']:,} / {facts['memory_limit']:,} bytes",
            facts["commitment"],
            f"leaf #{facts['leaf_index']} of a tree of size {facts['tree_size']}",
            facts["root"],
        ]
        for fact in expected:
            assert fact in text, f"{fact!r} missing from the card's {where}"
    assert facts["commitment"] in cell.static["text/plain"]


def test_load_ext_registers_the_magics(kernel):
    cell = kernel.run("%lsmagic")
    text = json.dumps(cell.displays)
    for name in ("%%wasm", "%wasm", "%wasm_verify", "%wasm_log"):
        assert name in text


def test_wat_cell_with_invoke(kernel):
    cell, facts = run_wasm(kernel, "--invoke add 2 40", programs.ADD)
    assert facts["status"] == "ok" and facts["returns"] == [42]
    assert_shows(kernel, cell, facts, ">ok<")
    assert "42" in kernel.text(cell.card[WIDGET_VIEW]["model_id"])


def test_python_values_in_arguments(kernel):
    kernel.run("n = 20")
    _, facts = run_wasm(kernel, "--invoke add {n} {n * 2}", programs.ADD)
    assert facts["returns"] == [60]


def test_wasi_hello_world(kernel):
    cell, facts = run_wasm(kernel, "", programs.HELLO)
    assert facts["stdout"] == "hello, sandbox\n"
    assert_shows(kernel, cell, facts, ">ok<")
    assert "hello, sandbox" in cell.static["text/html"]
    assert "hello, sandbox" in kernel.text(cell.card[WIDGET_VIEW]["model_id"])


def test_fuel_exhausting_loop_is_a_result(kernel):
    cell, facts = run_wasm(kernel, "--invoke spin --fuel 1e6", programs.LOOP)
    assert cell.reply["status"] == "ok"
    assert facts["status"] == "out_of_fuel" and facts["fuel_used"] == 1_000_000
    assert_shows(kernel, cell, facts, "out of fuel")


def test_timeout_is_a_result(kernel):
    cell, facts = run_wasm(kernel, "--invoke spin --timeout 300ms", programs.LOOP)
    assert cell.reply["status"] == "ok" and facts["status"] == "timeout"
    assert_shows(kernel, cell, facts, "stopped after the 0.3 s timeout")


def test_memory_bomb_stops_at_the_limit(kernel):
    cell, facts = run_wasm(kernel, "--invoke bomb --memory 1MiB", MEMORY_BOMB)
    assert facts["returns"] == [16] and facts["memory_bytes"] == 1 << 20
    assert_shows(kernel, cell, facts, "(16 / 16 pages of 64 KiB)")


def test_memory_above_the_limit_at_start(kernel):
    cell, facts = run_wasm(kernel, "--invoke f --memory 1MiB", programs.BIG_MEMORY)
    assert facts["status"] == "memory_limit"
    assert_shows(kernel, cell, facts, "memory limit")


def test_trap_shows_kind_and_frames(kernel):
    cell, facts = run_wasm(kernel, "--invoke boom", programs.TRAP)
    assert facts["status"] == "trap"
    assert_shows(kernel, cell, facts, "trap: unreachable")
    assert html.escape(facts["frames"][0]) in cell.static["text/html"]


def test_compile_error_shows_the_line_and_a_caret(kernel):
    bad = '(module\n  (func (export "f") (i32.bogus)))'
    cell = kernel.run(f"%%wasm --invoke f\n{bad}")
    stderr = cell.stream("stderr")
    assert "UsageError: WAT line 3, column 23" in stderr  # the %%wasm line is line 1
    assert '   3 |   (func (export "f") (i32.bogus)))\n' in stderr
    assert "\n     |                       ^" in stderr
    assert "Traceback" not in stderr and not cell.displays  # the placeholder card is gone
    assert kernel.run("1 + 1").reply["status"] == "ok"


def test_a_type_error_is_one_error_at_the_cell_line_and_no_card(kernel):
    body = '(module\n  (func (export "f") (result i32)\n    (i32.add (i32.const 1) (f32.const 2))))'
    cell = kernel.run(f"%%wasm --invoke f\n{body}")
    stderr = cell.stream("stderr")
    assert stderr.startswith("UsageError: WAT line 4, column 6: type mismatch: expected i32")
    assert "(run logged as #" in stderr and "Traceback" not in stderr
    assert not cell.displays


def test_help_on_an_empty_cell(kernel):
    cell = kernel.run("%%wasm --help")
    assert cell.stream("stdout").startswith("usage: %%wasm") and not cell.stream("stderr")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("--bogus", "unrecognized arguments: --bogus"),
        ("--quiet --show wat", "--quiet shows nothing"),
        ("--fuel lots", "fuel: cannot read 'lots'"),
        ("--invoke nope", "no exported function 'nope'"),
    ],
)
def test_bad_usage_is_one_line(kernel, line, problem):
    cell = kernel.run(f"%%wasm {line}\n{programs.ADD}")
    stderr = cell.stream("stderr")
    assert stderr.startswith("UsageError: ") and problem in stderr
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr


def test_line_magic_runs_a_wasm_file(kernel, tmp_path):
    path = tmp_path / "hello.wasm"
    path.write_bytes(wasmtime.wat2wasm(programs.HELLO))
    cell, facts = run_wasm(kernel, str(path))
    assert facts["stdout"] == "hello, sandbox\n"
    assert_shows(kernel, cell, facts, ">ok<")
    assert "hello.wasm: _start" in kernel.text(cell.card[WIDGET_VIEW]["model_id"])


def test_name_binds_a_module_for_later_runs(kernel):
    cell = kernel.run(f"%%wasm --name fact_mod --show imports --show wat\n{programs.FACT}")
    shown = "\n".join(d["text/plain"] for d in cell.displays)
    assert "fact  func (i64) -> (i64)" in shown and "(module" in shown
    assert "%wasm --module fact_mod" in cell.stream("stdout")
    cell, facts = run_wasm(kernel, "--module fact_mod --invoke fact 10")
    assert facts["returns"] == [3628800]


def test_config_lists_every_option(kernel):
    out = kernel.run("%config WasmSandbox").stream("stdout")
    for option in (
        "fuel",
        "memory",
        "timeout",
        "output",
        "deterministic",
        "home",
        "recipient",
        "display",
        "full_tracebacks",
    ):
        assert f"WasmSandbox.{option}=" in out
    assert out.count("Current:") >= 9
    assert "Current: '10s'" in out


def test_config_sets_the_default_limits(kernel):
    kernel.run('%config WasmSandbox.fuel = "2e6"')
    try:
        _, facts = run_wasm(kernel, "--invoke spin", programs.LOOP)
    finally:
        kernel.run("%config WasmSandbox.fuel = 10_000_000_000")
    assert facts["status"] == "out_of_fuel" and facts["fuel_limit"] == 2_000_000


def test_text_display_mode_has_no_widget(kernel):
    kernel.run('%config WasmSandbox.display = "text"')
    try:
        cell, facts = run_wasm(kernel, "--invoke add 1 2", programs.ADD)
    finally:
        kernel.run('%config WasmSandbox.display = "card"')
    [shown] = cell.displays
    assert WIDGET_VIEW not in shown and facts["commitment"] in shown["text/html"]


def test_verify_last(kernel):
    _, facts = run_wasm(kernel, "--invoke add 1 2", programs.ADD)
    [shown] = kernel.run("%wasm_verify last").displays
    for text in (shown["text/plain"], shown["text/html"]):
        assert "VERIFIED" in text and "NOT VERIFIED" not in text
        assert facts["id"] in text and f"leaf #{facts['leaf_index']}" in text
        assert "commitments" in text


def test_log_is_a_table(kernel):
    for n in range(3):
        run_wasm(kernel, f"--invoke add {n} 0", programs.ADD)
    size = kernel.value("_ex.tree_size")
    [shown] = kernel.run("%wasm_log -n 3").displays
    assert shown["text/html"].count("<tr>") == 4  # a header and three runs
    for index in range(size - 3, size):
        assert f"#{index}" in shown["text/plain"] and f">#{index}<" in shown["text/html"]


def test_verify_and_decrypt_buttons(kernel):
    cell, _ = run_wasm(kernel, "--invoke add 5 6", programs.ADD)
    root = cell.card[WIDGET_VIEW]["model_id"]
    verify, decrypt = kernel.find(root, "ButtonModel")
    *_, detail = kernel.find(root, "HTMLModel")  # top, fuel, facts, detail
    kernel.click(verify)
    assert "VERIFIED" in kernel.models[detail]["value"]
    kernel.click(decrypt)
    opened = kernel.models[detail]["value"]
    assert "decrypted" in opened and "&quot;invoke&quot;: &quot;add&quot;" in opened


@pytest.mark.slow
def test_interrupt_returns_to_idle_and_the_next_cell_runs(kernel):
    kernel.run('%config WasmSandbox.timeout = "60s"')

    def interrupt(elapsed: float) -> bool:
        if elapsed < 1.0:
            return False
        kernel.km.interrupt_kernel()
        return True

    try:
        cell = kernel.run(f"%%wasm --invoke spin --out _ex\n{programs.LOOP}", during=interrupt)
    finally:
        kernel.run('%config WasmSandbox.timeout = "10s"')
    assert cell.interrupted_to_idle is not None  # idle again, long before the 60 s timeout
    facts = kernel.value("_ex.to_json()")
    assert facts["status"] == "interrupted"
    assert_shows(kernel, cell, facts, "interrupted")
    _, after = run_wasm(kernel, "--invoke add 1 1", programs.ADD)
    assert after["status"] == "ok" and after["returns"] == [2]


@pytest.mark.slow
def test_fuel_gauge_moves_while_the_guest_runs(kernel):
    cell, facts = run_wasm(kernel, "--invoke spin --timeout 2s --fuel none", programs.CALLING_LOOP)
    [gauge] = kernel.find(cell.card[WIDGET_VIEW]["model_id"], "IntProgressModel")
    values = [u["value"] for u in kernel.updates[gauge] if "value" in u]
    live = sorted({v for v in values if 0 < v < facts["fuel_used"]})
    assert len(live) >= 2, values
    assert values == sorted(values)  # it only moves forward
    assert facts["status"] == "timeout"


@pytest.mark.slow
def test_memory_stays_flat_over_200_runs(kernel):
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("reads /proc")
    kernel.run(
        "import gc, os\n"
        "def _rss():\n"
        "    gc.collect()\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
        f"_FACT = {programs.FACT!r}\n"
        "def _runs(n):\n"
        "    for _ in range(n):\n"
        "        get_ipython().run_cell_magic('wasm', '--invoke fact 20', _FACT)"
    )
    kernel.run("_runs(20)")  # warm up: caches, first widgets, SQLite pages
    before = kernel.value("_rss()")
    cell = kernel.run("_runs(200)", timeout=300)
    after = kernel.value("_rss()")
    assert cell.reply["status"] == "ok"
    assert len([d for d in cell.displays if WIDGET_VIEW in d]) == 200
    assert after - before < 50 * 2**20, f"grew {(after - before) / 2**20:.1f} MiB"


def test_static_view_matches_the_execution_repr(kernel):
    _, facts = run_wasm(kernel, "--invoke add 3 4 --quiet", programs.ADD)
    [shown] = kernel.run("_ex").displays  # the printer %load_ext registers for an Execution
    assert re.search(r'data-status="ok"', shown["text/html"])
    assert facts["commitment"] in shown["text/html"] and facts["commitment"] in shown["text/plain"]


@pytest.mark.slow
def test_saved_notebook_shows_the_run_without_a_kernel(tmp_path, monkeypatch):
    """nbclient saves the widget state, so nbconvert renders the widget view (a script whose
    loader comes from a CDN): the facts must be in a static output of their own."""
    import subprocess
    import sys

    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from wasm_sandbox import Sandbox

    home = tmp_path / "home"
    monkeypatch.setenv("WASM_SANDBOX_HOME", str(home))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext wasm_sandbox"),
        nbformat.v4.new_code_cell(f"%%wasm --invoke add 2 3\n{programs.ADD}"),
        nbformat.v4.new_code_cell(f"%%wasm --invoke boom\n{programs.TRAP}"),
        nbformat.v4.new_code_cell(f"%%wasm --invoke spin --fuel 5000\n{programs.LOOP}"),
    ]
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute(cwd=str(tmp_path))
    assert "widgets" in nb.metadata  # the widget state that made nbconvert pick the widget
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", str(path)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    page = (tmp_path / "saved.html").read_text()
    no_scripts = re.sub(r"<script\b.*?</script>", "", page, flags=re.S | re.I)
    text = html.unescape(re.sub(r"<[^>]+>", " ", no_scripts))
    cards = {
        (
            re.search(r'data-status="(\w+)"', tag)[1],
            int(re.search(r'data-leaf-index="(\d+)"', tag)[1]),
        )
        for tag in re.findall(r'<div [^>]*class="wasm-sandbox-run"[^>]*>', no_scripts)
    }  # nbconvert's sanitizer sorts the attributes
    with Sandbox(home=home) as sb:
        runs = sb.log()
    assert cards == {(r["outcome"]["status"], r["leaf_index"]) for r in runs}
    assert sorted(status for status, _ in cards) == ["ok", "out_of_fuel", "trap"]
    for r in runs:
        o = r["outcome"]
        assert f"{o['fuel_used']:,} / {r['limits']['fuel']:,}" in text
        assert f"leaf #{r['leaf_index']} of a tree of size" in text
    for label in ("ok", "trap: unreachable", "out of fuel"):
        assert re.search(rf"\b{label}\b", text), label


def test_a_cell_runs_in_a_worker_process_that_dies_with_a_sigkilled_kernel(tmp_path):
    """In Jupyter guests run in worker processes (the default `process` isolation); a killed
    kernel leaves none of them behind."""
    import signal

    from tests.integration.test_isolation import alive, wait_gone

    env = {**os.environ, "WASM_SANDBOX_HOME": str(tmp_path / "home")}
    k = Kernel(env, cwd=str(tmp_path))
    try:
        k.run("%load_ext wasm_sandbox")
        _, facts = run_wasm(k, "--invoke fact 5 --quiet", programs.FACT)
        assert facts["returns"] == [120]
        magic = "get_ipython().find_magic('wasm').__self__"
        pids = k.value(f"{magic}.settings.sandbox().pool.pids()")
        kernel_pid = k.value("__import__('os').getpid()")
        assert pids and kernel_pid not in pids and all(alive(p) for p in pids)
        os.kill(kernel_pid, signal.SIGKILL)
        assert wait_gone(pids) == []
    finally:
        k.close()
