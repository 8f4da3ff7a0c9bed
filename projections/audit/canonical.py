"""Canonical bytes of an audit entry: one unambiguous binary encoding per consumed record.

Layout (integers big-endian)::

    "CSPA"  version=0x01  entry_index:u64
    topic_len:u16  topic (UTF-8)
    partition:i32  offset:i64  timestamp_ms:i64
    key_present:u8  key_len:u32  key bytes
    value_present:u8  value_len:u32  value bytes

The leaf hash is ``SHA-256(0x00 || canonical)`` (RFC 6962). The entry index is inside the
bytes, so an entry moved to another position no longer matches its leaf.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"CSPA"
VERSION = 1
_HEAD = struct.Struct(">4sBQ")
_TOPIC_LEN = struct.Struct(">H")
_COORDS = struct.Struct(">iqq")
_BLOB = struct.Struct(">BI")
_NONE = _BLOB.pack(0, 0)


class CanonicalError(ValueError):
    """Bytes that are not a canonical audit entry."""


@dataclass(frozen=True)
class Canonical:
    entry_index: int
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


def topic_part(topic: str) -> bytes:
    raw = topic.encode()
    if len(raw) > 0xFFFF:
        raise CanonicalError(f"topic name of {len(raw)} bytes is too long")
    return _TOPIC_LEN.pack(len(raw)) + raw


def encode(entry_index: int, topic: str, partition: int, offset: int, timestamp_ms: int,
           key: bytes | None, value: bytes | None) -> bytes:
    return b"".join((
        _HEAD.pack(MAGIC, VERSION, entry_index), topic_part(topic),
        _COORDS.pack(partition, offset, timestamp_ms),
        _NONE if key is None else _BLOB.pack(1, len(key)), key or b"",
        _NONE if value is None else _BLOB.pack(1, len(value)), value or b"",
    ))


def decode(data: bytes) -> Canonical:
    """Parse canonical bytes; CanonicalError names what is wrong."""
    try:
        magic, version, index = _HEAD.unpack_from(data, 0)
        if magic != MAGIC or version != VERSION:
            raise CanonicalError(f"not a canonical audit entry (magic {magic!r}, version {version})")
        pos = _HEAD.size
        (tlen,) = _TOPIC_LEN.unpack_from(data, pos)
        pos += _TOPIC_LEN.size
        topic = data[pos:pos + tlen].decode()
        pos += tlen
        partition, offset, ts = _COORDS.unpack_from(data, pos)
        pos += _COORDS.size
        blobs: list[bytes | None] = []
        for _ in range(2):
            present, blen = _BLOB.unpack_from(data, pos)
            pos += _BLOB.size
            if present not in (0, 1) or (present == 0 and blen):
                raise CanonicalError("bad presence flag in canonical bytes")
            if pos + blen > len(data):
                raise CanonicalError("canonical bytes are truncated")
            blobs.append(bytes(data[pos:pos + blen]) if present else None)
            pos += blen
    except (struct.error, UnicodeDecodeError) as exc:
        raise CanonicalError(f"malformed canonical bytes: {exc}") from None
    if pos != len(data):
        raise CanonicalError(f"{len(data) - pos} trailing bytes after the canonical entry")
    return Canonical(index, topic, partition, offset, ts, blobs[0], blobs[1])
