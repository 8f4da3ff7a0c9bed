"""The agent registry, event-sourced on ``agents.registry`` (key: agent name).

Each change is one ``AgentRegistryRecord`` (CREATE, which also replaces, or DELETE); the
registry is the fold of the topic, the latest record of each name winning. Reads use the
fence-based reader, so a record written before a read is always seen.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from processors.agents.topics import AgentTopics
from streams.clients import producer_config
from streams.engine import Codec
from streams.reader import read_records

SCHEMA = "AgentRegistryRecord"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class RegistryError(ValueError):
    """A bad agent definition, an unknown agent, or a failed write."""


@dataclass(frozen=True)
class AgentSpec:
    name: str
    model: str
    role: str = ""
    prompt: str | None = None  # template; None: the default template
    temperature: float | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    timestamp: int = 0

    def record(self, action: str = "CREATE") -> dict[str, Any]:
        return {
            "name": self.name,
            "action": action,
            "model": self.model,
            "role": self.role,
            "prompt": self.prompt,
            "temperature": self.temperature,
            "params": dict(self.params),
            "timestamp": self.timestamp or int(time.time() * 1000),
        }


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise RegistryError(
            f"illegal agent name {name!r}: a letter, then up to 63 letters, digits, '_' or '-'"
        )
    return name


def fold(records: Iterable[Mapping[str, Any]]) -> dict[str, AgentSpec]:
    """Agents after applying ``records`` in order (pure)."""
    agents: dict[str, AgentSpec] = {}
    for rec in records:
        name = rec["name"]
        if rec["action"] == "DELETE":
            agents.pop(name, None)
        else:
            agents[name] = AgentSpec(
                name,
                rec.get("model") or "",
                rec.get("role") or "",
                rec.get("prompt"),
                rec.get("temperature"),
                dict(rec.get("params") or {}),
                int(rec.get("timestamp") or 0),
            )
    return agents


class AgentRegistry:
    """Reads and writes the registry topic."""

    def __init__(self, bootstrap: str, codec: Codec, topics: AgentTopics | None = None) -> None:
        self.bootstrap = bootstrap
        self.codec = codec
        self.topics = topics or AgentTopics()
        self._records: list[Mapping[str, Any]] = []
        self._next = 0
        self.agents: dict[str, AgentSpec] = {}

    def refresh(self, timeout_s: float = 30.0) -> dict[str, AgentSpec]:
        new: list[Mapping[str, Any]] = []
        for off, rec in read_records(
            self.bootstrap, self.topics.registry, 0, self.codec.decode, SCHEMA, self._next, timeout_s=timeout_s
        ):
            self._next = off + 1
            new.append(rec)
        if new:
            self._records.extend(new)
            self.agents = fold(self._records)
        return self.agents

    def apply(self, offset: int, record: Mapping[str, Any]) -> bool:
        """Apply a record consumed from the registry topic at ``offset`` (skipped if already read)."""
        if offset < self._next:
            return False
        self._next = offset + 1
        self._records.append(record)
        self.agents = fold(self._records)
        return True

    def get(self, name: str) -> AgentSpec | None:
        return self.agents.get(name)

    def list(self) -> list[AgentSpec]:  # noqa: A003
        self.refresh()
        return [self.agents[n] for n in sorted(self.agents)]

    def create(self, spec: AgentSpec, *, replace: bool = False) -> AgentSpec:
        validate_name(spec.name)
        if not spec.model:
            raise RegistryError(f"agent {spec.name}: a model is required")
        self.refresh()
        if spec.name in self.agents and not replace:
            raise RegistryError(f"agent {spec.name} already exists (delete it first, or replace it)")
        self._write(spec.record("CREATE"))
        self.refresh()
        return self.agents[spec.name]

    def delete(self, name: str) -> None:
        self.refresh()
        if name not in self.agents:
            raise RegistryError(f"no agent {name!r}")
        self._write({"name": name, "action": "DELETE", "timestamp": int(time.time() * 1000)})
        self.refresh()

    def _write(self, record: Mapping[str, Any]) -> None:
        got: dict[str, Any] = {}

        def done(err: KafkaError | None, _msg: Message) -> None:
            got["err"] = err

        producer = Producer(producer_config(self.bootstrap))
        producer.produce(
            self.topics.registry,
            key=str(record["name"]).encode(),
            value=self.codec.encode(SCHEMA, record),
            partition=0,
            on_delivery=done,
        )
        producer.flush(30)
        if "err" not in got or got["err"] is not None:
            raise RegistryError(f"could not write to {self.topics.registry}: {got.get('err', 'timed out')}")
