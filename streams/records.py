"""Records as the processing engine sees them.

An :class:`InRecord` is one consumed Kafka record. Its value is decoded
lazily: a processor that only forwards records never pays for Avro decoding,
and a processor that reads ``value`` gets the decoded record (or a
:class:`~schemas.codec.DecodeError`, which the engine turns into a
dead-letter record).

An :class:`OutRecord` is a record to produce. Either ``value`` (a mapping
encoded with the Avro schema ``schema``) or ``raw`` (already encoded bytes,
e.g. a forwarded input) is set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourcePosition:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class StoredMessage:
    """A record's fields in the shape of confluent-kafka's ``Message`` (for records
    built by hand: tests, replays, readers)."""

    __slots__ = ("_topic", "_partition", "_offset", "_key", "_value", "_timestamp", "_headers")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._timestamp, self._headers = key, value, timestamp, headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


class InRecord:
    """A consumed record. Wraps the client's message without copying; the value
    is decoded lazily, once."""

    __slots__ = ("_msg", "_decode", "_decoded")

    def __init__(self, msg: Any, decode: Callable[[bytes], tuple[str, dict[str, Any]]]) -> None:
        self._msg = msg
        self._decode = decode
        self._decoded: tuple[str, dict[str, Any]] | None = None

    @classmethod
    def of(
        cls,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        raw: bytes | None,
        decode: Callable[[bytes], tuple[str, dict[str, Any]]],
        timestamp: int = 0,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> InRecord:
        return cls(StoredMessage(topic, partition, offset, key, raw, timestamp, list(headers) or None), decode)

    @property
    def topic(self) -> str:
        return str(self._msg.topic())

    @property
    def partition(self) -> int:
        return int(self._msg.partition())

    @property
    def offset(self) -> int:
        return int(self._msg.offset())

    @property
    def key(self) -> bytes | None:
        key: bytes | None = self._msg.key()
        return key

    @property
    def raw(self) -> bytes | None:
        raw: bytes | None = self._msg.value()
        return raw

    @property
    def timestamp(self) -> int:
        return int(self._msg.timestamp()[1])

    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]:
        raw_headers = self._msg.headers() or ()
        return tuple((str(k), v if isinstance(v, bytes) else (v or "").encode()) for k, v in raw_headers)

    def header(self, name: str) -> bytes | None:
        for k, v in self._msg.headers() or ():
            if k == name:
                return v if isinstance(v, bytes) else (v or "").encode()
        return None

    @property
    def position(self) -> SourcePosition:
        return SourcePosition(self.topic, self.partition, self.offset)

    def decoded(self) -> tuple[str, dict[str, Any]]:
        """(schema name, record); raises the codec's DecodeError for bad bytes."""
        if self._decoded is None:
            raw = self._msg.value()
            if raw is None:
                raise ValueError(f"{self.position}: record has no value (tombstone)")
            self._decoded = self._decode(raw)
        return self._decoded

    @property
    def value(self) -> dict[str, Any]:
        return self.decoded()[1]

    @property
    def schema(self) -> str:
        return self.decoded()[0]

    @property
    def key_str(self) -> str | None:
        key = self._msg.key()
        return None if key is None else key.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"InRecord({self.position}, key={self.key!r})"


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    schema: str | None = None
    value: Mapping[str, Any] | None = None
    raw: bytes | None = None
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = field(default=())

    @staticmethod
    def forward(record: InRecord, topic: str) -> OutRecord:
        """Forward an input record's bytes unchanged to ``topic``."""
        msg = record._msg
        return OutRecord(topic, msg.key(), None, None, msg.value())

