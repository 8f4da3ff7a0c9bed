"""The Merkle core against the transparency-dev/merkle vectors, and generated trees."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from projections.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

ROOT = Path(__file__).resolve().parents[2]
# ../shared relative to the project root (one level further up from a git worktree in wt/).
VECTORS = next(
    (p for p in (ROOT.parent / "shared" / "conformance" / "merkle",
                 ROOT.parent.parent / "shared" / "conformance" / "merkle") if p.is_dir()),
    ROOT.parent / "shared" / "conformance" / "merkle",
)


def _b(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _vector_files() -> list[Path]:
    return sorted((VECTORS / "testdata").rglob("*.json"))


def test_vectors_are_present() -> None:
    assert len(_vector_files()) >= 190, VECTORS


def test_every_transparency_dev_vector() -> None:
    """The verifier accepts exactly the wantErr:false cases."""
    mismatches, accepted, rejected = [], 0, 0
    for path in _vector_files():
        doc = json.loads(path.read_text())
        proof = [_b(h) for h in doc.get("proof") or []]
        try:
            if "leafIdx" in doc:
                verify_inclusion(doc["leafIdx"], doc["treeSize"], _b(doc["leafHash"]), proof, _b(doc["root"]))
            else:
                verify_consistency(doc["size1"], doc["size2"], proof, _b(doc["root1"]), _b(doc["root2"]))
            ok = True
        except ProofError:
            ok = False
        if ok == doc["wantErr"]:
            mismatches.append(str(path.relative_to(VECTORS)))
        accepted += ok
        rejected += not ok
    assert not mismatches
    assert accepted >= 10 and rejected >= 150


def test_roots_for_sizes_0_to_8() -> None:
    doc = json.loads((VECTORS / "roots.json").read_text())
    leaves = [leaf_hash(bytes.fromhex(x)) for x in doc["leaf_inputs_hex"]]
    for size, want in enumerate(doc["root_hex_by_tree_size"]):
        assert root_of(leaves[:size]).hex() == want
        f = Frontier()
        f.extend(leaves[:size])
        assert f.root().hex() == want
    assert root_of([]) == EMPTY_ROOT


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH, recursively, as the spec writes it."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 33, 64, 100])
def test_generated_proofs_verify_and_corruptions_fail(size: int) -> None:
    rng = random.Random(size)
    leaves = [leaf_hash(rng.randbytes(rng.randrange(0, 40))) for _ in range(size)]
    root = _mth(leaves)
    assert root_of(leaves) == root
    f = Frontier()
    for i, leaf in enumerate(leaves):
        f.append(leaf)
        assert f.root() == _mth(leaves[: i + 1])
    assert Frontier(f.size, f.hashes).root() == root
    for i in range(size):
        proof = inclusion_proof(leaves, i)
        verify_inclusion(i, size, leaves[i], proof, root)
        if proof:
            bad = list(proof)
            bad[-1] = bytes([bad[-1][0] ^ 1]) + bad[-1][1:]
            with pytest.raises(ProofError):
                verify_inclusion(i, size, leaves[i], bad, root)
        with pytest.raises(ProofError):
            verify_inclusion(i, size, leaf_hash(b"other"), proof, root)
    for m in range(1, size + 1):
        proof = consistency_proof(leaves, m)
        verify_consistency(m, size, proof, root_of(leaves, 0, m), root)
        if m < size:
            with pytest.raises(ProofError):
                verify_consistency(m, size, proof, root_of(leaves, 0, m), leaf_hash(b"x"))
            with pytest.raises(ProofError):
                verify_consistency(m, size, proof[:-1], root_of(leaves, 0, m), root)


def test_frontier_rejects_a_wrong_number_of_hashes() -> None:
    with pytest.raises(ValueError, match="size 3 has 2 hashes"):
        Frontier(3, [EMPTY_ROOT])
