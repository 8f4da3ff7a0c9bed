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

Control records: earlier versions of :mod:`streams.reader` appended *fence*
records (no value, header ``csp-marker: <32 hex digits>``) to the topics they
read. The engine skips exactly those (:func:`is_platform_fence`); a record with
a value is processed whatever its headers, and any other value-less record is
dead-lettered. Nothing vanishes silently.

Bounded outputs: an output larger than ``EngineConfig.max_output_bytes`` (or one
the producer rejects as too large) fails its record like a processor error: the
input is dead-lettered. Dead-letter records are bounded too: the copied value
is truncated to :data:`MAX_DEAD_LETTER_VALUE` bytes, and the error names the
original size and sha256. No input can stop the engine.

Transactions: by default one transactional producer per engine
(``transactional.id = <processor>-<worker_id>``). A processor that sets
``transactional_scope = "partition"`` gets one producer per assigned input
partition (``<processor>-<topic>-<partition>``): a worker taking a partition
over calls ``init_transactions`` with that id before it loads the partition's
state, which fences the previous owner and aborts any transaction it left
open (a crashed worker no longer blocks ``read_committed`` readers).

Metrics (prometheus-client, one registry per engine) and structured logs
(structlog) come from here, not from the processors.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streams.catalog import DLQ_SUFFIX
from streams.clients import check_reachable, consume_available, consumer_config, producer_config
from streams.metrics import EngineMetrics
from streams.records import InRecord, OutRecord

MARKER_HEADER = "csp-marker"
DEAD_LETTER_SCHEMA = "DeadLetter"
# dead-letter records copy at most this much of the input's value (the rest: size + sha256)
MAX_DEAD_LETTER_VALUE = 64 * 1024
MAX_DEAD_LETTER_KEY = 1024
DEFAULT_MAX_OUTPUT_BYTES = 900_000  # under Kafka's default 1 MB record limit, with room for headers
_FENCE_VALUE = re.compile(rb"[0-9a-f]{32}")


def is_platform_fence(value: bytes | None, headers: Any) -> bool:
    """A fence record of the platform's old fence-based reader: no value and a ``csp-marker``
    header holding a 32-hex-digit token. A record with a value is never a fence."""
    if value is not None or not headers:
        return False
    for k, v in headers:
        if k == MARKER_HEADER:
            return v is not None and _FENCE_VALUE.fullmatch(v) is not None
    return False


class OutputTooLarge(ValueError):
    """An output record is larger than the engine may produce."""


