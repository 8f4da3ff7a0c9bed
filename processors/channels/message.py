"""An offer read from an input channel topic: Confluent-Avro ``ChannelMessage`` or JSON (pure).

A producer writes to ``csp.channel.<system>.<channel>`` (key: the instance id) either

* a ``ChannelMessage`` in the Confluent wire format (byte 0, 4-byte schema id, Avro body), or
* a JSON object (the value's first byte is ``{``): ``{"values": ["1"]}`` or
  ``{"event": "left.1"}``, optionally with ``"instance_id"``.

``values`` win over ``event``; with neither, the offer is the bare channel event. The instance id
is the record key, or the value's ``instance_id`` when the key is empty; both given and different
is malformed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processors.csp.runtime.model import channel_of

MAX_INSTANCE_ID_BYTES = 200


class MalformedMessage(ValueError):
    """The record is an offer that cannot be made (the refusal says why)."""

    def __init__(self, message: str, instance_id: str = "") -> None:
        super().__init__(message)
        self.instance_id = instance_id


class NotAMessage(ValueError):
    """The bytes are not a channel message at all (dead-lettered)."""


@dataclass(frozen=True)
class Offer:
    instance_id: str
    event: str


def instance_id_error(iid: str) -> str | None:
    """Why ``iid`` is not a usable (Kafka-key-safe) instance id, or None."""
    if not iid:
        return "the instance id is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in iid):
        return f"the instance id {iid!r} contains control characters"
    if len(iid.encode()) > MAX_INSTANCE_ID_BYTES:
        return f"the instance id is {len(iid.encode())} bytes long (at most {MAX_INSTANCE_ID_BYTES})"
    return None


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAMessage(f"not a JSON channel message: {exc}") from None
    if not isinstance(value, dict):
        raise NotAMessage("a JSON channel message must be an object")
    return value


def offer_of(value: Mapping[str, Any], key: bytes | None, channel: str) -> Offer:
    """The offer a channel message makes to its instance."""
    key_id = key.decode("utf-8", "replace") if key else ""
    val_id = value.get("instance_id") or ""
    if not isinstance(val_id, str):
        raise MalformedMessage("instance_id must be a string", key_id)
    if key_id and val_id and key_id != val_id:
        raise MalformedMessage(f"record key {key_id!r} differs from instance_id {val_id!r}", key_id)
    iid = key_id or val_id
    err = instance_id_error(iid)
    if err is not None:
        raise MalformedMessage(f"{err}: key the record by the instance id", iid)
    values = value.get("values") or []
    if not isinstance(values, list):
        raise MalformedMessage("values must be a list", iid)
    if values:
        event = ".".join([channel, *(str(v) for v in values)])
    else:
        event = value.get("event") or channel
        if not isinstance(event, str):
            raise MalformedMessage("event must be a string", iid)
    if channel_of(event) != channel:
        raise MalformedMessage(f"event {event!r} is not on channel {channel!r} of this topic", iid)
    return Offer(iid, event)
