"""Sandbox.map through the sandbox's worker processes, which run and seal each job while
the caller appends: every run logged in its place, sealed to the right key, the private key
never sent, and a dead or stuck worker costing one run, not the batch."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace

import pytest

from tests import programs
from wasm_sandbox import DecryptionError, Limits, RunOptions, Sandbox, merkle, pool, procmap, record
from wasm_sandbox.envelope import public_der
from wasm_sandbox.sources import Program, compile_wat

RUNS = 64
#: Loops ``n`` times and returns ``n``: a guest of a few milliseconds for n = 10^6.
COUNT = """(module (func (export "count") (param $n i32) (result i32) (local $i i32)
  (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
  (local.get $i)))"""


@pytest.fixture
def warm(sandbox):
    """The sandbox with its worker processes started: a batch goes to them at once (on a
    cold pool the caller runs jobs itself while they start)."""
    sandbox.pool.warm(procmap.cores())
    return sandbox


#: A program and source above `record.BY_CONTENT_MIN` bytes: sealed by content (version 3).
BIG = (
    '(module (memory 1) (data (i32.const 0) "'
    + "x" * 2048
    + '") (func (export "id") (param i32) (result i32) (local.get 0)))'
)


def _expected_fact(n):
    out = 1
    for k in range(2, n + 1):
        out *= k
    return out


def _check_logged(sandbox, batch, first_leaf=0):
    """Every execution is the stored leaf at its index, opens with the home's key, and the
    whole log verifies."""
    assert sorted(ex.leaf_index for ex in batch) == list(range(first_leaf, first_leaf + len(batch)))
    assert len({ex.id for ex in batch}) == len(batch)
    for ex in batch:
        entry = sandbox.ledger.get(ex.leaf_index)
        assert entry.record_id == ex.id
        assert merkle.leaf_hash(entry.leaf).hex() == ex.commitment
        assert ex.leaf_index < ex.tree_size <= sandbox.ledger.size
    assert sandbox.verify_log().ok


@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_a_default_batch_logs_every_run_in_its_place(sandbox, home, pool):
    if pool == "warm":
        sandbox.pool.warm(procmap.cores())
    inputs = [(n % 20,) for n in range(RUNS)]
    batch = sandbox.map(programs.FACT, inputs, invoke="fact", progress=False)
    assert [ex.outcome.returns for ex in batch] == [(_expected_fact(n),) for (n,) in inputs]
    _check_logged(sandbox, batch)
    opened = sandbox.decrypt(batch[7].id)
    assert opened.input["args"] == ["7"] and opened.result["returns"] == [["i64", "5040"]]
    assert sandbox.verify(batch[-1].id).verified
    cli = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", "verify", "--all", "--json", "--home", home],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["verified"] is True


def test_records_match_a_single_run_and_open_only_with_the_recipients_key(warm, sandbox, tmp_path):
    with Sandbox(home=tmp_path / "teacher") as teacher:
        public, private = teacher.keys.recipient_public_key(), teacher.keys.recipient_private_key()
        batch = sandbox.map(
            programs.ADD, [(i, 1) for i in range(RUNS)], invoke="add", recipient=public
        )
        single = sandbox.run(programs.ADD, invoke="add", args=(2, 1), recipient=public)
    assert sorted(batch[0].record) == sorted(single.record)
    for field in ("recipient", "limits", "suite", "grants"):
        assert batch[5].record[field] == single.record[field]
    for ex in batch:
        opened = record.open_record(ex.record, sandbox.ledger.get(ex.id).blobs, private)
        assert opened.result["returns"] == [["i32", str(ex.outcome.returns[0])]]
    with pytest.raises(DecryptionError, match="not to this key"):
        sandbox.decrypt(batch[0].id)


def test_what_goes_to_the_workers_holds_no_private_key(warm, sandbox, monkeypatch):
    sent = []
    real_send = pool.Worker.send

    def recording_send(worker, job):
        sent.append(job)
        return real_send(worker, job)

    monkeypatch.setattr(pool.Worker, "send", recording_send)
    batch = sandbox.map(programs.ADD, [(i, i) for i in range(RUNS)], invoke="add", progress=False)
    assert [ex.outcome.returns[0] for ex in batch] == [2 * i for i in range(RUNS)]
    chunks = [data for data in sent if isinstance(data, bytes)]
    assert chunks, "the jobs went to the workers as pickled chunks"
    private = sandbox.keys.recipient_private_key()
    secret = private.private_numbers().private_value.to_bytes(32, "big")
    signing = sandbox.keys.signing_key().private_bytes_raw()
    everything = b"".join(chunks)
    assert public_der(private.public_key()) in everything
    assert secret not in everything and signing not in everything
    assert sandbox.keys.content_secret() not in everything


def test_a_large_program_is_sealed_by_content_in_the_workers(warm, sandbox, monkeypatch):
    sent = []
    real_send = pool.Worker.send
    monkeypatch.setattr(pool.Worker, "send", lambda w, job: (sent.append(job), real_send(w, job)))
    batch = sandbox.map(BIG, [(i,) for i in range(RUNS)], invoke="id", progress=False)
    assert [ex.outcome.returns for ex in batch] == [(i,) for i in range(RUNS)]
    assert {ex.record["v"] for ex in batch} == {3}
    assert len({ex.record["program"]["ct_sha256"] for ex in batch}) == 1, "one shared ciphertext"
    assert sandbox.decrypt(batch[9].id).program == compile_wat(BIG)
    assert sandbox.keys.content_secret() not in b"".join(d for d in sent if isinstance(d, bytes))
    _check_logged(sandbox, batch)


def test_a_worker_that_dies_mid_batch_costs_one_run_and_the_batch_goes_on(warm, sandbox):
    killed = []

    def kill_one(done, total):
        if not killed:
            victim = sandbox.pool.pids()[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    inputs = [(1_000_000,)] * RUNS
    batch = sandbox.map(COUNT, inputs, invoke="count", progress=kill_one)
    statuses = [ex.outcome.status for ex in batch]
    assert statuses.count("crashed") == 1, statuses
    crashed = next(ex for ex in batch if ex.outcome.status == "crashed")
    assert "SIGKILL" in crashed.outcome.message
    assert statuses.count("ok") == RUNS - 1
    assert killed[0] not in sandbox.pool.pids()
    _check_logged(sandbox, batch)


def test_a_stuck_worker_is_killed_and_its_run_is_a_timeout(warm, sandbox):
    stopped = []

    def stop_one(done, total):
        if not stopped:
            victim = sandbox.pool.pids()[0]
            os.kill(victim, signal.SIGSTOP)
            stopped.append(victim)

    limits = Limits.parse(timeout="100ms")
    batch = sandbox.map(
        COUNT, [(1_000_000,)] * RUNS, invoke="count", limits=limits, progress=stop_one
    )
    statuses = [ex.outcome.status for ex in batch]
    assert statuses.count("timeout") == 1 and statuses.count("ok") == RUNS - 1, statuses
    assert "killed" in next(ex for ex in batch if ex.outcome.status == "timeout").outcome.message
    _check_logged(sandbox, batch)


def test_an_interrupt_cancels_the_batch_and_keeps_what_was_logged(warm, sandbox):
    busy = []

    def interrupt(done, total):
        if done == 5:
            busy.append(sandbox.pool.pids())
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sandbox.map(COUNT, [(100_000,)] * 400, invoke="count", progress=interrupt)
    logged = sandbox.ledger.size
    assert 5 <= logged < 400
    assert busy[0] and not set(busy[0]) & set(sandbox.pool.pids()), "busy workers were killed"
    assert sandbox.verify_log().ok
    again = sandbox.map(programs.ADD, [(1, 2)] * RUNS, invoke="add", progress=False)
    assert {ex.outcome.returns for ex in again} == {(3,)}
    assert sorted(ex.leaf_index for ex in again) == list(range(logged, logged + RUNS))


@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_ctrl_c_stops_the_batch_whether_guests_run_here_or_in_workers(sandbox, pool):
    if pool == "warm":
        sandbox.pool.warm(procmap.cores())
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sandbox.map(COUNT, [(30_000_000,)] * RUNS, invoke="count", progress=False)
    finally:
        timer.cancel()
    assert sandbox.ledger.size < RUNS
    assert sandbox.verify_log().ok


def test_a_durable_batch_is_on_disk_when_map_returns(home):
    with Sandbox(home=home, durable=True) as sb:
        sb.pool.warm(procmap.cores())
        batch = sb.map(programs.FACT, [(5,)] * RUNS, invoke="fact", progress=False)
        ids = [ex.id for ex in batch]
    with Sandbox(home=home) as reopened:
        assert reopened.ledger.size == RUNS
        assert {reopened.ledger.get(i).record_id for i in range(RUNS)} == set(ids)
        assert reopened.verify_log().ok


def test_progress_counts_every_run_once(sandbox):
    seen = []
    sandbox.map(
        programs.ADD, [(1, 1)] * RUNS, invoke="add", progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(d, RUNS) for d in range(1, RUNS + 1)]


def test_user_thread_and_process_executors_still_run_the_guests(sandbox):
    inputs = [(i, 3) for i in range(RUNS)]
    with ThreadPoolExecutor(2) as threads:
        by_threads = sandbox.map(
            programs.ADD, inputs, invoke="add", executor=threads, progress=False
        )
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=spawn) as processes:
        by_processes = sandbox.map(
            programs.ADD, inputs, invoke="add", executor=processes, progress=False
        )
    expected = [(i + 3,) for i in range(RUNS)]
    assert [ex.outcome.returns for ex in by_threads] == expected
    assert [ex.outcome.returns for ex in by_processes] == expected
    _check_logged(sandbox, [*by_threads, *by_processes])


def test_small_batches_and_big_programs_stay_on_threads(sandbox):
    job = sandbox.prepare(programs.ADD, RunOptions(invoke="add", args=(1, 2)))
    assert procmap.suits([job] * procmap.MIN_RUNS)
    assert not procmap.suits([job] * (procmap.MIN_RUNS - 1))
    big = replace(job, program=Program(bytes(procmap.MAX_PROGRAM + 1), "wasm"))
    assert not procmap.suits([job] * procmap.MIN_RUNS + [big])
    sandbox.map(programs.ADD, [(1, 2)] * (procmap.MIN_RUNS - 1), invoke="add", progress=False)
    assert sandbox.pool.pids() == []


def test_a_cold_pool_and_long_guests_go_to_threads_and_start_no_worker(sandbox):
    batch = sandbox.map(COUNT, [(20_000_000,)] * procmap.MIN_RUNS, invoke="count")
    assert min(ex.outcome.duration_ms for ex in batch) >= procmap.THREADS_SCALE * 1000
    assert {ex.outcome.returns for ex in batch} == {(20_000_000,)}
    assert sandbox.pool.pids() == [] and sandbox.pool.starting == 0
    _check_logged(sandbox, batch)


def test_without_worker_processes_the_batch_runs_on_threads(sandbox):
    sandbox.pool.close()  # no worker can start now
    batch = sandbox.map(programs.ADD, [(i, 0) for i in range(RUNS)], invoke="add", progress=False)
    assert [ex.outcome.returns for ex in batch] == [(i,) for i in range(RUNS)]
    _check_logged(sandbox, batch)
