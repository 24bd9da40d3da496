"""The Merkle tree of RFC 9162 (Certificate Transparency 2.0), section 2.1, over the ledger.

Leaf i is the chain hash of event i + 1 as 32 raw bytes, hashed as a leaf:
SHA-256(0x00 || leaf); an inner node is SHA-256(0x01 || left || right); a tree of n
leaves splits at the largest power of two below n. Inclusion proofs (PATH, 2.1.3) show
one event is in a tree of a given size; consistency proofs (PROOF, 2.1.4) show a
smaller tree is a prefix of a larger one, i.e. nothing signed earlier was rewritten or
dropped. The verifying functions are the RFC's algorithms step by step; the offline
verifier under deploy/ carries a copy of them, so keep both in step.

No library is used: pymerkle's consistency proofs are not RFC 9162's wire form, and the
code here is small and pinned by the RFC 6962 / 9162 test vectors in the tests.
"""

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class RootAccumulator:
    """The root of a growing tree, one leaf hash at a time, in O(log n) memory.

    It keeps the roots of the perfect subtrees the leaves so far decompose into (largest
    first); a checkpoint stores them as its `frontier`, so the next checkpoint only
    hashes the events appended since.
    """

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        if len(frontier) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} frontier hashes")
        self.size = size
        # The subtree roots, largest first: one per set bit of `size`, so their sizes
        # need not be kept.
        self._roots: list[bytes] = list(frontier)

    def append(self, hashed_leaf: bytes) -> None:
        # Each trailing 1 bit of the old size is a perfect subtree the new leaf's
        # subtree now equals in size: merge them, right to left. (The audit walk calls
        # this once per event, hence the plain loop with node_hash inlined.)
        node, size, roots = hashed_leaf, self.size, self._roots
        while size & 1:
            node = _sha256(b"\x01" + roots.pop() + node).digest()
            size >>= 1
        roots.append(node)
        self.size += 1

    @property
    def frontier(self) -> list[bytes]:
        return list(self._roots)

    def root(self) -> bytes:
        if not self._roots:
            return EMPTY_ROOT
        result = self._roots[-1]
        for digest in reversed(self._roots[:-1]):
            result = node_hash(digest, result)
        return result


def tree_root(hashed_leaves: Iterable[bytes]) -> bytes:
    """MTH(D[n]) of leaves already hashed with leaf_hash."""
    accumulator = RootAccumulator()
    for hashed in hashed_leaves:
        accumulator.append(hashed)
    return accumulator.root()


def inclusion_proof(index: int, hashed_leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (RFC 9162 2.1.3.1) for the leaf at 0-based `index`."""
    n = len(hashed_leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf {index} is not in a tree of {n} leaves")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, hashed_leaves[:k]), tree_root(hashed_leaves[k:])]
    return [*inclusion_proof(index - k, hashed_leaves[k:]), tree_root(hashed_leaves[:k])]


def inclusion_proofs(
    indices: Iterable[int], hashed_leaves: Sequence[bytes]
) -> dict[int, list[bytes]]:
    """PATH(m, D[n]) for many leaves at once: the tree's levels are built once (about
    64 bytes per leaf), then each proof takes log2(n) lookups instead of hashing the
    whole tree again. A level's last node without a sibling moves up unchanged, which
    builds the same tree as RFC 9162's split at the largest power of two."""
    n = len(hashed_leaves)
    wanted = sorted(set(indices))
    if wanted and not 0 <= wanted[0] <= wanted[-1] < n:
        raise ValueError(f"a leaf asked for is not in a tree of {n} leaves")
    levels = [b"".join(hashed_leaves)]
    while len(levels[-1]) > 32:
        below = levels[-1]
        count = len(below) // 32
        above = bytearray()
        for pair in range(0, count - 1, 2):
            above += node_hash(
                below[pair * 32 : pair * 32 + 32], below[pair * 32 + 32 : pair * 32 + 64]
            )
        if count % 2:
            above += below[-32:]
        levels.append(bytes(above))
    proofs = {}
    for index in wanted:
        proof, position = [], index
        for level in levels[:-1]:
            sibling = position ^ 1
            if sibling * 32 < len(level):
                proof.append(level[sibling * 32 : sibling * 32 + 32])
            position >>= 1
        proofs[index] = proof
    return proofs


def _subproof(m: int, hashed_leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(hashed_leaves)
    if m == n:
        return [] if complete else [tree_root(hashed_leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, hashed_leaves[:k], complete), tree_root(hashed_leaves[k:])]
    return [*_subproof(m - k, hashed_leaves[k:], False), tree_root(hashed_leaves[:k])]


def consistency_proof(first_size: int, hashed_leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 2.1.4.1): the tree of `first_size` leaves is a prefix."""
    if not 0 < first_size <= len(hashed_leaves):
        raise ValueError(f"no consistency proof from {first_size} to {len(hashed_leaves)} leaves")
    return _subproof(first_size, hashed_leaves, True)


def inclusion_verify(
    *, hashed_leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: does `proof` put `hashed_leaf` at `index` of the tree with `root`?"""
    if not 0 <= index < tree_size:
        return False
    fn, sn, result = index, tree_size - 1, hashed_leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and result == root


def consistency_verify(
    *,
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """RFC 9162 2.1.4.2: is the tree (first_size, first_root) a prefix of the second?"""
    if not 0 < first_size <= second_size:
        return False
    if first_size == second_size:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = list(proof)
    if first_size & (first_size - 1) == 0:  # a power of two: the old root is a node
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first, second = path[0], path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first, second = node_hash(node, first), node_hash(node, second)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, node)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and first == first_root and second == second_root
