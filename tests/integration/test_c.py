"""C through the ziglang package: compile, run with a granted file, errors with lines."""

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
    return sum("ziglang" in argv for argv in STARTED)


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
