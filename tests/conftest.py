import importlib
import os
from pathlib import Path

import pytest

if os.environ.get("CI"):
    # Under CI a missing test dependency fails the test instead of skipping it: .ci/run
    # installs everything (tests/integration/test_environment.py lists it).
    pytest.importorskip = lambda modname, *args, **kwargs: importlib.import_module(modname)

#: The C probe of the course (notebooks/programs/probe.c), shared with the tests.
PROBE = Path(__file__).parents[1] / "notebooks" / "programs" / "probe.wasm"


@pytest.fixture(scope="session")
def engine():
    from wasm_sandbox.engine import Engine

    eng = Engine()
    yield eng
    eng.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh sandbox home, also set as $WASM_SANDBOX_HOME for subprocesses."""
    path = tmp_path / "home"
    monkeypatch.setenv("WASM_SANDBOX_HOME", str(path))
    return path


@pytest.fixture
def sandbox(home):
    from wasm_sandbox import Sandbox

    with Sandbox(home=home) as sb:
        yield sb


@pytest.fixture(scope="session")
def probe_wasm() -> bytes:
    return PROBE.read_bytes()


def pytest_configure(config):
    os.environ.setdefault("PYTHONFAULTHANDLER", "1")


@pytest.fixture(scope="session")
def components(tmp_path_factory) -> dict[str, Path]:
    """The test components (tests/components), built once: ``{"calc": path, ...}``."""
    from tests.components import build

    out = tmp_path_factory.mktemp("components")
    return {name: build(name, out) for name in ("calc", "wasi", "host", "forged")}


@pytest.fixture(scope="session")
def python_home(tmp_path_factory):
    """A sandbox home whose module cache holds the compiled Python interpreter: the one
    cold compile (10-30 s) of a test session."""
    from wasm_sandbox import Sandbox

    path = tmp_path_factory.mktemp("python") / "home"
    with Sandbox(home=path) as sb:
        assert sb.run("pass", lang="python").outcome.status == "ok"
    return path


@pytest.fixture
def python_sandbox(python_home):
    from wasm_sandbox import Sandbox

    with Sandbox(home=python_home) as sb:
        yield sb
