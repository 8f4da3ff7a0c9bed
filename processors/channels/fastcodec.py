"""Hand-written Avro for the bridge's hot path: ChannelMessage in, CspCommand OFFER out.

Byte-identical to the validating codec (``tests/channels/test_fastcodec.py``); any record whose
schema id is not the current ``ChannelMessage`` id goes through the codec instead.
"""

from __future__ import annotations

import re
import struct

from processors.csp.runtime.encoding import zlong, zstr
from streams.engine import Codec

_HEADER = struct.Struct(">bI")
_UNSAFE = re.compile("[\x00-\x1f\x7f]")
MAX_ID_BYTES = 200


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
    c = b[pos]
    if c < 0x80 and not c & 1:  # short string: one length byte
        end = pos + 1 + (c >> 1)
        if end > len(b):
            raise ValueError("bad string length")
        return b[pos + 1 : end].decode(), end
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

    def input_offer(self, raw: bytes, key: bytes | None, channel: str) -> tuple[str, bytes, str] | None:
        """The hot path of an input channel: a well-formed ChannelMessage keyed by its instance id.

        Returns (instance id, key bytes, event), or None: anything unusual takes the general path
        (which gives the precise error)."""
        if raw[:5] != self.chan_header:
            return None
        try:
            iid, pos = _rstr(raw, 5)
            _s, pos = _rstr(raw, pos)
            _c, pos = _rstr(raw, pos)
            event, pos = _rstr(raw, pos)
            values: list[str] = []
            while True:
                count, pos = _rlong(raw, pos)
                if count == 0:
                    break
                if count < 0:
                    return None
                for _ in range(count):
                    v, pos = _rstr(raw, pos)
                    values.append(v)
            _seq, pos = _rlong(raw, pos)
            _ts, pos = _rlong(raw, pos)
        except (ValueError, IndexError, UnicodeDecodeError):
            return None
        if pos != len(raw) or not iid or len(iid) > MAX_ID_BYTES // 4 or _UNSAFE.search(iid):
            return None
        iid_b = iid.encode()
        if key and key != iid_b:
            return None
        if values:
            event = channel + "." + ".".join(values)
        elif not event:
            event = channel
        elif not (event.startswith(channel) and (len(event) == len(channel) or event[len(channel)] == ".")):
            return None
        return iid, iid_b, event

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
