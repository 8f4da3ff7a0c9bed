"""The platform's processing engine: transactional consume → transform → produce.

Every platform processor runs on this engine. A processor is a consumer-group
member: the engine polls batches of records from the processor's input
topics, hands them to ``processor.process`` and produces what it returns.

Exactly-once mode (the default) follows Kafka's transactional pattern
(KIP-98/KIP-447): for each batch the engine opens a transaction, produces the
processor's outputs and dead-letter records, adds the consumed offsets with
``send_offsets_to_transaction`` and commits, so outputs and input progress
commit together or not at all.

Failure handling:

* An input whose bytes are not a valid platform record (bad framing, unknown
  schema id, undecodable Avro) becomes a :data:`DeadLetter` record on the
  input topic's dead-letter topic, committed with the batch. A processor may
  dead-letter a record itself through :meth:`BatchContext.dead_letter`.
* If ``process`` raises (or returns an output that does not match its
  schema), the transaction is aborted, the processor's state for the batch's
  partitions is rewound (``on_revoke`` + ``on_assign``), and the batch is
  processed again one record at a time: a record that still fails goes to the
  dead-letter topic with the error. Nothing is lost and nothing blocks the
  partition.
* Processors must be deterministic functions of their input (use record
  timestamps, not the wall clock), so a retried batch produces identical
  output. The embedded broker shows records of aborted transactions to
  ``read_committed`` consumers, so downstream consumers deduplicate by source
  position or sequence number.

Control records: a record carrying the header ``csp-marker`` is a fence used
by :mod:`streams.reader`; the engine skips it.

Metrics (prometheus-client, one registry per engine) and structured logs
(structlog) come from here, not from the processors.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streams.catalog import DLQ_SUFFIX
from streams.clients import check_reachable, consumer_config, producer_config
from streams.metrics import EngineMetrics
from streams.records import InRecord, OutRecord

MARKER_HEADER = "csp-marker"
DEAD_LETTER_SCHEMA = "DeadLetter"


class Codec(Protocol):
    def encode(self, name: str, record: Mapping[str, Any]) -> bytes: ...

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]: ...


@dataclass(frozen=True)
class PartitionRef:
    topic: str
    partition: int


@dataclass
class AssignContext:
    """What a processor may use while loading partition state."""

    bootstrap: str
    codec: Codec
    group_id: str
    # committed offset of each assigned input partition (-1001 / negative: none)
    committed: dict[PartitionRef, int]


@dataclass
class BatchContext:
    """Per-batch services for a processor."""

    processor: str
    dead_letter_topic: Callable[[str], str | None]
    dead_letters: list[tuple[InRecord, str]] = field(default_factory=list)

    def dead_letter(self, record: InRecord, error: str) -> None:
        """Send ``record`` to its topic's dead-letter topic with ``error``."""
        self.dead_letters.append((record, error))


@runtime_checkable
class Processor(Protocol):
    """A function from a batch of input records to output records."""

    name: str  # consumer group id and transactional.id prefix
    inputs: Sequence[str]  # input topics
    decode_inputs: bool  # decode every record before ``process`` (else framing is checked)

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]: ...

    def on_assign(self, partitions: Sequence[PartitionRef], ctx: AssignContext) -> None: ...

    def on_revoke(self, partitions: Sequence[PartitionRef]) -> None: ...


class ProcessorBase:
    """Convenience base class with no-op rebalance hooks."""

    name: str = "processor"
    inputs: Sequence[str] = ()
    decode_inputs: bool = True

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        raise NotImplementedError

    def on_assign(self, partitions: Sequence[PartitionRef], ctx: AssignContext) -> None:
        return None

    def on_revoke(self, partitions: Sequence[PartitionRef]) -> None:
        return None


class FatalEngineError(RuntimeError):
    """The engine cannot continue (fenced producer, unreachable broker, ...)."""


@dataclass
class EngineConfig:
    bootstrap: str
    exactly_once: bool = True
    batch_size: int = 5000
    poll_timeout_s: float = 0.2
    # transactional.id = f"{processor.name}-{worker_id}": stable per worker, so
    # a restarted worker fences its previous incarnation.
    worker_id: str = "0"
    session_timeout_ms: int = 6000
    consumer_overrides: dict[str, Any] = field(default_factory=dict)
    producer_overrides: dict[str, Any] = field(default_factory=dict)
    connect_timeout_s: float = 15.0
    # serve Prometheus /metrics on this port while running (0: off)
    metrics_port: int = 0


