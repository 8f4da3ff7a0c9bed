"""Fast Avro encoding of the runtime's hot-path records (Confluent wire format).

The runtime builds its own records, so it skips per-record validation. The
``CspEvent`` and ``ChannelMessage`` encoders are hand-written for the field
layout of the current schemas: everything that depends only on the
deployment and the label (system, version, event name, kind, channel,
payload) is encoded once per label and reused. If the schema's field list
differs from the layout known here, the encoder falls back to fastavro's
generic writer, so a schema change never produces wrong bytes. Tests check
that both paths decode to the same records.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping
from typing import Any

import fastavro

from processors.csp.runtime import records as R
from processors.csp.runtime.model import Deployment, Instance, Macro
from processors.csp.runtime.step import Command, Refusal, Step
from schemas.registry import parse

EVENT_FIELDS = (
    "instance_id", "system", "version", "seq", "event", "kind", "channel", "payload", "offer_id",
    "command_id", "state_before", "state_after", "choice", "timestamp", "command_partition", "command_offset",
)  # fmt: skip
SNAPSHOT_FIELDS = (
    "instance_id", "system", "version", "seq", "state", "status", "trace_length", "timestamp",
    "command_partition", "command_offset", "params",
)  # fmt: skip
CHANNEL_FIELDS = ("instance_id", "system", "channel", "event", "values", "seq", "timestamp")
_HEADER = struct.Struct(">bI")


def zlong(n: int) -> bytes:
    """Avro long/int: zig-zag varint."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_ZTABLE = tuple(zlong(i) for i in range(16384))


def zl(n: int) -> bytes:
    """:func:`zlong` with a table for small non-negative values."""
    return _ZTABLE[n] if 0 <= n < 16384 else zlong(n)


def zstr(s: str) -> bytes:
    b = s.encode()
    n = len(b)
    return (_ZTABLE[n] if n < 16384 else zlong(n)) + b


def zopt_str(s: str | None) -> bytes:
    return b"\x00" if s is None else b"\x02" + zstr(s)


def zopt_long(n: int | None) -> bytes:
    return b"\x00" if n is None else b"\x02" + zlong(n)


def zarray_str(items: tuple[str, ...] | list[str]) -> bytes:
    if not items:
        return b"\x00"
    return zlong(len(items)) + b"".join(zstr(s) for s in items) + b"\x00"


