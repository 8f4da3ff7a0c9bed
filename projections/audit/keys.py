"""The audit signing key: ``CSP_AUDIT_KEY``, or ``<data dir>/audit/signing.key`` (mode 0600).

The key file is created with ``os.open(..., 0o600)`` (never readable by others, not even
briefly) and refused when group or others can read it. The public verifier key is written
next to it (``signing.vkey``) for verifiers, who never need the private key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from infra.settings import Settings
from projections.audit.note import NoteError, Signer, Verifier

KEY_FILE = "signing.key"
VKEY_FILE = "signing.vkey"


class AuditKeyError(RuntimeError):
    """The signing key is missing, unreadable, malformed or too widely readable."""


def key_dir(settings: Settings) -> Path:
    return settings.resolved_data_dir() / "audit"


def _write_new(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def load_signer(settings: Settings, *, create: bool = True) -> Signer:
    """The checkpoint signer of ``settings``; generated (name = ``settings.audit_origin``) on
    first use when ``create``."""
    if settings.audit_key:
        try:
            return Signer.parse(settings.audit_key)
        except NoteError as exc:
            raise AuditKeyError(f"CSP_AUDIT_KEY: {exc}") from None
    path = key_dir(settings) / KEY_FILE
    if not path.exists():
        if not create:
            raise AuditKeyError(f"no audit signing key at {path} (and CSP_AUDIT_KEY is not set)")
        path.parent.mkdir(parents=True, exist_ok=True)
        signer = Signer.generate(settings.audit_origin)
        try:
            _write_new(path, signer.encode() + "\n", 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return load_signer(settings, create=False)
        vpath = path.parent / VKEY_FILE
        vpath.unlink(missing_ok=True)
        _write_new(vpath, signer.verifier().encode() + "\n", 0o644)
        return signer
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AuditKeyError(f"audit signing key {path} has mode {mode:04o}: group/others may read it; chmod 600 it")
    try:
        return Signer.parse(path.read_text())
    except NoteError as exc:
        raise AuditKeyError(f"{path}: {exc}") from None


def load_verifier(settings: Settings, vkey: str | None = None) -> Verifier:
    """The verifier key: ``vkey`` (a key or a file holding one), else the public half of the
    configured signing key, else ``<data dir>/audit/signing.vkey``."""
    try:
        if vkey:
            path = Path(vkey)
            text = path.read_text() if "+" not in vkey and path.is_file() else vkey
            return Verifier.parse(text)
        if settings.audit_key:
            return load_signer(settings, create=False).verifier()
        vpath = key_dir(settings) / VKEY_FILE
        if vpath.is_file():
            return Verifier.parse(vpath.read_text())
        return load_signer(settings, create=False).verifier()
    except NoteError as exc:
        raise AuditKeyError(f"verifier key: {exc}") from None
