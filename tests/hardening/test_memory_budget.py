"""One memory budget per guest: generated modules with several memories, none exported,
each grown until ``memory.grow`` refuses, never hold more than ``--memory`` in total, and
``memory_bytes`` reports what they really hold."""

import random

import pytest

from wasm_sandbox import Limits
from wasm_sandbox.instrument import memory_share
from wasm_sandbox.sources import compile_wat

PAGE = 65536


def greedy(minimums: list[int], maximums: list[int | None], step: int) -> str:
    """Memories of the given sizes in pages; ``fill`` grows each by ``step`` pages until
    refused, then by single pages, and returns the pages of all of them."""
    memories = " ".join(
        f"(memory {lo}{'' if hi is None else f' {hi}'})"
        for lo, hi in zip(minimums, maximums, strict=True)
    )
    grow = "".join(
        f"(loop $a{m} (br_if $a{m} (i32.ne (memory.grow {m} (i32.const {n})) (i32.const -1))))"
        for m in range(len(minimums))
        for n in (step, 1)
    )
    total = " ".join(f"(memory.size {m}) i32.add" for m in range(len(minimums)))
    return f'(module {memories} (func (export "fill") (result i32) {grow} i32.const 0 {total}))'


@pytest.mark.parametrize("seed", range(12))
def test_memories_together_stay_within_the_budget(engine, seed):
    rng = random.Random(seed)
    count = rng.randint(1, 6)
    budget = rng.choice([1, 4, 16, 64]) << 20
    minimums = [rng.randint(1, 2) for _ in range(count)]
    maximums = [rng.choice([None, None, rng.randint(2, 40)]) for _ in range(count)]
    wat = greedy(minimums, maximums, rng.choice([1, 7, 16]))
    out = engine.run(
        engine.compile(compile_wat(wat)), invoke="fill", limits=Limits(memory=budget, memories=8)
    )
    if out.status == "memory_limit":  # a declared minimum exceeds its memory's share
        caps = tuple(None if hi is None else hi * PAGE for hi in maximums)
        assert max(minimums) * PAGE > memory_share(budget, caps)
        return
    assert out.status == "ok", out.message
    (pages,) = out.returns
    assert out.memory_bytes == pages * PAGE <= budget
    room = sum(hi if hi is not None else budget // PAGE for hi in maximums)
    assert pages * PAGE >= min(budget, room * PAGE) // 2  # the budget is used, not wasted