class FastEncoder:
    """Encodes runtime records; ``codec`` is a :class:`schemas.codec.Codec` (for ids and schemas)."""

    def __init__(self, codec: Any) -> None:
        self._codec = codec
        self._parsed: dict[str, tuple[bytes, dict[str, Any]]] = {}
        raw_event = codec.registry.raw_schema("CspEvent")
        raw_chan = codec.registry.raw_schema("ChannelMessage")
        self.fast_event = tuple(f["name"] for f in raw_event["fields"]) == EVENT_FIELDS
        self.fast_channel = tuple(f["name"] for f in raw_chan["fields"]) == CHANNEL_FIELDS
        raw_snap = codec.registry.raw_schema("CspSnapshot")
        self.fast_snapshot = tuple(f["name"] for f in raw_snap["fields"]) == SNAPSHOT_FIELDS
        status_field = next(f for f in raw_snap["fields"] if f["name"] == "status")
        self._status_index = {sym: zlong(i) for i, sym in enumerate(status_field["type"]["symbols"])}
        self._snap_header = self._header("CspSnapshot")
        kind_field = next(f for f in raw_event["fields"] if f["name"] == "kind")
        self._kind_index = {s: i for i, s in enumerate(kind_field["type"]["symbols"])}
        self._event_header = self._header("CspEvent")
        self._chan_header = self._header("ChannelMessage")
        self._labels: dict[tuple[str, int], list[bytes | None]] = {}
        self._chan_labels: dict[tuple[str, int], list[bytes | None]] = {}
        self._sysver: dict[tuple[str, int], bytes] = {}
        self._macros: dict[int, tuple[Macro, tuple[tuple[bytes, bytes, bytes | None, str | None], ...]]] = {}

    def _header(self, name: str) -> bytes:
        return _HEADER.pack(0, self._codec.schema_id(name))

    def generic(self, name: str, record: Mapping[str, Any]) -> bytes:
        """fastavro's writer on a pre-parsed schema, without validation."""
        got = self._parsed.get(name)
        if got is None:
            got = self._parsed[name] = (self._header(name), parse(self._codec.registry.raw_schema(name)))
        out = io.BytesIO()
        out.write(got[0])
        fastavro.schemaless_writer(out, got[1], dict(record))
        return out.getvalue()

    # -- CspEvent ---------------------------------------------------------------------

    def _label_bytes(self, dep: Deployment, label: int) -> bytes:
        key = dep.key
        table = self._labels.get(key)
        if table is None:
            table = self._labels[key] = [None] * len(dep.lts.events)
        got = table[label]
        if got is None:
            ch = dep.label_channel[label]
            got = table[label] = (
                zstr(dep.lts.events[label])
                + zlong(self._kind_index[dep.kinds[label]])
                + zopt_str(ch)
                + zarray_str(dep.payloads[label])
            )
        return got

    @property
    def event_header(self) -> bytes:
        return self._event_header

    def sysver(self, dep: Deployment) -> bytes:
        return self._sys(dep)

    def _sys(self, dep: Deployment) -> bytes:
        got = self._sysver.get(dep.key)
        if got is None:
            got = self._sysver[dep.key] = zstr(dep.system) + zlong(dep.version)
        return got

    def event(
        self, dep: Deployment, iid: str, step: Step, cmd: Command, partition: int | None, offset: int | None
    ) -> bytes:
        if not self.fast_event:
            return self.generic("CspEvent", R.event_record(dep, iid, step, cmd, partition, offset))
        ch = step.choice
        return b"".join(
            (
                self._event_header,
                zstr(iid),
                self._sys(dep),
                zl(step.seq),
                self._label_bytes(dep, step.label),
                zopt_str(step.offer_id),
                zstr(cmd.command_id),
                zl(step.state_before),
                zl(step.state_after),
                b"\x00" if ch is None else b"\x02" + zlong(ch[0]) + zlong(ch[1]) + zlong(ch[2]),
                zlong(cmd.issued_at),
                zopt_long(partition),
                zopt_long(offset),
            )
        )

    # -- deterministic offers (macros) ------------------------------------------------------

    def macro_parts(
        self, dep: Deployment, macro: Macro, channel_topic: Callable[[str, str], str]
    ) -> tuple[tuple[bytes, bytes, bytes | None, str | None], ...]:
        """Per step of ``macro``: (label bytes, state bytes, channel-message middle or None, channel
        topic or None); cached."""
        got = self._macros.get(id(macro))
        if got is None:
            parts = []
            for label, sb, sa in macro.steps:
                ch = dep.label_channel[label]
                kind = dep.kinds[label]
                chan_mid = None
                if ch is not None and kind == "OUTPUT":  # inputs arrive on their topic, they are not echoed
                    chan_mid = (
                        zstr(dep.system)
                        + zstr(ch)
                        + zstr(dep.lts.events[label])
                        + zarray_str(dep.payloads[label])
                    )
                topic = None if chan_mid is None or ch is None else channel_topic(dep.system, ch)
                parts.append((self._label_bytes(dep, label), zl(sb) + zl(sa) + b"\x00", chan_mid, topic))
            got = self._macros[id(macro)] = (macro, tuple(parts))
        return got[1]

    def event_prefix(self, dep: Deployment, iid_bytes: bytes) -> bytes:
        """Header, instance id, system and version of a CspEvent."""
        return self._event_header + iid_bytes + self._sys(dep)

    @property
    def channel_header(self) -> bytes:
        return self._chan_header

    # -- ChannelMessage -------------------------------------------------------------------

    def channel_message(self, dep: Deployment, iid: str, step: Step, ts: int) -> bytes:
        if not self.fast_channel:
            return self.generic("ChannelMessage", R.channel_message(dep, iid, step, ts))
        key = dep.key
        table = self._chan_labels.get(key)
        if table is None:
            table = self._chan_labels[key] = [None] * len(dep.lts.events)
        mid = table[step.label]
        if mid is None:
            mid = table[step.label] = (
                zstr(dep.system)
                + zstr(dep.label_channel[step.label] or "")
                + zstr(step.event)
                + zarray_str(dep.payloads[step.label])
            )
        return b"".join((self._chan_header, zstr(iid), mid, zlong(step.seq), zlong(ts)))

    # -- the rest (rare) ------------------------------------------------------------------

    def refusal(
        self, iid: str, inst: Instance | None, command_id: str, refusal: Refusal, ts: int, system: str | None
    ) -> bytes:
        return self.generic("CspRefusal", R.refusal_record(iid, inst, command_id, refusal, ts, system))

    def snapshot(self, inst: Instance, partition: int | None, offset: int | None) -> bytes:
        if not self.fast_snapshot:
            return self.generic("CspSnapshot", R.snapshot_record(inst, partition, offset))
        params = inst.params
        if params:
            pbytes = zlong(len(params)) + b"".join(zstr(k) + zstr(v) for k, v in params.items()) + b"\x00"
        else:
            pbytes = b"\x00"
        seq_b = zl(inst.seq)
        return b"".join(
            (
                self._snap_header,
                zstr(inst.instance_id),
                zstr(inst.system),
                zl(inst.version),
                seq_b,
                zl(inst.state),
                self._status_index[inst.status.value],
                seq_b,
                zlong(inst.updated_at),
                zopt_long(partition),
                zopt_long(offset),
                pbytes,
            )
        )


