import struct

import pytest

from tests import programs
from wasm_sandbox import CompileError
from wasm_sandbox.sources import WASM_MAGIC, compile_wat, load, locate


def test_wat_text_becomes_wasm():
    program = load(programs.ADD)
    assert program.lang == "wat" and program.wasm.startswith(WASM_MAGIC)


def test_wat_syntax_error_has_line_column_and_source_line():
    with pytest.raises(CompileError) as err:
        compile_wat('(module\n  (func (export "f") (result i32)\n    i33.add))')
    exc = err.value
    assert (exc.line, exc.column) == (3, 5)
    assert exc.source_line == "    i33.add))"
    assert str(exc) == "WAT line 3, column 5: unknown operator or unexpected token"
    assert "\n" not in str(exc)


def test_binary_bytes_and_paths(tmp_path):
    wasm = compile_wat(programs.ADD)
    assert load(wasm).lang == "wasm"
    path = tmp_path / "add.wasm"
    path.write_bytes(wasm)
    assert load(path).wasm == wasm
    assert load(str(path)).name == "add.wasm"
    wat = tmp_path / "add.wat"
    wat.write_text(programs.ADD)
    assert load(wat).wasm == wasm


@pytest.mark.parametrize(
    ("source", "lang", "message"),
    [
        (b"\x7fELF\x02\x01\x01\xff\xfe", None, "neither a WebAssembly binary nor UTF-8"),
        ("(module)", "wasm", "text given where a WebAssembly binary was expected"),
        (b"hello", "wasm", "not a WebAssembly binary"),
        ("(module)", "rust", "unknown language 'rust'"),
    ],
)
def test_wrong_inputs_are_clear_errors(source, lang, message):
    with pytest.raises(CompileError, match=message):
        load(source, lang)


def test_missing_file_is_a_compile_error(tmp_path):
    with pytest.raises(CompileError, match="cannot read"):
        load(tmp_path / "nope.wasm")


def test_c_is_recognised_by_content():
    from wasm_sandbox.sources import _guess

    assert _guess("#include <stdio.h>\nint main(void) { return 0; }") == "c"
    assert _guess(";; comment\n(module)") == "wat"


def test_text_that_is_not_unicode_is_a_compile_error_with_its_position():
    with pytest.raises(CompileError) as err:
        load("(module)\n ;; \ud800")
    assert str(err.value) == "WAT line 2, column 5: not valid Unicode text"


@pytest.mark.parametrize("functions", [1, 200])  # 200: the code section's count takes 2 bytes
def test_a_type_error_is_located_at_its_wat_line_in_small_and_large_modules(functions):
    from wasm_sandbox.engine import Engine

    many = "".join(f"  (func $f{i} (result i32) (i32.const {i}))\n" for i in range(functions))
    bad = '  (func (export "g") (result i32)\n    (i32.add (i32.const 1) (f32.const 2))))'
    text = f"(module\n{many}{bad}"
    program = load(text)
    with pytest.raises(CompileError) as err:
        Engine().compile(program.wasm)
    located = locate(err.value, program)
    line = functions + 3
    assert str(located) == f"WAT line {line}, column 6: type mismatch: expected i32, found f32"
    assert located.source_line == "    (i32.add (i32.const 1) (f32.const 2))))"


def test_an_error_without_an_offset_or_of_a_binary_stays_as_it_is():
    error = CompileError("invalid WebAssembly module: unexpected end-of-file")
    assert locate(error, load(programs.ADD)) is error
    binary = load(compile_wat(programs.ADD))
    offset_error = CompileError("invalid WebAssembly module: bad (at offset 0x20)")
    assert locate(offset_error, binary) is offset_error


def _zig_message(*nodes: tuple[int, int, bytes]) -> bytes:
    """One message of zig's progress protocol (node count, nodes, parent indices)."""
    body = b"".join(
        struct.pack("<II", done, total) + name.ljust(120, b"\0") for done, total, name in nodes
    )
    return bytes([len(nodes)]) + body + bytes([255] + [0] * (len(nodes) - 1))


def test_zig_progress_gives_the_c_library_file_count_of_the_last_message():
    from wasm_sandbox.sources import _zig_files_done

    first = _zig_message((0, 0, b""), (4, 6, b"Linking"), (43, 0, b"wasi libc.a\0\0mand.o"))
    last = _zig_message((3, 0, b""), (521, 0, b"wasi libc.a"))
    assert _zig_files_done(first + last) == 521
    assert _zig_files_done(first + last[:-3]) == 43  # a cut message is ignored
    assert _zig_files_done(b"") == 0
