"""Batch runs: results identical to serial runs, all logged, progress visible."""

from concurrent.futures import ThreadPoolExecutor

from tests import programs
from wasm_sandbox import Limits


def test_map_matches_serial_runs_and_logs_everything(sandbox):
    inputs = [(n,) for n in range(40)]
    serial = [sandbox.run(programs.FACT, invoke="fact", args=a).outcome.returns for a in inputs]
    batch = sandbox.map(programs.FACT, inputs, invoke="fact", progress=False)
    assert [ex.outcome.returns for ex in batch] == serial
    assert sandbox.ledger.size == 80
    assert sorted(ex.leaf_index for ex in batch) == list(range(40, 80))
    assert sandbox.verify_log().ok


def test_map_with_any_executor_and_a_progress_callback(sandbox):
    seen = []
    with ThreadPoolExecutor(3) as pool:
        batch = sandbox.map(
            programs.ADD,
            [(i, i) for i in range(10)],
            invoke="add",
            executor=pool,
            progress=lambda done, total: seen.append(done),
        )
    assert [ex.outcome.returns[0] for ex in batch] == [2 * i for i in range(10)]
    assert seen == list(range(1, 11))


def test_failures_are_rows_not_exceptions(sandbox):
    batch = sandbox.map(
        programs.LOOP, [()] * 3, invoke="spin", limits=Limits.parse(fuel=1000), progress=False
    )
    assert [row["status"] for row in batch.table()] == ["out_of_fuel"] * 3
    bad_args = sandbox.map(programs.ADD, [(1,)], invoke="add", progress=False)
    assert (
        bad_args[0].outcome.status == "error" and "takes 2 argument" in bad_args[0].outcome.message
    )


def test_many_programs_one_input_including_broken_submissions(sandbox):
    submissions = [
        programs.ADD,
        "(module (func i33.add))",
        programs.ADD.replace("i32.add", "i32.sub"),
    ]
    batch = sandbox.map_programs(submissions, args=(5, 3), invoke="add", progress=False)
    assert [ex.outcome.status for ex in batch] == ["ok", "error", "ok"]
    assert batch[0].outcome.returns == (8,) and batch[2].outcome.returns == (2,)
    assert "WAT line 1" in batch[1].outcome.message
    assert sandbox.decrypt(batch[1].id).program == b"(module (func i33.add))"


def test_table_and_dataframe(sandbox):
    batch = sandbox.map(programs.ADD, [(1, 2), (3, 4)], invoke="add", progress=False)
    rows = batch.table()
    assert rows[1]["returns"] == [7] and rows[1]["status"] == "ok"
    frame = batch.to_pandas()
    assert list(frame["status"]) == ["ok", "ok"] and "fuel_used" in frame.columns
    assert "<table>" in batch._repr_html_()


def test_batches_seal_to_the_recipient_and_record_what_single_runs_record(sandbox, tmp_path):
    from wasm_sandbox import Sandbox, record
    from wasm_sandbox.envelope import key_id

    with Sandbox(home=tmp_path / "teacher") as teacher:
        public = teacher.keys.recipient_public_key()
        many = sandbox.map_programs([programs.ADD] * 2, args=(2, 3), invoke="add", recipient=public)
        single = sandbox.run(programs.ADD, invoke="add", args=[2, 3], recipient=public)
        mapped = sandbox.map(programs.ADD, [(2, 3)], invoke="add", recipient=public)
        for ex in [*many, *mapped, single]:
            assert ex.record["recipient"] == key_id(public)
            blobs, key = sandbox.ledger.get(ex.id).blobs, teacher.keys.recipient_private_key()
            assert record.open_record(ex.record, blobs, key).result["returns"] == [["i32", "5"]]
    assert {tuple(sorted(ex.record)) for ex in [*many, *mapped]} == {tuple(sorted(single.record))}
