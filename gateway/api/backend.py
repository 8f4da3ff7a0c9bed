"""The platform as the API sees it: the SDK's :class:`Platform`, serialised by a lock.

The SDK client shares one producer and one result consumer, so runtime commands go
through one lock; reads that build their own consumers (long-polls, WebSockets) do not.
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

from gateway.sdk import Instance, OfferResult, Platform
from processors.csp.runtime.deploy import Plan
from processors.csp.runtime.model import Deployment
from processors.csp.runtime.model import Instance as InstanceState
from streams.admin import list_topics
from streams.clients import consumer_config


class Backend:
    def __init__(self, platform: Platform, cache_s: float = 1.0) -> None:
        self.platform = platform
        self.lock = threading.RLock()
        self.cache_s = cache_s
        self._instances: tuple[float, list[InstanceState]] = (0.0, [])
        self._systems: tuple[float, dict[str, list[int]]] = (0.0, {})
        self.uploads = platform.settings.resolved_data_dir() / "api" / "uploads"

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
            with self.lock:
                cached = self.platform.instances()
            self._instances = (time.monotonic(), cached)
        return cached

    def start(self, system: str, version: int | None, params: Mapping[str, str], timeout_s: float) -> Instance:
        with self.lock:
            inst = self.platform.start(system, version=version, params=params, timeout_s=timeout_s)
        self._instances = (0.0, [])
        return inst

    def offer(self, instance_id: str, event: str, timeout_s: float) -> OfferResult:
        with self.lock:
            return self.platform.offer(instance_id, event, timeout_s=timeout_s)

    def stop(self, instance_id: str, timeout_s: float) -> Mapping[str, Any]:
        with self.lock:
            out = self.platform.stop(instance_id, timeout_s=timeout_s)
        self._instances = (0.0, [])
        return out

    def trace(self, instance_id: str, until: int | None) -> list[dict[str, Any]]:
        with self.lock:
            rep = self.platform.replay(instance_id, until)
        return [dict(e) for e in rep.trace]

    def refusals(self, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            out = self.platform.refusals()
        return out[-limit:]

    def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """The newest DeadLetter records of every ``*.dlq`` topic."""
        out: list[dict[str, Any]] = []
        for topic, parts in sorted(list_topics(self.platform.bootstrap).items()):
            if topic.endswith(".dlq"):
                with self.lock:
                    rows = self.platform.read(topic, "DeadLetter", range(parts))
                out += [{**{k: v for k, v in r.items() if not isinstance(v, bytes)}, "dlq_topic": topic} for r in rows]
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
                msgs = consumer.consume(max_messages, max(0.05, min(left, 0.2)) if left > 0 else 0.05)
                for msg in msgs:
                    if msg.error() is not None:
                        continue
                    nxt[msg.partition()] = msg.offset() + 1
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
