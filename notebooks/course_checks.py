"""Checks for the course's exercises: each says right (and why) or raises `Wrong`.

    import course_checks as check
    check.square(SQUARE)          # chapter 1, exercise 1

A check computes the true answer itself wherever it can (it runs the guest, in the
sandbox, under limits), so reading this file tells you how an answer is checked, rarely
what it is. Runs a check makes are sealed and logged like any other; pass ``sb=`` to use
another home (the course's tests do). `tests/integration/test_course_checks.py` runs every
check against a wrong answer and against the solution.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from wasm_sandbox import Grants, Limits, Sandbox, SandboxError, envelope, merkle

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
_DEFAULT: list[Sandbox] = []


class Wrong(AssertionError):
    """The answer is not right; the message says what is wrong."""


def _sandbox(sb: Sandbox | None) -> Sandbox:
    if sb is not None:
        return sb
    if not _DEFAULT:
        _DEFAULT.append(Sandbox())
    return _DEFAULT[0]


def _expect(ok: bool, wrong: str, right: str) -> None:
    if not ok:
        raise Wrong(f"wrong: {wrong}")
    print(f"right: {right}")


def _scratch(files: dict[str, str]) -> Path:
    """A temporary directory holding ``files`` (relative path: text)."""
    root = Path(tempfile.mkdtemp(prefix="wasm-course-check-"))
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


# Chapter 1


def square(wat: str, sb: Sandbox | None = None) -> None:
    """Exercise 1.1: a module whose export ``square`` returns x * x (as i32)."""
    got = {}
    for x in (12, 0, -7, 46340):
        ex = _sandbox(sb).run(wat, invoke="square", args=[x], limits=Limits.parse(fuel="1e6"))
        got[x] = ex.outcome.returns[0] if ex.outcome.status == "ok" else ex.outcome.status
    wrong = {x: y for x, y in got.items() if y != x * x}
    _expect(not wrong, f"square returned {wrong}", f"square(x) = x * x for {sorted(got)}")


SUM = """(module
  (func (export "sum") (param $n i32) (result i32)
    (local $total i32)
    (loop $again
      (local.set $total (i32.add (local.get $total) (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $again (local.get $n)))
    (local.get $total)))"""


def _sum_fuel(n: int, sb: Sandbox | None) -> int:
    return _sandbox(sb).run(SUM, invoke="sum", args=[n]).outcome.fuel_used


def fuel_per_turn(answer: float, sb: Sandbox | None = None) -> None:
    """Exercise 1.2: the fuel one turn of ``sum``'s loop costs."""
    slope = (_sum_fuel(300, sb) - _sum_fuel(200, sb)) / 100
    _expect(answer == slope, f"{answer} units per turn; measure two runs", f"{slope:g} per turn")


def greeting(wat: str, name: str, sb: Sandbox | None = None) -> None:
    """Exercise 1.3: hello.wat greeting ``name``, whole and nothing more."""
    want = f"Hello, {name}, from the sandbox!\n"
    ex = _sandbox(sb).run(wat, limits=Limits.parse(fuel="1e6"))
    got = ex.outcome.stdout
    _expect(ex.outcome.status == "ok" and got == want, f"it printed {got!r}", f"it prints {want!r}")


# Chapter 2


def smallest_budget(answer: int, sb: Sandbox | None = None) -> None:
    """Exercise 2.1: the smallest fuel budget with which ``sum(1000)`` finishes."""

    def ends(fuel: int) -> str:
        ex = _sandbox(sb).run(SUM, invoke="sum", args=[1000], limits=Limits(fuel=fuel))
        return ex.outcome.status

    ok = answer > 1 and ends(answer) == "ok" and ends(answer - 1) == "out_of_fuel"
    _expect(ok, f"{answer} is not the edge between out_of_fuel and ok", f"{answer:,}")


HOG = """(module
  (memory (export "memory") 1)
  (func (export "hog") (result i32)
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (memory.size)))"""


def three_pages(memory: str, sb: Sandbox | None = None) -> None:
    """Exercise 2.2: a ``--memory`` value under which ``hog`` ends with 3 pages."""
    ex = _sandbox(sb).run(HOG, invoke="hog", limits=Limits.parse(memory=memory))
    pages = ex.outcome.returns[0] if ex.outcome.status == "ok" else ex.outcome.status
    _expect(pages == 3, f"with {memory} hog ends with {pages}", f"{memory}: 3 pages")


def which_limit(answer: dict[str, str], sb: Sandbox | None = None) -> None:
    """Exercise 2.3: the status of ``probe sleep 5`` for each fuel budget."""
    truth = {
        fuel: _sandbox(sb)
        .run(
            PROGRAMS / "probe.wasm",
            grants=Grants.parse(argv=["sleep", "5"]),
            limits=Limits.parse(fuel=fuel, timeout="500ms"),
        )
        .outcome.status
        for fuel in ("1000", "1e5")
    }
    _expect(answer == truth, f"{answer}", f"{truth}")


# Chapter 3


def _probe_in(root: Path, *argv: str, sb: Sandbox | None, mode: str = "ro") -> Any:
    return _sandbox(sb).run(
        PROGRAMS / "probe.wasm",
        grants=Grants.parse(dirs=[f"{root / 'data'}:/data:{mode}"], argv=list(argv)),
    )


def dot_paths(answer: dict[str, bool], sb: Sandbox | None = None) -> None:
    """Exercise 3.1: which of the two paths read hello.txt (path: True or False)."""
    root = _scratch({"data/hello.txt": "hi\n", "data/sub/.keep": ""})
    paths = ("/data/./hello.txt", "/data/sub/../hello.txt")
    truth = {p: _probe_in(root, "read", p, sb=sb).outcome.status == "ok" for p in paths}
    _expect(answer == truth, f"{answer}", f"{truth}")


def inner_link(allowed: bool, sb: Sandbox | None = None) -> None:
    """Exercise 3.2: is a link inside the grant, to a file inside the grant, allowed?"""
    root = _scratch({"data/hello.txt": "hi\n"})
    (root / "data" / "alias").symlink_to("hello.txt")
    try:
        truth = _probe_in(root, "read", "/data/alias", sb=sb).outcome.status == "ok"
    except SandboxError:
        truth = False
    _expect(allowed == truth, f"allowed = {allowed}", f"allowed = {truth}")


def write_grant(on_host: str, ro_status: str, sb: Sandbox | None = None) -> None:
    """Exercise 3.3: what the host file holds after the rw write of "42", and the status
    of the same write under ``:ro``."""
    root = _scratch({"data/.keep": ""})
    _probe_in(root, "write", "/data/result.txt", "42", sb=sb, mode="rw")
    truth = (root / "data" / "result.txt").read_text()
    ro = _probe_in(root, "write", "/data/other.txt", "42", sb=sb).outcome.status
    ok = on_host == truth and ro_status == ro
    _expect(ok, f"{on_host!r} and {ro_status!r}", f"the host reads {truth!r}; under :ro {ro!r}")


# Chapter 4


def _overflow(*argv: str, sb: Sandbox | None, dirs: Iterable[str] = ()) -> Any:
    grants = Grants.parse(argv=list(argv), dirs=list(dirs))
    return _sandbox(sb).run(PROGRAMS / "overflow.wasm", grants=grants).outcome


def shortest_admin(length: int, sb: Sandbox | None = None) -> None:
    """Exercise 4.1: the length of the shortest all-"A" name that makes you an admin."""

    def admin(n: int) -> bool:
        return "access: ADMIN" in _overflow("A" * n, sb=sb).stdout

    ok = length > 0 and admin(length) and not admin(length - 1)
    _expect(ok, f"{length} characters", f"{length} characters: one byte into is_admin")


def deputy(name: str, motto: str, notice_dir: str, sb: Sandbox | None = None) -> None:
    """Exercise 4.2: a payload (name, motto) that makes overflow print ``exams.txt`` from
    the granted ``notice_dir`` instead of its notice."""
    secret = (Path(notice_dir) / "exams.txt").read_text()
    out = _overflow(name, motto, sb=sb, dirs=[f"{notice_dir}:/data:ro"])
    shown = out.status == "ok" and secret.strip() in out.stdout
    _expect(shown, f"it printed {out.stdout.splitlines()[-2:]}", "overflow read exams.txt")


def funcptr_256(payload: str, sb: Sandbox | None = None) -> None:
    """Exercise 4.3: a funcptr name that sets ``reply`` to 256."""
    grants = Grants.parse(argv=[payload])
    out = _sandbox(sb).run(PROGRAMS / "funcptr.wasm", grants=grants).outcome
    ok = "reply after:  256\n" in out.stdout
    _expect(ok, f"reply became {out.stdout.splitlines()[2:3]}", "reply = 256 (then a trap)")


def fixed_store_name(source: str, sb: Sandbox | None = None) -> None:
    """Exercise 4.4 (needs ziglang): C whose store_name cuts a long name."""
    ex = _sandbox(sb).run(source, lang="c", grants=Grants.parse(argv=["AAAAAAAAB"]))
    ok = ex.outcome.status == "ok" and "is_admin = 0" in ex.outcome.stdout
    _expect(ok, f"it printed {ex.outcome.stdout!r}", "AAAAAAAAB stays a guest")


# Chapter 5


def domain_separation(other_record: bool, other_purpose: bool) -> None:
    """Exercise 5.1: does the commitment change with another record id / purpose?"""
    salt, payload = bytes(32), b"payload"
    base = envelope.commit("result", "r1", payload, salt)
    truth = (
        envelope.commit("result", "r2", payload, salt) != base,
        envelope.commit("input", "r1", payload, salt) != base,
    )
    got = (other_record, other_purpose)
    _expect(got == truth, f"changes = {got}", f"changes = {truth}: domain separation")


def public_fields(answer: set[str], record: dict[str, Any]) -> None:
    """Exercise 5.2: which of NAMES anyone can read in ``record`` without a key."""
    truth = {name for name in NAMES if name in record["outcome"] or name in record}
    _expect(set(answer) == truth, f"{sorted(answer)}", f"{sorted(truth)}")


#: The candidates of exercise 5.2.
NAMES = ("status", "fuel_used", "returns", "stdout", "duration_us", "limits")


def altered_commitment(error: str) -> None:
    """Exercise 5.3: the error's class name when only the commitment was altered."""
    private = ec.generate_private_key(ec.SECP256R1())
    part = envelope.seal("result", b"{}", private.public_key(), "r1")
    try:
        envelope.open_part("result", "r1", part.enc, part.ciphertext, private, bytes(32))
        truth = "none"
    except SandboxError as exc:
        truth = type(exc).__name__
    _expect(error == truth, f"{error}", f"{truth}")


# Chapter 6


def inclusion_of_4(proof: list[bytes], leaves: list[bytes]) -> None:
    """Exercise 6.1: the inclusion proof of leaf 4 in the tree of ``leaves`` (5)."""
    root = merkle.root(leaves)
    ok = merkle.verify_inclusion(leaves[4], 4, len(leaves), list(proof), root)
    _expect(ok, "that proof does not lead to the root", "leaf 4's proof checks")


def from_empty(answer: bool, leaves: list[bytes]) -> None:
    """Exercise 6.2: what verify_consistency says from size 0."""
    truth = merkle.verify_consistency(0, len(leaves), merkle.EMPTY_ROOT, merkle.root(leaves), [])
    _expect(answer == truth, f"{answer}", f"{truth}: there is nothing to prove")


def deletion_caught(report: Any) -> None:
    """Exercise 6.3: the report of ``verify_log`` on a log whose last entry you deleted."""
    caught = not report.ok and any("3" in problem for problem in report.problems)
    _expect(caught, "that log still verifies: was entry 2 deleted?", "the deletion is caught")


# Chapter 7


def class_average(answer: float, results: Any, expected: int, n: int) -> None:
    """Exercise 7.1: the class average with 2 / 1 / 0 points."""

    def points(row: Any) -> int:
        if row.status != "ok" or not row.returns:
            return 0
        return 2 if row.returns[0] == expected else 1 if abs(row.returns[0] - expected) <= n else 0

    truth = float(results.apply(points, axis=1).mean())
    _expect(abs(answer - truth) < 1e-9, f"{answer}", f"{truth}")


def more_fuel(
    changed: int, before: Any, paths: list[Path], limits: Limits, n: int, sb: Sandbox | None = None
) -> None:
    """Exercise 7.2: how many of ``before``'s rows change status under a 1e7 fuel budget."""
    after = _sandbox(sb).map_programs(
        paths, args=(n,), invoke="solve", limits=Limits.parse(limits, fuel="1e7"), progress=False
    )
    truth = sum(ex.outcome.status != old for ex, old in zip(after, before.status, strict=True))
    _expect(changed == truth, f"{changed}", f"{truth} rows change")


def three_inputs(
    students: set[str], results: Any, submissions: list[dict[str, Any]], sb: Sandbox | None = None
) -> None:
    """Exercise 7.3: the students graded correct for n = 1000 who fail n = 1 or n = 10."""
    correct = [s for s, g in zip(submissions, results.grade, strict=True) if g == "correct"]
    truth = set()
    for n in (1, 10):
        batch = _sandbox(sb).map_programs(
            [s["path"] for s in correct],
            args=(n,),
            invoke="solve",
            progress=False,
            limits=Limits.parse(fuel="1e6", timeout="1s"),
        )
        truth |= {
            s["student"]
            for s, ex in zip(correct, batch, strict=True)
            if list(ex.outcome.returns) != [n * (n + 1) // 2]
        }
    _expect(set(students) == truth, f"{sorted(students)}", f"{sorted(truth)}")


def python_grades(grades: dict[str, str], folder: str | Path, sb: Sandbox | None = None) -> None:
    """Exercise 7.4: "pass" or "fail" for each Python submission (file name: grade) in
    ``folder``; a submission passes when it prints n (n + 1) / 2 for n = 1, 10 and 1000."""
    truth = {}
    for path in sorted(Path(folder).glob("*.py")):
        answers = [
            _sandbox(sb)
            .run(path, lang="python", args=[str(n)], limits=Limits.parse(fuel="2e10"))
            .outcome.stdout.strip()
            for n in (1, 10, 1000)
        ]
        truth[path.name] = "pass" if answers == ["1", "55", "500500"] else "fail"
    _expect(dict(grades) == truth, f"{grades}", f"{truth}")


# Chapter 8


def vault_secret(recovered: str, vault: str) -> None:
    """Exercise 8.1: the vault's secret, recovered from timings alone."""
    secret = re.search(r'\(data \(i32.const 16\) "(\w+)"\)', vault)
    truth = secret[1] if secret else None
    _expect(recovered == truth, f"{recovered!r}", f"{recovered!r} is the secret")
