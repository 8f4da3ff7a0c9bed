"""Topic names of the quantum service, optionally under a namespace (tests, side-by-side deployments)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from streams.catalog import TopicSpec, spec_for


@dataclass(frozen=True)
class QuantumTopics:
    namespace: str = ""

    def name(self, base: str) -> str:
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def requests(self) -> str:
        return self.name("quantum.requests")

    @property
    def results(self) -> str:
        return self.name("quantum.results")

    def specs(self) -> list[TopicSpec]:
        out = []
        for base in ("quantum.requests", "quantum.results"):
            spec = spec_for(base)
            if self.namespace:
                name = self.name(base)
                spec = replace(spec, name=name, dead_letter=f"{name}.dlq" if spec.dead_letter else None)
            out.append(spec)
        return out
