"""Avro schemas of every record type, the Confluent-framed codec and the schema registries.

Typical use::

    from schemas import codec_from_settings
    codec = codec_from_settings(settings)          # Schema Registry if CSP_SCHEMA_REGISTRY_URL is set
    value = codec.encode("CspEvent", event)        # SchemaValidationError names the bad field
    name, record = codec.decode(value)             # old versions resolve to the latest schema
"""

from schemas.codec import Codec, SchemaSource, codec_from_settings
from schemas.errors import (
    DecodeError,
    IncompatibleSchemaError,
    SchemaError,
    SchemaRegistryError,
    SchemaValidationError,
    UnknownSchemaError,
)
from schemas.registry import LocalRegistry

__all__ = [
    "Codec",
    "DecodeError",
    "IncompatibleSchemaError",
    "LocalRegistry",
    "SchemaError",
    "SchemaRegistryError",
    "SchemaSource",
    "SchemaValidationError",
    "UnknownSchemaError",
    "codec_from_settings",
]
