"""The tests' echo service: a ServiceAdapter plus a real engine processor that answers every request.

Requests and results are ``ChannelMessage`` records on ``test.echo.requests`` / ``test.echo.results``:
the request is the bound event (instance id, seq, values); the result echoes its values.
Bind it as ``tests.channels.echo_service:ADAPTER``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from processors.services.api import (
    BoundEvent,
    ServiceBinding,
    ServiceReply,
    reply_command_id,
    reply_event,
    request_id_for,
)
from streams.catalog import TopicSpec
from streams.engine import BatchContext, ProcessorBase
from streams.records import InRecord, OutRecord

REQUESTS = "test.echo.requests"
RESULTS = "test.echo.results"
SERVICE = "tests.channels.echo_service:ADAPTER"


class EchoAdapter:
    name = "echo"
    request_topic = REQUESTS
    result_topic = RESULTS
    request_schema = "ChannelMessage"
    result_schema = "ChannelMessage"

    def request(self, bound: BoundEvent) -> tuple[str, dict[str, Any]]:
        record = {
            "instance_id": bound.instance_id,
            "system": bound.binding.system,
            "channel": bound.binding.channel,
            "event": bound.event,
            "values": list(bound.values),
            "seq": bound.seq,
            "timestamp": 0,
        }
        return bound.request_id, record

    def reply(self, binding: ServiceBinding, result: Mapping[str, Any]) -> ServiceReply | None:
        if binding.reply_channel is None:
            return None
        request_id = request_id_for(result["instance_id"], int(result["seq"]))
        return ServiceReply(
            result["instance_id"],
            reply_event(binding.reply_channel, result["values"]),
            reply_command_id(request_id),
        )


ADAPTER = EchoAdapter()


class EchoProcessor(ProcessorBase):
    """The service itself: every request becomes one result (same key, same record)."""

    name = "test-echo-service"
    inputs = (REQUESTS,)

    def __init__(self) -> None:
        self.answered = 0

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        self.answered += len(batch)
        return [OutRecord(RESULTS, rec.key, "ChannelMessage", rec.value) for rec in batch]


def topic_specs() -> list[TopicSpec]:
    return [
        TopicSpec(name, 4, "request_id", "ChannelMessage", "delete", -1, "echo service (tests)", None, False)
        for name in (REQUESTS, RESULTS)
    ]
