"""The pipeline end to end: real wasmtime, real crypto, a real SQLite log in a temp home."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import wasm_sandbox
from tests import programs
from wasm_sandbox import (
    CompileError,
    DecryptionError,
    Grants,
    InvocationError,
    Limits,
    RecordNotFound,
    RunFailed,
    Sandbox,
)
from wasm_sandbox.sources import compile_wat


def test_a_run_is_sealed_logged_and_decrypts_to_the_original(sandbox):
    ex = sandbox.run(programs.FACT, invoke="fact", args=[10])
    assert ex.outcome.returns == (3628800,)
    assert (ex.leaf_index, ex.tree_size) == (0, 1)
    assert len(ex.commitment) == 64 and len(ex.root) == 64
    opened = sandbox.decrypt(ex.id)
    assert opened.program == compile_wat(programs.FACT)
    assert opened.input["invoke"] == "fact" and opened.input["args"] == ["10"]
    assert opened.result["returns"] == [["i64", "3628800"]]
    assert opened.result["status"] == "ok"


def test_every_run_is_in_the_log_failed_ones_included(sandbox):
    statuses = [
        sandbox.run(programs.TRAP, invoke="boom").outcome.status,
        sandbox.run(programs.LOOP, invoke="spin", limits=Limits.parse(fuel=1000)).outcome.status,
        sandbox.run(
            programs.LOOP, invoke="spin", limits=Limits.parse(timeout="100ms")
        ).outcome.status,
        sandbox.run(programs.EXIT).outcome.status,
    ]
    assert statuses == ["trap", "out_of_fuel", "timeout", "exit"]
    rows = sandbox.log()
    assert [r["outcome"]["status"] for r in rows] == statuses[::-1]
    assert all(sandbox.verify(r["id"]).verified for r in rows)
    assert sandbox.verify_log().ok


def test_invalid_binary_is_logged_and_returned_with_its_error(sandbox):
    ex = sandbox.run(b"\0asm\x01\0\0\0\x01")
    assert ex.outcome.status == "error" and "end-of-file" in ex.outcome.message
    assert isinstance(ex.error, CompileError) and str(ex.error) == ex.outcome.message
    with pytest.raises(RunFailed, match="end-of-file") as err:
        ex.raise_for_status()
    assert err.value.execution is ex and err.value.__cause__ is ex.error
    assert sandbox.record(ex.id)["outcome"]["status"] == "error"
    assert sandbox.decrypt(ex.id).program == b"\0asm\x01\0\0\0\x01"


def test_missing_export_is_logged_as_an_error_run(sandbox):
    ex = sandbox.run(programs.ADD, invoke="sub")
    assert isinstance(ex.error, InvocationError) and not ex.succeeded
    assert sandbox.verify(ex.id).verified


def test_raise_for_status_passes_success_and_raises_every_other_status(sandbox):
    ok = sandbox.run(programs.ADD, invoke="add", args=[1, 2])
    assert ok.raise_for_status() is ok and ok.succeeded and ok.error is None
    trapped = sandbox.run(programs.TRAP, invoke="boom")
    with pytest.raises(RunFailed, match="unreachable") as err:
        trapped.raise_for_status()
    assert err.value.execution is trapped and err.value.__cause__ is None
    assert isinstance(err.value, wasm_sandbox.SandboxError)


TYPE_ERROR = """(module
  (func (export "f") (param i32) (result i32)
    (i32.add (local.get 0)
             (f32.const 1))))"""


def test_wat_type_error_points_at_the_wat_line_and_column_and_is_logged(sandbox):
    ex = sandbox.run(TYPE_ERROR, invoke="f", args=[1])
    exc = ex.error
    assert isinstance(exc, CompileError)
    assert str(exc) == "WAT line 3, column 6: type mismatch: expected i32, found f32"
    assert (exc.line, exc.column, exc.source_line) == (3, 6, "    (i32.add (local.get 0)")
    assert ex.outcome.message == str(exc)
    assert sandbox.verify(ex.id).verified


def test_compile_for_a_bound_module_locates_type_errors_too(sandbox):
    with pytest.raises(CompileError, match=r"^WAT line 3, column 6: type mismatch"):
        sandbox.compile(TYPE_ERROR)


def test_wat_syntax_error_logs_nothing(sandbox):
    with pytest.raises(CompileError, match="line 1"):
        sandbox.run("(module (func i33.add))")
    assert sandbox.ledger.size == 0


def test_two_runs_of_one_program_hide_behind_different_commitments(sandbox):
    a = sandbox.run(programs.ADD, invoke="add", args=[1, 2])
    b = sandbox.run(programs.ADD, invoke="add", args=[1, 2])
    assert a.record["key"]["enc"] != b.record["key"]["enc"]  # a fresh key pair per run
    for part in ("program", "input", "result"):
        assert a.record[part]["commitment"] != b.record[part]["commitment"]
    assert a.commitment != b.commitment


def test_verify_reports_each_check(sandbox):
    ex = sandbox.run(programs.ADD, invoke="add", args=[1, 2])
    report = sandbox.verify(ex.id)
    assert report.verified and bool(report)
    assert report.checks["record"] == "ok" and report.checks["commitments"] == "ok"
    assert report.checks["ciphertexts"] == "ok"
    assert report.to_json()["leaf_index"] == 0


def test_sealing_for_another_recipient(sandbox, tmp_path):
    teacher = ec.generate_private_key(ec.SECP256R1())
    pem = teacher.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ex = sandbox.run(
        programs.ADD, invoke="add", args=[2, 3], recipient=sandbox.keys.load_public_pem(pem)
    )
    with pytest.raises(DecryptionError):
        sandbox.decrypt(ex.id)
    from wasm_sandbox import record

    entry = sandbox.ledger.get(ex.id)
    opened = record.open_record(record.decode(entry.leaf), entry.blobs, teacher)
    assert opened.result["returns"] == [["i32", "5"]]
    report = sandbox.verify(ex.id)
    assert report.verified  # inclusion and signature hold; the commitments are not ours to open
    assert report.checks["commitments"].startswith("skipped: sealed to recipient")


def test_deterministic_replay_matches(sandbox, probe_wasm):
    grants = Grants.parse(argv=["time"], deterministic=True)
    ex = sandbox.run(probe_wasm, grants=grants)
    assert ex.record["deterministic"] is True
    report = sandbox.verify(ex.id, replay=True)
    assert report.replay["matches"], report.replay
    assert report.checks["replay"] == "ok"


def test_replay_of_a_real_clock_run_differs_and_says_why(sandbox, probe_wasm):
    ex = sandbox.run(probe_wasm, grants=Grants.parse(argv=["time"]))
    assert ex.record["deterministic"] is False
    report = sandbox.verify(ex.id, replay=True)
    assert not report.replay["matches"]
    assert (
        "stdout" in report.replay["reason"]
        and "not recorded as deterministic" in report.replay["reason"]
    )


def test_pure_functions_are_recorded_deterministic(sandbox):
    ex = sandbox.run(programs.FACT, invoke="fact", args=[5])
    assert ex.record["deterministic"] is True
    assert sandbox.verify(ex.id, replay=True).replay["matches"]


def test_resolve_references(sandbox):
    a = sandbox.run(programs.ADD, invoke="add", args=[1, 1])
    b = sandbox.run(programs.ADD, invoke="add", args=[2, 2])
    assert sandbox.resolve("last") == b.id
    assert sandbox.resolve("#0") == a.id
    assert sandbox.resolve(a.id) == a.id
    with pytest.raises(RecordNotFound):
        sandbox.resolve("#7")


def test_a_second_sandbox_on_the_same_home_sees_the_same_log(home):
    with Sandbox(home) as one:
        ex = one.run(programs.ADD, invoke="add", args=[4, 4])
    with Sandbox(home) as two:
        assert two.decrypt(ex.id).result["returns"] == [["i32", "8"]]
        assert two.run(programs.ADD, invoke="add", args=[1, 1]).leaf_index == 1
        assert two.verify_log().ok


def test_decrypt_shows_the_wat_text_that_was_run(sandbox):
    ex = sandbox.run(programs.FACT, invoke="fact", args=[3])
    opened = sandbox.decrypt(ex.id)
    assert opened.source == {"lang": "wat", "text": programs.FACT}
    assert opened.shown_source() == ("wat", programs.FACT)
    assert sandbox.verify(ex.id).verified


def test_a_failed_run_keeps_its_source_too(sandbox):
    ex = sandbox.run(programs.ADD, invoke="sub")
    assert sandbox.decrypt(ex.id).shown_source() == ("wat", programs.ADD)


def test_a_binary_is_shown_disassembled(sandbox):
    ex = sandbox.run(compile_wat(programs.ADD), invoke="add", args=[1, 2])
    opened = sandbox.decrypt(ex.id)
    kind, text = opened.shown_source()
    assert opened.source is None and "source" not in ex.record
    assert kind == "disassembly" and "i32.add" in text and text.startswith("(module")


def test_bytes_that_are_no_module_have_no_source_to_show(sandbox):
    ex = sandbox.run(b"\0asm\x01\0\0\0\x01")
    assert sandbox.decrypt(ex.id).shown_source() == (None, None)


def _version_1_record(sandbox, stdin: bytes) -> str:
    """Log a run the way records before input version 2 were sealed: stdin as hex in JSON."""
    from wasm_sandbox import envelope, record
    from wasm_sandbox.envelope import canonical

    wasm = compile_wat(programs.ECHO)
    outcome = sandbox.engine.run(sandbox.engine.compile(wasm), grants=Grants(stdin=stdin))
    grants = {**Grants(stdin=stdin).to_payload(), "stdin": stdin.hex()}
    public = sandbox.keys.recipient_public_key()
    rid = record.new_id()
    payloads = {
        "program": wasm,
        "input": canonical({"invoke": None, "args": [], "grants": grants}),
        "result": canonical(outcome.result_payload()),
    }
    parts = {p: envelope.seal(p, payloads[p], public, rid) for p in envelope.PURPOSES}
    rec = record.build(
        rid, 0, envelope.key_id(public), parts, len(wasm), Limits().to_record(),
        outcome.summary(), outcome.deterministic,
    )  # fmt: skip
    del rec["input"]["v"]
    sandbox.ledger.append(rid, record.encode(rec), record.blobs(parts))
    return rid


def test_records_with_stdin_as_hex_still_decrypt_verify_and_replay(sandbox):
    rid = _version_1_record(sandbox, b"old stdin\n")
    assert "v" not in sandbox.record(rid)["input"]
    assert sandbox.decrypt(rid).stdin == b"old stdin\n"
    report = sandbox.verify(rid, replay=True)
    assert report.verified and report.checks["replay"] == "ok"
    assert sandbox.verify_log().ok
