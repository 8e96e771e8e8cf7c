"""The official WebAssembly spec tests (tests/testdata/spec/) pass through `Sandbox.run`.

Each file's assertions run on fresh instances (tests/spec/runner.py); the test fails when an
assertion fails or when fewer pass than `PASSED` says (a skip that used to pass is a
regression too). The counts per file, with the skip reasons, are in docs/wasm3.md.
"""

import pytest

from tests.spec.runner import SPEC, run_file
from wasm_sandbox import Sandbox

#: Assertions (assert_*) that pass today, per file.
PASSED = {
    "address": 256,
    "address64": 238,
    "block": 221,
    "br": 96,
    "br_if": 118,
    "br_on_non_null": 9,
    "br_on_null": 7,
    "br_table": 185,
    "call": 89,
    "call_indirect": 168,
    "call_indirect64": 1,
    "call_ref": 31,
    "endianness": 68,
    "endianness64": 68,
    "fac": 7,
    "forward": 4,
    "func": 171,
    "i32": 459,
    "i64": 415,
    "if": 240,
    "int_exprs": 89,
    "int_literals": 50,
    "labels": 28,
    "left-to-right": 95,
    "load": 96,
    "load64": 96,
    "local_get": 35,
    "local_init": 4,
    "local_set": 52,
    "local_tee": 97,
    "loop": 119,
    "memory-multi": 4,
    "memory": 78,
    "memory64": 59,
    "memory_copy": 4151,
    "memory_copy64": 4151,
    "memory_fill": 79,
    "memory_fill64": 79,
    "memory_grow": 4,
    "memory_grow64": 15,
    "memory_init": 189,
    "memory_init64": 189,
    "memory_size": 23,
    "memory_trap": 175,
    "memory_trap64": 169,
    "nop": 86,
    "ref_as_non_null": 5,
    "return": 83,
    "return_call": 11,
    "return_call_indirect": 27,
    "return_call_ref": 46,
    "select": 151,
    "stack": 4,
    "store": 67,
    "switch": 27,
    "tag": 2,
    "throw": 12,
    "throw_ref": 14,
    "traps": 32,
    "try_table": 15,
    "unreachable": 63,
    "unwind": 49,
}
#: Files whose every assertion runs (nothing skipped).
COMPLETE = ("br_table", "throw", "throw_ref", "i32", "i64", "br", "br_if", "return_call_ref")


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    with Sandbox(home=tmp_path_factory.mktemp("home")) as sandbox:
        yield sandbox


def test_every_vendored_file_has_a_minimum():
    assert sorted(p.stem for p in SPEC.glob("*.wast")) == sorted(PASSED)


@pytest.mark.parametrize("name", sorted(PASSED))
def test_spec_file(sb, name):
    tally = run_file(sb, SPEC / f"{name}.wast")
    assert tally.failures == [], tally.line(name)
    assert sum(tally.passed.values()) >= PASSED[name], tally.line(name)
    if name in COMPLETE:
        assert not tally.skipped, tally.line(name)


def test_br_table_passes_all_its_assert_return_and_exceptions_reach_the_host_as_such(sb):
    assert run_file(sb, SPEC / "br_table.wast").passed["assert_return"] == 161
    assert run_file(sb, SPEC / "throw.wast").passed["assert_exception"] == 7
