"""The engine runs real modules under real limits; each test is one thing a user relies on."""

import threading

import pytest
import wasmtime

from tests import programs
from wasm_sandbox import CompileError, GrantError, Grants, InvocationError, Limits
from wasm_sandbox.engine import Engine, trap_kind
from wasm_sandbox.outcome import TRAP_KINDS
from wasm_sandbox.sources import compile_wat


def run(engine, wat, **kw):
    return engine.run(engine.compile(compile_wat(wat)), **kw)


def test_invoke_an_export_with_arguments(engine):
    out = run(engine, programs.FACT, invoke="fact", args=[10])
    assert out.status == "ok" and out.returns == (3628800,)
    assert 0 < out.fuel_used < 1000 and out.fuel_limit == Limits().fuel


def test_string_arguments_are_converted(engine):
    assert run(engine, programs.ADD, invoke="add", args=["2", "0x10"]).returns == (18,)


def test_infinite_loop_under_a_timeout_ends_as_timeout(engine):
    out = run(engine, programs.LOOP, invoke="spin", limits=Limits.parse(timeout="500ms"))
    assert (out.status, out.message) == ("timeout", "stopped after the 0.5 s timeout")


def test_loop_under_fuel_ends_out_of_fuel_with_all_fuel_used(engine):
    out = run(engine, programs.LOOP, invoke="spin", limits=Limits.parse(fuel="1e6"))
    assert out.status == "out_of_fuel" and out.trap == "out_of_fuel"
    assert out.fuel_used == out.fuel_limit == 10**6


def test_memory_grow_past_the_limit_returns_minus_one_inside_the_guest(engine):
    limits = Limits.parse(memory="1MiB")
    assert run(engine, programs.GROW, invoke="grow", args=[15], limits=limits).returns == (1,)
    out = run(engine, programs.GROW, invoke="grow", args=[16], limits=limits)
    assert out.status == "ok" and out.returns == (-1,)
    assert out.memory_bytes == 65536 and out.memory_limit == 1 << 20


def test_initial_memory_above_the_limit_is_a_clear_memory_limit(engine):
    out = run(engine, programs.BIG_MEMORY, invoke="f", limits=Limits.parse(memory="1MiB"))
    assert out.status == "memory_limit"
    assert "1048576 byte limit" in out.message and "20 pages" in out.message


