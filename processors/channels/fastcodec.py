"""Hand-written Avro for the bridge's hot path: ChannelMessage in, CspCommand OFFER out.

Byte-identical to the validating codec (``tests/channels/test_fastcodec.py``); any record whose
schema id is not the current ``ChannelMessage`` id goes through the codec instead.
"""

from __future__ import annotations

import struct

from processors.csp.runtime.encoding import zlong, zstr
from streams.engine import Codec

_HEADER = struct.Struct(">bI")


def _rlong(b: bytes, pos: int) -> tuple[int, int]:
    c = b[pos]
    pos += 1
    n = c & 0x7F
    shift = 7
    while c & 0x80:
        c = b[pos]
        pos += 1
        n |= (c & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def _rstr(b: bytes, pos: int) -> tuple[str, int]:
    n, pos = _rlong(b, pos)
    if n < 0 or pos + n > len(b):
        raise ValueError("bad string length")
    return b[pos : pos + n].decode(), pos + n


class FastChannelCodec:
    def __init__(self, codec: Codec) -> None:
        schema_id = codec.schema_id  # type: ignore[attr-defined]
        self.chan_header = _HEADER.pack(0, schema_id("ChannelMessage"))
        self.cmd_header = _HEADER.pack(0, schema_id("CspCommand"))

    def channel_message(self, raw: bytes) -> tuple[str, str, str, str, list[str], int, int] | None:
        """(instance_id, system, channel, event, values, seq, timestamp), or None for another schema id."""
        if raw[:5] != self.chan_header:
            return None
        iid, pos = _rstr(raw, 5)
        system, pos = _rstr(raw, pos)
        channel, pos = _rstr(raw, pos)
        event, pos = _rstr(raw, pos)
        values: list[str] = []
        while True:
            count, pos = _rlong(raw, pos)
            if count == 0:
                break
            if count < 0:
                count = -count
                _size, pos = _rlong(raw, pos)
            for _ in range(count):
                v, pos = _rstr(raw, pos)
                values.append(v)
        seq, pos = _rlong(raw, pos)
        ts, pos = _rlong(raw, pos)
        if pos != len(raw):
            raise ValueError(f"{len(raw) - pos} bytes after the ChannelMessage")
        return iid, system, channel, event, values, seq, ts

    def offer(self, command_id: str, instance_id: str, event: str, issued_at: int) -> bytes:
        """A CspCommand OFFER with ``offer_id = command_id``."""
        cid = zstr(command_id)
        return b"".join(
            (
                self.cmd_header,
                cid,
                zstr(instance_id),
                b"\x02\x00\x00\x00\x02",
                zstr(event),
                b"\x02",
                cid,
                zlong(issued_at),
            )
        )
