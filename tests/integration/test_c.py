"""C through the ziglang package: compile, run with a granted file, errors with lines."""

import os
import re
import subprocess
import sys

import pytest

from wasm_sandbox import CompileError, Grants

pytest.importorskip("ziglang", reason="install wasm-sandbox[c]")

#: The argv of every process this interpreter starts (Python's ``subprocess.Popen`` audit event).
STARTED: list[list[str]] = []


def _record_process(event: str, args: tuple) -> None:
    if event == "subprocess.Popen":
        STARTED.append([str(a) for a in args[1]])


sys.addaudithook(_record_process)


def compilers_started() -> int:
    return sum(any("zig" in arg for arg in argv) for argv in STARTED)


READER = r"""
#include <stdio.h>
int main(void) {
    FILE *f = fopen("/data/name.txt", "r");
    if (!f) { perror("open"); return 4; }
    char name[64] = {0};
    fgets(name, sizeof name, f);
    printf("hello, %s", name);
    return 7;
}
"""


@pytest.mark.slow
def test_c_reads_a_granted_file_prints_and_exits_with_a_code(sandbox, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "name.txt").write_text("student\n")
    messages = []
    before = compilers_started()
    ex = sandbox.run(
        READER, lang="c", grants=Grants.parse(dirs=[f"{data}:/data"]), status=messages.append
    )
    assert ex.outcome.status == "exit" and ex.outcome.exit_code == 7
    assert ex.outcome.stdout == "hello, student\n"
    assert ex.lang == "c"
    assert compilers_started() == before + 1
    # A second run of the same source is a cache hit: no compiler is started.
    again = sandbox.run(READER, lang="c")
    assert compilers_started() == before + 1
    assert again.outcome.exit_code == 4 and "open" in again.outcome.stderr


@pytest.mark.slow
def test_c_syntax_error_reports_its_line(sandbox):
    with pytest.raises(CompileError) as err:
        sandbox.run("#include <stdio.h>\nint main(void) {\n  int x = ;\n  return x;\n}\n", lang="c")
    assert err.value.line == 3 and err.value.source_line == "  int x = ;"
    assert str(err.value).startswith("C line 3, column")


@pytest.mark.slow
def test_the_first_c_compile_says_it_builds_the_c_library(tmp_path):
    """With an empty zig cache the CLI says what is slow, and how long it has taken."""
    source = tmp_path / "hello.c"
    source.write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    env = {
        **os.environ,
        "ZIG_GLOBAL_CACHE_DIR": str(tmp_path / "zig"),
        "WASM_SANDBOX_HOME": str(tmp_path / "home"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", "run", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0 and "hi" in proc.stdout, proc.stderr
    notes = proc.stderr.splitlines()
    assert notes[0].startswith("wasm-sandbox: compiling C: the first C compile builds")
    ticks = [line for line in notes if re.search(r"building the C library, \d+ s", line)]
    assert any(re.search(r", [1-9]\d* source files compiled$", line) for line in ticks), ticks
