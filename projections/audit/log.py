"""The append-only audit log: one RFC 6962 leaf per consumed record, in one Merkle tree.

``AuditLog.append(entries)`` turns records into ``audit_log`` rows (canonical bytes, source
coordinates, leaf hash) and advances the tree's frontier — O(log n) memory, no I/O.
The caller inserts the rows. A log resumes from what ClickHouse holds with
:meth:`AuditLog.open` (last checkpoint's frontier + the entries after it) or from a known
``(size, frontier)`` with the constructor.

Idempotence: within a topic-partition offsets only grow, so a record at or below the last
offset appended for its partition is skipped (a replayed batch adds no entry).

Checkpoints: :meth:`AuditLog.checkpoint` signs the current tree head (C2SP tlog-checkpoint).
A log opened with a :class:`~projections.audit.checkpoint.Checkpointer` calls it at the start
of ``append`` when one is due, for the entries the table already holds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from projections.audit import canonical
from projections.audit.merkle import Frontier
from projections.audit.note import CheckpointBody, Signer, sign_checkpoint
from schemas.records import record_for_topic

if TYPE_CHECKING:
    from projections.audit.checkpoint import Checkpointer

AUDIT_TABLE = "audit_log"
CHECKPOINT_TABLE = "audit_checkpoints"
AUDIT_TOPIC = "audit.log"
DEFAULT_ORIGIN = "enhanced-csp/audit"

AUDIT_DDL: list[str] = [
    f"""CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
    entry_index UInt64,
    source_topic LowCardinality(String),
    source_partition Int32,
    source_offset Int64,
    record_time DateTime64(6, 'UTC'),
    record_name LowCardinality(String),
    canonical String,
    leaf_hash FixedString(32),
    appended_at DateTime64(6, 'UTC')
) ENGINE = MergeTree ORDER BY entry_index
SETTINGS non_replicated_deduplication_window = 1000""",
    f"""CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (
    tree_size UInt64,
    root_hash FixedString(32),
    origin LowCardinality(String),
    key_name LowCardinality(String),
    key_id UInt32,
    note String,
    frontier Array(FixedString(32)),
    created_at DateTime64(6, 'UTC')
) ENGINE = MergeTree ORDER BY (tree_size, created_at)
SETTINGS non_replicated_deduplication_window = 1000""",
]

AUDIT_COLUMNS = (
    "entry_index", "source_topic", "source_partition", "source_offset", "record_time",
    "record_name", "canonical", "leaf_hash", "appended_at",
)
CHECKPOINT_COLUMNS = (
    "tree_size", "root_hash", "origin", "key_name", "key_id", "note", "frontier", "created_at",
)


@dataclass(frozen=True, slots=True)
class AuditSource:
    """One consumed record: where it was and its raw bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


