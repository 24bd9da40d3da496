"""The ledger's Merkle tree against the RFC 6962 / RFC 9162 reference vectors."""

import pytest

from portal.audit.merkle import (
    EMPTY_ROOT,
    RootAccumulator,
    consistency_proof,
    consistency_verify,
    inclusion_proof,
    inclusion_proofs,
    inclusion_verify,
    leaf_hash,
    tree_root,
)

# The certificate-transparency reference leaves and roots for trees of 1..8 leaves.
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
HASHED = [leaf_hash(leaf) for leaf in LEAVES]


def _hex(hashes: list[bytes]) -> list[str]:
    return [digest.hex() for digest in hashes]


def test_merkle_root_of_the_empty_tree_is_sha256_of_nothing():
    """MTH({}) is SHA-256 of the empty string (RFC 9162 2.1.1)."""
    assert tree_root([]) == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", range(1, 9))
def test_merkle_root_matches_the_reference_vectors(size):
    """Roots of the reference trees of 1 to 8 leaves."""
    assert tree_root(HASHED[:size]).hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_merkle_inclusion_proof_matches_the_reference_vectors(index, size, path):
    """Audit paths of the reference vectors, and each verifies against its root."""
    proof = inclusion_proof(index, HASHED[:size])
    assert _hex(proof) == path
    root = bytes.fromhex(ROOTS[size - 1])
    assert inclusion_verify(
        hashed_leaf=HASHED[index], index=index, tree_size=size, proof=proof, root=root
    )


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_merkle_consistency_proof_matches_the_reference_vectors(first, second, path):
    """Consistency proofs of the reference vectors, and each verifies the two roots."""
    proof = consistency_proof(first, HASHED[:second])
    assert _hex(proof) == path
    assert consistency_verify(
        first_size=first,
        second_size=second,
        first_root=bytes.fromhex(ROOTS[first - 1]),
        second_root=bytes.fromhex(ROOTS[second - 1]),
        proof=proof,
    )


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_merkle_every_proof_of_trees_up_to_40_leaves_verifies():
    """Every leaf's inclusion and every prefix's consistency, in every tree up to 40."""
    leaves = _leaves(40)
    for n in range(1, 41):
        root = tree_root(leaves[:n])
        for i in range(n):
            proof = inclusion_proof(i, leaves[:n])
            assert inclusion_verify(
                hashed_leaf=leaves[i], index=i, tree_size=n, proof=proof, root=root
            )
        for m in range(1, n + 1):
            proof = consistency_proof(m, leaves[:n])
            assert consistency_verify(
                first_size=m,
                second_size=n,
                first_root=tree_root(leaves[:m]),
                second_root=root,
                proof=proof,
            ), (m, n)


def test_merkle_inclusion_refuses_a_wrong_index_size_or_flipped_bit():
    """A proof is bound to its leaf's position, the tree size and every byte of the path."""
    leaves = _leaves(13)
    root = tree_root(leaves)
    proof = inclusion_proof(6, leaves)
    assert not inclusion_verify(
        hashed_leaf=leaves[6], index=5, tree_size=13, proof=proof, root=root
    )
    # Sizes 9 to 16 give leaf 6 the same path: the signed checkpoint binds root to size.
    assert not inclusion_verify(hashed_leaf=leaves[6], index=6, tree_size=7, proof=proof, root=root)
    assert not inclusion_verify(
        hashed_leaf=leaves[6], index=6, tree_size=13, proof=proof[:-1], root=root
    )
    flipped = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    assert not inclusion_verify(
        hashed_leaf=leaves[6], index=6, tree_size=13, proof=flipped, root=root
    )
    assert not inclusion_verify(
        hashed_leaf=leaves[7], index=6, tree_size=13, proof=proof, root=root
    )


def test_merkle_consistency_refuses_a_rewritten_or_reordered_prefix():
    """A tree whose first leaves were changed or swapped is not consistent with the old root."""
    leaves = _leaves(11)
    old_root = tree_root(leaves[:6])
    swapped = [leaves[1], leaves[0], *leaves[2:]]
    proof = consistency_proof(6, swapped)
    assert not consistency_verify(
        first_size=6,
        second_size=11,
        first_root=old_root,
        second_root=tree_root(swapped),
        proof=proof,
    )
    proof = consistency_proof(6, leaves)
    assert not consistency_verify(
        first_size=6,
        second_size=11,
        first_root=old_root,
        second_root=tree_root(leaves[:10]),
        proof=proof,
    )
    assert not consistency_verify(
        first_size=7,
        second_size=11,
        first_root=old_root,
        second_root=tree_root(leaves),
        proof=proof,
    )


def test_merkle_accumulator_resumes_from_a_frontier():
    """A tree continued from a stored frontier has the root of the tree built at once."""
    leaves = _leaves(37)
    for cut in range(0, 37):
        first = RootAccumulator()
        for leaf in leaves[:cut]:
            first.append(leaf)
        resumed = RootAccumulator(cut, first.frontier)
        for leaf in leaves[cut:]:
            resumed.append(leaf)
        assert resumed.root() == tree_root(leaves)
    with pytest.raises(ValueError):
        RootAccumulator(5, [])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 9, 16, 31, 33, 64, 100])
def test_inclusion_proofs_built_once_equal_rfc_9162_paths(size):
    """The level-by-level proofs of many leaves are RFC 9162's PATH(m, D[n]) for each."""
    leaves = [leaf_hash(f"event {n}".encode()) for n in range(size)]

    proofs = inclusion_proofs(range(size), leaves)

    root = tree_root(leaves)
    for index in range(size):
        assert proofs[index] == inclusion_proof(index, leaves)
        assert inclusion_verify(
            hashed_leaf=leaves[index], index=index, tree_size=size, proof=proofs[index], root=root
        )


def test_inclusion_proofs_refuse_a_leaf_outside_the_tree():
    leaves = [leaf_hash(b"a"), leaf_hash(b"b")]
    with pytest.raises(ValueError, match="not in a tree of 2 leaves"):
        inclusion_proofs([2], leaves)