def dead_letter_topic_for(topic: str) -> str | None:
    """Dead-letter topic of an input topic (``<topic>.dlq``, as the catalog names it); none for a DLQ itself."""
    return None if topic.endswith(DLQ_SUFFIX) else f"{topic}{DLQ_SUFFIX}"


class Engine:
    """Runs one processor as a member of its consumer group."""

    def __init__(
        self,
        processor: Processor,
        codec: Codec,
        config: EngineConfig,
        *,
        dead_letter_topic: Callable[[str], str | None] = dead_letter_topic_for,
        metrics: EngineMetrics | None = None,
        logger: Any = None,
    ) -> None:
        self.processor = processor
        self.codec = codec
        self.config = config
        self.dead_letter_topic = dead_letter_topic
        self.metrics = metrics or EngineMetrics(processor.name)
        self.log = (logger or structlog.get_logger()).bind(processor=processor.name, worker=config.worker_id)
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._assigned: set[PartitionRef] = set()
        self.processed = 0

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        check_reachable(cfg.bootstrap, timeout_s=cfg.connect_timeout_s)
        self._consumer = Consumer(
            consumer_config(
                cfg.bootstrap,
                self.processor.name,
                session_timeout_ms=cfg.session_timeout_ms,
                **cfg.consumer_overrides,
            )
        )
        txid = f"{self.processor.name}-{cfg.worker_id}" if cfg.exactly_once else None
        self._producer = Producer(producer_config(cfg.bootstrap, transactional_id=txid, **cfg.producer_overrides))
        if cfg.exactly_once:
            try:
                self._producer.init_transactions(cfg.connect_timeout_s)
            except KafkaException as exc:
                raise FatalEngineError(f"{self.processor.name}: init_transactions failed: {exc}") from None
        if self.processor.inputs:
            self._consumer.subscribe(list(self.processor.inputs), on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.metrics.serve(cfg.metrics_port)
        self.log.info("engine.started", inputs=list(self.processor.inputs), exactly_once=cfg.exactly_once)

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self.processor.on_revoke(sorted(self._assigned, key=lambda p: (p.topic, p.partition)))
            finally:
                self._assigned.clear()
                self._consumer.close()
                self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None
        self.log.info("engine.stopped", processed=self.processed)

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        max_records: int | None = None,
        idle_timeout_s: float | None = None,
    ) -> int:
        """Process batches until ``stop`` is set, ``max_records`` inputs were
        processed, or no input arrived for ``idle_timeout_s``. Returns the count."""
        if self._consumer is None:
            self.start()
        last_input = time.monotonic()
        try:
            while stop is None or not stop.is_set():
                n = self.run_once()
                now = time.monotonic()
                if n:
                    last_input = now
                elif idle_timeout_s is not None and now - last_input >= idle_timeout_s:
                    break
                if max_records is not None and self.processed >= max_records:
                    break
        finally:
            self.close()
        return self.processed

    def resubscribe(self, topics: Sequence[str]) -> None:
        """Change the input topics (a processor whose inputs follow the registry); a rebalance follows."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("engine not started")
        if topics:
            consumer.subscribe(list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke)
        else:
            consumer.unsubscribe()

    # -- rebalance -----------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        refs = [PartitionRef(tp.topic, tp.partition) for tp in partitions]
        committed: dict[PartitionRef, int] = {}
        if refs:
            try:
                for tp in consumer.committed(partitions, timeout=self.config.connect_timeout_s):
                    committed[PartitionRef(tp.topic, tp.partition)] = tp.offset
            except KafkaException as exc:
                self.log.warning("engine.committed_lookup_failed", error=str(exc))
        self._assigned.update(refs)
        self.metrics.assigned.set(len(self._assigned))
        self.log.info("engine.assigned", partitions=[f"{r.topic}[{r.partition}]" for r in refs])
        ctx = AssignContext(self.config.bootstrap, self.codec, self.processor.name, committed)
        self.processor.on_assign(refs, ctx)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        refs = [PartitionRef(tp.topic, tp.partition) for tp in partitions]
        self.processor.on_revoke(refs)
        self._assigned.difference_update(refs)
        self.metrics.assigned.set(len(self._assigned))
        self.log.info("engine.revoked", partitions=[f"{r.topic}[{r.partition}]" for r in refs])

    # -- the loop ----------------------------------------------------------------------

    def run_once(self) -> int:
        """Poll one batch and process it; returns the number of input records."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("engine not started")
        messages = consumer.consume(self.config.batch_size, self.config.poll_timeout_s)
        if not messages:
            return 0
        decode = self.codec.decode
        batch: list[InRecord] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise FatalEngineError(f"{self.processor.name}: consumer error: {err}")
                self.log.warning("engine.consume_error", error=str(err))
                continue
            batch.append(InRecord(msg, decode))
        if not batch:
            return 0
        started = time.perf_counter()
        self._process_batch(batch)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batches.inc()
        self.metrics.records_in.inc(len(batch))
        self.processed += len(batch)
        return len(batch)

    def _process_batch(self, batch: list[InRecord]) -> None:
        ctx = BatchContext(self.processor.name, self.dead_letter_topic)
        live = self._screen(batch, ctx)
        try:
            outputs = self._encode_all(self.processor.process(live, ctx) if live else ())
        except FatalEngineError:
            raise
        except Exception as exc:  # a processor bug or invalid output: isolate the record
            self.log.warning("engine.batch_failed", error=f"{type(exc).__name__}: {exc}", size=len(batch))
            self.metrics.retries.inc()
            self._rewind(batch)
            self._process_one_by_one(batch)
            return
        self._commit(batch, outputs, ctx)

    def _screen(self, batch: list[InRecord], ctx: BatchContext) -> list[InRecord]:
        """Drop control records; dead-letter records that are not valid platform records."""
        live: list[InRecord] = []
        decode_inputs = self.processor.decode_inputs
        # a processor with raw_inputs = True accepts values that are not in the wire format (JSON)
        raw_inputs = bool(getattr(self.processor, "raw_inputs", False))
        for rec in batch:
            msg = rec._msg
            raw = msg.value()
            if msg.headers() is None and raw is not None and not decode_inputs and raw[:1] == b"\x00" and len(raw) > 4:
                live.append(rec)  # the common case, checked first
                continue
            if msg.headers() is not None and rec.header(MARKER_HEADER) is not None:
                continue
            if raw is None:
                ctx.dead_letter(rec, "record has no value (null/tombstone); platform topics carry Avro records")
                continue
            if decode_inputs:
                try:
                    rec.decoded()
                except Exception as exc:
                    ctx.dead_letter(rec, f"undecodable record: {exc}")
                    continue
            elif not raw_inputs and (len(raw) < 5 or raw[0] != 0):
                ctx.dead_letter(rec, "not in Confluent wire format (magic byte 0 + 4-byte schema id)")
                continue
            live.append(rec)
        return live

    def _encode_all(self, outputs: Iterable[OutRecord]) -> list[tuple[OutRecord, bytes | None]]:
        """Encode every output before anything is produced: a record that does not
        match its schema fails the batch and nothing is sent."""
        encode = self.codec.encode
        encoded: list[tuple[OutRecord, bytes | None]] = []
        append = encoded.append
        for out in outputs:
            if out.value is None:
                append((out, out.raw))
            else:
                if out.schema is None:
                    raise ValueError(f"output to {out.topic} has a value but no schema name")
                append((out, encode(out.schema, out.value)))
        return encoded

    def _dead_letter_records(self, ctx: BatchContext) -> list[tuple[OutRecord, bytes | None]]:
        result: list[tuple[OutRecord, bytes | None]] = []
        for rec, error in ctx.dead_letters:
            topic = ctx.dead_letter_topic(rec.topic)
            if topic is None:
                self.log.error("engine.dead_letter_without_topic", source=str(rec.position), error=error)
                continue
            value = {
                "error": error,
                "processor": self.processor.name,
                "source_topic": rec.topic,
                "source_partition": rec.partition,
                "source_offset": rec.offset,
                "key": rec.key,
                "value": rec.raw,
                "headers": {k: v.decode("utf-8", "replace") for k, v in rec.headers},
                "timestamp": rec.timestamp,
            }
            out = OutRecord(topic=topic, key=rec.key, schema=DEAD_LETTER_SCHEMA, value=value)
            result.append((out, self.codec.encode(DEAD_LETTER_SCHEMA, value)))
            self.log.warning("engine.dead_letter", source=str(rec.position), topic=topic, error=error)
        self.metrics.dead_letters.inc(len(result))
        return result

    def _commit(self, batch: list[InRecord], outputs: list[tuple[OutRecord, bytes | None]], ctx: BatchContext) -> None:
        producer = self._producer
        consumer = self._consumer
        assert producer is not None and consumer is not None
        dead = self._dead_letter_records(ctx)
        offsets = _next_offsets(batch)
        if self.config.exactly_once:
            try:
                producer.begin_transaction()
                self._produce(producer, outputs)
                self._produce(producer, dead)
                producer.send_offsets_to_transaction(
                    offsets, consumer.consumer_group_metadata(), self.config.connect_timeout_s
                )
                producer.commit_transaction(self.config.connect_timeout_s)
            except KafkaException as exc:
                self._transaction_failed(producer, batch, exc)
                return
        else:
            self._produce(producer, outputs)
            self._produce(producer, dead)
            remaining = producer.flush(self.config.connect_timeout_s)
            if remaining:
                raise FatalEngineError(f"{self.processor.name}: {remaining} records not delivered")
            consumer.commit(offsets=offsets, asynchronous=False)
        self.metrics.records_out.inc(len(outputs))
        self.metrics.transactions.inc()

    def _produce(self, producer: Producer, records: list[tuple[OutRecord, bytes | None]]) -> None:
        produce = producer.produce
        for out, value in records:
            try:
                if out.partition is None and not out.headers:
                    produce(out.topic, value, out.key)
                else:
                    self._produce_slow(producer, out, value)
            except BufferError:
                producer.poll(0.05)
                self._produce_slow(producer, out, value)
        producer.poll(0)

    @staticmethod
    def _produce_slow(producer: Producer, out: OutRecord, value: bytes | None) -> None:
        kwargs: dict[str, Any] = {"key": out.key, "value": value}
        if out.partition is not None:
            kwargs["partition"] = out.partition
        if out.headers:
            kwargs["headers"] = list(out.headers)
        while True:
            try:
                producer.produce(out.topic, **kwargs)
                return
            except BufferError:
                producer.poll(0.05)

    def _transaction_failed(self, producer: Producer, batch: list[InRecord], exc: KafkaException) -> None:
        err = exc.args[0] if exc.args else None
        self.metrics.aborts.inc()
        if isinstance(err, KafkaError) and err.txn_requires_abort():
            self.log.warning("engine.transaction_aborted", error=str(err))
            producer.abort_transaction(self.config.connect_timeout_s)
            self._rewind(batch)
            return
        if isinstance(err, KafkaError) and err.retriable():
            self.log.warning("engine.transaction_retriable", error=str(err))
            with contextlib.suppress(KafkaException):
                producer.abort_transaction(self.config.connect_timeout_s)
            self._rewind(batch)
            return
        raise FatalEngineError(f"{self.processor.name}: transaction failed: {exc}") from None

    def _rewind(self, batch: list[InRecord]) -> None:
        """Seek back to the batch start and reload the processor's state for its partitions."""
        consumer = self._consumer
        assert consumer is not None
        first: dict[tuple[str, int], int] = {}
        for rec in batch:
            key = (rec.topic, rec.partition)
            if key not in first or rec.offset < first[key]:
                first[key] = rec.offset
        refs = [PartitionRef(t, p) for t, p in first]
        self.processor.on_revoke(refs)
        for (topic, partition), offset in first.items():
            consumer.seek(TopicPartition(topic, partition, offset))
        committed = {PartitionRef(t, p): o for (t, p), o in first.items()}
        self.processor.on_assign(refs, AssignContext(self.config.bootstrap, self.codec, self.processor.name, committed))

    def _process_one_by_one(self, batch: list[InRecord]) -> None:
        ctx = BatchContext(self.processor.name, self.dead_letter_topic)
        outputs: list[tuple[OutRecord, bytes | None]] = []
        for rec in self._screen(batch, ctx):
            try:
                outputs.extend(self._encode_all(self.processor.process([rec], ctx)))
            except FatalEngineError:
                raise
            except Exception as exc:
                ctx.dead_letter(rec, f"processor {self.processor.name} failed: {type(exc).__name__}: {exc}")
        self._commit(batch, outputs, ctx)


def _next_offsets(batch: Sequence[InRecord]) -> list[TopicPartition]:
    """Offsets to commit: one past the last record of each partition (records of
    one partition arrive in offset order)."""
    last = {(r._msg.topic(), r._msg.partition()): r._msg.offset() for r in batch}
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]

