"""faust-streaming integration: platform topics and Avro codecs for Faust agents.

Users write Faust agents over the platform's topics::

    from streams.faust_app import make_app, platform_topic

    app = make_app("my-dashboard", bootstrap="127.0.0.1:9092")
    events = platform_topic(app, "csp.events")

    @app.agent(events)
    async def count(stream):
        async for event in stream:      # a dict decoded with the CspEvent schema
            ...

Values are decoded from the Confluent wire format with the platform codec
(codec name ``csp-avro``), so Faust sees exactly what the engine wrote. Keys
are instance ids or system names as UTF-8 (``raw`` bytes -> ``str``).

The platform's topics are created by ``csp up`` / the platform itself, so
Faust must not create or reconfigure them (``internal=False``, partitions
taken from the catalog).

Caveats measured against the embedded Tansu broker (see docs/faust.md):
records of aborted transactions are visible, so agents must deduplicate
(``csp.events`` by ``(instance_id, seq)``); and Faust table changelog recovery
relies on end offsets, which Tansu reports wrongly for multi-record batches,
so tables should be rebuilt from the source topics rather than recovered from
changelogs on that broker.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.serializers import codecs

from schemas.codec import Codec as PlatformCodec
from schemas.codec import codec_from_settings
from streams.catalog import CATALOG, spec_for

CODEC_NAME = "csp-avro"


class AvroWireCodec(codecs.Codec):
    """Faust codec over the platform's Confluent-wire-format Avro codec.

    ``loads`` returns the decoded record (a dict); ``dumps`` takes a dict with a
    ``__schema__`` entry naming the record type, or uses ``schema`` given at
    construction.
    """

    def __init__(self, codec: PlatformCodec, schema: str | None = None, **kwargs: Any) -> None:
        self._platform = codec
        self._schema = schema
        super().__init__(**kwargs)

    def _loads(self, s: bytes) -> Any:
        _name, record = self._platform.decode(s)
        return record

    def _dumps(self, s: Any) -> bytes:
        record = dict(s)
        name = record.pop("__schema__", None) or self._schema
        if name is None:
            raise ValueError("csp-avro: a record to encode needs a '__schema__' entry naming its Avro record type")
        return self._platform.encode(str(name), record)


def make_app(app_id: str, bootstrap: str, *, codec: PlatformCodec | None = None, **conf: Any) -> faust.App:
    """A Faust app bound to the platform's broker with the platform codec registered."""
    platform_codec = codec or codec_from_settings(_settings())
    codecs.register(CODEC_NAME, AvroWireCodec(platform_codec))
    for name in {spec.value_schema for spec in CATALOG} | set(platform_codec.registry.names()):
        codecs.register(f"{CODEC_NAME}:{name}", AvroWireCodec(platform_codec, name))
    defaults: dict[str, Any] = {
        "broker": f"kafka://{bootstrap}",
        "web_enabled": False,
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": 6.0,
        "store": "memory://",
    }
    defaults.update(conf)
    return faust.App(app_id, **defaults)


def platform_topic(app: faust.App, name: str) -> faust.TopicT:
    """A Faust topic for a catalog topic (or channel topic), decoded with the platform codec."""
    spec = spec_for(name)
    return app.topic(
        name,
        key_type=str,
        key_serializer="raw",
        value_serializer=f"{CODEC_NAME}:{spec.value_schema}",
        partitions=spec.partitions,
        internal=False,
    )


def _settings() -> Any:
    from infra.settings import Settings

    return Settings()
