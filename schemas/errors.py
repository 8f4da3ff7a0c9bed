"""The exceptions raised by the schema layer (all are ``ValueError`` subclasses)."""

from __future__ import annotations


class SchemaError(ValueError):
    """Base of every schema-layer error."""


class SchemaValidationError(SchemaError):
    """A record does not match its schema; nothing was encoded or sent.

    ``str(err)`` names the record type and the field path, e.g.
    ``CspEvent: field 'seq': expected long, got str 'x'``.
    """

    def __init__(self, record: str, field: str, detail: str) -> None:
        self.record = record
        self.field = field
        self.detail = detail
        where = f"field '{field}'" if field else "record"
        super().__init__(f"{record}: {where}: {detail}")


class UnknownSchemaError(SchemaError):
    """An unknown schema name or schema id."""


class DecodeError(SchemaError):
    """Bytes are not a valid Confluent-framed Avro record (bad magic, truncated, unknown id, garbage)."""


class SchemaRegistryError(SchemaError):
    """The Confluent Schema Registry refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None) -> None:
        self.status = status
        self.error_code = error_code
        super().__init__(message)


class IncompatibleSchemaError(SchemaError):
    """A schema change is not BACKWARD compatible with the previous version."""
