"""The projector: every platform topic into ClickHouse, exactly once, plus the audit step.

It reads every catalog topic, every ``csp.channel.*`` topic and every dead-letter topic
(found again every couple of seconds: channel topics appear at deploy time) through
:class:`~projections.txread.CommittedReader` (records of aborted transactions are
dropped), groups each topic-partition's committed records into batches, and writes each
batch through :class:`~projections.sink.Sink` (exactly once, see there). With an embedded
ClickHouse (``chdb://``) it also serves read-only SQL over HTTP on loopback
(:mod:`projections.sqlserver`), since no other process may open the chdb path.

Run: ``python -m projections.projector`` (``csp up`` and ``csp run`` start it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.clickhouse import clickhouse_client, parse_clickhouse_url
from projections.audit_sink import AuditSink, load_audit
from projections.sink import Plan, Sink, logical_topic
from projections.sqlserver import SqlServer, chdb_executor
from projections.txread import CommittedReader, LogRecord, is_channel_topic
from schemas.codec import Codec
from streams.catalog import CATALOG

STATE_FILE = "projector.json"
PASSWORD_FILE = "sql.password"
_CATALOG_NAMES = frozenset(s.name for s in CATALOG)


def wanted(namespace: str) -> Callable[[str], bool]:
    """The topic filter: catalog, channel and dead-letter topics (of ``namespace``)."""
    prefix = f"{namespace}." if namespace else ""

    def accept(topic: str) -> bool:
        if prefix and not topic.startswith(prefix):
            return False
        base = logical_topic(topic, namespace)
        return base in _CATALOG_NAMES or is_channel_topic(base)

    return accept


@dataclass
class _Pending:
    first: int
    last: int
    records: list[LogRecord] = field(default_factory=list)
    since: float = 0.0


@dataclass
class Projector:
    bootstrap: str
    client: Any
    codec: Codec
    namespace: str = ""
    audit: bool = True
    batch_rows: int = 50_000
    batch_ms: int = 50
    max_pending: int = 200_000  # records read ahead of the round being written
    gc_threshold: int = 20_000  # the GC's young-generation threshold while it runs (see young_gc_threshold)
    fast: bool = True  # decode csp.events in ClickHouse (projections.fastpath) when it is chdb
    sink: Sink = field(init=False)
    batches: int = 0
    audit_status: str = "off"
    _redo: dict[tuple[str, int], Plan] = field(default_factory=dict)
    _pending: dict[tuple[str, int], _Pending] = field(default_factory=dict)

    def __post_init__(self) -> None:
        module, status = load_audit() if self.audit else (None, "off")
        self.audit_status = status
        self.sink = Sink(self.client, self.codec, self.namespace, None, module.ddl if module else [])
        self.sink.apply_ddl()
        if self.fast and getattr(self.client, "path", None) is not None:  # the embedded chdb
            self.sink.decoder = self.client
        if module is not None:
            try:
                self.sink.audit = AuditSink(module, self.client)
            except Exception as exc:  # noqa: BLE001 - said in `csp status` and the log, not hidden
                self.audit_status = f"error: the audit log did not open: {type(exc).__name__}: {exc}"
                print(f"projector: {self.audit_status}", file=sys.stderr, flush=True)

    def security(self) -> dict[str, str]:
        """The platform's Kafka security settings, when its Settings define them."""
        from infra.settings import Settings

        make = getattr(Settings(), "kafka_security", None)
        return dict(make()) if callable(make) else {}

    def positions(self) -> dict[tuple[str, int], int]:
        """Where each topic-partition resumes: what the sink holds (its last plan)."""
        out: dict[tuple[str, int], int] = {}
        self._redo.clear()
        for key, plan in self.sink.plans().items():
            if plan.done:
                out[key] = plan.last + 1
            else:
                out[key] = plan.first
                self._redo[key] = plan
        return out

    def _accumulate(self, key: tuple[str, int], first: int, last: int, records: list[LogRecord], now: float) -> None:
        pend = self._pending.get(key)
        if pend is None:
            self._pending[key] = _Pending(first, last, list(records), now)
        else:
            pend.last = last
            pend.records.extend(records)

    def _due(self, now: float, force: bool) -> list[list[tuple[Plan, list[LogRecord], bool]]]:
        """Rounds to write: an interrupted round once it is read back in full (the same
        batches, so the same token), then the batches that are due."""
        rounds: list[list[tuple[Plan, list[LogRecord], bool]]] = []
        by_round: dict[str, list[Plan]] = {}
        for plan in self._redo.values():
            by_round.setdefault(plan.round, []).append(plan)
        for plans in by_round.values():
            keys = [(p.topic, p.partition) for p in plans]
            if not all(k in self._pending and self._pending[k].last >= p.last for k, p in zip(keys, plans, strict=True)):
                continue  # not read back in full yet
            redo: list[tuple[Plan, list[LogRecord], bool]] = []
            for key, plan in zip(keys, plans, strict=True):
                pend = self._pending.pop(key)
                redo.append((plan, [r for r in pend.records if r.offset <= plan.last], True))
                del self._redo[key]
                if pend.last > plan.last:
                    self._pending[key] = _Pending(plan.last + 1, pend.last,
                                                  [r for r in pend.records if r.offset > plan.last], now)
            rounds.append(redo)
        normal: list[tuple[Plan, list[LogRecord], bool]] = []
        for key in list(self._pending):
            if key in self._redo:
                continue
            pend = self._pending[key]
            if force or len(pend.records) >= self.batch_rows or (now - pend.since) * 1000 >= self.batch_ms:
                if pend.records:
                    normal.append((Plan(key[0], key[1], pend.first, pend.last, False), pend.records, False))
                del self._pending[key]
        if normal:
            rounds.append(normal)
        return rounds

    def _write(self, rounds: list[list[tuple[Plan, list[LogRecord], bool]]]) -> int:
        n = 0
        for work in rounds:
            self.batches += len(work)
            n += self.sink.write_many(work)
        return n

    def _until_due(self) -> float | None:
        """Seconds until the oldest pending records are due (None: nothing pending)."""
        if not self._pending:
            return None
        oldest = min(p.since for p in self._pending.values())
        return max(0.0, oldest + self.batch_ms / 1000 - time.monotonic())

    def _backlog(self) -> int:
        return sum(len(p.records) for p in self._pending.values())

    async def run(self, stop: threading.Event, on_progress: Callable[[Projector], None] | None = None) -> None:
        """Read and write until ``stop``. Fetching goes on while a round is written (in a
        thread: ClickHouse releases the GIL), up to ``max_pending`` records read ahead; the
        next round starts as soon as the last one is done, with what is due by then."""
        with young_gc_threshold(self.gc_threshold):
            await self._run(stop, on_progress)

    async def _run(self, stop: threading.Event, on_progress: Callable[[Projector], None] | None) -> None:
        reader = CommittedReader(self.bootstrap, wanted(self.namespace), self.positions(), security=self.security())
        await reader.start()
        fetching: asyncio.Future[dict[tuple[str, int], tuple[int, int, list[LogRecord]]]] | None = None
        writing: asyncio.Future[int] | None = None
        try:
            while not stop.is_set():
                # (an interrupted round is read back in full, however long it was)
                if fetching is None and (self._backlog() < self.max_pending or self._redo):
                    fetching = asyncio.ensure_future(reader.fetch())
                # wake up for whichever comes first: a fetch, the round's end, or (the writer
                # idle) the moment the oldest pending records are due
                waits = [f for f in (fetching, writing) if f is not None]
                timeout = self._until_due() if writing is None else None
                if waits:
                    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                else:  # read ahead in full, nothing due yet
                    await asyncio.sleep(timeout or 0.0)
                if writing is not None and writing.done():
                    writing.result()  # a failed round stops the projector: it resumes from the sink
                    writing = None
                if fetching is not None and fetching.done():
                    self._take(fetching.result())
                    fetching = None
                if writing is None:
                    work = self._due(time.monotonic(), force=False)
                    if work:
                        writing = asyncio.ensure_future(asyncio.to_thread(self._write, work))
                if on_progress is not None:
                    on_progress(self)
            if writing is not None:
                await writing
            if fetching is not None:
                self._take(await fetching)
            self._write(self._due(time.monotonic(), force=True))
        finally:
            for fut in (fetching, writing):
                if fut is not None and not fut.done():
                    fut.cancel()
            await reader.close()

    def _take(self, got: dict[tuple[str, int], tuple[int, int, list[LogRecord]]]) -> None:
        now = time.monotonic()
        for key, (first, last, records) in got.items():
            self._accumulate(key, first, last, records, now)


