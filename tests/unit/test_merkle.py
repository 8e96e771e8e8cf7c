"""merkle.py against RFC 6962 known answers, a brute-force reference tree, and mutated proofs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wasm_sandbox import merkle

VECTORS = json.loads((Path(__file__).parents[1] / "testdata" / "merkle_rfc6962.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
MAX = 64


def h(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# A reference tree written straight from the RFC 6962 definitions (section 2.1).


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < len(d):
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


DATA = [i.to_bytes(2, "big") for i in range(MAX)]
HASHES = [merkle.leaf_hash(x) for x in DATA]
ROOTS = [ref_mth(DATA[:n]) for n in range(MAX + 1)]


def test_leaf_and_node_hashes_use_the_domain_prefixes():
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert merkle.root([]) == hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT


def test_known_leaf_hashes_and_roots():
    hashes = [merkle.leaf_hash(x) for x in LEAVES]
    assert hashes == h(VECTORS["leaf_hashes"])
    assert [merkle.root(hashes[:n]) for n in range(9)] == h(VECTORS["roots"])


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}@{c['size']}")
def test_known_inclusion_proofs(case):
    hashes = [merkle.leaf_hash(x) for x in LEAVES[: case["size"]]]
    proof = merkle.inclusion_proof(case["index"], hashes)
    assert proof == h(case["proof"])
    root = bytes.fromhex(VECTORS["roots"][case["size"]])
    assert merkle.verify_inclusion(hashes[case["index"]], case["index"], case["size"], proof, root)


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['size1']}-{c['size2']}")
def test_known_consistency_proofs(case):
    hashes = [merkle.leaf_hash(x) for x in LEAVES[: case["size2"]]]
    proof = merkle.consistency_proof(case["size1"], hashes)
    assert proof == h(case["proof"])
    root1, root2 = (bytes.fromhex(VECTORS["roots"][case[k]]) for k in ("size1", "size2"))
    assert merkle.verify_consistency(case["size1"], case["size2"], root1, root2, proof)


def test_roots_and_frontier_match_the_reference_for_every_size():
    frontier = merkle.Frontier()
    for n in range(1, MAX + 1):
        frontier.append(HASHES[n - 1])
        assert merkle.root(HASHES[:n]) == ROOTS[n] == frontier.root()
        assert merkle.Frontier(n, frontier.hashes).root() == ROOTS[n]


def test_frontier_reports_every_complete_subtree_once():
    frontier = merkle.Frontier()
    done = [node for x in HASHES for node in frontier.append(x)]
    expected = {(lvl, i) for lvl in range(7) for i in range(MAX >> lvl)}
    assert [(lvl, i) for lvl, i, _ in done] != [] and {(lvl, i) for lvl, i, _ in done} == expected
    assert len(done) == len(expected)
    for lvl, i, node in done:
        assert node == ref_mth(DATA[i << lvl : (i + 1) << lvl])


def test_inclusion_proofs_match_the_reference_for_every_size_and_index():
    for n in range(1, MAX + 1):
        for m in range(n):
            proof = merkle.inclusion_proof(m, HASHES[:n])
            assert proof == ref_path(m, DATA[:n])
            assert merkle.verify_inclusion(HASHES[m], m, n, proof, ROOTS[n])
            assert not merkle.verify_inclusion(HASHES[m], m, n, proof, ROOTS[n - 1])


def test_consistency_proofs_match_the_reference_for_every_size_pair():
    for n2 in range(1, MAX + 1):
        for n1 in range(1, n2 + 1):
            proof = merkle.consistency_proof(n1, HASHES[:n2])
            assert proof == ref_subproof(n1, DATA[:n2], True)
            assert merkle.verify_consistency(n1, n2, ROOTS[n1], ROOTS[n2], proof)


def test_range_helpers_rebuild_proofs_from_subtree_hashes():
    def stored(level: int, index: int) -> bytes:
        return ref_mth(DATA[index << level : (index + 1) << level])

    def from_ranges(ranges: list[tuple[int, int]]) -> list[bytes]:
        return [merkle.fold([stored(*n) for n in merkle.subtrees(lo, hi)]) for lo, hi in ranges]

    for n in range(1, 40):
        assert merkle.fold([stored(*s) for s in merkle.subtrees(0, n)]) == ROOTS[n]
        for m in range(n):
            assert from_ranges(merkle.inclusion_ranges(m, n)) == ref_path(m, DATA[:n])
        for n1 in range(1, n + 1):
            got = from_ranges(merkle.consistency_ranges(n1, n))
            assert got == ref_subproof(n1, DATA[:n], True)


def test_preconditions_raise_value_error():
    with pytest.raises(ValueError, match="not aligned"):
        merkle.subtrees(1, 3)
    with pytest.raises(ValueError, match="outside"):
        merkle.inclusion_proof(3, HASHES[:3])
    with pytest.raises(ValueError, match="size1"):
        merkle.consistency_proof(0, HASHES[:3])
    with pytest.raises(ValueError, match="frontier"):
        merkle.Frontier(3, HASHES[:1])


def test_consistency_edge_sizes():
    assert not merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, ROOTS[5], [])
    assert not merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    assert merkle.verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    assert not merkle.verify_consistency(5, 5, ROOTS[5], ROOTS[5], [ROOTS[5]])
    assert not merkle.verify_consistency(5, 5, ROOTS[5], ROOTS[4], [])
    assert not merkle.verify_consistency(6, 5, ROOTS[6], ROOTS[5], [])
    assert not merkle.verify_consistency(4, 5, ROOTS[4], ROOTS[5], [])


def test_inclusion_edge_sizes():
    assert merkle.verify_inclusion(HASHES[0], 0, 1, [], HASHES[0])
    assert not merkle.verify_inclusion(HASHES[0], 0, 0, [], HASHES[0])
    assert not merkle.verify_inclusion(HASHES[0], 1, 1, [], HASHES[0])
    assert not merkle.verify_inclusion(HASHES[0], -1, 1, [], HASHES[0])


# Hypothesis: every mutation of a valid proof or of its claims fails to verify.

sizes = st.integers(1, MAX)
hash_like = st.binary(min_size=32, max_size=32)


@st.composite
def inclusion_case(draw):
    n = draw(sizes)
    m = draw(st.integers(0, n - 1))
    return m, n, merkle.inclusion_proof(m, HASHES[:n])


@st.composite
def consistency_case(draw):
    n2 = draw(st.integers(2, MAX))
    n1 = draw(st.integers(1, n2 - 1))
    return n1, n2, merkle.consistency_proof(n1, HASHES[:n2])


def mutate(draw, proof: list[bytes]) -> list[bytes]:
    """A proof that differs from ``proof`` (a flipped bit, a hash dropped, added or moved)."""
    ops = ["add"] + (["flip", "drop", "swap"] if proof else [])
    op = draw(st.sampled_from(ops))
    out = list(proof)
    if op == "add":
        out.insert(draw(st.integers(0, len(out))), draw(hash_like))
    elif op == "flip":
        i, bit = draw(st.integers(0, len(out) - 1)), draw(st.integers(0, 255))
        out[i] = bytes(b ^ (1 << (bit % 8)) if j == bit // 8 else b for j, b in enumerate(out[i]))
    elif op == "drop":
        del out[draw(st.integers(0, len(out) - 1))]
    else:
        out.reverse()
    if out == proof:  # reversing a one-hash proof changes nothing: drop it instead
        out = out[1:]
    return out


@given(inclusion_case(), st.data())
def test_mutated_inclusion_proofs_fail(case, data):
    m, n, proof = case
    bad = mutate(data.draw, proof)
    assert not merkle.verify_inclusion(HASHES[m], m, n, bad, ROOTS[n])


@given(inclusion_case(), st.integers(0, MAX))
def test_inclusion_with_another_index_fails(case, m2):
    m, n, proof = case
    if m2 != m:
        assert not merkle.verify_inclusion(HASHES[m], m2, n, proof, ROOTS[n])


@given(consistency_case(), st.data())
def test_mutated_consistency_proofs_fail(case, data):
    n1, n2, proof = case
    bad = mutate(data.draw, proof)
    assert not merkle.verify_consistency(n1, n2, ROOTS[n1], ROOTS[n2], bad)


@given(consistency_case(), st.integers(0, MAX))
def test_consistency_with_another_first_size_fails(case, m1):
    n1, n2, proof = case
    if m1 != n1:
        assert not merkle.verify_consistency(m1, n2, ROOTS[n1], ROOTS[n2], proof)


@given(consistency_case())
def test_consistency_with_swapped_roots_fails(case):
    n1, n2, proof = case
    assert not merkle.verify_consistency(n1, n2, ROOTS[n2], ROOTS[n1], proof)


garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.lists(st.one_of(st.binary(max_size=40), st.integers(), st.none()), max_size=4),
)


@given(inclusion_case(), st.integers(0, 4), garbage)
def test_inclusion_verifier_never_raises_on_garbage(case, position, junk):
    m, n, proof = case
    args = [HASHES[m], m, n, proof, ROOTS[n]]
    args[position] = junk
    assert merkle.verify_inclusion(*args) in (True, False)
    if position in (0, 4):
        assert not merkle.verify_inclusion(*args)


@given(consistency_case(), st.integers(0, 4), garbage)
def test_consistency_verifier_never_raises_on_garbage(case, position, junk):
    n1, n2, proof = case
    args = [n1, n2, ROOTS[n1], ROOTS[n2], proof]
    args[position] = junk
    assert merkle.verify_consistency(*args) in (True, False)
    if position in (2, 3):
        assert not merkle.verify_consistency(*args)
