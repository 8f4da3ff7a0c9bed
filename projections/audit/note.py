"""C2SP signed notes (Ed25519) and tlog-checkpoint bodies. Pure: no file or network I/O.

Signed note (https://c2sp.org/signed-note)::

    <text, ending in a newline>
    <blank line>
    — <key name> <base64(key id (4 bytes, big-endian) || Ed25519 signature)>

The key id of an Ed25519 key is the first 4 bytes of
``SHA-256(key name || "\\n" || 0x01 || public key)``. Keys are written like Go's
``golang.org/x/mod/sumdb/note``: verifier ``<name>+<hex key id>+<base64(0x01 || public key)>``,
signer ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``.

Checkpoint body (https://c2sp.org/tlog-checkpoint): origin line, decimal tree size,
base64 root hash, then optional extension lines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # em dash + space
_MAX_SIGS = 100


class NoteError(ValueError):
    """A malformed note, key or checkpoint, or a signature that does not verify."""


def _check_name(name: str) -> str:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise NoteError(f"key name {name!r}: must be non-empty, without spaces or '+'")
    return name


def key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what}: not valid base64 ({exc})") from None


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: int
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """``<name>+<hex8>+<base64(0x01 || key)>``."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or len(parts[1]) != 8:
            raise NoteError(f"verifier key {vkey.strip()!r}: expected <name>+<8 hex digits>+<base64 key>")
        name = _check_name(parts[0])
        try:
            kid = int(parts[1], 16)
        except ValueError:
            raise NoteError(f"verifier key: key id {parts[1]!r} is not hex") from None
        raw = _b64decode(parts[2], "verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("verifier key: expected algorithm byte 0x01 (Ed25519) and a 32-byte key")
        if key_id(name, raw[1:]) != kid:
            raise NoteError(f"verifier key: key id {parts[1]} does not match name {name!r} and key")
        return cls(name, kid, Ed25519PublicKey.from_public_bytes(raw[1:]))

    def encode(self) -> str:
        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(bytes([ALG_ED25519]) + raw).decode()}"


@dataclass(frozen=True)
class Signer:
    name: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(_check_name(name), Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """``PRIVATE+KEY+<name>+<hex8>+<base64(0x01 || seed)>``."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("signing key: expected PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
        name = _check_name(parts[2])
        raw = _b64decode(parts[4], "signing key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signing key: expected algorithm byte 0x01 (Ed25519) and a 32-byte seed")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if f"{signer.key_id:08x}" != parts[3].lower():
            raise NoteError(f"signing key: key id {parts[3]} does not match name {name!r} and key")
        return signer

    @property
    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.public_bytes)

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, self.private_key.public_key())

    def encode(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{base64.b64encode(bytes([ALG_ED25519]) + seed).decode()}"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if "\n\n" in text:
        raise NoteError("note text must not contain a blank line")
    for ch in text:
        if (ord(ch) < 0x20 and ch != "\n") or ord(ch) == 0x7F:
            raise NoteError(f"note text contains control character {ord(ch):#04x}")


def sign(text: str, signer: Signer) -> str:
    """The signed note: ``text``, a blank line, one signature line."""
    _check_text(text)
    sig = signer.private_key.sign(text.encode())
    blob = struct.pack(">I", signer.key_id) + sig
    return f"{text}\n{SIG_PREFIX}{signer.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: int
    signature: bytes


def split(note: str) -> tuple[str, list[Signature]]:
    """The text and signature lines of a signed note (signatures not verified)."""
    at = note.rfind("\n\n")
    if at < 0:
        raise NoteError("not a signed note: no blank line before the signatures")
    text, sig_block = note[: at + 1], note[at + 2:]
    _check_text(text)
    if not sig_block.endswith("\n"):
        raise NoteError("signed note must end with a newline")
    sigs: list[Signature] = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"signature line {line!r} does not start with '{SIG_PREFIX}'")
        name, _, b64 = line[len(SIG_PREFIX):].partition(" ")
        _check_name(name)
        blob = _b64decode(b64, f"signature of {name}")
        if len(blob) < 5:
            raise NoteError(f"signature of {name} is too short")
        sigs.append(Signature(name, int(struct.unpack(">I", blob[:4])[0]), blob[4:]))
    if not sigs or len(sigs) > _MAX_SIGS:
        raise NoteError(f"signed note has {len(sigs)} signatures")
    return text, sigs


def open_note(note: str, verifiers: list[Verifier]) -> str:
    """The note text, if at least one signature verifies with a known key; NoteError otherwise.

    Signatures by unknown keys are ignored; a signature by a known key that fails is an error.
    """
    text, sigs = split(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = 0
    for sig in sigs:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue
        try:
            v.public_key.verify(sig.signature, text.encode())
        except InvalidSignature:
            raise NoteError(f"the signature of {sig.name} ({sig.key_id:08x}) does not verify") from None
        verified += 1
    if not verified:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in sigs)
        raise NoteError(f"no signature by a known key (note signed by: {names})")
    return text


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        if not self.origin or "\n" in self.origin:
            raise NoteError(f"checkpoint origin {self.origin!r} must be one non-empty line")
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> CheckpointBody:
        if not text.endswith("\n"):
            raise NoteError("checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(f"checkpoint has {len(lines)} lines, needs origin, size and root hash")
        origin, size_s, root_s = lines[:3]
        if not origin:
            raise NoteError("checkpoint origin is empty")
        if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
            raise NoteError(f"checkpoint tree size {size_s!r} is not a decimal number")
        root = _b64decode(root_s, "checkpoint root hash")
        if len(root) != 32:
            raise NoteError(f"checkpoint root hash is {len(root)} bytes, expected 32")
        return cls(origin, int(size_s), root, tuple(lines[3:]))


def sign_checkpoint(body: CheckpointBody, signer: Signer) -> str:
    return sign(body.text(), signer)


def open_checkpoint(note: str, verifiers: list[Verifier], origin: str | None = None) -> CheckpointBody:
    """Verify the signature and parse the checkpoint; ``origin`` (when given) must match."""
    body = CheckpointBody.parse(open_note(note, verifiers))
    if origin is not None and body.origin != origin:
        raise NoteError(f"checkpoint origin {body.origin!r} is not the expected {origin!r}")
    return body