@contextmanager
def young_gc_threshold(threshold: int) -> Iterator[None]:
    """Run with the startup heap frozen (``gc.freeze``) and the young generation collected
    every ``threshold`` allocations instead of 700; restored on exit.

    The projector holds up to ``max_pending`` records (tuples, no cycles: freed by reference
    counting) that live a round or two. With CPython's defaults they are promoted to the
    old generation and trigger full collections of everything the process holds: a fifth
    of the time of a backlog, measured. The records do not need the cycle collector."""
    with _GC_LOCK:  # projectors in threads of one process (tests): the first in sets, the last out restores
        if not _GC_SAVED:
            _GC_SAVED.append(gc.get_threshold())
            gc.freeze()
        _GC_SAVED.append(threshold)
        gc.set_threshold(max(_GC_SAVED[0][0], *_GC_SAVED[1:]), *_GC_SAVED[0][1:])
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_SAVED.remove(threshold)
            if len(_GC_SAVED) == 1:
                gc.set_threshold(*_GC_SAVED.pop())
                gc.unfreeze()


_GC_LOCK = threading.Lock()
_GC_SAVED: list[Any] = []  # the thresholds before the first projector, then each one's threshold


def _write_state(data_dir: Path, state: dict[str, Any]) -> None:
    path = data_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


