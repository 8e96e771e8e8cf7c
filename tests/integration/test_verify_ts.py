"""The browser's own checks (labextension/src/verify.ts), run by Node 20 after the
labextension's TypeScript transpiled them: the RFC 6962 vectors, proofs of a real log, a real
server's record, checkpoint and witness cosignature, and tampered copies of each, which must fail.
Node has the same WebCrypto (SHA-256, Ed25519) as Chromium; tests/browser runs the panel itself.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import programs
from wasm_sandbox import Sandbox, merkle
from wasm_sandbox.jupyter.server_service import Service, Settings
from wasm_sandbox.witness import Witness

ROOT = Path(__file__).resolve().parents[2]
VERIFY_TS = ROOT / "labextension" / "src" / "verify.ts"
TYPESCRIPT = ROOT / "labextension" / "node_modules" / "typescript"
HARNESS = Path(__file__).with_name("verify_ts.mjs")
VECTORS = json.loads((ROOT / "tests" / "testdata" / "merkle_rfc6962.json").read_text())


def _need(what: str) -> None:
    pytest.fail(f"{what} is missing (pip install -e . runs jlpm install): never skipped")


def call(*calls: tuple[str, list[Any]]) -> list[Any]:
    """Each ``(function, args)`` of verify.ts called in one Node process; their values."""
    node = shutil.which("node")
    if node is None:
        _need("Node.js")
    if not TYPESCRIPT.is_dir():
        _need("labextension/node_modules (jlpm install)")
    answer = subprocess.run(
        [node, str(HARNESS), str(VERIFY_TS), str(TYPESCRIPT)],
        input=json.dumps([{"fn": fn, "args": args} for fn, args in calls]),
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    results = json.loads(answer.stdout)
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, errors
    return [r["value"] for r in results]


def h(data: bytes) -> dict[str, str]:
    return {"hex": data.hex()}


def flipped(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def hashes(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


LEAF_HASHES = hashes(VECTORS["leaf_hashes"])
ROOTS = hashes(VECTORS["roots"])


def test_leaf_hashes_of_the_vectors():
    leaves = [bytes.fromhex(x) for x in VECTORS["leaves"]]
    got = call(*(("hashLeaf", [h(leaf)]) for leaf in leaves))
    assert [g["hex"] for g in got] == VECTORS["leaf_hashes"]


def assert_only_vectors_verify(cases: list[tuple[Any, ...]], want: list[bool]) -> None:
    """Each tampered copy is wrong (by merkle.py), except another size whose tree has the same
    path (index 1 of 6 and of 7): a proof there leads to the same root, as RFC 9162 allows."""
    assert [kind == "vector" for kind, *_ in cases] == [
        w and kind != "other size" for (kind, *_), w in zip(cases, want, strict=True)
    ]


def inclusion_cases() -> list[tuple[str, bytes, int, int, list[bytes], bytes]]:
    """Each vector, then tampered copies: every hash flipped, another index, size or root, a
    hash dropped or added, the leaf flipped."""
    cases = []
    for v in VECTORS["inclusion"]:
        i, n, proof = v["index"], v["size"], hashes(v["proof"])
        leaf, root = LEAF_HASHES[i], ROOTS[n]
        cases.append(("vector", leaf, i, n, proof, root))
        cases += [("hash flipped", leaf, i, n, [*proof[:k], flipped(p), *proof[k + 1 :]], root)
                  for k, p in enumerate(proof)]  # fmt: skip
        cases += [
            ("other index", leaf, i + 1, n, proof, root),
            ("other size", leaf, i, n + 1, proof, root),
            ("other root", leaf, i, n, proof, flipped(root)),
            ("leaf flipped", flipped(leaf), i, n, proof, root),
            ("hash added", leaf, i, n, [*proof, proof[0] if proof else leaf], root),
        ]
        if proof:
            cases.append(("hash dropped", leaf, i, n, proof[:-1], root))
    return cases


def test_inclusion_vectors_verify_and_every_tampered_proof_fails():
    cases = inclusion_cases()
    got = call(*(("verifyInclusion", [h(lf), i, n, [h(p) for p in pr], h(rt)])
                 for _, lf, i, n, pr, rt in cases))  # fmt: skip
    want = [merkle.verify_inclusion(lf, i, n, pr, rt) for _, lf, i, n, pr, rt in cases]
    assert_only_vectors_verify(cases, want)
    assert got == want, [c[0] for c, g, w in zip(cases, got, want, strict=True) if g != w]


def consistency_cases() -> list[tuple[str, int, int, bytes, bytes, list[bytes]]]:
    """Each vector, then tampered copies (as `inclusion_cases`), and forks: the second tree
    built on another first leaf."""
    cases = []
    for v in VECTORS["consistency"]:
        m, n, proof = v["size1"], v["size2"], hashes(v["proof"])
        r1, r2 = ROOTS[m], ROOTS[n]
        cases.append(("vector", m, n, r1, r2, proof))
        cases += [("hash flipped", m, n, r1, r2, [*proof[:k], flipped(p), *proof[k + 1 :]])
                  for k, p in enumerate(proof)]  # fmt: skip
        cases += [
            ("old root flipped", m, n, flipped(r1), r2, proof),
            ("new root flipped", m, n, r1, flipped(r2), proof),
            ("size 0", 0, n, r1, r2, proof),
            ("other size", m, n + 1, r1, r2, proof),
            ("hash added", m, n, r1, r2, [*proof, r1]),
        ]
        if m != n:
            cases.append(("roots swapped", m, n, r2, r1, proof))
            cases.append(("sizes swapped", n, m, r1, r2, proof))
        if proof:
            cases.append(("hash dropped", m, n, r1, r2, proof[:-1]))
    fork = [merkle.leaf_hash(b"fork"), *LEAF_HASHES[1:]]
    for m in range(1, 8):
        proof = merkle.consistency_proof(m, fork)
        cases.append(("fork", m, 8, ROOTS[m], merkle.root(fork), proof))
    return cases


def test_consistency_vectors_verify_and_every_tampered_proof_or_fork_fails():
    cases = consistency_cases()
    got = call(*(("verifyConsistency", [m, n, h(r1), h(r2), [h(p) for p in pr]])
                 for _, m, n, r1, r2, pr in cases))  # fmt: skip
    want = [merkle.verify_consistency(m, n, r1, r2, pr) for _, m, n, r1, r2, pr in cases]
    assert_only_vectors_verify(cases, want)
    assert got == want, [c[0] for c, g, w in zip(cases, got, want, strict=True) if g != w]


def test_proofs_of_a_real_tree_of_every_size_verify():
    leaves = [merkle.leaf_hash(b"leaf %d" % i) for i in range(13)]
    calls = []
    for n in range(1, 14):
        root = merkle.root(leaves[:n])
        calls += [("verifyInclusion",
                   [h(leaves[i]), i, n, [h(p) for p in merkle.inclusion_proof(i, leaves[:n])],
                    h(root)]) for i in range(n)]  # fmt: skip
        calls += [("verifyConsistency",
                   [m, n, h(merkle.root(leaves[:m])), h(root),
                    [h(p) for p in merkle.consistency_proof(m, leaves[:n])]])
                  for m in range(1, n + 1)]  # fmt: skip
    assert all(call(*calls))


# -- a real server's answers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three runs logged in a real home, the witness's cosignature on its checkpoint, and
    what `GET executions/{id}`, `GET checkpoint` and `GET keys/public` answer for it."""
    home = tmp_path_factory.mktemp("log") / "home"
    with Sandbox(home=home) as sb:
        ids = [sb.run(programs.ADD, invoke="add", args=(i, 1)).id for i in range(3)]
    service = Service(Settings(home=str(home)))
    try:
        log_key = service.public_keys()["log_verifier_key"]
        checkpoint = service.checkpoint()
        with Witness(tmp_path_factory.mktemp("witness"), create=True) as witness:
            line = witness.add_checkpoint(checkpoint["checkpoint"], log_key, old_size=0, proof=[])
            witness_key = witness.verifier_key
        return {"detail": service.execution(ids[1]), "other": service.execution(ids[0]),
                "log_key": log_key, "note": checkpoint["checkpoint"], "line": line,
                "witness_key": witness_key}  # fmt: skip
    finally:
        service.close()


