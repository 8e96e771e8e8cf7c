"""WebAssembly 3.0 guests: exceptions, GC, typed references, tail calls, memory64 and
multi-memory run; what the host cannot represent is refused at the call boundary."""

import pytest

from wasm_sandbox import InvocationError, Limits
from wasm_sandbox.sources import compile_wat

EH = """(module
  (tag $t (param i32))
  (func (export "caught") (param i32) (result i32)
    (block $h (result i32)
      (try_table (catch $t $h) (throw $t (local.get 0)))
      (i32.const -1)))
  (func (export "escapes") (throw $t (i32.const 1))))"""

GC = """(module
  (type $a (array (mut i64)))
  (type $s (struct (field i32)))
  (func (export "alloc") (param i32) (result i32) (array.len (array.new_default $a (local.get 0))))
  (func (export "takes_struct") (param (ref null $s)))
  (func (export "gives_any") (result anyref) (ref.i31 (i32.const 1)))
  (func (export "ext") (param externref) (result externref) local.get 0)
  (func (export "fn") (param funcref) (result funcref funcref) local.get 0 ref.func 0)
  (elem declare func 0))"""


def run(engine, wat, **kw):
    return engine.run(engine.compile(compile_wat(wat)), **kw)


def test_an_exception_caught_by_try_table_returns_the_thrown_value(engine):
    out = run(engine, EH, invoke="caught", args=[42])
    assert (out.status, out.returns, out.fuel_lower_bound) == ("ok", (42,), False)


def test_an_exception_that_reaches_the_host_is_an_uncaught_exception_trap(engine):
    out = run(engine, EH, invoke="escapes")
    assert (out.status, out.trap) == ("trap", "uncaught_exception")
    assert out.message == "uncaught exception: a wasm exception reached the host"


def test_the_gc_heap_is_bounded_by_the_memory_limit(engine):
    limits = Limits(memory=2 << 20)
    assert run(engine, GC, invoke="alloc", args=[100_000], limits=limits).returns == (100_000,)
    out = run(engine, GC, invoke="alloc", args=[300_000], limits=limits)  # 2.4 MB of i64
    assert out.status == "memory_limit"
    assert out.message.startswith("the GC heap is full under the 2097152 byte memory limit")


def test_externref_and_funcref_cross_the_boundary_as_text(engine):
    assert run(engine, GC, invoke="ext", args=[7]).returns == ("ref.extern 7",)
    assert run(engine, GC, invoke="ext", args=["ref.extern 8"]).returns == ("ref.extern 8",)
    assert run(engine, GC, invoke="ext", args=[None]).returns == ("null",)
    assert run(engine, GC, invoke="fn", args=["null"]).returns == ("null", "ref.func")


@pytest.mark.parametrize(
    ("invoke", "args", "message"),
    [
        ("takes_struct", [None], "takes_struct has a (ref null 1) in its signature"),
        ("gives_any", [], "gives_any has a anyref in its signature"),
        ("fn", [3], "fn argument 1 (funcref): only null can be passed, got 3"),
    ],
)
def test_what_the_host_cannot_represent_is_refused_before_the_guest_runs(
    engine, invoke, args, message
):
    with pytest.raises(InvocationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(engine, GC, invoke=invoke, args=args)


def test_memory64_and_multi_memory_are_counted_against_one_budget(engine):
    wat = """(module (memory $a i64 1) (memory $b 1)
      (func (export "grow") (result i64 i32)
        (i64.store $a (i64.const 65528) (i64.const 7))
        (drop (memory.grow $a (i64.const 1)))
        (i64.load $a (i64.const 65528)) (memory.grow $b (i32.const 100))))"""
    out = run(engine, wat, invoke="grow", limits=Limits(memory=4 * 65536))
    assert out.status == "ok" and out.returns == (7, -1)  # $b may not take 100 more pages
    assert out.memory_bytes == 3 * 65536 and not out.fuel_lower_bound


def test_tail_calls_run_in_constant_stack(engine):
    wat = """(module (func $count (export "count") (param i64) (result i64)
      (if (result i64) (i64.eqz (local.get 0)) (then (i64.const 42))
        (else (return_call $count (i64.sub (local.get 0) (i64.const 1)))))))"""
    out = run(engine, wat, invoke="count", args=[1_000_000], limits=Limits(fuel=10**8))
    assert (out.status, out.returns) == ("ok", (42,))


def test_a_run_with_references_is_sealed_logged_and_replays(sandbox):
    ex = sandbox.run(GC, invoke="ext", args=["ref.extern 9"])
    assert ex.outcome.returns == ("ref.extern 9",)
    assert ex.outcome.to_json()["returns"] == ["ref.extern 9"]
    assert sandbox.verify(ex.id, replay=True).checks["replay"] == "ok"
