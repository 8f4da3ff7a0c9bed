"""The tests' OpenAI-compatible server: the local model plus bad answers on purpose.

A request is tagged by a ``[[tag]]`` marker anywhere in its messages. ``script[tag]`` is a
list of behaviours, consumed one per call (the last one repeats):

* ``ok`` — the local model's answer;
* ``event:<e>`` — a choice of event ``e`` (legal or not);
* ``malformed`` — content that is not JSON;
* ``slow:<s>`` / ``timeout:<s>`` — answer after ``s`` seconds;
* ``429`` / ``500`` — that HTTP status.

``calls_for(tag)`` counts the calls the server saw for a tag.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from processors.agents.localmodel import LocalModelServer, Reply, completion, default_reply

TAG = re.compile(r"\[\[([A-Za-z0-9_.:-]+)\]\]")


def tag_of(body: Mapping[str, Any]) -> str | None:
    for m in body.get("messages") or []:
        found = TAG.search(str(m.get("content", "")))
        if found:
            return found.group(1)
    return None


class FakeOpenAI(LocalModelServer):
    def __init__(self, script: dict[str, list[str]] | None = None) -> None:
        super().__init__()
        self.script: dict[str, list[str]] = script or {}
        self.seen: dict[str, int] = {}

    def calls_for(self, tag: str) -> int:
        with self.lock:
            return self.seen.get(tag, 0)

    def behaviour(self, body: Mapping[str, Any]) -> Reply:
        tag = tag_of(body)
        with self.lock:
            n = self.seen[tag or ""] = self.seen.get(tag or "", 0) + 1
        steps = self.script.get(tag or "", ["ok"])
        step = steps[min(n - 1, len(steps) - 1)]
        model = str(body.get("model") or "m")
        if step == "ok":
            return default_reply(body)
        if step.startswith("event:"):
            event = step.split(":", 1)[1]
            return Reply(200, completion(model, json.dumps({"event": event, "message": "bad on purpose"})))
        if step == "malformed":
            return Reply(200, completion(model, "I think I will accept {not json"))
        if step.startswith(("slow:", "timeout:")):
            return Reply(200, default_reply(body).body, delay_s=float(step.split(":", 1)[1]))
        if step == "429":
            return Reply(429, {"error": {"message": "rate limited", "type": "rate_limit"}}, {"retry-after": "0.05"})
        if step == "500":
            return Reply(500, {"error": {"message": "boom", "type": "server_error"}})
        raise ValueError(f"unknown behaviour {step!r}")
