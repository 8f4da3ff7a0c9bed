"""Inclusion and consistency proof bundles (JSON), built from ClickHouse, checked offline.

A bundle carries everything an offline verifier needs: sizes, hashes (base64), the proof,
and the signed checkpoint note(s) the root(s) come from. :func:`verify_bundle` needs no
platform — only the bundle and, to check the signatures, the log's verifier key.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from projections.audit import canonical, store
from projections.audit.merkle import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from projections.audit.note import NoteError, Verifier, open_checkpoint

INCLUSION = "csp-audit-inclusion/v1"
CONSISTENCY = "csp-audit-consistency/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(doc: dict[str, Any], key: str) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str):
        raise ProofError(f"bundle field {key!r} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"bundle field {key!r} is not base64") from None


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"bundle field {key!r} is missing or not an integer")
    return value


def _checkpoint_at(client: Any, size: int) -> store.StoredCheckpoint | None:
    for cp in store.checkpoints(client, latest_first=True):
        if cp.tree_size == size:
            return cp
    return None


def _covering_size(client: Any, index: int) -> int:
    cps = store.checkpoints(client, latest_first=True)
    if not cps or cps[0].tree_size <= index:
        covered = cps[0].tree_size if cps else 0
        raise LookupError(
            f"entry {index} is not covered by a signed checkpoint yet (the newest covers {covered} entries); "
            "wait for the next checkpoint or pass --size"
        )
    return cps[0].tree_size


def _leaves(client: Any, size: int) -> list[bytes]:
    count, top = store.table_stats(client)
    if size > top:
        raise LookupError(f"the audit log holds {top} entries, not {size}")
    return store.leaf_hashes(client, size)


def _check_root(client: Any, size: int, root: bytes) -> store.StoredCheckpoint | None:
    cp = _checkpoint_at(client, size)
    if cp is not None and cp.root_hash != root:
        raise LookupError(
            f"the stored entries do not match the signed checkpoint at size {size}; run `csp audit verify`"
        )
    return cp


def prove_inclusion(client: Any, index: int, size: int | None = None) -> dict[str, Any]:
    size = _covering_size(client, index) if size is None else size
    if not 0 <= index < size:
        raise LookupError(f"entry {index} is not in a tree of size {size}")
    leaves = _leaves(client, size)
    root = root_of(leaves)
    cp = _check_root(client, size, root)
    entry = next(iter(store.iter_entries(client, index, index + 1)))
    return {
        "type": INCLUSION,
        "entry_index": index,
        "tree_size": size,
        "leaf_hash": _b64(leaves[index]),
        "canonical": _b64(entry.canonical),
        "source": {"topic": entry.source_topic, "partition": entry.source_partition, "offset": entry.source_offset},
        "proof": [_b64(h) for h in inclusion_proof(leaves, index, size)],
        "root": _b64(root),
        "checkpoint": None if cp is None else cp.note,
    }


def prove_consistency(client: Any, size1: int, size2: int) -> dict[str, Any]:
    if not 0 < size1 <= size2:
        raise LookupError(f"no consistency proof from size {size1} to {size2}: need 0 < OLD <= NEW")
    leaves = _leaves(client, size2)
    root1, root2 = root_of(leaves, 0, size1), root_of(leaves)
    cp1, cp2 = _check_root(client, size1, root1), _check_root(client, size2, root2)
    return {
        "type": CONSISTENCY,
        "size1": size1,
        "size2": size2,
        "root1": _b64(root1),
        "root2": _b64(root2),
        "proof": [_b64(h) for h in consistency_proof(leaves, size1, size2)],
        "checkpoint1": None if cp1 is None else cp1.note,
        "checkpoint2": None if cp2 is None else cp2.note,
    }


def _check_note(note: Any, size: int, root: bytes, verifier: Verifier | None, what: str) -> str:
    if note is None:
        return f"{what}: no signed checkpoint at size {size} in the bundle (root not signed)"
    if not isinstance(note, str):
        raise ProofError(f"{what}: checkpoint is not a string")
    if verifier is None:
        return f"{what}: signature NOT checked (no verifier key given)"
    try:
        body = open_checkpoint(note, [verifier])
    except NoteError as exc:
        raise ProofError(f"{what}: {exc}") from None
    if body.size != size or body.root != root:
        raise ProofError(f"{what}: the signed checkpoint is for size {body.size}, root {_b64(body.root)}, "
                         f"not size {size}, root {_b64(root)}")
    return f"{what}: signed by {verifier.name} ({body.origin}, size {body.size})"


def verify_bundle(doc: Any, verifier: Verifier | None = None) -> list[str]:
    """Check a proof bundle offline; returns what was checked, raises ProofError otherwise."""
    if not isinstance(doc, dict):
        raise ProofError("a proof bundle is a JSON object")
    proof_field = doc.get("proof")
    if not isinstance(proof_field, list):
        raise ProofError("bundle field 'proof' is missing or not a list")
    proof = [_unb64({"h": h}, "h") for h in proof_field]
    kind = doc.get("type")
    if kind == INCLUSION:
        index, size = _int(doc, "entry_index"), _int(doc, "tree_size")
        leaf, root = _unb64(doc, "leaf_hash"), _unb64(doc, "root")
        notes = []
        if doc.get("canonical") is not None:
            data = _unb64(doc, "canonical")
            if leaf_hash(data) != leaf:
                raise ProofError("the canonical bytes do not hash to the leaf hash")
            try:
                entry = canonical.decode(data)
            except canonical.CanonicalError as exc:
                raise ProofError(str(exc)) from None
            if entry.entry_index != index:
                raise ProofError(f"the canonical bytes are entry {entry.entry_index}, not {index}")
            notes.append(f"entry {index}: {entry.topic}[{entry.partition}]@{entry.offset}, leaf hash matches")
        verify_inclusion(index, size, leaf, proof, root)
        notes.insert(0, f"inclusion of entry {index} in the tree of size {size}: OK")
        notes.append(_check_note(doc.get("checkpoint"), size, root, verifier, "root"))
        return notes
    if kind == CONSISTENCY:
        size1, size2 = _int(doc, "size1"), _int(doc, "size2")
        root1, root2 = _unb64(doc, "root1"), _unb64(doc, "root2")
        verify_consistency(size1, size2, proof, root1, root2)
        return [
            f"consistency of size {size1} with size {size2}: OK",
            _check_note(doc.get("checkpoint1"), size1, root1, verifier, "root1"),
            _check_note(doc.get("checkpoint2"), size2, root2, verifier, "root2"),
        ]
    raise ProofError(f"unknown bundle type {kind!r} (expected {INCLUSION} or {CONSISTENCY})")
