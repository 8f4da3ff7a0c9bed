"""Topic names of the runtime, optionally under a namespace (tests, side-by-side deployments).

The default namespace ("") is the catalog's names (``csp.commands`` ...). A
namespace ``ns`` prefixes every name (``ns.csp.commands``, ``ns.csp.channel.<system>.<channel>``).
Every instance-keyed topic has the same partition count, so an instance's
commands, events, snapshots and refusals have the same partition number.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from streams.catalog import INSTANCE_PARTITIONS, TopicSpec, channel_topic, spec_for, validate_topic_name

BASE_NAMES = ("csp.registry", "csp.commands", "csp.events", "csp.refusals", "csp.snapshots", "csp.completions")


@dataclass(frozen=True)
class RuntimeTopics:
    namespace: str = ""
    partitions: int = INSTANCE_PARTITIONS

    def name(self, base: str) -> str:
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def registry(self) -> str:
        return self.name("csp.registry")

    @property
    def commands(self) -> str:
        return self.name("csp.commands")

    @property
    def events(self) -> str:
        return self.name("csp.events")

    @property
    def refusals(self) -> str:
        return self.name("csp.refusals")

    @property
    def snapshots(self) -> str:
        return self.name("csp.snapshots")

    @property
    def completions(self) -> str:
        return self.name("csp.completions")

    @property
    def commands_dlq(self) -> str:
        return self.commands + ".dlq"

    def channel(self, system: str, channel: str) -> str:
        return self.name(channel_topic(system, channel).name)

    def specs(self) -> list[TopicSpec]:
        """The runtime's topics (the engine adds DLQs via ``ensure_topics``)."""
        out: list[TopicSpec] = []
        for base in BASE_NAMES:
            spec = spec_for(base)
            if spec.name != "csp.registry":
                spec = replace(spec, partitions=self.partitions)
            out.append(self._renamed(spec))
        return out

    def _renamed(self, spec: TopicSpec) -> TopicSpec:
        if not self.namespace:
            return spec
        name = validate_topic_name(self.name(spec.name))
        return replace(spec, name=name, dead_letter=None if spec.dead_letter is None else name + ".dlq")

    def channel_spec(self, system: str, channel: str) -> TopicSpec:
        spec = channel_topic(system, channel)
        return self._renamed(replace(spec, partitions=self.partitions))