def test_infinite_recursion_traps_100_times_in_worker_threads(engine):
    compiled = engine.compile(compile_wat(programs.RECURSE))
    results = []

    def worker():
        for _ in range(25):
            results.append(engine.run(compiled, invoke="recurse"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 100
    assert {(o.status, o.trap) for o in results} == {("trap", "stack_overflow")}
    assert results[0].frames[0].func_name == "r"
    assert results[0].message == "wasm trap: call stack exhausted"


def test_trap_carries_kind_and_frames(engine):
    out = run(engine, programs.TRAP, invoke="boom")
    assert out.status == "trap" and out.trap == "unreachable"
    assert (
        out.frames[0].func_index == 0
        and out.message == "wasm trap: wasm `unreachable` instruction executed"
    )


def test_every_wasmtime_trap_code_is_a_documented_trap_kind():
    kinds = {code.name: trap_kind(code) for code in wasmtime.TrapCode}
    unknown = {name: kind for name, kind in kinds.items() if kind not in TRAP_KINDS}
    assert unknown == {}, "a TrapCode outcome.TRAP_KINDS does not list: add it there and to docs"
    assert len(set(kinds.values())) == len(kinds)
    assert TRAP_KINDS - set(kinds.values()) == {"host"}  # nothing listed that wasmtime lacks


#: One module traps in each way through the export ``f``'s body.
TRAP_PRELUDE = "(memory 1) (type $t (func)) (table 2 funcref) (elem (i32.const 1) $g)"
TRAPPING = {
    "memory_out_of_bounds": "(drop (i32.load (i32.const 70000)))",
    "table_out_of_bounds": "(call_indirect (type $t) (i32.const 5))",
    "indirect_call_to_null": "(call_indirect (type $t) (i32.const 0))",
    "bad_signature": "(call_indirect (type $t) (i32.const 1))",  # $g takes an i32
    "integer_overflow": "(drop (i32.div_s (i32.const 0x80000000) (i32.const -1)))",
    "integer_division_by_zero": "(drop (i32.div_u (i32.const 1) (i32.const 0)))",
    "bad_conversion_to_integer": "(drop (i32.trunc_f32_s (f32.const nan)))",
    "unreachable": "unreachable",
}


@pytest.mark.parametrize("kind", sorted(TRAPPING))
def test_a_real_trap_is_an_outcome_with_its_kind(engine, kind):
    wat = f'(module {TRAP_PRELUDE} (func $g (param i32)) (func (export "f") {TRAPPING[kind]}))'
    out = run(engine, wat, invoke="f")
    assert (out.status, out.trap) == ("trap", kind)
    assert out.frames and "wasm trap: " in out.message


def test_wasi_hello_world_prints_into_stdout(engine):
    out = run(engine, programs.HELLO)
    assert out.status == "ok" and out.exit_code == 0
    assert out.stdout == "hello, sandbox\n"


def test_proc_exit_code(engine):
    out = run(engine, programs.EXIT)
    assert out.status == "exit" and out.exit_code == 3


def test_a_100_mb_stdout_flood_is_cut_at_the_output_limit(engine, probe_wasm):
    limits = Limits.parse(output="64KiB", timeout="20s")
    out = engine.run(
        engine.compile(probe_wasm), grants=Grants.parse(argv=["flood", "100"]), limits=limits
    )
    assert out.status == "ok"
    assert len(out.stdout) == 64 * 1024 and out.output_truncated


def _writer(lines):
    """A WASI guest writing each ``(fd, text, times)`` of ``lines`` in turn, one write a line."""
    data, calls, at = "", "", 64
    for fd, text, times in lines:
        escaped = text.replace("\n", "\\n")
        data += f'(data (i32.const {at}) "{escaped}")'
        calls += f"""
      (i32.store (i32.const 0) (i32.const {at})) (i32.store (i32.const 4) (i32.const {len(text)}))
      (local.set $i (i32.const 0))
      (loop $l (drop (call $w (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const {times}))))"""
        at += len(text)
    return f"""(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1) {data}
      (func (export "_start") (local $i i32) {calls}))"""


@pytest.mark.timeout(60)  # a guest blocked on a full pipe would hang here
def test_output_many_times_what_a_pipe_holds_is_kept_whole_and_in_order(engine):
    # 50,000 writes: 600 KB of stdout, then 150 KB of stderr, under a 1 MiB limit each
    wat = _writer(
        [(1, "out 0123456789\n", 40_000), (2, "err 0123456789\n", 10_000), (1, "end\n", 1)]
    )
    out = run(engine, wat, limits=Limits.parse(output="1MiB"))
    assert out.status == "ok" and not out.output_truncated
    assert out.stdout == "out 0123456789\n" * 40_000 + "end\n"
    assert out.stderr == "err 0123456789\n" * 10_000


def test_guests_writing_at_once_each_get_their_own_output(engine):
    # one drainer thread reads every run's pipes: none may see another's lines
    modules = [
        engine.compile(compile_wat(_writer([(1, f"guest {n}\n", 20_000)]))) for n in range(6)
    ]
    outs = [None] * len(modules)

    def go(n):
        outs[n] = engine.run(modules[n])

    threads = [threading.Thread(target=go, args=(n,)) for n in range(len(modules))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.stdout for o in outs] == [f"guest {n}\n" * 20_000 for n in range(len(modules))]


def test_sleeping_10s_under_half_a_second_timeout_is_cut_short(engine):
    out = run(engine, programs.SLEEP_10S, limits=Limits.parse(timeout="500ms"))
    assert out.status == "timeout"
    assert out.duration_ms < 10_000  # the sleep itself was interrupted, not waited out


def test_c_sleep_ends_at_the_deadline(engine, probe_wasm):
    out = engine.run(
        engine.compile(probe_wasm),
        grants=Grants.parse(argv=["sleep", "10"]),
        limits=Limits.parse(timeout="500ms"),
    )
    assert out.status == "timeout" and "awake" not in out.stdout
    assert out.duration_ms < 10_000  # the sleep itself was interrupted, not waited out


def test_a_short_sleep_completes(engine):
    wat = programs.SLEEP_10S.replace("10000000000", "50000000")  # 50 ms
    out = run(engine, wat, limits=Limits.parse(timeout="2s"))
    assert out.status == "ok"
    assert out.duration_ms >= 45  # it really slept (no virtual clock without --deterministic)


def test_concurrent_wasi_guests_each_sleep_under_their_own_deadline_and_clock(engine):
    """The WASI linker is shared by every run: each guest's sleeps must still answer to
    its own deadline, and a deterministic guest's to its own virtual clock."""
    short = programs.SLEEP_10S.replace("10000000000", "300000000")  # 300 ms
    jobs = {
        "cut": (programs.SLEEP_10S, Limits.parse(timeout="300ms"), Grants()),
        "slept": (short, Limits.parse(timeout="10s"), Grants()),
        "virtual": (programs.SLEEP_10S, Limits.parse(timeout="10s"), Grants(deterministic=True)),
    }
    outs = {}

    def run_one(name):
        wat, limits, grants = jobs[name]
        outs[name] = run(engine, wat, limits=limits, grants=grants)

    threads = [threading.Thread(target=run_one, args=(name,)) for name in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outs["cut"].status == "timeout" and outs["cut"].duration_ms < 5_000
    assert outs["slept"].status == "ok" and outs["slept"].duration_ms >= 290
    assert outs["virtual"].status == "ok" and outs["virtual"].duration_ms < 5_000  # virtual 10 s


def test_cancel_event_interrupts_a_running_guest(engine):
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    out = run(engine, programs.LOOP, invoke="spin", cancel=cancel)
    assert out.status == "interrupted"  # not "timeout": the event, not the clock, ended it


def test_progress_reports_fuel_while_a_tight_loop_runs(engine):
    seen = []
    run(
        engine,
        programs.LOOP,  # no calls: wasmtime stores its fuel only at the added loop-header call
        invoke="spin",
        limits=Limits.parse(timeout="600ms"),
        progress=seen.append,
    )
    assert len(seen) >= 3
    assert seen == sorted(seen) and seen[-1] > seen[0] > 0


def test_a_tight_loop_stopped_by_the_clock_logs_its_real_fuel(engine):
    out = run(engine, programs.LOOP, invoke="spin", limits=Limits.parse(timeout="500ms"))
    assert out.status == "timeout" and not out.fuel_lower_bound
    assert out.fuel_used >= 10**8  # about 5e8 on an idle core; 0 without the rewrite


def test_a_tight_loop_stopped_by_an_interrupt_logs_its_real_fuel(engine):
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    out = run(engine, programs.LOOP, invoke="spin", cancel=cancel)
    assert out.status == "interrupted" and out.fuel_used >= 10**7


def test_an_undecodable_module_runs_unchanged_and_says_its_fuel_is_a_lower_bound(
    tmp_path, monkeypatch
):
    from wasm_sandbox import instrument

    kinds = list(instrument._KIND)
    kinds[0x0C] = instrument._BAD  # a decoder that does not know br
    monkeypatch.setattr(instrument, "_KIND", kinds)
    eng = Engine(tmp_path)
    try:
        out = eng.run(
            eng.compile(compile_wat(programs.LOOP)),
            invoke="spin",
            limits=Limits.parse(timeout="200ms"),
        )
    finally:
        eng.close()
    assert out.status == "timeout" and out.fuel_lower_bound
    assert out.fuel_used >= 1 and out.to_json()["fuel_lower_bound"] is True
    assert out.summary()["fuel_lower_bound"] is True


def test_trap_frames_point_into_the_original_bytes(engine):
    wat = """(module (func $f (param i32)
      (loop (br_if 0 (local.get 0))) (loop (br_if 0 (i32.const 0))) unreachable)
      (func (export "go") (loop (br_if 0 (i32.const 0))) (call $f (i32.const 0))))"""
    wasm = compile_wat(wat)
    plain = wasmtime.Engine()
    store = wasmtime.Store(plain)
    with pytest.raises(wasmtime.Trap) as trap:
        wasmtime.Instance(store, wasmtime.Module(plain, wasm), []).exports(store)["go"](store)
    expected = [(f.func_index, f.module_offset) for f in trap.value.frames]
    out = engine.run(engine.compile(wasm), invoke="go")
    assert out.trap == "unreachable" and len(expected) == 2
    assert [(f.func_index, f.module_offset) for f in out.frames] == expected


#: Four unexported memories; "fill" grows each by 1 MiB steps until memory.grow says -1
#: and returns the pages of all four.
FOUR_MEMORIES = (
    '(module (memory 1) (memory 1) (memory 1) (memory 1) (func (export "fill") (result i32)'
    " (local $pages i32)"
    + "".join(
        f"(loop $m{m} (if (i32.ne (memory.grow {m} (i32.const 16)) (i32.const -1)) (then"
        f" (local.set $pages (i32.add (local.get $pages) (i32.const 16))) (br $m{m}))))"
        for m in range(4)
    )
    + " (i32.add (local.get $pages) (i32.const 4))))"
)


def test_four_unexported_memories_share_one_memory_limit_and_are_all_counted(engine):
    out = run(engine, FOUR_MEMORIES, invoke="fill", limits=Limits.parse(memory="64MiB"))
    (pages,) = out.returns  # pages of all four memories once every memory.grow said -1
    assert out.status == "ok" and 60 * 16 <= pages <= 64 * 16
    assert out.memory_bytes == pages * 65536 <= 64 << 20


def test_a_disk_cache_hit_keeps_the_fuel_sync_and_the_memory_count(tmp_path):
    wasm = compile_wat(FOUR_MEMORIES)
    for expected in ("miss", "disk"):
        eng = Engine(tmp_path)
        try:
            compiled = eng.compile(wasm)
            out = eng.run(compiled, invoke="fill", limits=Limits.parse(memory="8MiB"))
            spin = eng.run(
                eng.compile(compile_wat(programs.LOOP)),
                invoke="spin",
                limits=Limits.parse(timeout="100ms"),
            )
        finally:
            eng.close()
        assert compiled.cache == expected
        assert out.memory_bytes == out.returns[0] * 65536 > 4 * 65536
        assert spin.status == "timeout" and spin.fuel_used > 0 and not spin.fuel_lower_bound


def test_fifty_threads_get_their_own_results(engine):
    compiled = engine.compile(compile_wat(programs.FACT))
    results: dict[int, tuple] = {}

    def worker(n):
        results[n] = engine.run(compiled, invoke="fact", args=[n]).returns

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from math import factorial

    assert results == {n: ((factorial(n) + 2**63) % 2**64 - 2**63,) for n in range(50)}


def test_second_compile_comes_from_memory_and_a_new_engine_reads_the_disk_cache(tmp_path):
    wat = programs.FACT.replace("fact", "fact_cache")  # bytes no other test compiled
    wasm = compile_wat(wat)
    with_cache = Engine(cache_dir=tmp_path / "cache")
    first = with_cache.compile(wasm)
    second = with_cache.compile(wasm)
    assert (first.cache, second.cache) == ("miss", "memory")
    assert second.module is first.module  # nothing was compiled again
    fresh = Engine(cache_dir=tmp_path / "cache")
    assert fresh.compile(wasm).cache == "disk"
    assert fresh.run(fresh.compile(wasm), invoke="fact_cache", args=[5]).returns == (120,)


def test_a_tampered_cache_file_is_never_loaded(tmp_path):
    wasm = compile_wat(programs.ADD)
    first = Engine(cache_dir=tmp_path)
    first.compile(wasm)
    first.close()
    [cached] = tmp_path.glob("*.cwasm")
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 1
    cached.write_bytes(bytes(data))
    again = Engine(cache_dir=tmp_path)
    compiled = again.compile(wasm)
    assert compiled.cache == "miss"
    assert again.run(compiled, invoke="add", args=[1, 2]).returns == (3,)


def test_the_cache_directory_is_private(tmp_path):
    Engine(cache_dir=tmp_path / "c").compile(compile_wat(programs.ADD))
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "c" / "cache.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("invoke", "args", "message"),
    [
        ("nope", [], "no exported function 'nope' (exported functions: add)"),
        ("add", [1], "add takes 2 argument(s) (i32, i32), got 1"),
        ("add", [1, "x"], "add argument 2 (i32): cannot use 'x'"),
        ("add", [1, 2**40], "out of range"),
        (None, [], "no _start"),
    ],
)
def test_invocation_errors_are_clear(engine, invoke, args, message):
    with pytest.raises(InvocationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(engine, programs.ADD, invoke=invoke, args=args)


@pytest.mark.parametrize(
    ("wasm", "message"),
    [
        (b"\0asm\x01\0\0\0\x01", "unexpected end-of-file"),
        (b"\0asn\x01\0\0\0", "magic header not detected"),
        (compile_wat("(module (func (result i32) i64.const 1))"), "type mismatch: expected i32"),
    ],
)
def test_invalid_binaries_are_compile_errors(engine, wasm, message):
    with pytest.raises(CompileError, match=message) as err:
        engine.compile(wasm)
    assert str(err.value).startswith("invalid WebAssembly module:")


def test_unknown_imports_are_an_error_outcome(engine):
    out = run(engine, programs.FOREIGN_IMPORT, invoke="f")
    assert out.status == "error" and "launch_missiles" in out.message


def test_missing_granted_directory_is_a_grant_error(engine):
    with pytest.raises(GrantError, match="not a directory"):
        run(
            engine,
            programs.ADD,
            invoke="add",
            args=[1, 2],
            grants=Grants.parse(dirs=["/does/not/exist:/d"]),
        )


@pytest.mark.timeout(60)  # a guest left running would spin for 600 s: no fuel limit
def test_a_failing_progress_callback_stops_the_guest_and_raises(engine):
    def broken(_fuel):
        raise RuntimeError("display went away")

    limits = Limits.parse(fuel="none", timeout="600s")
    with pytest.raises(RuntimeError, match="display went away"):
        run(engine, programs.CALLING_LOOP, invoke="spin", progress=broken, limits=limits)