def browser_checks(*details: dict[str, Any], key: str) -> list[dict[str, str]]:
    return call(*(("browserChecks", [d, key]) for d in details))


def tampered(detail: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(detail)
    out.update(changes)
    return out


def _rewritten(detail: dict[str, Any]) -> dict[str, Any]:
    """The record and its logged bytes rewritten alike: a trapped run made to say ok."""
    leaf = base64.b64decode(detail["leaf_b64"]).replace(b'"status":"ok"', b'"status":"trap"')
    assert leaf != base64.b64decode(detail["leaf_b64"])
    return tampered(detail, leaf_b64=base64.b64encode(leaf).decode(), record=json.loads(leaf))


def test_a_real_record_passes_the_browser_checks(served):
    (checks,) = browser_checks(served["detail"], key=served["log_key"])
    assert set(checks) == {"browser: leaf hash", "browser: inclusion", "browser: signature"}
    assert all(v.startswith("ok") for v in checks.values()), checks
    leaf = base64.b64decode(served["detail"]["leaf_b64"])
    assert checks["browser: leaf hash"] == f"ok: {merkle.leaf_hash(leaf).hex()}"


def test_tampered_records_proofs_and_checkpoints_fail(served):
    d = served["detail"]
    record = copy.deepcopy(d["record"])
    record["outcome"]["fuel_used"] += 1
    path = d["inclusion_proof"]["hashes"]
    proof = {**d["inclusion_proof"], "hashes": [flipped(bytes.fromhex(path[0])).hex(), *path[1:]]}
    origin, size, root, *rest = d["checkpoint"].split("\n")
    other_root = base64.b64encode(flipped(base64.b64decode(root))).decode()
    cases = {
        "record edited": (tampered(d, record=record), "leaf hash"),
        "record and leaf rewritten": (_rewritten(d), "inclusion"),
        "leaf of another record": (tampered(d, leaf_b64=served["other"]["leaf_b64"]), "leaf hash"),
        "audit path hash flipped": (tampered(d, inclusion_proof=proof), "inclusion"),
        "proof for another leaf": (
            tampered(d, inclusion_proof={**d["inclusion_proof"], "leaf_index": 0}), "inclusion"),
        "checkpoint root changed": (
            tampered(d, checkpoint="\n".join([origin, size, other_root, *rest])), "signature"),
    }  # fmt: skip
    got = browser_checks(*(detail for detail, _ in cases.values()), key=served["log_key"])
    for (name, (_, check)), checks in zip(cases.items(), got, strict=True):
        assert checks[f"browser: {check}"].startswith("failed"), (name, checks)


def test_another_log_key_fails_the_signature(served, tmp_path):
    with Sandbox(home=tmp_path / "other") as sb:
        other_key = sb.ledger.verifier_key
    (checks,) = browser_checks(served["detail"], key=other_key)
    assert checks["browser: signature"].startswith("failed"), checks
    (checks,) = browser_checks(served["detail"], key=served["log_key"][:-4] + "AAA=")
    assert checks["browser: signature"].startswith("failed"), checks


def test_witness_cosignatures_valid_unchecked_missing_and_tampered(served):
    note, line, wkey = served["note"], served["line"], served["witness_key"]
    log_key_id = served["log_key"].split("+")[1]
    name, blob = line[2:].split(" ")
    bad = "\u2014 " + name + " " + base64.b64encode(flipped(base64.b64decode(blob), 20)).decode()
    moved = note.replace("\n" + note.split("\n")[1] + "\n", "\n999\n", 1)  # another checkpoint
    valid, unchecked, missing, invalid, elsewhere = call(
        ("checkCosignatures", [{"note": f"{note}{line}\n"}, log_key_id, [wkey]]),
        ("checkCosignatures", [{"note": f"{note}{line}\n"}, log_key_id, []]),
        ("checkCosignatures", [{"note": note}, log_key_id, [wkey]]),
        ("checkCosignatures", [{"note": f"{note}{bad}\n"}, log_key_id, [wkey]]),
        ("checkCosignatures", [{"note": f"{moved}{line}\n"}, log_key_id, [wkey]]),
    )
    assert [c["status"] for c in valid] == ["valid"] and valid[0]["name"] == name
    assert valid[0]["keyId"] == wkey.split("+")[1] and valid[0]["time"] > 0
    assert [c["status"] for c in unchecked] == ["unchecked"]
    assert [c["status"] for c in missing] == ["missing"]
    assert [c["status"] for c in invalid] == ["invalid"]
    assert [c["status"] for c in elsewhere] == ["invalid"]
