"""Topic names of the agents service, optionally under a namespace (tests)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from streams.catalog import TopicSpec, spec_for, validate_topic_name

BASE_NAMES = ("agents.requests", "agents.responses", "agents.journal", "agents.registry")


@dataclass(frozen=True)
class AgentTopics:
    namespace: str = ""

    def name(self, base: str) -> str:
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def requests(self) -> str:
        return self.name("agents.requests")

    @property
    def responses(self) -> str:
        return self.name("agents.responses")

    @property
    def journal(self) -> str:
        return self.name("agents.journal")

    @property
    def registry(self) -> str:
        return self.name("agents.registry")

    @property
    def request_partitions(self) -> int:
        """Partitions of ``agents.requests`` (and of ``agents.journal``, partition for partition)."""
        return spec_for("agents.requests").partitions

    def specs(self) -> list[TopicSpec]:
        out: list[TopicSpec] = []
        for base in BASE_NAMES:
            spec = spec_for(base)
            if self.namespace:
                name = validate_topic_name(self.name(spec.name))
                spec = replace(spec, name=name, dead_letter=None if spec.dead_letter is None else name + ".dlq")
            out.append(spec)
        return out
