"""Hostile guests, each contained, each with the right status, each in the log."""

import os

import pytest

from tests import programs
from wasm_sandbox import GrantError, Grants, Limits

TIGHT = Limits.parse(fuel="1e8", memory="4MiB", timeout="1s", output="64KiB", table_elements=1000)

MEMORY_BOMB = """(module (memory (export "memory") 1)
  (func (export "bomb") (result i32)
    (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (memory.size)))"""
TABLE_BOMB = """(module (table 1 funcref)
  (func (export "bomb") (result i32)
    (loop (br_if 0 (i32.ne (table.grow (ref.null func) (i32.const 100)) (i32.const -1))))
    (table.size)))"""
OUTPUT_FLOOD = r"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1) (data (i32.const 16) "flood flood flood flood\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 24))
    (loop (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br 0))))"""
#: A host call that asks to block for ~584 years.
FOREVER = programs.SLEEP_10S.replace("10000000000", "-1")


def _many_functions(n: int) -> str:
    funcs = "".join(f'(func (export "f{i}") (result i32) i32.const {i})' for i in range(n))
    return f"(module {funcs})"


def _many_imports(n: int) -> str:
    imports = "".join(
        f'(import "wasi_snapshot_preview1" "sched_yield" (func $y{i} (result i32)))'
        for i in range(n)
    )
    return f'(module {imports} (memory (export "memory") 1) (func (export "_start")))'


CASES = {
    "infinite loop": (programs.LOOP, "spin", ("out_of_fuel", "timeout")),
    "fuel loop": (programs.CALLING_LOOP, "spin", ("out_of_fuel", "timeout")),
    "memory bomb": (MEMORY_BOMB, "bomb", "ok"),
    "table bomb": (TABLE_BOMB, "bomb", "ok"),
    "deep recursion": (programs.RECURSE, "recurse", "trap"),
    "output flood": (OUTPUT_FLOOD, None, ("timeout", "out_of_fuel")),
    "host call forever": (FOREVER, None, "timeout"),
    "huge initial memory": ('(module (memory 60000) (func (export "f")))', "f", "memory_limit"),
    "huge data segment": (
        '(module (memory 200) (data (i32.const 0) "' + "x" * (8 << 20) + '") (func (export "f")))',
        "f",
        "memory_limit",
    ),
    "5000 functions": (_many_functions(5000), "f4999", "ok"),
    "2000 imports": (_many_imports(2000), None, "ok"),
    "unknown imports": (programs.FOREIGN_IMPORT, "f", "error"),
}


@pytest.mark.timeout(60)  # a guest that escaped its limits would hang here
@pytest.mark.parametrize("name", list(CASES))
def test_hostile_guest_is_contained_and_logged(sandbox, name):
    wat, invoke, expected = CASES[name]
    ex = sandbox.run(wat, invoke=invoke, limits=TIGHT)
    assert ex.outcome.status in ((expected,) if isinstance(expected, str) else expected)
    assert sandbox.verify(ex.id).verified
    if name == "memory bomb":
        assert ex.outcome.returns == (64,) and ex.outcome.memory_bytes == 4 << 20
    if name == "table bomb":
        assert ex.outcome.returns[0] <= 1000
    if name == "output flood":
        assert len(ex.outcome.stdout) == 64 << 10 and ex.outcome.output_truncated


def test_symlink_and_traversal_escapes_are_refused(sandbox, probe_wasm, tmp_path):
    granted = tmp_path / "granted"
    granted.mkdir()
    (tmp_path / "secret.txt").write_text("host secret")
    grants = Grants.parse(dirs=[f"{granted}:/data"])
    for target in (
        "/data/../secret.txt",
        str(tmp_path / "secret.txt"),
        "/etc/passwd",
        "//etc/passwd",
    ):
        ex = sandbox.run(probe_wasm, grants=Grants.parse(dirs=grants.dirs, argv=["read", target]))
        assert ex.outcome.status == "exit" and ex.outcome.exit_code == 1, target
        assert "host secret" not in ex.outcome.stdout and "root:" not in ex.outcome.stdout
        assert ex.outcome.stderr.startswith("denied:"), ex.outcome.stderr
    # A symlink out of the grant is refused before the guest starts (tests/hardening/test_grants.py)
    for name, points_to in (("link.txt", tmp_path / "secret.txt"), ("etc", "/etc")):
        os.symlink(points_to, granted / name)
        with pytest.raises(GrantError, match="outside the grant"):
            sandbox.run(probe_wasm, grants=Grants.parse(dirs=grants.dirs, argv=["read", "/data"]))
        os.unlink(granted / name)


def test_no_environment_no_arguments_unless_granted(sandbox, probe_wasm):
    os.environ["WASM_SANDBOX_TEST_SECRET"] = "leak"
    try:
        ex = sandbox.run(probe_wasm, grants=Grants.parse(argv=["env", "WASM_SANDBOX_TEST_SECRET"]))
    finally:
        del os.environ["WASM_SANDBOX_TEST_SECRET"]
    assert ex.outcome.exit_code == 1 and "leak" not in ex.outcome.stdout


def test_writes_to_a_read_only_grant_are_refused(sandbox, probe_wasm, tmp_path):
    ex = sandbox.run(
        probe_wasm,
        grants=Grants.parse(dirs=[f"{tmp_path}:/data"], argv=["write", "/data/x.txt", "pwned"]),
    )
    assert ex.outcome.exit_code == 1 and not (tmp_path / "x.txt").exists()


def test_the_log_survives_the_whole_corpus(sandbox):
    for name in CASES:
        wat, invoke, _ = CASES[name]
        sandbox.run(wat, invoke=invoke, limits=TIGHT)
    report = sandbox.verify_log()
    assert report.ok and report.tree_size == len(CASES)
