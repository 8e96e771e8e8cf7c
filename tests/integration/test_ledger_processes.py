"""The ledger under real concurrency and real crashes: many processes, and SIGKILL mid-append."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from wasm_sandbox import merkle
from wasm_sandbox.checkpoint import open_note
from wasm_sandbox.ledger import Entry, Ledger

ORIGIN = "example.com/process-log"
ROOT = Path(__file__).parents[2]

# A child appends records and prints one JSON line per receipt, only after its commit.
CHILD = r"""
import json, os, random, sys, time
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from wasm_sandbox.ledger import Ledger

path, seed, worker, count, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
rng = random.Random(worker)

def item(n):
    rid = f"w{worker}-{n}"
    return rid, json.dumps({"id": rid}).encode(), {"blob": rid.encode() * 3}

with Ledger(path, origin=ORIGIN, signing_key=key) as log:
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.005)
    n = 0
    while count < 0 or n < count:
        batch = [item(n + i) for i in range(1 if count >= 0 else rng.randint(1, 20))]
        for r in log.append_many(batch):
            line = {"id": r.record_id, "index": r.leaf_index, "size": r.tree_size,
                    "root": r.root.hex(), "proof": [h.hex() for h in r.inclusion_proof],
                    "note": r.checkpoint_note}
            print(json.dumps(line), flush=True)
        n += len(batch)
""".replace("ORIGIN", repr(ORIGIN))


def check_entry(entry: Entry) -> str | None:
    rid = entry.record_id
    ok = json.loads(entry.leaf) == {"id": rid} and entry.blobs == {"blob": rid.encode() * 3}
    return None if ok else "entry does not match its record"


def spawn(path: Path, key: Ed25519PrivateKey, worker: str, count: int, go: Path):
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
    args = [sys.executable, "-c", CHILD, str(path), seed, worker, str(count), str(go)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)


def ready(proc: subprocess.Popen) -> subprocess.Popen:
    """Wait until the child has opened the ledger."""
    assert proc.stdout.readline() == "ready\n"
    return proc


def receipts_verify(lines: list[dict], log: Ledger) -> None:
    """Each printed receipt proves its record against its own checkpoint, and every
    checkpoint printed by any process is consistent with the final tree."""
    final = log.latest_checkpoint()
    for r in lines:
        cp = open_note(r["note"], log.verifier_key)
        assert (cp.size, cp.root.hex()) == (r["size"], r["root"])
        leaf = merkle.leaf_hash(json.dumps({"id": r["id"]}).encode())
        proof = [bytes.fromhex(h) for h in r["proof"]]
        assert merkle.verify_inclusion(leaf, r["index"], cp.size, proof, cp.root)
    for size, root in {(r["size"], bytes.fromhex(r["root"])) for r in lines}:
        proof = log.consistency_proof(size)
        assert merkle.verify_consistency(size, final.size, root, final.root, proof)


@pytest.mark.slow
def test_twenty_processes_appending_at_once(tmp_path):
    path, go, key = tmp_path / "log.db", tmp_path / "go", Ed25519PrivateKey.generate()
    Ledger(path, origin=ORIGIN, signing_key=key).close()
    procs = [ready(p) for p in [spawn(path, key, str(w), 50, go) for w in range(20)]]
    go.touch()
    lines = [json.loads(line) for p in procs for line in p.stdout]
    assert [p.wait(timeout=120) for p in procs] == [0] * 20
    assert len(lines) == 1000
    assert sorted(r["index"] for r in lines) == list(range(1000))
    with Ledger(path, origin=ORIGIN, signing_key=key) as log:
        assert log.size == 1000
        report = log.verify_all(check_entry)
        assert report.ok, report.problems
        assert len(log.checkpoints()) == 1000  # one per append, all signed and consistent
        receipts_verify(lines, log)


@pytest.mark.slow
def test_sigkill_during_appends_never_breaks_the_log(tmp_path):
    path, key, rng = tmp_path / "log.db", Ed25519PrivateKey.generate(), random.Random(6962)
    Ledger(path, origin=ORIGIN, signing_key=key).close()
    acknowledged: list[dict] = []
    deadline = time.monotonic() + 40
    for round_ in range(30):
        if time.monotonic() > deadline:
            break
        go = tmp_path / f"go{round_}"
        proc = ready(spawn(path, key, f"r{round_}", -1, go))
        go.touch()
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        out = proc.stdout.read()
        proc.wait()
        acknowledged += [
            json.loads(line) for line in out.splitlines(keepends=True) if line.endswith("\n")
        ]  # a line cut by the kill was never acknowledged
        with Ledger(path, origin=ORIGIN, signing_key=key) as log:
            report = log.verify_all(check_entry)
            assert report.ok, (round_, report.problems)
            for r in acknowledged:
                assert log.get(r["id"]).index == r["index"]
    assert round_ >= 10 and len(acknowledged) > 0  # ~30 rounds unless the machine is busy
    with Ledger(path, origin=ORIGIN, signing_key=key) as log:
        receipts_verify(acknowledged, log)
        log.append(
            "after-the-crashes",
            json.dumps({"id": "after-the-crashes"}).encode(),
            {"blob": b"after-the-crashes" * 3},
        )
        assert log.verify_all(check_entry).ok
