"""Read committed records only, by tracking transaction markers ourselves.

The embedded broker (Tansu) writes COMMIT/ABORT control batches into the log but does
not report aborted transactions in its Fetch responses, so librdkafka's (and every
client's) ``read_committed`` mode hands out the records of aborted transactions.
This module reads at the protocol level (aiokafka's Fetch request and record-batch
parser, ``isolation_level`` read_uncommitted) and decides each record itself:

* a record of a non-transactional batch is committed;
* a record of a transactional batch of producer P waits until P's next control batch:
  COMMIT releases it, ABORT drops it.

Records are released in offset order only: :class:`TxnFilter` stops at the first
record whose transaction is still open, like Kafka's last stable offset. So every
offset below :attr:`TxnFilter.stable` is decided, and re-reading a partition from any
stable offset yields exactly the same committed records (the projector's deterministic
batches depend on it). Against Apache Kafka this gives the same result as its own
``read_committed``.

The core (:class:`TxnFilter`) is pure; :class:`CommittedReader` is the asyncio I/O edge.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError, for_code
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

READ_UNCOMMITTED = 0


class LogRecord(NamedTuple):
    """One committed data record (a named tuple: the reader builds one per record, and a
    tuple is built in half the time of a frozen dataclass)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # ms
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class BatchView:
    """What :class:`TxnFilter` needs of one record batch (pure, easy to build in tests)."""

    base_offset: int
    next_offset: int
    producer_id: int
    transactional: bool
    control_abort: bool | None  # None: a data batch; True/False: an ABORT/COMMIT marker
    records: Sequence[LogRecord]


@dataclass
class _Pending:
    record: LogRecord
    producer_id: int
    verdict: bool | None = None  # True committed, False aborted, None open


@dataclass
class TxnFilter:
    """Per-partition state: which records are committed, released in offset order."""

    stable: int  # every offset below is decided and released (or dropped)
    _pending: deque[_Pending] = field(default_factory=deque)
    _open: set[int] = field(default_factory=set)
    aborted: int = 0  # records dropped so far (aborted transactions)

    def feed(self, batch: BatchView) -> list[LogRecord]:
        """Apply one batch; return the records that became committed and stable, in order."""
        if batch.control_abort is not None:
            if batch.producer_id in self._open:
                self._open.discard(batch.producer_id)
                for p in self._pending:
                    if p.producer_id == batch.producer_id and p.verdict is None:
                        p.verdict = not batch.control_abort
        elif not batch.transactional and not self._pending:
            # nothing waits for a marker: the batch's records are committed and stable now
            stable = self.stable
            self.stable = max(stable, batch.next_offset)
            recs = batch.records
            if recs and recs[0].offset >= stable:
                return list(recs)
            return [r for r in recs if r.offset >= stable]
        else:
            decided: bool | None = None if batch.transactional else True
            if batch.transactional:
                self._open.add(batch.producer_id)
            for rec in batch.records:
                if rec.offset >= self.stable:
                    self._pending.append(_Pending(rec, batch.producer_id, decided))
        out: list[LogRecord] = []
        pending = self._pending
        while pending and pending[0].verdict is not None:
            p = pending.popleft()
            if p.verdict:
                out.append(p.record)
            else:
                self.aborted += 1
        self.stable = pending[0].record.offset if pending else max(self.stable, batch.next_offset)
        return out


def parse_batches(topic: str, partition: int, data: bytes) -> Iterable[BatchView]:
    """Record batches of a Fetch response partition, as :class:`BatchView`."""
    records = MemoryRecords(data)
    while records.has_next():
        batch: Any = records.next_batch()
        if batch is None:
            break
        control: bool | None = None
        recs: list[LogRecord] = []
        if batch.is_control_batch:
            first = next(iter(batch), None)
            control = first is not None and ControlRecord.parse(first.key) == ABORT_MARKER
        else:
            new, cls = tuple.__new__, LogRecord  # the named tuple's own __new__ is a Python call
            recs = [new(cls, (topic, partition, r.offset, r.key, r.value, r.timestamp,
                              tuple((k, v) for k, v in r.headers) if r.headers else ()))
                    for r in batch]
        yield BatchView(
            batch.base_offset, batch.next_offset, batch.producer_id if batch.producer_id is not None else -1,
            bool(batch.is_transactional), control, recs,
        )


class FetchFailed(RuntimeError):
    """A Fetch response carried an error for a partition."""


