"""Signed deployments: Ed25519 signatures on ``csp.registry`` records.

Who can deploy: whoever holds a private key whose public key the workers trust. A worker
runs a registry record only when

* its ``signing_key`` is trusted (the public key of the worker's own data-dir key, plus
  ``CSP_TRUSTED_KEYS``),
* its ``signature`` verifies over :func:`signed_digest` of the record, and
* its content matches: ``source_hash`` is the sha256 of ``source`` and ``compiled_hash`` the
  sha256 of the compiled LTS bytes (inline, or read from the platform's compiled store).

Otherwise the version is *untrusted*: a START on it is refused UNTRUSTED_VERSION with the
reason. Keys: :func:`load_or_create_key` makes ``<data_dir>/keys/deploy.ed25519`` (raw 32-byte
private key, created with mode 0600, in a 0700 folder) and ``deploy.ed25519.pub`` (hex), unless
``CSP_DEPLOY_KEY`` names another key file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from infra.settings import Settings

KEY_FILE = "deploy.ed25519"
SIGNED_FIELDS = (
    "system", "version", "process", "file_name", "source_hash", "channels", "assertions",
    "compiled_hash", "deployed_at",
)  # fmt: skip


class SigningError(RuntimeError):
    """A key could not be read or created."""


def key_path(settings: Settings) -> Path:
    return settings.deploy_key or settings.resolved_data_dir() / "keys" / KEY_FILE


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The private key in ``path`` (raw 32 bytes); created (mode 0600 from creation) when missing."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())  # fmt: skip
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return load_or_create_key(path)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        pub = path.with_name(path.name + ".pub")
        pub.write_text(public_hex(key) + "\n")
        return key
    if len(raw) != 32:
        raise SigningError(f"{path}: not a raw Ed25519 private key (32 bytes expected, got {len(raw)})")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def trusted_keys(settings: Settings) -> frozenset[str]:
    """Public keys (hex) whose deployments a worker with these settings runs."""
    keys = {k.strip().lower() for k in settings.trusted_keys.split(",") if k.strip()}
    keys.add(public_hex(load_or_create_key(key_path(settings))))
    return frozenset(keys)


def signed_digest(record: Mapping[str, Any]) -> bytes:
    """sha256 of the canonical JSON of the record's signed fields."""
    body = {name: record.get(name) for name in SIGNED_FIELDS}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).digest()


def sign_record(record: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``record`` with ``signing_key`` and ``signature`` set (``compiled_hash`` must be set)."""
    if not record.get("compiled_hash"):
        raise SigningError(f"{record.get('system')}: record without compiled_hash cannot be signed")
    out = dict(record)
    out["signing_key"] = public_hex(key)
    out["signature"] = key.sign(signed_digest(out))
    return out


@dataclass(frozen=True)
class TrustPolicy:
    """The public keys a worker trusts."""

    keys: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustPolicy:
        return cls(trusted_keys(settings))

    def check(self, record: Mapping[str, Any], compiled: bytes) -> str | None:
        """Why ``record`` (with its compiled bytes) may not run, or None when it is trusted."""
        signer = record.get("signing_key")
        signature = record.get("signature")
        if not signer or not signature:
            return "the registry record is not signed"
        if signer.lower() not in self.keys:
            return f"it is signed by key {signer[:16]}..., which this worker does not trust"
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(signer)).verify(
                bytes(signature), signed_digest(record)
            )
        except (InvalidSignature, ValueError):
            return "its signature does not verify (the record was altered or forged)"
        if hashlib.sha256(str(record.get("source", "")).encode()).hexdigest() != record.get("source_hash"):
            return "its source does not match its signed source_hash"
        if hashlib.sha256(compiled).hexdigest() != record.get("compiled_hash"):
            return "its compiled LTS does not match its signed compiled_hash"
        return None
