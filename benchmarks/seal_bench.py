"""Cost of sealing one trivial run, next to wasmtime running a trivial export.

Run: ``python benchmarks/seal_bench.py [ROUNDS]``. Prints medians and ratios against the
baseline (a new Store + Instance + call from an already compiled Module), measured in this run.
Goal: sealing under 1 ms median.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import wasmtime
from cryptography.hazmat.primitives.asymmetric import ec

from wasm_sandbox import record
from wasm_sandbox.envelope import SUITE, SealedPart, canonical, key_id

WAT = '(module (func (export "f") (result i32) i32.const 42))'
LIMITS = {"fuel": 1_000_000, "memory_bytes": 16 << 20, "timeout_us": 5_000_000}
INPUT = {"invoke": "f", "args": []}
RESULT = {"returns": [42], "stdout": "", "stderr": ""}
OUTCOME = {
    "status": "ok",
    "trap": None,
    "exit_code": None,
    "fuel_used": 2,
    "memory_bytes": 0,
    "duration_us": 30,
}


def median_us(fn: Callable[[], object], rounds: int) -> float:
    """Median wall time of ``fn`` in microseconds, after a short warm-up."""
    for _ in range(max(rounds // 10, 5)):
        fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1000


def wasmtime_run() -> tuple[Callable[[], object], bytes]:
    """A closure that instantiates and calls ``f`` once, and the module's bytes."""
    engine = wasmtime.Engine()
    wasm = bytes(wasmtime.wat2wasm(WAT))
    module = wasmtime.Module(engine, wasm)

    def run() -> object:
        store = wasmtime.Store(engine)
        instance = wasmtime.Instance(store, module, [])
        return instance.exports(store)["f"](store)

    assert run() == 42
    return run, wasm


def sealing_steps(wasm: bytes) -> dict[str, Callable[[], object]]:
    """Closures for sealing one run (three parts, record build and encode) and its steps."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    kid = key_id(public)
    rid = record.new_id()
    parts = record.seal_run(rid, wasm, INPUT, RESULT, public)
    rec = _build(rid, kid, parts, wasm)
    plaintexts = [wasm, canonical(INPUT), canonical(RESULT)]

    def whole() -> bytes:
        rid = record.new_id()
        parts = record.seal_run(rid, wasm, INPUT, RESULT, public)
        return record.encode(_build(rid, kid, parts, wasm))

    return {
        "seal one run: 3 seals + commitments + build + encode": whole,
        "  of which: 3 x HPKE encrypt (cryptography alone)": lambda: [
            SUITE.encrypt(bytes(32) + pt, public, info=b"x") for pt in plaintexts
        ],
        "  of which: record.seal_run (3 parts, salts, commitments)": lambda: record.seal_run(
            rid, wasm, INPUT, RESULT, public
        ),
        "  of which: record.build (summaries, field checks)": lambda: _build(rid, kid, parts, wasm),
        "  of which: record.encode (rfc8785)": lambda: record.encode(rec),
    }


def _build(rid: str, kid: str, parts: dict[str, SealedPart], wasm: bytes) -> dict[str, object]:
    now = time.time_ns() // 1_000_000
    return record.build(rid, now, kid, parts, len(wasm), LIMITS, OUTCOME, True)


def main(rounds: int = 2000) -> None:
    run, wasm = wasmtime_run()
    base = median_us(run, rounds)
    rows = [("wasmtime: Store + Instance + call f (baseline)", base)]
    rows += [(name, median_us(fn, rounds)) for name, fn in sealing_steps(wasm).items()]
    print(f"{'step':<58} {'median':>10} {'ratio':>7}")
    for name, us in rows:
        print(f"{name:<58} {us:>7.1f} us {us / base:>6.2f}x")
    cost = rows[1][1]
    verdict = "met" if cost < 1000 else "NOT met"
    print(f"goal sealing < 1 ms median: {verdict} ({cost / 1000:.3f} ms, {rounds} rounds)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
