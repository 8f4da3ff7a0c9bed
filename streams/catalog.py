"""The topic catalog: one declarative table of every platform topic.

Every topic the platform reads or writes is declared here, with its partition
count, key, value schema (Avro record name in ``schemas/avro``), cleanup policy,
retention and purpose. Input topics (consumed by a processor) get a dead-letter
topic ``<topic>.dlq`` carrying ``DeadLetter`` records.

Topics keyed by ``instance_id`` share one partition count so that they are
co-partitioned (see ``streams.clients.PARTITIONER``).

Per-channel topics ``csp.channel.<system>.<channel>`` are created at deploy time
from :func:`channel_topic`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

CleanupPolicy = Literal["delete", "compact"]

FOREVER = -1
DAY_MS = 24 * 60 * 60 * 1000

# Every topic keyed by instance_id has this many partitions (co-partitioning).
INSTANCE_PARTITIONS = 4
DLQ_SUFFIX = ".dlq"
DLQ_RETENTION_MS = 30 * DAY_MS
CHANNEL_PREFIX = "csp.channel."

_LEGAL = re.compile(r"^[A-Za-z0-9_-]+$")
_TOPIC_LEGAL = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class UnknownTopicError(KeyError):
    """A topic name that is not in the catalog (nor a channel topic)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown topic"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    value_schema: str
    cleanup_policy: CleanupPolicy
    retention_ms: int
    purpose: str
    dead_letter: str | None
    input: bool

    def kafka_config(self) -> dict[str, str]:
        """Topic-level configuration for CreateTopics."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


def _spec(
    name: str,
    partitions: int,
    key: str,
    value_schema: str,
    purpose: str,
    *,
    cleanup_policy: CleanupPolicy = "delete",
    retention_ms: int = FOREVER,
    input: bool = False,
) -> TopicSpec:
    return TopicSpec(
        name=name,
        partitions=partitions,
        key=key,
        value_schema=value_schema,
        cleanup_policy=cleanup_policy,
        retention_ms=retention_ms,
        purpose=purpose,
        dead_letter=name + DLQ_SUFFIX if input else None,
        input=input,
    )


def dead_letter_spec(spec: TopicSpec) -> TopicSpec:
    """The DLQ topic of an input topic."""
    if spec.dead_letter is None:
        raise ValueError(f"topic {spec.name!r} is not an input topic and has no dead-letter topic")
    return TopicSpec(
        name=spec.dead_letter,
        partitions=1,
        key="source_topic/partition/offset",
        value_schema="DeadLetter",
        cleanup_policy="delete",
        retention_ms=DLQ_RETENTION_MS,
        purpose=f"records from {spec.name} that a processor could not handle",
        dead_letter=None,
        input=False,
    )


_BASE: tuple[TopicSpec, ...] = (
    _spec("csp.registry", 1, "system", "CspRegistryRecord",
          "deployed CSP system versions (definition, LTS fingerprint)", input=True),
    _spec("csp.commands", INSTANCE_PARTITIONS, "instance_id", "CspCommand",
          "commands to CSP instances (start, offer event, stop)", retention_ms=7 * DAY_MS, input=True),
    _spec("csp.events", INSTANCE_PARTITIONS, "instance_id", "CspEvent",
          "the event log: every transition performed by an instance (source of truth)", input=True),
    _spec("csp.refusals", INSTANCE_PARTITIONS, "instance_id", "CspRefusal",
          "commands refused by an instance (event not offered by the process)", retention_ms=30 * DAY_MS),
    _spec("csp.completions", INSTANCE_PARTITIONS, "instance_id", "CspCompletion",
          "one record per command that asked for it (header csp-complete): the command is complete, "
          "and how many events, snapshots and refusals it wrote", retention_ms=7 * DAY_MS),
    _spec("csp.snapshots", INSTANCE_PARTITIONS, "instance_id", "CspSnapshot",
          "latest state of each instance, for fast recovery", cleanup_policy="compact"),
    _spec("quantum.requests", 2, "request_id", "QuantumRequest",
          "quantum circuits to execute", retention_ms=7 * DAY_MS, input=True),
    _spec("quantum.results", 2, "request_id", "QuantumResult",
          "outcomes of quantum requests", retention_ms=30 * DAY_MS),
    _spec("ledger.transactions", 1, "chain_id", "LedgerTransaction",
          "signed EVM transaction requests from agents (deploy, call, transfer)", input=True),
    _spec("ledger.receipts", 1, "tx_id", "LedgerReceipt",
          "outcomes of ledger requests: receipts, revert reasons, refusals"),
    _spec("ledger.journal", 1, "tx_id", "LedgerIntent",
          "the ledger processor's write-ahead journal of signed transactions (internal)"),
    _spec("ledger.anchors", 1, "chain_id", "LedgerAnchor",
          "Merkle roots sealing blocks of ledger transactions"),
    _spec("agents.requests", 2, "request_id", "AgentRequest",
          "calls to AI agents / language models", retention_ms=7 * DAY_MS, input=True),
    _spec("agents.responses", 2, "request_id", "AgentResponse",
          "answers from AI agents", retention_ms=30 * DAY_MS),
    _spec("agents.journal", 2, "request_id", "AgentResponse",
          "model call results recorded before use (replayed on recovery: no second call)"),
    _spec("agents.registry", 1, "name", "AgentRegistryRecord",
          "the agent registry: agents created and deleted (event-sourced)"),
    _spec("audit.log", 1, "source_topic", "AuditEntry",
          "hash-chained audit trail of consumed records (one partition: one chain)"),
    _spec("gateway.access", 1, "username", "AccessEvent",
          "the HTTP API's users and API keys, event-sourced (argon2 password hashes, hashed keys)"),
)


def _with_dead_letters(specs: tuple[TopicSpec, ...]) -> tuple[TopicSpec, ...]:
    out: list[TopicSpec] = []
    for spec in specs:
        out.append(spec)
        if spec.dead_letter is not None:
            out.append(dead_letter_spec(spec))
    return tuple(out)


CATALOG: tuple[TopicSpec, ...] = _with_dead_letters(_BASE)
_BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in CATALOG}


def validate_topic_name(name: str) -> str:
    """Kafka's legal topic names: 1..249 of ``[A-Za-z0-9._-]``, not ``.`` or ``..``."""
    if not _TOPIC_LEGAL.match(name) or name in (".", ".."):
        raise ValueError(
            f"illegal Kafka topic name {name!r}: use 1-249 characters from [A-Za-z0-9._-]"
        )
    return name


