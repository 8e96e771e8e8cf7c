"""Untrusted C never reads the host's files, and a compile bomb ends at a stated limit.

Each spelling of an ``#include`` or ``#embed`` points at a secret file the test writes on
the host; whatever the compiler does with it (an error, or a module that compiles), the
secret appears neither in the error nor in what the guest prints.
"""

import os
import subprocess
import sys
import uuid

import pytest

from wasm_sandbox import CompileError, Limits

pytest.importorskip("ziglang", reason="install wasm-sandbox[c]")

PRINT_EMBEDDED = """#include <stdio.h>
static const char text[] = {{
{directive}
, 0 }};
int main(void) {{ fputs(text, stdout); return 0; }}
"""
PRINT_INCLUDED = """#include <stdio.h>
static const char *text =
{directive}
;
int main(void) {{ fputs(text, stdout); return 0; }}
"""
#: About 10**10 tokens from 11 short lines: clang's preprocessor memory grows without end.
BOMB = "\n".join(
    ["#define A0 1+1+1+1+1+1+1+1+1+1+"]
    + [f"#define A{i} " + " ".join([f"A{i - 1}"] * 10) for i in range(1, 10)]
    + ["int main(void) { return A9 0; }", ""]
)


def _spellings(secret: str, up: str) -> dict[str, tuple[str, str]]:
    """Name -> (program template, directive) for every way of naming ``secret``."""
    rel = up + secret.lstrip("/")
    return {
        "embed absolute": (PRINT_EMBEDDED, f'#embed "{secret}"'),
        "embed angle": (PRINT_EMBEDDED, f"#embed <{secret}>"),
        "embed relative": (PRINT_EMBEDDED, f'#embed "{rel}"'),
        "embed via macro": (PRINT_EMBEDDED, f'#define P "{secret}"\n#embed P'),
        "embed spaced": (PRINT_EMBEDDED, f'  #  embed   "{secret}"'),
        "embed continued": (PRINT_EMBEDDED, f'#em\\\nbed "{secret}"'),
        "embed /proc root": (PRINT_EMBEDDED, f'#embed "/proc/1/root{secret}"'),
        "embed /proc cwd": (PRINT_EMBEDDED, f'#embed "/proc/self/cwd/{rel}"'),
        "include absolute": (PRINT_INCLUDED, f'#include "{secret}"'),
        "include relative": (PRINT_INCLUDED, f'#include "{rel}"'),
        "include angle": (PRINT_INCLUDED, f"#include <{secret}>"),
        "include next": (PRINT_INCLUDED, f'#include_next "{secret}"'),
        "include via macro": (PRINT_INCLUDED, f'#define P "{secret}"\n#include P'),
        "include stringized": (PRINT_INCLUDED, f"#define S(x) #x\n#include S({secret})"),
    }


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    """A host file whose contents are a C string literal, so an include would compile."""
    marker = f"HOST-SECRET-{uuid.uuid4().hex}"
    path = tmp_path_factory.mktemp("host") / "secret.txt"
    path.write_text(f'"{marker}"\n')
    return path, marker


NAMES = list(_spellings("/x", "../"))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_c_cannot_read_a_host_file(sandbox, secret, name):
    path, marker = secret
    template, directive = _spellings(str(path), "../" * 24)[name]
    source = template.format(directive=directive)
    try:
        ex = sandbox.run(source, lang="c")
    except CompileError as exc:
        assert marker not in str(exc) and "\n" not in str(exc)
        assert str(exc).startswith("C")
    else:
        assert marker not in ex.outcome.stdout + ex.outcome.stderr


@pytest.mark.slow
def test_an_absolute_include_fails_with_one_line_naming_it(sandbox):
    for directive in ('#include "/etc/passwd"', "#include <../../x>", '#embed "/etc/passwd"'):
        with pytest.raises(CompileError) as err:
            sandbox.run(f"{directive}\nint main(void) {{ return 0; }}\n", lang="c")
        assert str(err.value).startswith("C line 1: #") and "host's files" in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize(("timeout", "limit"), [("1s", "1 s timeout"), ("60s", "memory cap")])
def test_a_preprocessor_bomb_ends_at_a_named_limit(sandbox, timeout, limit):
    with pytest.raises(CompileError) as err:
        sandbox.run(BOMB, lang="c", limits=Limits.parse(timeout=timeout))
    assert limit in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_without_bubblewrap_c_is_refused_with_the_package_name(tmp_path):
    source = tmp_path / "fresh.c"
    source.write_text(f"int main(void) {{ return {uuid.uuid4().int % 100}; }}\n")
    env = {**os.environ, "PATH": str(tmp_path), "WASM_SANDBOX_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_sandbox.cli", "run", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "bubblewrap" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
