"""The quick start's first command: ``wasm-sandbox course`` serves the course in JupyterLab
with the server extension on and chapter 1 listed, from this environment's own tools."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from wasm_sandbox import course

CLI = Path(sys.executable).with_name("wasm-sandbox")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def _wait(url: str, token: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if _get(url, token)[0] == 200:
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail("the course did not start in 90 s:\n" + log.read_text())


@pytest.mark.slow
def test_course_command_serves_chapter_one_with_the_extensions(tmp_path):
    port, token, log = _port(), secrets.token_hex(8), tmp_path / "course.log"
    env = {
        **os.environ,
        "WASM_SANDBOX_HOME": str(tmp_path / "home"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    args = [str(CLI), "course", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*args, f"--IdentityProvider.token={token}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}/"
    try:
        _wait(base + "wasm-sandbox/api/health", token, proc, log)
        status, body = _get(base + "api/contents/" + course.FIRST_CHAPTER, token)
        assert status == 200 and json.loads(body)["type"] == "notebook"
        status, page = _get(base + "lab", token)
        config = page.decode().split('id="jupyter-config-data"', 1)[1]
        assert '"name": "wasm-sandbox"' in config or '"name":"wasm-sandbox"' in config
        assert course.FIRST_CHAPTER in log.read_text()  # the chapter it opens
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_lab_command_opens_chapter_one_from_this_environment(tmp_path):
    command = course.lab_command(tmp_path, ["--no-browser"])
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert command[-1].endswith(course.FIRST_CHAPTER) and "--no-browser" in command


def test_a_copy_of_the_course_is_made_once(tmp_path):
    target = tmp_path / "mine"
    assert course.course_dir(target) == target
    (target / course.FIRST_CHAPTER).write_text("{}")  # the student's edits survive
    course.course_dir(target)
    assert (target / course.FIRST_CHAPTER).read_text() == "{}"
    assert (target / "programs" / "probe.wasm").is_file()
