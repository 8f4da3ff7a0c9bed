"""RFC 6962 / RFC 9162 Merkle trees: pure functions, no I/O.

* ``leaf_hash(data) = SHA-256(0x00 || data)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``,
  the root of the empty tree is ``SHA-256("")``.
* ``Frontier``: the compact range ``[0, size)`` — one perfect-subtree root per set bit of
  ``size`` — appended to in O(1) amortised time, O(log n) memory.
* ``root_of``, ``inclusion_proof``, ``consistency_proof`` over a list of leaf hashes
  (RFC 6962 section 2.1: MTH, PATH, PROOF).
* ``verify_inclusion``, ``verify_consistency``: RFC 9162 sections 2.1.3.2 and 2.1.4.2.
  They raise :class:`ProofError` naming what is wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof that does not verify, or arguments that cannot form a valid proof."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes], lo: int = 0, hi: int | None = None) -> bytes:
    """MTH of the leaf hashes ``leaves[lo:hi]`` (level-by-level pairing = left-balanced tree)."""
    hi = len(leaves) if hi is None else hi
    if hi <= lo:
        return EMPTY_ROOT
    level = list(leaves[lo:hi])
    while len(level) > 1:
        nxt = [_sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]) over the leaf hashes."""
    size = len(leaves) if size is None else size
    if not 0 <= index < size <= len(leaves):
        raise ProofError(f"no inclusion proof for entry {index} in a tree of size {size}")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(root_of(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(root_of(leaves, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_proof(leaves: Sequence[bytes], size1: int, size2: int | None = None) -> list[bytes]:
    """RFC 6962 PROOF(size1, D[0:size2]) over the leaf hashes (0 < size1 <= size2)."""
    size2 = len(leaves) if size2 is None else size2
    if not 0 < size1 <= size2 <= len(leaves):
        raise ProofError(f"no consistency proof from size {size1} to size {size2} (need 0 < size1 <= size2)")
    path: list[bytes] = []
    lo, hi, m, complete = 0, size2, size1, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                path.append(root_of(leaves, lo, hi))
            break
        k = _split(n)
        if m <= k:
            path.append(root_of(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(root_of(leaves, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    path.reverse()
    return path


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, expected a {HASH_SIZE}-byte SHA-256 hash")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 2.1.3.2 steps 1-5)."""
    if index < 0 or size < 0 or index >= size:
        raise ProofError(f"entry index {index} is not inside a tree of size {size}")
    _check_hash(leaf, "the leaf hash")
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
        if sn == 0:
            raise ProofError(f"the proof is too long: {len(proof)} hashes for entry {index} of {size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the proof is too short: {len(proof)} hashes for entry {index} of {size}")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless ``proof`` shows leaf ``index`` with hash ``leaf`` in the tree ``root``."""
    _check_hash(root, "the root hash")
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"inclusion proof of entry {index} in size {size} does not lead to the given root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Raise ProofError unless ``proof`` shows tree ``root1`` (size1) is a prefix of ``root2`` (size2)."""
    if size1 <= 0:
        raise ProofError(f"size1 is {size1}: a consistency proof needs 0 < size1 (every tree extends the empty one)")
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) < size1 ({size1}): a log only grows")
    if size1 == size2:
        if proof:
            raise ProofError(f"size1 = size2 = {size1} but the proof has {len(proof)} hashes (must be empty)")
        if root1 != root2:
            raise ProofError(f"size1 = size2 = {size1} but the roots differ")
        return
    if not proof:
        raise ProofError(f"empty consistency proof from size {size1} to {size2}")
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: the old root is itself a node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"the consistency proof from {size1} to {size2} is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the consistency proof from {size1} to {size2} is too short")
    if fr != root1:
        raise ProofError(f"the consistency proof does not lead to root1 (size {size1})")
    if sr != root2:
        raise ProofError(f"the consistency proof does not lead to root2 (size {size2})")


class Frontier:
    """The compact range [0, size): perfect-subtree roots, largest (leftmost) first.

    ``hashes[i]`` covers ``2**b`` leaves for the i-th set bit ``b`` of ``size`` from the top.
    """

    __slots__ = ("size", "hashes")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != bin(size).count("1"):
            raise ValueError(
                f"a frontier of size {size} has {bin(max(size, 0)).count('1')} hashes, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            if len(h) != HASH_SIZE:
                raise ValueError(f"frontier hash {i} is {len(h)} bytes, expected {HASH_SIZE}")
        self.size = size
        self.hashes = list(hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (already ``leaf_hash``-ed)."""
        hashes = self.hashes
        h, s = leaf, self.size
        while s & 1:
            h = _sha256(_NODE_PREFIX + hashes.pop() + h).digest()
            s >>= 1
        hashes.append(h)
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        hashes = self.hashes
        size = self.size
        for leaf in leaves:
            h, s = leaf, size
            while s & 1:
                h = _sha256(_NODE_PREFIX + hashes.pop() + h).digest()
                s >>= 1
            hashes.append(h)
            size += 1
        self.size = size

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = node_hash(h, r)
        return r

    def ranges(self) -> list[tuple[int, int]]:
        """The leaf range [lo, hi) each hash covers, in order."""
        out: list[tuple[int, int]] = []
        lo = 0
        for bit in range(self.size.bit_length() - 1, -1, -1):
            if self.size >> bit & 1:
                out.append((lo, lo + (1 << bit)))
                lo += 1 << bit
        return out
