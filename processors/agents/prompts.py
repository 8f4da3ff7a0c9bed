"""Prompt templates of agents (pure).

A template is a :class:`string.Template` with the placeholders ``$name``, ``$role``,
``$task``, ``$system``, ``$instance``, ``$events`` (the allowed events, one per line) and
``$trace`` (the trace so far, one event per line with its payload and the message the
agent that chose it wrote). An agent's registry entry may carry its own template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from string import Template

DEFAULT_TEMPLATE = (
    "You are $name, $role.\n"
    "You take part in the CSP protocol $system (instance $instance). "
    "You may only perform one of the events the protocol allows you now.\n"
    "Task: $task\n"
)

USER_TEMPLATE = (
    "Trace so far (oldest first):\n$trace\n\n"
    "Events you may perform now:\n$events\n\n"
    'Answer with a JSON object {"event": <one of the events above>, "message": <what you say>}.'
)


@dataclass(frozen=True)
class TraceItem:
    seq: int
    event: str
    payload: tuple[str, ...] = ()
    agent: str | None = None
    message: str | None = None

    def line(self) -> str:
        text = f"{self.seq}. {self.event}"
        if self.payload:
            text += f"  (payload {', '.join(self.payload)})"
        if self.agent:
            text += f"  — {self.agent}"
            if self.message:
                text += f": {self.message}"
        return text


def render(
    template: str | None,
    *,
    name: str,
    role: str,
    task: str,
    system: str,
    instance: str,
    events: Sequence[str],
    trace: Sequence[TraceItem],
) -> list[dict[str, str]]:
    """The chat messages (system + user) of one choice."""
    values = {
        "name": name,
        "role": role or "an agent",
        "task": task or "(none given)",
        "system": system,
        "instance": instance,
        "events": "\n".join(f"- {e}" for e in events),
        "trace": "\n".join(t.line() for t in trace) or "(nothing yet)",
    }
    return [
        {"role": "system", "content": Template(template or DEFAULT_TEMPLATE).safe_substitute(values)},
        {"role": "user", "content": Template(USER_TEMPLATE).safe_substitute(values)},
    ]
