"""The agents ServiceAdapter: request records that encode, replies that offer the right event."""

from __future__ import annotations

import json

from processors.agents.binding import ADAPTER
from processors.services.api import BoundEvent, ServiceAdapter, ServiceBinding, resolve_service
from schemas.codec import Codec
from schemas.registry import LocalRegistry


def test_resolves_as_the_builtin_agents_service() -> None:
    assert resolve_service("agents") is ADAPTER and isinstance(ADAPTER, ServiceAdapter)


def test_choice_request_and_reply() -> None:
    b = ServiceBinding("shop", "ask", "agents", "answer", {"model": "m", "choices": "yes, no", "on_error": "timeout"})
    key, rec = ADAPTER.request(BoundEvent(b, "i-1", 7, "ask.3", ("3",)))
    assert key == "i-1:7" and rec["command_id"] == "svc:i-1:7"
    assert json.loads(rec["params"]["allowed"]) == ["answer.yes", "answer.no"] and rec["params"]["mode"] == "choice"
    Codec(LocalRegistry.load()).encode("AgentRequest", rec)
    ok = {"request_id": "i-1:7", "instance_id": "i-1", "status": "OK", "event": "answer.no", "content": "{}"}
    reply = ADAPTER.reply(b, ok)
    assert reply is not None and (reply.event, reply.command_id) == ("answer.no", "svc:i-1:7")
    failed = ADAPTER.reply(b, {"request_id": "i-1:7", "instance_id": "i-1", "status": "TIMEOUT"})
    assert failed is not None and failed.event == "answer.timeout"


def test_free_text_reply_is_one_value_or_nothing() -> None:
    b = ServiceBinding("shop", "ask", "agents", "answer")
    assert ADAPTER.reply(b, {"request_id": "r", "instance_id": "i", "status": "OK", "content": " 2 "}).event == "answer.2"  # type: ignore[union-attr]
    assert ADAPTER.reply(b, {"request_id": "r", "instance_id": "i", "status": "OK", "content": "two words"}) is None
    assert ADAPTER.reply(b, {"request_id": "r", "instance_id": "i", "status": "ERROR"}) is None
