"""Record type names and the topics that carry them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

NAMESPACE: Final = "io.enhancedcsp"

CSP_REGISTRY_RECORD: Final = "CspRegistryRecord"
CSP_COMMAND: Final = "CspCommand"
CSP_EVENT: Final = "CspEvent"
CSP_REFUSAL: Final = "CspRefusal"
CSP_SNAPSHOT: Final = "CspSnapshot"
CHANNEL_MESSAGE: Final = "ChannelMessage"
DEAD_LETTER: Final = "DeadLetter"
QUANTUM_REQUEST: Final = "QuantumRequest"
QUANTUM_RESULT: Final = "QuantumResult"
LEDGER_TRANSACTION: Final = "LedgerTransaction"
LEDGER_ANCHOR: Final = "LedgerAnchor"
LEDGER_RECEIPT: Final = "LedgerReceipt"
LEDGER_INTENT: Final = "LedgerIntent"
AGENT_REQUEST: Final = "AgentRequest"
AGENT_RESPONSE: Final = "AgentResponse"
AUDIT_ENTRY: Final = "AuditEntry"
AGENT_REGISTRY_RECORD: Final = "AgentRegistryRecord"
ACCESS_EVENT: Final = "AccessEvent"

# Record name -> its one topic. ChannelMessage (csp.channel.<system>.<channel>) and
# DeadLetter (<topic>.dlq) live on families of topics and are matched by record_for_topic.
RECORD_TOPICS: Final[Mapping[str, str]] = MappingProxyType(
    {
        CSP_REGISTRY_RECORD: "csp.registry",
        CSP_COMMAND: "csp.commands",
        CSP_EVENT: "csp.events",
        CSP_REFUSAL: "csp.refusals",
        CSP_SNAPSHOT: "csp.snapshots",
        QUANTUM_REQUEST: "quantum.requests",
        QUANTUM_RESULT: "quantum.results",
        LEDGER_TRANSACTION: "ledger.transactions",
        LEDGER_ANCHOR: "ledger.anchors",
        LEDGER_RECEIPT: "ledger.receipts",
        LEDGER_INTENT: "ledger.journal",
        AGENT_REQUEST: "agents.requests",
        AGENT_RESPONSE: "agents.responses",
        AUDIT_ENTRY: "audit.log",
        AGENT_REGISTRY_RECORD: "agents.registry",
        ACCESS_EVENT: "gateway.access",
    }
)

CHANNEL_TOPIC_PREFIX: Final = "csp.channel."
DLQ_SUFFIX: Final = ".dlq"


def record_for_topic(topic: str) -> str | None:
    """The record name carried by ``topic``, or ``None`` for a topic of no known record type."""
    if topic.endswith(DLQ_SUFFIX):
        return DEAD_LETTER
    if topic.startswith(CHANNEL_TOPIC_PREFIX):
        return CHANNEL_MESSAGE
    for name, fixed in RECORD_TOPICS.items():
        if fixed == topic:
            return name
    return None


def subject_for(name: str) -> str:
    """Schema Registry subject of a record: ``<topic>-value`` (TopicNameStrategy) for a record
    with one topic, ``<name>-value`` for the topic families (ChannelMessage, DeadLetter)."""
    topic = RECORD_TOPICS.get(name)
    return f"{topic}-value" if topic is not None else f"{name}-value"