# append() also takes plain (topic, partition, offset, key, value, timestamp_ms) tuples.
SourceLike = AuditSource | tuple[str, int, int, bytes | None, bytes | None, int]


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head, with the frontier it was computed from (for recovery)."""

    origin: str
    size: int
    root: bytes
    note: str
    key_name: str
    key_id: int
    frontier: tuple[bytes, ...]
    created_at: datetime

    def row(self) -> dict[str, Any]:
        return {
            "tree_size": self.size, "root_hash": self.root, "origin": self.origin,
            "key_name": self.key_name, "key_id": self.key_id, "note": self.note,
            "frontier": list(self.frontier), "created_at": self.created_at,
        }

    def avro_record(self, prev_root: bytes | None) -> dict[str, Any]:
        """The ``AuditEntry`` (v2) record announcing this checkpoint on ``audit.log``."""
        return {
            "seq": self.size,
            "source_topic": AUDIT_TOPIC,
            "source_partition": -1,
            "source_offset": -1,
            "record_name": "checkpoint",
            "key_sha256": None,
            "payload_sha256": hashlib.sha256(self.note.encode()).hexdigest(),
            "prev_hash": None if prev_root is None else prev_root.hex(),
            "entry_hash": self.root.hex(),
            "timestamp": int(self.created_at.timestamp() * 1000),
            "leaf_hash": None,
            "checkpoint": self.note,
        }


@dataclass
class CheckpointPolicy:
    """When a checkpoint is due: ``every`` new entries or ``interval_s`` seconds after the last
    one, provided some entry since then came from a topic other than ``audit.log`` (so the
    checkpoints' own audit entries do not keep an idle log checkpointing)."""

    every: int = 10_000
    interval_s: float = 10.0


@dataclass
class _CheckpointState:
    size: int = 0
    at: float = field(default_factory=time.monotonic)
    root: bytes | None = None


class AuditLog:
    """The Merkle log's state: size, frontier and the last offset per topic-partition."""

    def __init__(
        self,
        size: int = 0,
        frontier: Sequence[bytes] = (),
        offsets: Mapping[tuple[str, int], int] | None = None,
        *,
        policy: CheckpointPolicy | None = None,
        last_checkpoint: tuple[int, bytes] | None = None,
        checkpointer: Checkpointer | None = None,
        audit_topic: str = AUDIT_TOPIC,
    ) -> None:
        self.frontier = Frontier(size, frontier)
        self.offsets: dict[tuple[str, int], int] = dict(offsets or {})
        self.policy = policy or CheckpointPolicy()
        self._cp = _CheckpointState()
        if last_checkpoint is not None:
            self._cp.size, self._cp.root = last_checkpoint
        self._external_since_cp = size > self._cp.size
        self._topics: dict[str, tuple[bytes, str]] = {}
        self.checkpointer = checkpointer
        self.audit_topic = audit_topic  # its records do not make a checkpoint due

    # ------------------------------------------------------------------ state

    @property
    def size(self) -> int:
        return self.frontier.size

    def root(self) -> bytes:
        return self.frontier.root()

    @classmethod
    def open(cls, client: Any, settings: Any = None, **kwargs: Any) -> AuditLog:
        """A log resumed from the ``audit_log``/``audit_checkpoints`` tables ``client`` reaches,
        checkpointing (signed with the key of ``settings``) as entries arrive."""
        from projections.audit.checkpoint import open_log

        return open_log(client, settings, **kwargs)

    # ----------------------------------------------------------------- append

    def _topic(self, topic: str) -> tuple[bytes, str]:
        got = self._topics.get(topic)
        if got is None:
            got = (canonical.topic_part(topic), record_for_topic(topic) or "")
            self._topics[topic] = got
        return got

    def append(self, entries: Sequence[SourceLike]) -> list[dict[str, Any]]:
        """Append records (in order); return the ``audit_log`` rows to insert.

        ``record_time`` and ``appended_at`` are microseconds since the epoch (int): the
        DateTime64(6) ticks clickhouse-connect inserts as they are.

        Records at or below the last offset already appended for their topic-partition are
        skipped. If inserting the rows fails, insert the same rows again (or reopen the log
        from the tables): calling ``append`` again with the same records adds nothing.
        """
        if self.checkpointer is not None:
            self.checkpointer.maybe_checkpoint(self)
        rows: list[dict[str, Any]] = []
        if not entries:
            return rows
        now_us = time.time_ns() // 1000
        offsets = self.offsets
        hashes = self.frontier.hashes
        size = self.frontier.size
        topics = self._topics
        head, coords, blob, none = canonical._HEAD, canonical._COORDS, canonical._BLOB, canonical._NONE
        magic, version = canonical.MAGIC, canonical.VERSION
        sha256 = hashlib.sha256
        leaf0 = sha256(b"\x00")
        external = False
        own_topic = self.audit_topic
        append_row = rows.append
        for e in entries:
            if type(e) is tuple:
                topic, partition, offset, key, value, ts = e
            else:
                assert isinstance(e, AuditSource)
                topic, partition, offset, key, value, ts = (
                    e.topic, e.partition, e.offset, e.key, e.value, e.timestamp_ms)
            tp = (topic, partition)
            last = offsets.get(tp)
            if last is not None and offset <= last:
                continue
            offsets[tp] = offset
            t = topics.get(topic)
            if t is None:
                t = self._topic(topic)
            if topic != own_topic:
                external = True
            data = b"".join((
                head.pack(magic, version, size), t[0], coords.pack(partition, offset, ts),
                none if key is None else blob.pack(1, len(key)), key or b"",
                none if value is None else blob.pack(1, len(value)), value or b"",
            ))
            h = leaf0.copy()
            h.update(data)
            leaf = h.digest()
            node, s = leaf, size
            while s & 1:
                node = sha256(b"\x01" + hashes.pop() + node).digest()
                s >>= 1
            hashes.append(node)
            append_row({
                "entry_index": size, "source_topic": topic, "source_partition": partition,
                "source_offset": offset, "record_time": ts * 1000,
                "record_name": t[1], "canonical": data, "leaf_hash": leaf, "appended_at": now_us,
            })
            size += 1
        self.frontier.size = size
        if external:
            self._external_since_cp = True
        return rows

    # ------------------------------------------------------------ checkpoints

    @property
    def last_checkpoint(self) -> tuple[int, bytes | None]:
        return self._cp.size, self._cp.root

    def checkpoint_due(self, now: float | None = None) -> bool:
        if self.size <= self._cp.size or not self._external_since_cp:
            return False
        now = time.monotonic() if now is None else now
        return self.size - self._cp.size >= self.policy.every or now - self._cp.at >= self.policy.interval_s

    def checkpoint(self, signer: Signer, origin: str | None = None) -> Checkpoint:
        """Sign the current tree head."""
        origin = origin or signer.name
        root = self.root()
        body = CheckpointBody(origin, self.size, root)
        cp = Checkpoint(
            origin=origin, size=self.size, root=root, note=sign_checkpoint(body, signer),
            key_name=signer.name, key_id=signer.key_id, frontier=tuple(self.frontier.hashes),
            created_at=datetime.now(UTC),
        )
        return cp

    def checkpoint_now(self) -> Checkpoint | None:
        """With a checkpointer: sign the head now if the table holds it (e.g. at shutdown)."""
        return self.checkpointer.checkpoint(self) if self.checkpointer is not None else None

    def mark_checkpointed(self, cp: Checkpoint) -> None:
        self._cp = _CheckpointState(cp.size, time.monotonic(), cp.root)
        self._external_since_cp = False