COMMAND_FIELDS = (
    ("command_id", "string"), ("instance_id", "string"), ("kind", "enum"), ("system", "ostring"),
    ("version", "oint"), ("params", "map"), ("event", "ostring"), ("offer_id", "ostring"), ("issued_at", "long"),
)  # fmt: skip


def _shape(t: Any) -> str:
    if isinstance(t, list):
        return "o" + _shape(t[1]) if len(t) == 2 and t[0] == "null" else "?"
    if isinstance(t, dict):
        if t.get("type") == "map" and t.get("values") == "string":
            return "map"
        if t.get("type") == "enum":
            return "enum"
        return str(t.get("type"))
    return str(t)


class CommandDecoder:
    """Hand-written decoder of the current ``CspCommand`` schema (other schema ids: the codec)."""

    def __init__(self, codec: Any) -> None:
        self._codec = codec
        raw = codec.registry.raw_schema("CspCommand")
        fields = raw["fields"]
        self.fast = tuple((f["name"], _shape(f["type"])) for f in fields) == COMMAND_FIELDS
        self._header = _HEADER.pack(0, codec.schema_id("CspCommand"))
        kind = next(f for f in fields if f["name"] == "kind")["type"]
        self._kinds = tuple(kind["symbols"])

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """(schema name, record); raises on bytes that are not a valid record."""
        got = self.decode_tuple(data)
        if got is not None:
            return "CspCommand", as_command_dict(got)
        name, rec = self._codec.decode(data)
        return name, rec

    def decode_tuple(self, data: bytes) -> CommandTuple | None:
        """The fields of a current-schema CspCommand in schema order; None: not one (use ``decode``)."""
        if self.fast and data[:5] == self._header:
            try:
                return self._decode(data)
            except (IndexError, UnicodeDecodeError, ValueError):
                return None  # ``decode`` lets the codec produce its precise error
        return None

    def _decode(self, b: bytes) -> CommandTuple:
        command_id, pos = _rstr(b, 5)
        instance_id, pos = _rstr(b, pos)
        ki, pos = _rlong(b, pos)
        if not 0 <= ki < len(self._kinds):
            raise ValueError("bad enum index")
        system, pos = _rostr(b, pos)
        u = b[pos]
        if u == 0:
            version = None
            pos += 1
        elif u == 2:
            version, pos = _rlong(b, pos + 1)
        else:
            raise ValueError("bad union index")
        params: dict[str, str] = {}
        if b[pos] == 0:
            pos += 1
        else:
            while True:
                count, pos = _rblock(b, pos)
                if count == 0:
                    break
                for _ in range(count):
                    k, pos = _rstr(b, pos)
                    params[k], pos = _rstr(b, pos)
        event, pos = _rostr(b, pos)
        offer_id, pos = _rostr(b, pos)
        issued_at, pos = _rlong(b, pos)
        if pos != len(b):
            raise ValueError("trailing bytes")
        return (command_id, instance_id, self._kinds[ki], system, version, params, event, offer_id, issued_at)


CommandTuple = tuple[
    str, str, str, "str | None", "int | None", dict[str, str], "str | None", "str | None", int
]


def as_command_dict(t: CommandTuple) -> dict[str, Any]:
    return dict(zip(("command_id", "instance_id", "kind", "system", "version", "params", "event", "offer_id",
                     "issued_at"), t, strict=True))  # fmt: skip


