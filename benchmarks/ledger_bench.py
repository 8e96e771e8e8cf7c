"""Ledger throughput and proof latency at scale, against baselines measured in the same run.

Appends N records in batches (each batch: one transaction and one signed checkpoint), then
times inclusion and consistency proofs at that size. Baselines: plain SQLite INSERTs of the
same rows (no tree, no signature) and a plain ``get(index)`` read.

    python benchmarks/ledger_bench.py --records 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wasm_sandbox import merkle
from wasm_sandbox.ledger import Ledger

ORIGIN = "bench.example/log"


def item(i: int) -> tuple[str, bytes, dict[str, bytes]]:
    """A record-sized leaf (~300 bytes) with three small ciphertext-like blobs."""
    rid = f"{i:032x}"
    leaf = json.dumps({"v": 1, "id": rid, "time": 1_700_000_000_000 + i, "pad": "x" * 220})
    blobs = {name: rid.encode() * 2 for name in ("input", "program", "result")}
    return rid, leaf.encode(), blobs


def batches(n: int, size: int):
    for start in range(0, n, size):
        yield [item(i) for i in range(start, min(n, start + size))]


def append_rate(log: Ledger, n: int, batch: int) -> float:
    t0 = time.perf_counter()
    for items in batches(n, batch):
        log.append_many(items)
    return n / (time.perf_counter() - t0)


def plain_insert_rate(path: Path, n: int, batch: int) -> float:
    """The same entries and blobs as bare INSERTs, same pragmas and transactions."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE entries (idx INTEGER PRIMARY KEY, record_id TEXT UNIQUE, leaf BLOB)")
    db.execute("CREATE TABLE blobs (idx INTEGER, name TEXT, data BLOB, PRIMARY KEY (idx, name))")
    t0 = time.perf_counter()
    start = 0
    for items in batches(n, batch):
        db.execute("BEGIN IMMEDIATE")
        rows = [(start + i, rid, leaf) for i, (rid, leaf, _) in enumerate(items)]
        db.executemany("INSERT INTO entries VALUES (?, ?, ?)", rows)
        blobs = [(start + i, k, v) for i, (_, _, b) in enumerate(items) for k, v in b.items()]
        db.executemany("INSERT INTO blobs VALUES (?, ?, ?)", blobs)
        db.execute("COMMIT")
        start += len(items)
    rate = n / (time.perf_counter() - t0)
    db.close()
    return rate


def median_ms(fn: Callable[[int], object], args: list[int]) -> float:
    times = []
    for a in args:
        t0 = time.perf_counter()
        fn(a)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def check_some_proofs(log: Ledger, rng: random.Random) -> None:
    """Proofs are only worth timing if they are right."""
    n, root = log.size, log.root()
    for i in rng.sample(range(n), 20):
        lh = merkle.leaf_hash(log.get(i).leaf)
        assert merkle.verify_inclusion(lh, i, n, log.inclusion_proof(i), root)
        assert merkle.verify_consistency(
            i + 1, n, log.root(i + 1), root, log.consistency_proof(i + 1)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records to append")
    parser.add_argument("--batch", type=int, default=1000, help="records per append_many")
    parser.add_argument("--samples", type=int, default=2000, help="proofs to time")
    parser.add_argument("--dir", help="where to put the databases (default: a temp dir)")
    args = parser.parse_args()
    rng = random.Random(6962)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        key = Ed25519PrivateKey.generate()
        with Ledger(Path(tmp) / "ledger.db", origin=ORIGIN, signing_key=key) as log:
            rate = append_rate(log, args.records, args.batch)
            base_rate = plain_insert_rate(Path(tmp) / "plain.db", args.records, args.batch)
            check_some_proofs(log, rng)
            n = log.size
            indices = [rng.randrange(n) for _ in range(args.samples)]
            sizes = [rng.randrange(1, n) for _ in range(args.samples)]
            get_ms = median_ms(log.get, indices)
            inc_ms = median_ms(log.inclusion_proof, indices)
            con_ms = median_ms(log.consistency_proof, sizes)
            db_mb = (Path(tmp) / "ledger.db").stat().st_size / 1e6
    rows = [
        ("metric", "value", "baseline", "ratio", "goal"),
        (
            "append, records/s",
            f"{rate:,.0f}",
            f"{base_rate:,.0f} plain INSERTs",
            f"{rate / base_rate:.2f}",
            ">= 2,000",
        ),
        (
            "inclusion proof, median ms",
            f"{inc_ms:.3f}",
            f"{get_ms:.3f} get(index)",
            f"{inc_ms / get_ms:.1f}",
            "< 1",
        ),
        (
            "consistency proof, median ms",
            f"{con_ms:.3f}",
            f"{get_ms:.3f} get(index)",
            f"{con_ms / get_ms:.1f}",
            "< 1",
        ),
    ]
    sqlite = f"SQLite {sqlite3.sqlite_version}"
    print(f"ledger: {n:,} records in batches of {args.batch:,} ({db_mb:,.0f} MB, {sqlite})")
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
