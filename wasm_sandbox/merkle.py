"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs: pure functions over bytes.

Hashes are 32-byte ``bytes``; leaf indices are 0-based; proofs are lists of hashes, leaf to root.
The list-based functions (``root``, ``inclusion_proof``, ``consistency_proof``) take all leaf
hashes. A store that keeps the hashes of aligned complete subtrees answers the same questions in
O(log n) reads with the range helpers::

    ranges = inclusion_ranges(index, size)           # leaf ranges whose hashes form the proof
    proof = [fold([stored(n) for n in subtrees(lo, hi)]) for lo, hi in ranges]

where ``stored((level, index))`` is the hash of leaves ``[index << level, (index + 1) << level)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "Frontier",
    "consistency_proof",
    "consistency_ranges",
    "fold",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "root",
    "subtrees",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """Hash of a leaf: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def fold(hashes: Sequence[bytes]) -> bytes:
    """Tree hash of a range from its aligned complete subtrees, given left to right.

    ``fold([a, b, c]) == node_hash(a, node_hash(b, c))``; the empty range hashes to EMPTY_ROOT.
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash (RFC 6962 MTH) of the given leaf hashes; the empty tree is SHA-256("")."""
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = paired + level[len(paired) * 2 :]
    return level[0]


def _split(n: int) -> int:
    """Largest power of two strictly less than ``n`` (requires n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Aligned complete subtrees ``(level, index)`` covering leaves ``[start, end)``, left to right.

    Requires every piece to be aligned, which holds for ``start == 0`` and for every range that
    ``inclusion_ranges`` and ``consistency_ranges`` return. Raises ValueError otherwise.
    """
    nodes = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start % (1 << level):
            raise ValueError(f"leaf range [{start}, {end}) is not aligned")
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose tree hashes form the inclusion proof of ``index``, leaf to root.

    Requires ``0 <= index < size`` (RFC 9162 section 2.1.3.1).
    """
    ranges = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    return ranges[::-1]


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Leaf ranges whose tree hashes form the consistency proof from ``size1`` to ``size2``.

    Requires ``0 < size1 <= size2`` (RFC 9162 section 2.1.4.1); equal sizes give no ranges.
    """
    ranges = []
    start, end, whole = 0, size2, True
    while size1 != end:
        k = _split(end - start)
        if size1 <= start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            whole = False
    if not whole:
        ranges.append((start, end))
    return ranges[::-1]


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Inclusion proof of leaf ``index`` in the tree of ``leaf_hashes``.

    Requires ``0 <= index < len(leaf_hashes)``; raises ValueError otherwise.
    """
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"index {index} is outside a tree of size {len(leaf_hashes)}")
    return [root(leaf_hashes[lo:hi]) for lo, hi in inclusion_ranges(index, len(leaf_hashes))]


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Consistency proof from the tree of the first ``size1`` leaves to the tree of all of them.

    Requires ``0 < size1 <= len(leaf_hashes)``; raises ValueError otherwise.
    """
    if not 0 < size1 <= len(leaf_hashes):
        raise ValueError(f"size1 {size1} is not in 1..{len(leaf_hashes)}")
    return [root(leaf_hashes[lo:hi]) for lo, hi in consistency_ranges(size1, len(leaf_hashes))]


def _is_size(n: object) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


def _is_hash(h: object) -> bool:
    return isinstance(h, bytes) and len(h) == HASH_SIZE


def _hashes(proof: object) -> list[bytes] | None:
    """The proof as a list of hashes, or None when it is not a sequence of 32-byte hashes."""
    if not isinstance(proof, (list, tuple)) or not all(_is_hash(h) for h in proof):
        return None
    return list(proof)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` puts ``leaf_hash`` at ``index`` in the tree of ``size`` and ``root``.

    RFC 9162 section 2.1.3.2. Returns False, never raises, for any malformed argument.
    """
    path = _hashes(proof)
    if path is None or not (_is_size(index) and _is_size(size) and index < size):
        return False
    if not (_is_hash(leaf_hash) and _is_hash(root)):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree ``(size1, root1)`` is a prefix of ``(size2, root2)``.

    RFC 9162 section 2.1.4.2. ``size1 == 0`` is rejected; equal sizes need an empty proof and
    equal roots. Returns False, never raises, for any malformed argument.
    """
    path = _hashes(proof)
    if path is None or not (_is_size(size1) and _is_size(size2) and 0 < size1 <= size2):
        return False
    if not (_is_hash(root1) and _is_hash(root2)):
        return False
    if size1 == size2:
        return not path and root1 == root2
    if not path:
        return False
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == root1 and sr == root2


class Frontier:
    """The right edge of a growing tree: the hashes of its maximal complete subtrees.

    Appending a leaf costs O(1) amortised and reports the complete subtrees it finishes, which is
    what a store of subtree hashes needs to write.

    >>> f = Frontier()
    >>> [(lvl, i) for lvl, i, _ in f.append(leaf_hash(b"a")) + f.append(leaf_hash(b"b"))]
    [(0, 0), (0, 1), (1, 0)]
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Resume a tree of ``size`` leaves from the hashes of ``subtrees(0, size)``."""
        if len(hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} frontier hashes")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return the subtrees it completes as ``(level, index, hash)``, leaf first."""
        done = [(0, self.size, leaf_hash)]
        level, index, h = 0, self.size, leaf_hash
        while index & 1:
            h = node_hash(self.hashes.pop(), h)
            level, index = level + 1, index >> 1
            done.append((level, index, h))
        self.hashes.append(h)
        self.size += 1
        return done

    def root(self) -> bytes:
        """The tree hash of the leaves appended so far."""
        return fold(self.hashes)