def channel_topic(system: str, channel: str) -> TopicSpec:
    """The per-channel topic ``csp.channel.<system>.<channel>`` (created at deploy)."""
    for label, part in (("system", system), ("channel", channel)):
        if not _LEGAL.match(part):
            raise ValueError(
                f"illegal {label} name {part!r} for a channel topic: use letters, digits, '_' or '-'"
            )
    name = validate_topic_name(f"{CHANNEL_PREFIX}{system}.{channel}")
    return _spec(
        name, INSTANCE_PARTITIONS, "instance_id", "ChannelMessage",
        f"values communicated on channel {channel} of system {system}", input=True,
    )


def _channel_parts(name: str) -> tuple[str, str] | None:
    if not name.startswith(CHANNEL_PREFIX):
        return None
    parts = name[len(CHANNEL_PREFIX):].split(".")
    if len(parts) != 2 or not all(_LEGAL.match(p) for p in parts):
        return None
    return parts[0], parts[1]


def spec_for(topic: str) -> TopicSpec:
    """The spec of a catalog topic, a channel topic, or a channel topic's DLQ."""
    found = _BY_NAME.get(topic)
    if found is not None:
        return found
    parts = _channel_parts(topic)
    if parts is not None:
        return channel_topic(*parts)
    if topic.endswith(DLQ_SUFFIX):
        parts = _channel_parts(topic[: -len(DLQ_SUFFIX)])
        if parts is not None:
            return dead_letter_spec(channel_topic(*parts))
    raise UnknownTopicError(
        f"unknown topic {topic!r}: not in the catalog ({len(CATALOG)} topics, see `csp topics`) "
        f"and not a channel topic {CHANNEL_PREFIX}<system>.<channel>"
    )


def with_dead_letters(specs: tuple[TopicSpec, ...] | list[TopicSpec]) -> list[TopicSpec]:
    """``specs`` plus the DLQ topic of each input topic, without duplicates, in order."""
    seen: dict[str, TopicSpec] = {}
    for spec in specs:
        seen.setdefault(spec.name, spec)
        if spec.dead_letter is not None:
            seen.setdefault(spec.dead_letter, dead_letter_spec(spec))
    return list(seen.values())


def renamed(spec: TopicSpec, name: str) -> TopicSpec:
    """A copy of ``spec`` under another name (tests, namespaced deployments)."""
    return replace(spec, name=validate_topic_name(name))
