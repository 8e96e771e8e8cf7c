"""The module reader agrees with wasmtime wherever asking wasmtime is safe."""

import wasmtime

from tests import programs
from wasm_sandbox.binary import interface
from wasm_sandbox.sources import compile_wat

ALL_IMPORT_KINDS = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "env" "table" (table 1 10 funcref))
  (import "env" "memory" (memory 1 2))
  (import "env" "g" (global (mut i64)))
  (import "env" "f" (func (param f32) (result f64)))
  (func (export "both") (param i64 f64) (result i32 i64) i32.const 1 i64.const 2)
  (func (export "vec") (param v128) (result v128) local.get 0)
  (export "mem" (memory 0)))"""


def test_imports_exports_and_signatures():
    face = interface(compile_wat(ALL_IMPORT_KINDS))
    assert face.imports == (
        ("wasi_snapshot_preview1", "fd_write", "func"),
        ("env", "table", "table"),
        ("env", "memory", "memory"),
        ("env", "g", "global"),
        ("env", "f", "func"),
    )
    assert face.exports == (("both", "func"), ("vec", "func"), ("mem", "memory"))
    assert face.functions == {
        "both": (("i64", "f64"), ("i32", "i64")),
        "vec": (("v128",), ("v128",)),
    }


def test_agrees_with_wasmtime_on_numeric_signatures():
    for wat in (programs.FACT, programs.ADD, programs.HELLO, programs.GROW):
        wasm = compile_wat(wat)
        module = wasmtime.Module(wasmtime.Engine(), wasm)
        expected = {
            e.name: (tuple(map(str, e.type.params)), tuple(map(str, e.type.results)))
            for e in module.exports
            if isinstance(e.type, wasmtime.FuncType)
        }
        assert interface(wasm).functions == expected


GC_TYPES = """(module
  (rec (type $s (sub (struct (field (mut i32)) (field i8))))
       (type $a (array (mut (ref null $s)))))
  (type $f (sub final (func (param (ref $s) anyref) (result (ref null func) externref))))
  (import "env" "t" (table 1 (ref null $f)))
  (import "env" "g" (global (ref null extern)))
  (tag $e (param i32))
  (func (export "gc") (type $f) unreachable)
  (func (export "refs") (param funcref (ref null extern) (ref extern) exnref i31ref) unreachable)
  (func (export "n") (result i32) i32.const 1))"""


def test_gc_rec_groups_sub_types_and_reference_types_are_read_from_the_bytes():
    face = interface(compile_wat(GC_TYPES))
    assert face.imports == (("env", "t", "table"), ("env", "g", "global"))
    assert face.functions == {
        "gc": (("(ref 0)", "anyref"), ("funcref", "externref")),
        "refs": (("funcref", "externref", "(ref extern)", "exnref", "i31ref"), ()),
        "n": ((), ("i32",)),
    }
    assert face.gc_heap and not interface(compile_wat(programs.FACT)).gc_heap
