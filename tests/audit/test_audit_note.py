"""C2SP signed notes and checkpoints; the signing key file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from infra.settings import Settings
from projections.audit.keys import AuditKeyError, load_signer, load_verifier
from projections.audit.merkle import leaf_hash
from projections.audit.note import (
    CheckpointBody,
    NoteError,
    Signer,
    Verifier,
    open_checkpoint,
    open_note,
    sign,
    sign_checkpoint,
)

# golang.org/x/mod/sumdb/note's documented example (Ed25519 is deterministic).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
# The C2SP signed-note spec's example.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONnc"
             "AlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")


def test_go_reference_note_byte_for_byte() -> None:
    signer = Signer.parse(GO_SKEY)
    assert signer.encode() == GO_SKEY
    assert signer.verifier().encode() == GO_VKEY
    note = sign(GO_TEXT, signer)
    assert note == GO_TEXT + "\n" + GO_SIG
    assert open_note(note, [Verifier.parse(GO_VKEY)]) == GO_TEXT


def test_spec_example_opens_and_tampering_fails() -> None:
    v = Verifier.parse(SPEC_VKEY)
    assert open_note(SPEC_NOTE, [v]) == "This is an example message.\n"
    with pytest.raises(NoteError, match="does not verify"):
        open_note(SPEC_NOTE.replace("example message", "exemplary message"), [v])
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(SPEC_NOTE, [Verifier.parse(GO_VKEY)])


def test_checkpoint_round_trip_and_wrong_origin() -> None:
    signer = Signer.generate("example.org/log")
    body = CheckpointBody("example.org/log", 42, leaf_hash(b"x"))
    note = sign_checkpoint(body, signer)
    assert note.startswith("example.org/log\n42\n")
    assert open_checkpoint(note, [signer.verifier()]) == body
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, [signer.verifier()], origin="other")
    forged = note.replace("\n42\n", "\n43\n")
    with pytest.raises(NoteError):
        open_checkpoint(forged, [signer.verifier()])


@pytest.mark.parametrize("bad", ["", "o\n", "o\n01\nAAAA\n", "o\n1\nnot base64!\n", "o\n1\nAAAA\n"])
def test_malformed_checkpoints_are_rejected(bad: str) -> None:
    with pytest.raises(NoteError):
        CheckpointBody.parse(bad)


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, audit_key=None)
    signer = load_signer(settings)
    path = tmp_path / "audit" / "signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signer(settings).encode() == signer.encode()
    assert load_verifier(settings).encode() == signer.verifier().encode()
    assert signer.name == settings.audit_origin
    os.chmod(path, 0o644)
    with pytest.raises(AuditKeyError, match="0644"):
        load_signer(settings)


def test_key_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, audit_key=GO_SKEY)
    assert load_signer(settings).encode() == GO_SKEY
    assert not (tmp_path / "audit").exists()
    with pytest.raises(AuditKeyError, match="CSP_AUDIT_KEY"):
        load_signer(Settings(data_dir=tmp_path, audit_key="PRIVATE+KEY+x+00000000+AAAA"))


def test_the_documented_example_checkpoint() -> None:
    """docs/audit.md shows this checkpoint and its verifier key."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text()
    note = ("enhanced-csp/audit\n5\nzWYoY3CLva70qEZ+eDRX+3IHrZiLp9Bc0K3pd3ntSwk=\n\n\u2014 enhanced-csp/audit "
            "uTLqpUxGWdmXa0RqXLGIO0HURccbEmhxSKCCPvt+p3qX+m2Nn76oxUid1GPTiXXZBSTeXpQTkzNRHR9lBqWKjh32qQ8=\n")
    vkey = "enhanced-csp/audit+b932eaa5+AZ92CSvJ2RDYJB3zP/fgaK2I1v2BVyY9+FpbD78St7tm"
    assert note in doc and vkey in doc
    body = open_checkpoint(note, [Verifier.parse(vkey)])
    assert (body.origin, body.size) == ("enhanced-csp/audit", 5)
