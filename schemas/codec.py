"""Avro codec in the Confluent wire format: ``0x00`` + 4-byte big-endian schema id + schemaless Avro.

``encode`` validates first and raises :class:`SchemaValidationError` naming the field, so a bad
record never reaches Kafka. ``decode`` reads with the writer's schema (found by id, historical
versions included) resolved to the reader's (latest) schema of the same record name.

Timestamps (``timestamp-millis``) are encoded from an ``int`` (epoch milliseconds) or an aware
``datetime``; they decode to ``int`` epoch milliseconds unless ``Codec(..., datetimes=True)``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import fastavro

from schemas.errors import DecodeError, SchemaValidationError, UnknownSchemaError
from schemas.registry import LocalRegistry, parse
from schemas.validate import RecordValidator
from schemas.wire import frame, unframe

if TYPE_CHECKING:
    from infra.settings import Settings

_TIME_LOGICAL = frozenset(
    {
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
        "date",
        "time-millis",
        "time-micros",
    }
)


class SchemaSource(Protocol):
    """What a codec needs from a registry (``LocalRegistry`` or the Schema Registry adapter)."""

    def names(self) -> list[str]: ...

    def id_for(self, name: str) -> int: ...

    def raw_schema(self, name: str) -> Mapping[str, Any]: ...

    def raw_by_id(self, schema_id: int) -> tuple[str, Mapping[str, Any]]: ...


def strip_time_logical_types(node: Any) -> Any:
    """Pure: ``node`` without date/time ``logicalType`` annotations (values stay plain ints)."""
    if isinstance(node, list):
        return [strip_time_logical_types(b) for b in node]
    if isinstance(node, Mapping):
        return {
            k: (v if k == "default" else strip_time_logical_types(v))
            for k, v in node.items()
            if not (k == "logicalType" and v in _TIME_LOGICAL)
        }
    return node


class Codec:
    """Encode/decode named records against a schema source."""

    def __init__(self, registry: SchemaSource, *, datetimes: bool = False) -> None:
        self._registry = registry
        self._datetimes = datetimes
        self._writers: dict[str, tuple[int, RecordValidator, dict[str, Any]]] = {}
        self._readers: dict[int, tuple[str, dict[str, Any], dict[str, Any] | None]] = {}

    @property
    def registry(self) -> SchemaSource:
        return self._registry

    def schema_id(self, name: str) -> int:
        """The id ``encode(name, ...)`` writes in the header."""
        return self._writer(name)[0]

    def _writer(self, name: str) -> tuple[int, RecordValidator, dict[str, Any]]:
        cached = self._writers.get(name)
        if cached is None:
            raw = self._registry.raw_schema(name)
            cached = (self._registry.id_for(name), RecordValidator(raw, name), parse(raw))
            self._writers[name] = cached
        return cached

    def validate(self, name: str, record: Mapping[str, Any]) -> None:
        """Raise :class:`SchemaValidationError` (naming the field) unless ``record`` is a valid ``name``."""
        self._writer(name)[1](record)

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Validate ``record`` as a ``name`` and return its framed Avro bytes."""
        schema_id, validator, parsed = self._writer(name)
        validator(record)
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, parsed, record if isinstance(record, dict) else dict(record))
        except Exception as err:  # defensive: validation should have caught it
            raise SchemaValidationError(name, "", f"cannot encode: {err}") from err
        return frame(schema_id, out.getvalue())

    def _reader(self, schema_id: int) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        cached = self._readers.get(schema_id)
        if cached is None:
            try:
                name, writer_raw = self._registry.raw_by_id(schema_id)
            except UnknownSchemaError as err:
                raise DecodeError(f"unknown schema id {schema_id}") from err
            reader_raw: Mapping[str, Any] | None = None
            if name in self._registry.names() and self._registry.id_for(name) != schema_id:
                reader_raw = self._registry.raw_schema(name)
            if not self._datetimes:
                writer_raw = strip_time_logical_types(writer_raw)
                reader_raw = None if reader_raw is None else strip_time_logical_types(reader_raw)
            cached = (name, parse(writer_raw), None if reader_raw is None else parse(reader_raw))
            self._readers[schema_id] = cached
        return cached

    def decode(
        self, data: bytes | bytearray | memoryview, expect: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """(record name, record) of framed Avro ``data``; ``expect`` checks the record name."""
        schema_id, body = unframe(data)
        name, writer, reader = self._reader(schema_id)
        if expect is not None and name != expect:
            raise DecodeError(f"expected a {expect} record, schema id {schema_id} is a {name}")
        buf = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(buf, writer, reader)
        except Exception as err:  # fastavro raises EOFError, ValueError, StopIteration, ...
            raise DecodeError(
                f"{name} (schema id {schema_id}): cannot decode: {type(err).__name__}: {err}"
            ) from err
        if buf.tell() != len(body):
            raise DecodeError(
                f"{name} (schema id {schema_id}): {len(body) - buf.tell()} trailing bytes after the record"
            )
        if not isinstance(record, dict):
            raise DecodeError(
                f"{name} (schema id {schema_id}): decoded to {type(record).__name__}, not a record"
            )
        return name, record


def codec_from_settings(settings: Settings, *, datetimes: bool = False) -> Codec:
    """A codec on the Confluent Schema Registry when ``settings.schema_registry_url`` is set
    (local schemas are registered there and its ids used), else on the :class:`LocalRegistry`."""
    local = LocalRegistry.load()
    if settings.schema_registry_url:
        from schemas.sr_client import RemoteRegistry, SchemaRegistryClient

        client = SchemaRegistryClient(settings.schema_registry_url)
        return Codec(RemoteRegistry.connect(client, local), datetimes=datetimes)
    return Codec(local, datetimes=datetimes)
