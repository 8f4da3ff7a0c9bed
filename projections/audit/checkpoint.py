"""Checkpointing and recovery: the I/O edge around :class:`~projections.audit.log.AuditLog`.

* :func:`restore_log`: a log resumed from ClickHouse — the newest checkpoint's frontier, then
  the entries after it (recomputed from their canonical bytes), then the last offset per
  topic-partition.
* :class:`Checkpointer`: signs a checkpoint when one is due, but only for entries the
  ``audit_log`` table already holds; writes it to ``audit_checkpoints`` and announces it on
  the ``audit.log`` topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from infra.settings import Settings
from projections.audit import canonical, store
from projections.audit.log import AUDIT_TOPIC, AuditLog, Checkpoint, CheckpointPolicy
from projections.audit.merkle import Frontier, leaf_hash
from projections.audit.note import Signer
from projections.audit.topic import KafkaPublisher

__all__ = ["AuditIntegrityError", "Checkpointer", "KafkaPublisher", "Publisher", "open_log", "restore_log"]

log = structlog.get_logger(__name__)


class AuditIntegrityError(RuntimeError):
    """The stored audit log cannot be extended: it does not match its own hashes."""


class Publisher(Protocol):
    def publish(self, cp: Checkpoint, prev_root: bytes | None) -> None: ...


@dataclass
class Checkpointer:
    client: Any
    signer: Signer
    origin: str
    publisher: Publisher | None = None

    def maybe_checkpoint(self, audit: AuditLog) -> Checkpoint | None:
        return self.checkpoint(audit) if audit.checkpoint_due() else None

    def checkpoint(self, audit: AuditLog) -> Checkpoint | None:
        """Sign the log's current head if the table holds all its entries; None otherwise."""
        if audit.size == 0 or audit.size == audit.last_checkpoint[0]:
            return None
        stored = store.count_below(self.client, audit.size)
        if stored != audit.size:
            log.info("audit_checkpoint_deferred", size=audit.size, stored=stored)
            return None
        prev_root = audit.last_checkpoint[1]
        cp = audit.checkpoint(self.signer, self.origin)
        store.insert_checkpoint(self.client, cp)
        audit.mark_checkpointed(cp)
        if self.publisher is not None:
            try:
                self.publisher.publish(cp, prev_root)
            except Exception as exc:  # ClickHouse holds it; the topic copy is a notification
                log.warning("audit_checkpoint_not_published", size=cp.size, error=str(exc))
        return cp


def restore_log(client: Any, *, policy: CheckpointPolicy | None = None,
                checkpointer: Checkpointer | None = None, audit_topic: str = AUDIT_TOPIC) -> AuditLog:
    """The log as ClickHouse holds it; AuditIntegrityError if the rows after the newest usable
    checkpoint do not hash to what they claim or skip/duplicate an index."""
    store.ensure_schema(client)
    count, top = store.table_stats(client)
    start, frontier, last = 0, Frontier(), None
    for cp in store.checkpoints(client, latest_first=True):
        try:
            candidate = Frontier(cp.tree_size, cp.frontier)
        except ValueError:
            continue
        if cp.tree_size <= top and candidate.root() == cp.root_hash:
            start, frontier, last = cp.tree_size, candidate, (cp.tree_size, cp.root_hash)
            break
    expected = start
    for entry in store.iter_entries(client, start, top):
        if entry.entry_index != expected:
            raise AuditIntegrityError(
                f"audit_log: expected entry {expected}, found {entry.entry_index}; run `csp audit verify`"
            )
        leaf = leaf_hash(entry.canonical)
        if leaf != entry.leaf_hash or canonical.decode(entry.canonical).entry_index != expected:
            raise AuditIntegrityError(f"audit_log entry {expected} does not match its leaf hash; run `csp audit verify`")
        frontier.append(leaf)
        expected += 1
    if count != top:
        raise AuditIntegrityError(f"audit_log holds {count} rows for indices 0..{top - 1}; run `csp audit verify`")
    return AuditLog(frontier.size, frontier.hashes, store.partition_offsets(client),
                    policy=policy, last_checkpoint=last, checkpointer=checkpointer, audit_topic=audit_topic)


def open_log(client: Any, settings: Settings | None = None, *, signer: Signer | None = None,
             publisher: Publisher | None | str = "auto", checkpoints: bool = True,
             audit_topic: str = AUDIT_TOPIC) -> AuditLog:
    """:func:`restore_log` with a :class:`Checkpointer` configured from ``settings``.

    ``publisher="auto"`` announces checkpoints on ``audit_topic`` of the platform's Kafka when
    one is reachable (``CSP_KAFKA_BOOTSTRAP`` or the running local stack), else only writes
    them to ClickHouse. Pass a namespaced ``audit_topic`` when the topics are namespaced.
    """
    from projections.audit.keys import load_signer

    settings = settings or Settings()
    policy = CheckpointPolicy(settings.audit_checkpoint_every, settings.audit_checkpoint_interval_s)
    checkpointer = None
    if checkpoints:
        if publisher == "auto":
            publisher = _auto_publisher(settings, audit_topic)
        assert not isinstance(publisher, str)
        checkpointer = Checkpointer(client, signer or load_signer(settings), settings.audit_origin, publisher)
    return restore_log(client, policy=policy, checkpointer=checkpointer, audit_topic=audit_topic)


def _auto_publisher(settings: Settings, topic: str) -> Publisher | None:
    from infra.endpoints import StackError, resolve_endpoints

    try:
        bootstrap = resolve_endpoints(settings).kafka_bootstrap
    except StackError:
        log.info("audit_checkpoints_clickhouse_only", reason="no Kafka reachable")
        return None
    return KafkaPublisher(bootstrap, settings, topic)
