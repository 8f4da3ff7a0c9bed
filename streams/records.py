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


class InRecord:
    """A consumed record with lazily decoded value."""

    __slots__ = ("topic", "partition", "offset", "key", "raw", "timestamp", "headers", "_decode", "_decoded")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        raw: bytes | None,
        timestamp: int,
        headers: tuple[tuple[str, bytes], ...],
        decode: Callable[[bytes], tuple[str, dict[str, Any]]],
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.raw = raw
        self.timestamp = timestamp
        self.headers = headers
        self._decode = decode
        self._decoded: tuple[str, dict[str, Any]] | None = None

    @property
    def position(self) -> SourcePosition:
        return SourcePosition(self.topic, self.partition, self.offset)

    def decoded(self) -> tuple[str, dict[str, Any]]:
        """(schema name, record); raises the codec's DecodeError for bad bytes."""
        if self._decoded is None:
            if self.raw is None:
                raise ValueError(f"{self.position}: record has no value (tombstone)")
            self._decoded = self._decode(self.raw)
        return self._decoded

    @property
    def value(self) -> dict[str, Any]:
        return self.decoded()[1]

    @property
    def schema(self) -> str:
        return self.decoded()[0]

    @property
    def key_str(self) -> str | None:
        return None if self.key is None else self.key.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"InRecord({self.position}, key={self.key!r})"


@dataclass(frozen=True)
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
        return OutRecord(topic=topic, key=record.key, raw=record.raw, headers=record.headers)


def key_bytes(key: str | bytes | None) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    return key.encode("utf-8")
