"""The agents service as a service binding (:mod:`processors.services.api`).

A channel bound to ``agents`` turns each event ``ask.<values>`` of an instance into an
``AgentRequest`` (``request_id = <instance>:<seq>``) and the answer into an offer on the
reply channel. Options of the binding:

* ``model`` (default ``local``), ``agent`` (a name for the records), ``role``;
* ``prompt`` — a :class:`string.Template` with ``$event``, ``$values``, ``$instance``;
* ``choices`` — comma-separated reply values: the request is a protocol-constrained choice
  among ``<reply_channel>.<choice>`` (the agent processor enforces the enum); without it,
  the answer's text is offered as the single reply value (the runtime refuses a value the
  channel does not carry);
* ``on_error`` — a reply value offered when the model fails (e.g. ``timeout``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from string import Template
from typing import Any

from processors.services.api import BoundEvent, ServiceBinding, ServiceReply, reply_command_id, reply_event

DEFAULT_PROMPT = "The process performed $event (values: $values). Answer with one value."


class AgentsAdapter:
    name = "agents"
    request_topic = "agents.requests"
    result_topic = "agents.responses"
    request_schema = "AgentRequest"
    result_schema = "AgentResponse"

    def request(self, bound: BoundEvent) -> tuple[str, dict[str, Any]]:
        opts = bound.binding.options
        values = {"event": bound.event, "values": " ".join(bound.values), "instance": bound.instance_id}
        messages = [{"role": "user", "content": Template(opts.get("prompt", DEFAULT_PROMPT)).safe_substitute(values)}]
        if opts.get("role"):
            messages.insert(0, {"role": "system", "content": f"You are {opts['role']}."})
        params: dict[str, str] = {"binding": f"{bound.binding.system}.{bound.binding.channel}"}
        choices = [c.strip() for c in opts.get("choices", "").split(",") if c.strip()]
        if choices and bound.binding.reply_channel:
            params["mode"] = "choice"
            params["allowed"] = json.dumps([reply_event(bound.binding.reply_channel, [c]) for c in choices])
        rid = bound.request_id
        return rid, {
            "request_id": rid,
            "instance_id": bound.instance_id,
            "command_id": reply_command_id(rid),
            "agent": opts.get("agent"),
            "model": opts.get("model", "local"),
            "messages": messages,
            "temperature": None,
            "max_tokens": None,
            "seed": None,
            "params": params,
            "requested_at": 0,
        }

    def reply(self, binding: ServiceBinding, result: Mapping[str, Any]) -> ServiceReply | None:
        if binding.reply_channel is None or not result.get("instance_id"):
            return None
        rid = str(result["request_id"])
        if result.get("status") == "OK":
            event = result.get("event")
            if event is None:
                content = (result.get("content") or "").strip()
                if not content or any(c.isspace() for c in content):
                    return None  # not a single value: nothing the channel could carry
                event = reply_event(binding.reply_channel, [content])
        elif binding.options.get("on_error"):
            event = reply_event(binding.reply_channel, [binding.options["on_error"]])
        else:
            return None
        return ServiceReply(str(result["instance_id"]), str(event), reply_command_id(rid))


ADAPTER = AgentsAdapter()