def sql_password(data_dir: Path) -> str:
    """The embedded SQL endpoint's password (created on first use, mode 0600)."""
    path = data_dir / PASSWORD_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(18))
    return path.read_text().strip()


def read_state(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / STATE_FILE
    try:
        out: dict[str, Any] = json.loads(path.read_text())
        return out
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    from infra.endpoints import clickhouse_url
    from infra.settings import Settings
    from schemas.codec import codec_from_settings

    ap = argparse.ArgumentParser(prog="python -m projections.projector", description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", help="Kafka bootstrap (default: CSP_KAFKA_BOOTSTRAP or the running stack)")
    ap.add_argument("--clickhouse-url", help="default: CSP_CLICKHOUSE_URL or chdb://<data_dir>/clickhouse")
    ap.add_argument("--data-dir", type=Path, help="default: CSP_DATA_DIR")
    ap.add_argument("--namespace", default="", help="topic namespace (tests)")
    ap.add_argument("--sql-port", type=int, default=0, help="SQL endpoint port on 127.0.0.1 (0: a free one; -1: off)")
    ap.add_argument("--no-audit", action="store_true", help="skip the audit step")
    ap.add_argument("--batch-ms", type=int, default=50, help="flush a partition's records after this long")
    args = ap.parse_args(argv)
    settings = Settings() if args.data_dir is None else Settings(data_dir=args.data_dir)
    data_dir = settings.resolved_data_dir()
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    if bootstrap is None:
        from infra.endpoints import resolve_endpoints

        bootstrap = resolve_endpoints(settings).kafka_bootstrap
    url = args.clickhouse_url or clickhouse_url(settings)
    target = parse_clickhouse_url(url)
    client = clickhouse_client(url)
    projector = Projector(bootstrap, client, codec_from_settings(settings), args.namespace,
                          audit=not args.no_audit, batch_ms=args.batch_ms)
    crash_file = os.environ.get("CSP_PROJECTOR_HOLD_BEFORE_COMMIT")  # tests: hold a batch uncommitted
    if crash_file:
        def hold(plan: Plan) -> None:
            Path(crash_file).write_text(plan.token)
            time.sleep(3600)
        projector.sink.before_commit = hold
    server = None
    if target.kind == "chdb" and args.sql_port >= 0:
        # a client of its own: its session is read-only for good (readonly cannot be reset)
        server = SqlServer(sql_password(data_dir), chdb_executor(clickhouse_client(url)), projector.sink.lock,
                           port=args.sql_port).start()
    state = {"pid": os.getpid(), "bootstrap": bootstrap, "clickhouse_url": url, "namespace": args.namespace,
             "sql_url": server.url if server else None, "audit": projector.audit_status, "started_at": time.time()}
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_state(data_dir, state)
    print(f"projector on {bootstrap} -> {url}; sql {state['sql_url'] or '-'}; audit: {projector.audit_status}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        asyncio.run(projector.run(stop))
    finally:
        if server is not None:
            server.stop()
        current = read_state(data_dir)
        if current is not None and current.get("pid") == os.getpid():
            (data_dir / STATE_FILE).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
