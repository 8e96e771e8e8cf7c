"""The fuel-sync rewrite changes no result: generated modules, instrumented against original.

Each ``wasm-tools smith`` module (the campaign's generator, with every proposal the engine
accepts) is compiled rewritten by the engine and also unchanged; every rewritten module
must validate and each export must end the same way both times (status, returns, trap
kind, frames with offsets in the original bytes; a stack overflow's frames aside). Runs
that end on fuel or time are only counted: the rewrite costs fuel by design.
"""

import collections
from dataclasses import replace

import pytest
import wasmtime

from tests.hardening.campaign import TIGHT, smith
from wasm_sandbox import SandboxError, instrument

SEEDS = range(7000, 7300)
_DEFAULTS = {"i32": 0, "i64": 0, "f32": 0.0, "f64": 0.0}
_BUDGET_ENDS = {"out_of_fuel", "timeout"}


def _facts(outcome):
    returns = tuple(repr(v) for v in outcome.returns)  # NaN == NaN, -0.0 != 0.0
    # The added call is one more stack level: a stack overflow may come a frame earlier.
    frames = outcome.frames if outcome.trap != "stack_overflow" else ()
    return outcome.status, returns, outcome.trap, frames


@pytest.mark.slow
def test_instrumented_modules_validate_and_run_as_the_originals(engine):
    tally = collections.Counter()
    for seed in SEEDS:
        wasm = smith(seed)
        if wasm is None:
            continue
        try:
            compiled = engine.compile(wasm)
        except SandboxError:
            tally["refused"] += 1
            continue
        rewrite = instrument.rewrite(wasm)
        wasmtime.Module.validate(engine._engine, rewrite.wasm)  # raises if invalid
        assert compiled.rewrite.fuel_exact, f"seed {seed}: the decoder gave up"
        tally["loops" if rewrite.sync_index is not None else "no_loops"] += 1
        original = replace(
            compiled,
            module=wasmtime.Module(engine._engine, wasm),
            rewrite=instrument.unchanged(wasm, rewrite.memory_caps),
        )
        for name, (params, results) in compiled.functions.items():
            if not name or any(t not in _DEFAULTS for t in (*params, *results)):
                continue  # not callable from the host
            args = [_DEFAULTS[p] for p in params]
            ours = engine.run(compiled, invoke=name, args=args, limits=TIGHT)
            theirs = engine.run(original, invoke=name, args=args, limits=TIGHT)
            if {ours.status, theirs.status} & _BUDGET_ENDS:
                tally["budget"] += 1
                continue
            assert _facts(ours) == _facts(theirs), f"seed {seed} export {name!r}"
            tally["same"] += 1
    print(dict(tally))
    assert tally["loops"] >= 50 and tally["same"] >= 30  # the test compared something
