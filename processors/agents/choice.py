"""Protocol-constrained choice (pure): the events an agent may perform now, the JSON schema
it must answer with, and the check of its answer.

An agent bound to a CSP instance owns some of the system's events (event patterns: a
channel name ``vote`` or a prefix ``vote.2`` matching ``vote.2.<...>``). At a *stable*
state (no τ, ✓ or output transition pending) its choices are the instance's acceptable
input events that match its patterns. The model answers with structured output:

    {"event": <one of the enum>, "message": <free text>}

``event`` is an enum of exactly those events (the payload values are part of each event,
so every field is typed by the enum); ``message`` is free text recorded with the answer.
An answer that is not JSON, or names an event outside the set, is rejected; the caller
retries with the reason and finally refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from processors.csp.runtime.model import Deployment


def matches(event: str, patterns: Iterable[str]) -> bool:
    """``event`` is ``p`` or starts with ``p.`` for one of ``patterns``."""
    return any(event == p or event.startswith(p + ".") for p in patterns)


def is_stable(dep: Deployment, state: int) -> bool:
    """The process waits for its environment here: no automatic (τ/✓/output) transition."""
    return not dep.auto(state)


def allowed_events(dep: Deployment, state: int, patterns: Sequence[str]) -> list[str]:
    """The events an agent owning ``patterns`` may offer in ``state`` (sorted); [] if not stable."""
    if not is_stable(dep, state):
        return []
    return [e for e in dep.acceptable(state) if matches(e, patterns)]


def response_format(events: Sequence[str]) -> dict[str, Any]:
    """The OpenAI ``response_format`` (strict JSON schema) for a choice among ``events``."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "protocol_choice",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "event": {"type": "string", "enum": list(events)},
                    "message": {"type": "string"},
                },
                "required": ["event", "message"],
                "additionalProperties": False,
            },
        },
    }


def allowed_from_schema(fmt: dict[str, Any]) -> list[str]:
    """The enum of a :func:`response_format` (what a model server sees)."""
    return list(fmt["json_schema"]["schema"]["properties"]["event"]["enum"])


@dataclass(frozen=True)
class Choice:
    event: str
    message: str


@dataclass(frozen=True)
class Rejected:
    reason: str  # MALFORMED | NOT_ALLOWED
    detail: str


def parse_choice(content: str | None, allowed: Sequence[str]) -> Choice | Rejected:
    """Check a model's answer against the allowed events."""
    if content is None:
        return Rejected("MALFORMED", "the answer is empty")
    text = content.strip()
    if text.startswith("```"):  # tolerate a fenced block
        text = text.strip("`")
        text = text[4:] if text.startswith("json") else text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejected("MALFORMED", f"the answer is not JSON ({exc.msg} at char {exc.pos}): {content[:120]!r}")
    if not isinstance(value, dict) or not isinstance(value.get("event"), str):
        return Rejected("MALFORMED", f'the answer is not an object with a string "event": {content[:120]!r}')
    event = value["event"]
    if event not in allowed:
        return Rejected(
            "NOT_ALLOWED", f"{event!r} is not an event the protocol allows now (allowed: {', '.join(allowed)})"
        )
    message = value.get("message")
    return Choice(event, message if isinstance(message, str) else "")


def correction(rejected: Rejected, allowed: Sequence[str]) -> str:
    """The user message sent back to the model after a rejected answer."""
    return (
        f"Your answer was rejected: {rejected.detail}. Answer again with only a JSON object "
        f'{{"event": ..., "message": ...}} whose "event" is exactly one of: {", ".join(allowed)}.'
    )