class RateLimitedLog:
    """Logs one event name at most once per ``every_s`` seconds, counting what it held back."""

    def __init__(self, log: Any, every_s: float = 10.0) -> None:
        self.log = log
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, event: str, **kw: Any) -> bool:
        now = time.monotonic()
        last = self._last.get(event)
        if last is not None and now - last < self.every_s:
            self._held[event] = self._held.get(event, 0) + 1
            return False
        self._last[event] = now
        held = self._held.pop(event, 0)
        if held:
            kw["suppressed"] = held
        self.log.warning(event, **kw)
        return True


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
    # "worker": one transactional producer per engine; "partition": one per input partition
    transactional_scope: str = "worker"

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
    # serve Prometheus /metrics on this port while running (0: off), bound to metrics_host
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # outputs (value + key) above this size fail their input record, which is dead-lettered
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES


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
        self._per_partition = (
            getattr(processor, "transactional_scope", "worker") == "partition" and config.exactly_once
        )
        self._producers: dict[PartitionRef, Producer] = {}
        self._commit_pool: ThreadPoolExecutor | None = None
        self.quiet = RateLimitedLog(self.log)
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
                **{**self.client_logging(), **cfg.consumer_overrides},
            )
        )
        txid = (
            f"{self.processor.name}-{cfg.worker_id}" if cfg.exactly_once and not self._per_partition else None
        )
        self._producer = Producer(
            producer_config(
                cfg.bootstrap, transactional_id=txid, **{**self.client_logging(), **cfg.producer_overrides}
            )
        )
        if cfg.exactly_once and not self._per_partition:
            try:
                self._producer.init_transactions(cfg.connect_timeout_s)
            except KafkaException as exc:
                raise FatalEngineError(f"{self.processor.name}: init_transactions failed: {exc}") from None
        if self.processor.inputs:
            self._consumer.subscribe(list(self.processor.inputs), on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.metrics.serve(cfg.metrics_port, cfg.metrics_host)
        self.log.info("engine.started", inputs=list(self.processor.inputs), exactly_once=cfg.exactly_once)

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self.processor.on_revoke(sorted(self._assigned, key=lambda p: (p.topic, p.partition)))
            finally:
                self._assigned.clear()
                self._consumer.close()
                self._consumer = None
        if self._commit_pool is not None:
            self._commit_pool.shutdown(wait=True)
            self._commit_pool = None
        for producer in self._producers.values():
            producer.flush(5)
        self._producers.clear()
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None
        self.log.info("engine.stopped", processed=self.processed)

    def client_logging(self) -> dict[str, Any]:
        """Client settings: librdkafka's own error lines (one per connection attempt, 20 a second
        while the broker is down) are not printed; errors reach :meth:`_client_error` instead."""
        return {"log_level": 2, "log.connection.close": False, "error_cb": self._client_error}

    def _client_error(self, err: KafkaError) -> None:
        self.quiet.warning("engine.kafka_error", error=str(err), code=err.name())

    def transactional_id(self, ref: PartitionRef) -> str:
        """The transactional id of an input partition (per-partition scope)."""
        return f"{self.processor.name}-{ref.topic}-{ref.partition}"

    def _take_over(self, refs: Sequence[PartitionRef]) -> None:
        """Per-partition scope: a transactional producer per newly assigned partition. Its
        ``init_transactions`` fences the partition's previous owner and aborts the transaction
        that owner left open, before the processor reads the partition's state."""
        new = [r for r in refs if r not in self._producers]
        if not new:
            return
        cfg = self.config

        def make(ref: PartitionRef) -> Producer:
            producer = Producer(
                producer_config(
                    cfg.bootstrap,
                    transactional_id=self.transactional_id(ref),
                    **{**self.client_logging(), **cfg.producer_overrides},
                )
            )
            try:
                producer.init_transactions(cfg.connect_timeout_s)
            except KafkaException as exc:
                raise FatalEngineError(
                    f"{self.processor.name}: init_transactions for {ref.topic}[{ref.partition}] failed: {exc}"
                ) from None
            return producer

        with ThreadPoolExecutor(max_workers=min(8, len(new))) as pool:
            for ref, producer in zip(new, pool.map(make, new), strict=True):
                self._producers[ref] = producer

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
        if refs and self._per_partition:
            self._take_over(refs)  # before the committed offsets and the state are read
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
        for ref in refs:
            producer = self._producers.pop(ref, None)
            if producer is not None:
                producer.flush(5)
        self.metrics.assigned.set(len(self._assigned))
        self.log.info("engine.revoked", partitions=[f"{r.topic}[{r.partition}]" for r in refs])

    # -- the loop ----------------------------------------------------------------------

    def run_once(self) -> int:
        """Poll one batch and process it; returns the number of input records."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("engine not started")
        messages = consume_available(consumer, self.config.batch_size, self.config.poll_timeout_s)
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
                self.quiet.warning("engine.consume_error", error=str(err))
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
        if not self._per_partition:
            self._process_group(batch, self._producer)
            return
        groups: dict[PartitionRef, list[InRecord]] = {}
        for rec in batch:
            msg = rec._msg
            ref = PartitionRef(msg.topic(), msg.partition())
            group = groups.get(ref)
            if group is None:
                group = groups[ref] = []
            group.append(rec)
        missing = [r for r in groups if r not in self._producers]
        if missing:
            self._take_over(missing)
        if len(groups) == 1:
            ref, group = next(iter(groups.items()))
            self._process_group(group, self._producers[ref])
            return
        # each partition's transaction commits on a helper thread while the next partition is
        # processed; failures are handled here, on the engine's thread, once all are done
        consumer = self._consumer
        assert consumer is not None
        meta = consumer.consumer_group_metadata()
        pool = self._commit_pool
        if pool is None:
            pool = self._commit_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="engine-commit")
        pending = []
        for ref, group in groups.items():
            producer = self._producers[ref]
            ctx = BatchContext(self.processor.name, self.dead_letter_topic)
            live = self._screen(group, ctx)
            try:
                outputs = self._encode_all(self.processor.process(live, ctx) if live else ())
            except FatalEngineError:
                raise
            except Exception as exc:
                self.log.warning(
                    "engine.batch_failed", error=f"{type(exc).__name__}: {exc}"[:500], size=len(group)
                )
                self.metrics.retries.inc()
                self._rewind(group)
                self._process_one_by_one(group, producer)
                continue
            dead = self._dead_letter_records(ctx)
            fut = pool.submit(self._transact, producer, outputs, dead, _next_offsets(group), meta)
            pending.append((group, producer, len(outputs), fut))
        for group, producer, n_out, fut in pending:
            failed = fut.result()
            if failed is not None:
                self._transaction_failed(producer, group, failed)
                continue
            self.metrics.records_out.inc(n_out)
            self.metrics.transactions.inc()

    def _process_group(self, batch: list[InRecord], producer: Producer | None) -> None:
        ctx = BatchContext(self.processor.name, self.dead_letter_topic)
        live = self._screen(batch, ctx)
        try:
            outputs = self._encode_all(self.processor.process(live, ctx) if live else ())
        except FatalEngineError:
            raise
        except Exception as exc:  # a processor bug or invalid output: isolate the record
            self.log.warning(
                "engine.batch_failed", error=f"{type(exc).__name__}: {exc}"[:500], size=len(batch)
            )
            self.metrics.retries.inc()
            self._rewind(batch)
            self._process_one_by_one(batch, producer)
            return
        self._commit(batch, outputs, ctx, producer)

    def _screen(self, batch: list[InRecord], ctx: BatchContext) -> list[InRecord]:
        """Drop control records; dead-letter records that are not valid platform records."""
        live: list[InRecord] = []
        decode_inputs = self.processor.decode_inputs
        # a processor with raw_inputs = True accepts values that are not in the wire format (JSON)
        raw_inputs = bool(getattr(self.processor, "raw_inputs", False))
        for rec in batch:
            msg = rec._msg
            raw = msg.value()
            if (
                msg.headers() is None
                and raw is not None
                and not decode_inputs
                and raw[:1] == b"\x00"
                and len(raw) > 4
            ):
                live.append(rec)  # the common case, checked first
                continue
            if raw is None and is_platform_fence(raw, msg.headers()):
                continue  # a fence of the platform's old reader: not data
            if raw is None:
                ctx.dead_letter(
                    rec, "record has no value (null/tombstone); platform topics carry Avro records"
                )
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
        limit = self.config.max_output_bytes
        encoded: list[tuple[OutRecord, bytes | None]] = []
        append = encoded.append
        for out in outputs:
            if out.value is None:
                raw = out.raw
            else:
                if out.schema is None:
                    raise ValueError(f"output to {out.topic} has a value but no schema name")
                raw = encode(out.schema, out.value)
            if raw is not None and len(raw) > limit:
                raise OutputTooLarge(
                    f"an output to {out.topic} is {len(raw)} bytes, above the limit of {limit} bytes"
                )
            append((out, raw))
        return encoded

    def _dead_letter_records(self, ctx: BatchContext) -> list[tuple[OutRecord, bytes | None]]:
        result: list[tuple[OutRecord, bytes | None]] = []
        for rec, error in ctx.dead_letters:
            topic = ctx.dead_letter_topic(rec.topic)
            if topic is None:
                self.log.error("engine.dead_letter_without_topic", source=str(rec.position), error=error)
                continue
            value = bounded_dead_letter(error, self.processor.name, rec)
            out = OutRecord(topic=topic, key=value["key"], schema=DEAD_LETTER_SCHEMA, value=value)
            result.append((out, self.codec.encode(DEAD_LETTER_SCHEMA, value)))
            self.log.warning("engine.dead_letter", source=str(rec.position), topic=topic, error=error)
        self.metrics.dead_letters.inc(len(result))
        return result

    def _commit(
        self,
        batch: list[InRecord],
        outputs: list[tuple[OutRecord, bytes | None]],
        ctx: BatchContext,
        producer: Producer | None = None,
    ) -> bool:
        """Produce and commit; False when the transaction was aborted (the batch was rewound)."""
        producer = producer or self._producer
        consumer = self._consumer
        assert producer is not None and consumer is not None
        dead = self._dead_letter_records(ctx)
        offsets = _next_offsets(batch)
        if self.config.exactly_once:
            failed = self._transact(producer, outputs, dead, offsets, consumer.consumer_group_metadata())
            if failed is not None:
                self._transaction_failed(producer, batch, failed)
                return False
        else:
            self._produce(producer, outputs)
            self._produce(producer, dead)
            remaining = producer.flush(self.config.connect_timeout_s)
            if remaining:
                raise FatalEngineError(f"{self.processor.name}: {remaining} records not delivered")
            consumer.commit(offsets=offsets, asynchronous=False)
        self.metrics.records_out.inc(len(outputs))
        self.metrics.transactions.inc()
        return True

    def _transact(
        self,
        producer: Producer,
        outputs: list[tuple[OutRecord, bytes | None]],
        dead: list[tuple[OutRecord, bytes | None]],
        offsets: list[TopicPartition],
        group_metadata: Any,
    ) -> KafkaException | None:
        """One transaction: the outputs, the dead letters and the consumed offsets. Returns the
        failure (the caller handles it on the engine's thread); may run on a helper thread."""
        try:
            producer.begin_transaction()
            self._produce(producer, outputs)
            self._produce(producer, dead)
            producer.send_offsets_to_transaction(offsets, group_metadata, self.config.connect_timeout_s)
            producer.commit_transaction(self.config.connect_timeout_s)
        except KafkaException as exc:
            return exc
        except BufferError as exc:  # e.g. a record the producer refuses as too large
            return KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, str(exc)))
        return None

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
        if isinstance(err, KafkaError) and err.code() in (
            KafkaError.MSG_SIZE_TOO_LARGE,
            KafkaError.INVALID_RECORD,
        ):
            # an output the broker or the client refuses as too large: isolate its input
            self.quiet.warning("engine.output_too_large", error=str(err))
            with contextlib.suppress(KafkaException):
                producer.abort_transaction(self.config.connect_timeout_s)
            self._rewind(batch)
            if len(batch) > 1:
                self._process_one_by_one(batch, producer)
            else:
                ctx = BatchContext(self.processor.name, self.dead_letter_topic)
                ctx.dead_letter(batch[0], f"an output of processor {self.processor.name} was refused: {err}")
                self._commit(batch, [], ctx, producer)
            return
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
        self.processor.on_assign(
            refs, AssignContext(self.config.bootstrap, self.codec, self.processor.name, committed)
        )

    def _process_one_by_one(self, batch: list[InRecord], producer: Producer | None = None) -> None:
        ctx = BatchContext(self.processor.name, self.dead_letter_topic)
        outputs: list[tuple[OutRecord, bytes | None]] = []
        for rec in self._screen(batch, ctx):
            try:
                outputs.extend(self._encode_all(self.processor.process([rec], ctx)))
            except FatalEngineError:
                raise
            except Exception as exc:
                ctx.dead_letter(
                    rec, f"processor {self.processor.name} failed: {type(exc).__name__}: {exc}"[:4000]
                )
        if self._commit(batch, outputs, ctx, producer):
            # The batch was rewound before this retry: move the consumer past it, or the
            # next poll would hand the same records (and the same dead letters) back.
            consumer = self._consumer
            assert consumer is not None
            for tp in _next_offsets(batch):
                consumer.seek(tp)


