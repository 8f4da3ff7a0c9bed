"""The platform as the API sees it: the SDK's :class:`Platform`, serialised by a lock.

The SDK client shares one producer and one result consumer, so its runtime commands (deploy,
start, stop) go through one lock. Offers do not: :attr:`Backend.offers` sends them from the
event loop, any number in flight (:mod:`gateway.api.offers`). Reads build their own consumers
and write nothing.
Instance listings are folded from the log and cached for ``cache_s`` seconds.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from gateway.sdk import Instance, Platform
from processors.csp.runtime import fold
from processors.csp.runtime.deploy import Plan
from processors.csp.runtime.model import Deployment
from processors.csp.runtime.model import Instance as InstanceState
from streams.admin import list_topics
from streams.clients import consume_available, consumer_config


class ScanError(RuntimeError):
    """A scan of the log did not reach its fences in time."""


class Backend:
    def __init__(self, platform: Platform, cache_s: float = 1.0) -> None:
        from gateway.api.offers import OfferPump

        self.platform = platform
        self.offers = OfferPump(platform)  # offers: async, concurrent, no lock
        self.lock = threading.RLock()
        self.cache_s = cache_s
        self._instances: tuple[float, list[InstanceState]] = (0.0, [])
        self._systems: tuple[float, dict[str, list[int]]] = (0.0, {})
        self.uploads = platform.settings.resolved_data_dir() / "api" / "uploads"

    def scan(self, tps: Sequence[tuple[str, int]], timeout_s: float = 30.0) -> dict[tuple[str, int], list[bytes]]:
        """Every record value of the topic-partitions ``tps`` up to now, with one consumer.

        Writes nothing: each partition is read to its EOF (see :mod:`streams.reader`; the
        embedded broker's ListOffsets is not trusted). Value-less records are skipped."""
        from streams.reader import ReadTimeout, read_ranges

        out: dict[tuple[str, int], list[bytes]] = {tp: [] for tp in tps}
        try:
            for topic, p, _offset, value, _ts in read_ranges(
                self.platform.bootstrap, dict.fromkeys(tps, 0), timeout_s=timeout_s
            ):
                if value is not None:
                    out[(topic, p)].append(value)
        except ReadTimeout as exc:
            raise ScanError(str(exc)) from None
        return out

    def records(self, topics: Sequence[str], schema: str) -> list[dict[str, Any]]:
        parts = list_topics(self.platform.bootstrap)
        tps = [(t, p) for t in topics for p in range(parts.get(t, 0))]
        out: list[dict[str, Any]] = []
        for values in self.scan(tps).values():
            for v in values:
                try:
                    name, rec = self.platform.codec.decode(v)
                except Exception:  # noqa: BLE001 - not a record of ours
                    continue
                if name == schema:
                    out.append(rec)
        return out

    @contextmanager
    def locked(self) -> Iterator[Platform]:
        with self.lock:
            yield self.platform

    # -- systems -------------------------------------------------------------------

    def systems(self, fresh: bool = False) -> dict[str, list[int]]:
        at, cached = self._systems
        if fresh or time.monotonic() - at > self.cache_s:
            with self.lock:
                cached = self.platform.systems()
            self._systems = (time.monotonic(), cached)
        return cached

    def deployment(self, system: str, version: int | None = None) -> Deployment | None:
        versions = self.systems().get(system) or self.systems(fresh=True).get(system)
        if not versions:
            return None
        with self.lock:
            return self.platform.store.lookup(system, version or versions[-1])

    def deploy(
        self, source: str, process: str, name: str | None, outputs: Sequence[str], force: bool, file_name: str
    ) -> Plan:
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(file_name).name) or "system.csp"
        path = self.uploads / digest / safe
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        with self.lock:
            plan = self.platform.deploy(path, process, name=name, outputs=outputs, force=force)
        self._systems = (0.0, {})
        return plan

    # -- instances -----------------------------------------------------------------

    def instances(self, fresh: bool = False) -> list[InstanceState]:
        at, cached = self._instances
        if fresh or time.monotonic() - at > self.cache_s:
            t = self.platform.topics
            parts = list_topics(self.platform.bootstrap)
            tps = [(topic, p) for topic in (t.snapshots, t.events) for p in range(parts.get(topic, 0))]
            scanned = self.scan(tps)
            snaps: list[dict[str, Any]] = []
            evs: list[dict[str, Any]] = []
            for (_topic, _p), values in scanned.items():
                for v in values:
                    try:
                        name, rec = self.platform.codec.decode(v)
                    except Exception:  # noqa: BLE001
                        continue
                    if name == "CspSnapshot":
                        snaps.append(rec)
                    elif name == "CspEvent":
                        evs.append(rec)
            with self.lock:
                self.platform.store.refresh()
                got = fold.recover(snaps, evs, None, self.platform.store.lookup, strict=False)
            cached = [got[k] for k in sorted(got)]
            self._instances = (time.monotonic(), cached)
        return cached

    def start(self, system: str, version: int | None, params: Mapping[str, str], timeout_s: float) -> Instance:
        with self.lock:
            inst = self.platform.start(system, version=version, params=params, timeout_s=timeout_s)
        self._instances = (0.0, [])
        return inst

    def stop(self, instance_id: str, timeout_s: float) -> Mapping[str, Any]:
        with self.lock:
            out = self.platform.stop(instance_id, timeout_s=timeout_s)
        self._instances = (0.0, [])
        return out

    def trace(self, instance_id: str, until: int | None) -> list[dict[str, Any]]:
        from gateway.sdk import PlatformError
        from processors.csp.runtime.partitioning import partition_for

        t = self.platform.topics
        part = partition_for(instance_id, self.platform.partitions)
        scanned = self.scan([(t.snapshots, part), (t.events, part)])
        snaps, evs = [], []
        for values in scanned.values():
            for v in values:
                try:
                    name, rec = self.platform.codec.decode(v)
                except Exception:  # noqa: BLE001
                    continue
                if rec.get("instance_id") != instance_id:
                    continue
                if name == "CspSnapshot":
                    snaps.append(rec)
                elif name == "CspEvent":
                    evs.append(rec)
        if not snaps and not evs:
            raise PlatformError(f"no instance {instance_id}")
        with self.lock:
            self.platform.store.refresh()
            rep = fold.replay(instance_id, snaps, evs, self.platform.store.lookup, until)
        return [dict(e) for e in rep.trace]

    def refusals(self, limit: int) -> list[dict[str, Any]]:
        seen: set[str] = set()
        out = []
        for r in self.records([self.platform.topics.refusals], "CspRefusal"):
            if r["command_id"] not in seen:
                seen.add(r["command_id"])
                out.append(r)
        out.sort(key=lambda r: int(r.get("timestamp") or 0))
        return out[-limit:]

    def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """The newest DeadLetter records of every ``*.dlq`` topic."""
        parts = list_topics(self.platform.bootstrap)
        tps = [(t, p) for t in sorted(parts) if t.endswith(".dlq") for p in range(parts[t])]
        out: list[dict[str, Any]] = []
        for (topic, _p), values in self.scan(tps).items():
            for v in values:
                try:
                    name, rec = self.platform.codec.decode(v)
                except Exception:  # noqa: BLE001
                    continue
                if name == "DeadLetter":
                    out.append({**{k: x for k, x in rec.items() if not isinstance(x, bytes)}, "dlq_topic": topic})
        out.sort(key=lambda r: int(r.get("timestamp") or 0))
        return out[-limit:]

    # -- channels ------------------------------------------------------------------

    def channel_topic(self, system: str, channel: str) -> str:
        return self.platform.topics.channel(system, channel)

    def receive(
        self, topic: str, offsets: Mapping[int, int] | None, timeout_s: float, max_messages: int,
        match: Mapping[str, str],
    ) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """Long-poll ``topic``: the ChannelMessages after ``offsets`` (None: from now) that match ``match``,
        waiting up to ``timeout_s`` for the first; returns them and the offsets to resume from."""
        nparts = list_topics(self.platform.bootstrap).get(topic, 0)
        if nparts == 0:
            return [], {}
        start: dict[int, int] = {}
        for p in range(nparts):
            if offsets is not None and p in offsets:
                start[p] = offsets[p]
            else:
                with self.lock:
                    start[p] = self.platform.fence(topic, p)
        consumer = Consumer(consumer_config(self.platform.bootstrap, f"csp-api-{uuid.uuid4().hex}",
                                            **{"enable.partition.eof": False}))  # fmt: skip
        got: list[dict[str, Any]] = []
        nxt = dict(start)
        try:
            consumer.assign([TopicPartition(topic, p, o) for p, o in start.items()])
            deadline = time.monotonic() + timeout_s
            while len(got) < max_messages:
                left = deadline - time.monotonic()
                if left <= 0 and not got:
                    break
                msgs = consume_available(consumer, max_messages, max(0.05, min(left, 0.2)) if left > 0 else 0.05)
                for msg in msgs:
                    if msg.error() is not None:
                        continue
                    nxt[msg.partition() or 0] = (msg.offset() or 0) + 1
                    if msg.value() is None:
                        continue
                    try:
                        name, rec = self.platform.codec.decode(msg.value() or b"")
                    except Exception:  # noqa: BLE001
                        continue
                    if name != "ChannelMessage" or any(str(rec.get(k)) != v for k, v in match.items()):
                        continue
                    got.append({**jsonable(rec), "partition": msg.partition(), "offset": msg.offset()})
                if (got and not msgs) or (left <= 0):
                    break
        finally:
            consumer.close()
        return got[:max_messages], nxt


def jsonable(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A decoded Avro record made JSON-safe (bytes as hex)."""
    out: dict[str, Any] = {}
    for k, v in rec.items():
        if isinstance(v, bytes):
            out[k] = v.hex()
        elif isinstance(v, Mapping):
            out[k] = jsonable(v)
        elif isinstance(v, list):
            out[k] = [jsonable(x) if isinstance(x, Mapping) else (x.hex() if isinstance(x, bytes) else x) for x in v]
        else:
            out[k] = v
    return out