MAX_VARINT_BYTES = 10  # an Avro long is at most 64 bits: 10 groups of 7 bits


def _rlong(b: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint at ``pos``; raises ValueError past 10 bytes (linear: never builds a huge int)."""
    c = b[pos]
    pos += 1
    n = c & 0x7F
    shift = 7
    while c & 0x80:
        if shift >= 7 * MAX_VARINT_BYTES:
            raise ValueError(
                f"malformed varint at byte {pos - MAX_VARINT_BYTES}: more than {MAX_VARINT_BYTES} bytes"
            )
        c = b[pos]
        pos += 1
        n |= (c & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def _rblock(b: bytes, pos: int) -> tuple[int, int]:
    """Item count of an Avro array/map block (a negative count is followed by the block size)."""
    count, pos = _rlong(b, pos)
    if count < 0:
        count = -count
        _size, pos = _rlong(b, pos)
    return count, pos


def _rstr(b: bytes, pos: int) -> tuple[str, int]:
    c = b[pos]
    if c < 0x80 and not c & 1:
        n = c >> 1
        pos += 1
    else:
        n, pos = _rlong(b, pos)
        if n < 0:
            raise ValueError("negative string length")
    end = pos + n
    if end > len(b):
        raise ValueError("string past the end")
    return b[pos:end].decode(), end


def _rostr(b: bytes, pos: int) -> tuple[str | None, int]:
    u = b[pos]
    if u == 0:
        return None, pos + 1
    if u == 2:
        return _rstr(b, pos + 1)
    raise ValueError("bad union index")


class EventDecoder:
    """Hand-written decoder of the current ``CspEvent`` schema, for recovery reads (others: the codec)."""

    def __init__(self, codec: Any) -> None:
        self._codec = codec
        raw = codec.registry.raw_schema("CspEvent")
        self.fast = tuple(f["name"] for f in raw["fields"]) == EVENT_FIELDS
        self._header = _HEADER.pack(0, codec.schema_id("CspEvent"))
        kind = next(f for f in raw["fields"] if f["name"] == "kind")["type"]
        self._kinds = tuple(kind["symbols"])

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        if self.fast and data[:5] == self._header:
            try:
                return "CspEvent", self._decode(data)
            except (IndexError, UnicodeDecodeError, ValueError):
                pass
        name, rec = self._codec.decode(data)
        return name, rec

    def _decode(self, b: bytes) -> dict[str, Any]:
        iid, pos = _rstr(b, 5)
        system, pos = _rstr(b, pos)
        version, pos = _rlong(b, pos)
        seq, pos = _rlong(b, pos)
        event, pos = _rstr(b, pos)
        ki, pos = _rlong(b, pos)
        if not 0 <= ki < len(self._kinds):
            raise ValueError("bad enum index")
        channel, pos = _rostr(b, pos)
        payload: list[str] = []
        while True:
            count, pos = _rblock(b, pos)
            if count == 0:
                break
            for _ in range(count):
                item, pos = _rstr(b, pos)
                payload.append(item)
        offer_id, pos = _rostr(b, pos)
        command_id, pos = _rstr(b, pos)
        state_before, pos = _rlong(b, pos)
        state_after, pos = _rlong(b, pos)
        u = b[pos]
        choice: dict[str, int] | None = None
        if u == 0:
            pos += 1
        elif u == 2:
            seed, pos = _rlong(b, pos + 1)
            options, pos = _rlong(b, pos)
            chosen, pos = _rlong(b, pos)
            choice = {"seed": seed, "options": options, "chosen": chosen}
        else:
            raise ValueError("bad union index")
        timestamp, pos = _rlong(b, pos)
        cpart, pos = _rolong(b, pos)
        coff, pos = _rolong(b, pos)
        if pos != len(b):
            raise ValueError("trailing bytes")
        return {
            "instance_id": iid, "system": system, "version": version, "seq": seq, "event": event,
            "kind": self._kinds[ki], "channel": channel, "payload": payload, "offer_id": offer_id,
            "command_id": command_id, "state_before": state_before, "state_after": state_after,
            "choice": choice, "timestamp": timestamp, "command_partition": cpart, "command_offset": coff,
        }  # fmt: skip


def _rolong(b: bytes, pos: int) -> tuple[int | None, int]:
    u = b[pos]
    if u == 0:
        return None, pos + 1
    if u == 2:
        return _rlong(b, pos + 1)
    raise ValueError("bad union index")