def bounded_dead_letter(error: str, processor: str, rec: InRecord) -> dict[str, Any]:
    """The DeadLetter record of ``rec``: its coordinates, the error, and at most
    :data:`MAX_DEAD_LETTER_VALUE` bytes of its value (a longer value is truncated; the error then
    names the original size and sha256)."""
    raw = rec.raw
    key = rec.key
    notes = []
    if raw is not None and len(raw) > MAX_DEAD_LETTER_VALUE:
        notes.append(
            f"value truncated to {MAX_DEAD_LETTER_VALUE} of {len(raw)} bytes, "
            f"sha256 {hashlib.sha256(raw).hexdigest()}"
        )
        raw = raw[:MAX_DEAD_LETTER_VALUE]
    if key is not None and len(key) > MAX_DEAD_LETTER_KEY:
        notes.append(
            f"key truncated to {MAX_DEAD_LETTER_KEY} of {len(key)} bytes, sha256 {hashlib.sha256(key).hexdigest()}"
        )
        key = key[:MAX_DEAD_LETTER_KEY]
    headers = {
        k[:256]: v.decode("utf-8", "replace")[:1024] for k, v in list(rec.headers)[:32] if v is not None
    }
    return {
        "error": error[:4000] + "".join(f"; {n}" for n in notes),
        "processor": processor,
        "source_topic": rec.topic,
        "source_partition": rec.partition,
        "source_offset": rec.offset,
        "key": key,
        "value": raw,
        "headers": headers,
        "timestamp": rec.timestamp,
    }


def _next_offsets(batch: Sequence[InRecord]) -> list[TopicPartition]:
    """Offsets to commit: one past the last record of each partition (records of
    one partition arrive in offset order)."""
    last = {(r._msg.topic(), r._msg.partition()): r._msg.offset() for r in batch}
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]