@dataclass
class CommittedReader:
    """Fetches every partition of the topics ``wanted`` selects and yields committed records.

    ``positions`` gives the start offset of each partition (absent: 0). Topics are
    discovered again every ``refresh_s`` seconds (channel topics appear at deploy time).
    """

    bootstrap: str
    wanted: Callable[[str], bool]
    positions: dict[tuple[str, int], int]
    refresh_s: float = 2.0
    max_wait_ms: int = 100
    partition_bytes: int = 4 * 1024 * 1024
    _client: AIOKafkaClient | None = None
    _filters: dict[tuple[str, int], TxnFilter] = field(default_factory=dict)
    _next: dict[tuple[str, int], int] = field(default_factory=dict)
    _last_refresh: float = -1e9
    retries: int = 0

    # librdkafka-style security settings (``security.protocol``, ``sasl.*``) of the platform
    security: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        self._client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=30000,
                                      **aiokafka_security(self.security))
        await self._client.bootstrap()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _refresh(self) -> None:
        assert self._client is not None
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_refresh < self.refresh_s:
            return
        self._last_refresh = loop.time()
        ok = await self._client.fetch_all_metadata()
        cluster: Any = ok if ok is not None and hasattr(ok, "topics") else self._client.cluster
        for topic in cluster.topics():
            if not self.wanted(topic):
                continue
            for p in cluster.partitions_for_topic(topic) or ():
                key = (topic, p)
                if key not in self._filters:
                    start = self.positions.get(key, 0)
                    self._filters[key] = TxnFilter(stable=start)
                    self._next[key] = start
        self._cluster = cluster

    _cluster: Any = None

    def partitions(self) -> list[tuple[str, int]]:
        return sorted(self._filters)

    def stable(self, key: tuple[str, int]) -> int:
        return self._filters[key].stable

    def aborted(self) -> int:
        return sum(f.aborted for f in self._filters.values())

    async def fetch(self) -> dict[tuple[str, int], tuple[int, int, list[LogRecord]]]:
        """One round of fetches: per partition ``(first, last, records)``: the offsets
        ``first..last`` became stable in this round and ``records`` are the committed
        data records among them (possibly none). Partitions with no progress are absent."""
        assert self._client is not None
        await self._refresh()
        by_node: dict[int, list[tuple[str, int]]] = {}
        for key in self._filters:
            leader = self._cluster.leader_for_partition(TopicPartition(*key))
            if leader is None or leader < 0:
                continue
            by_node.setdefault(leader, []).append(key)
        if not by_node:
            await asyncio.sleep(self.max_wait_ms / 1000)
            return {}
        try:
            results = await asyncio.gather(*(self._fetch_node(n, keys) for n, keys in by_node.items()))
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) and not isinstance(exc, KafkaConnectionError):
                raise
            # a dropped connection or a moved leader: nothing was consumed, ask again
            self.retries += 1
            self._last_refresh = -1e9
            await asyncio.sleep(min(1.0, 0.05 * self.retries))
            return {}
        out: dict[tuple[str, int], tuple[int, int, list[LogRecord]]] = {}
        for part in results:
            out.update(part)
        return out

    async def _fetch_node(
        self, node: int, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[int, int, list[LogRecord]]]:
        assert self._client is not None
        topics: dict[str, list[tuple[int, int, int]]] = {}
        for topic, p in keys:
            topics.setdefault(topic, []).append((p, self._next[(topic, p)], self.partition_bytes))
        req = FetchRequest(self.max_wait_ms, 1, 64 * 1024 * 1024, READ_UNCOMMITTED, list(topics.items()))
        resp: Any = await self._client.send(node, req)
        out: dict[tuple[str, int], tuple[int, int, list[LogRecord]]] = {}
        for topic, partitions in resp.topics:
            for partition, error_code, _high, *rest in partitions:
                key = (topic, partition)
                if key not in self._filters:
                    continue
                if error_code:
                    err = for_code(error_code)
                    if getattr(err, "retriable", False):
                        self._last_refresh = -1e9  # e.g. NotLeaderForPartition: refresh, ask again
                        continue
                    raise FetchFailed(f"fetch {topic}[{partition}] at {self._next[key]}: {err.__name__}")
                filt = self._filters[key]
                first = filt.stable
                released: list[LogRecord] = []
                for batch in parse_batches(topic, partition, rest[-1]):
                    if batch.next_offset <= self._next[key]:
                        continue
                    released.extend(filt.feed(batch))
                    self._next[key] = max(self._next[key], batch.next_offset)
                if filt.stable > first:
                    out[key] = (first, filt.stable - 1, released)
        return out


def aiokafka_security(conf: dict[str, str]) -> dict[str, Any]:
    """librdkafka security settings as aiokafka client arguments."""
    out: dict[str, Any] = {}
    if "security.protocol" in conf:
        out["security_protocol"] = conf["security.protocol"].upper()
        if out["security_protocol"] in ("SSL", "SASL_SSL"):
            import ssl

            out["ssl_context"] = ssl.create_default_context()
    for key, arg in (("sasl.mechanism", "sasl_mechanism"), ("sasl.username", "sasl_plain_username"),
                     ("sasl.password", "sasl_plain_password")):
        if key in conf:
            out[arg] = conf[key]
    return out


_CHANNEL = re.compile(r"^csp\.channel\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(\.dlq)?$")


def is_channel_topic(topic: str) -> bool:
    return bool(_CHANNEL.match(topic))
