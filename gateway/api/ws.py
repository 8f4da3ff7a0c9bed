"""WebSocket ``/ws``: live events, refusals, channel messages and metrics, filtered and resumable.

Protocol (JSON text frames). The client sends::

    {"action": "subscribe", "channels": ["events", "refusals", "metrics", "buffer.right"],
     "system": "buffer", "instance": "buffer-1a2b",            # optional filters
     "from": "now" | "beginning",                               # where to start (default: now)
     "offsets": {"csp.events": {"0": 42}}}                      # resume: next offset per topic/partition

and receives ``{"stream": "events"|"refusals"|"channel"|"metrics", "topic", "partition", "offset",
"record"}`` frames (``metrics``: ``{"stream": "metrics", "data": {...}}`` every second).

Live subscriptions share one Kafka consumer per app (the :class:`Hub`); resumed ones
(``from``/``offsets``) get a consumer of their own. Each client has a bounded queue: a
client that falls ``ws_queue`` messages behind is closed with code 4008 ("slow consumer"),
so a slow client never slows the platform or the other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, TopicPartition
from fastapi import WebSocket, WebSocketDisconnect

from gateway.api.backend import jsonable
from gateway.api.problems import Problem
from gateway.api.security import authenticate
from streams.admin import list_topics
from streams.clients import consume_available, consumer_config

if TYPE_CHECKING:
    from gateway.api.context import Context

SLOW_CONSUMER = 4008
POLICY = 1008
UNAUTHORIZED = 4401
STREAMS = ("events", "refusals", "metrics")


@dataclass
class Frame:
    stream: str
    topic: str
    partition: int
    offset: int
    system: str | None
    instance: str | None
    text: str  # serialised once, sent to every subscriber
    key: tuple[str, int, str] | None = None  # dedupe key of events and refusals


@dataclass(eq=False)
class Subscription:
    ws: WebSocket
    queue: asyncio.Queue[str | None]
    streams: set[str] = field(default_factory=set)  # "events", "refusals", "metrics"
    channel_topics: set[str] = field(default_factory=set)
    system: str | None = None
    instance: str | None = None
    dropped: bool = False
    sent: int = 0

    def wants(self, f: Frame) -> bool:
        if f.stream == "channel":
            if f.topic not in self.channel_topics:
                return False
        elif f.stream not in self.streams:
            return False
        return (self.system is None or f.system == self.system) and (
            self.instance is None or f.instance == self.instance
        )


def decode_frame(ctx: Context, topic: str, partition: int, offset: int, value: bytes) -> Frame | None:
    t = ctx.backend.platform.topics
    try:
        name, rec = ctx.backend.platform.codec.decode(value)
    except Exception:  # noqa: BLE001 - not ours to show
        return None
    stream = {t.events: "events", t.refusals: "refusals"}.get(topic, "channel")
    if stream == "channel" and name != "ChannelMessage":
        return None
    doc = {"stream": stream, "topic": topic, "partition": partition, "offset": offset, "record": jsonable(rec)}
    key = None if stream == "channel" else (topic, int(rec.get("seq") or -1), str(rec.get("command_id") if stream == "refusals" else rec.get("instance_id")))
    return Frame(stream, topic, partition, offset, rec.get("system"), rec.get("instance_id"), json.dumps(doc), key)


class _Reader:
    """A consumer thread over some topic-partitions, handing decoded frames to ``deliver`` on the loop."""

    def __init__(self, ctx: Context, loop: asyncio.AbstractEventLoop, deliver: Callable[[list[Frame]], None]) -> None:
        self.ctx = ctx
        self.loop = loop
        self.deliver = deliver
        self.stop = threading.Event()
        self.pending: list[TopicPartition] = []
        self.lock = threading.Lock()
        self.seen: OrderedDict[tuple[str, int, str], None] = OrderedDict()
        self.thread = threading.Thread(target=self._run, daemon=True, name="csp-ws-reader")
        self.thread.start()

    def assign(self, tps: list[TopicPartition]) -> None:
        with self.lock:
            self.pending += tps

    def _dedupe(self, f: Frame) -> bool:
        key = f.key
        if key is None:
            return False
        if key in self.seen:
            return True
        self.seen[key] = None
        if len(self.seen) > 200_000:
            self.seen.popitem(last=False)
        return False

    def _run(self) -> None:
        conf = consumer_config(self.ctx.backend.platform.bootstrap, f"csp-ws-{uuid.uuid4().hex}",
                               **{"enable.partition.eof": False})  # fmt: skip
        consumer = Consumer(conf)
        try:
            while not self.stop.is_set():
                with self.lock:
                    new, self.pending = self.pending, []
                if new:
                    consumer.incremental_assign(new)
                msgs = consume_available(consumer, 100, 0.05)  # small batches: a burst is not mistaken for a slow client
                frames = []
                for m in msgs:
                    if m.error() is not None or m.value() is None:
                        continue
                    f = decode_frame(self.ctx, m.topic() or "", m.partition() or 0, m.offset() or 0, m.value() or b"")
                    if f is not None and not self._dedupe(f):
                        frames.append(f)
                if frames and not self.loop.is_closed():
                    self.loop.call_soon_threadsafe(self.deliver, frames)
        finally:
            consumer.close()

    def close(self) -> None:
        self.stop.set()


class Hub:
    """Live fan-out: one shared reader (from "now") and the subscriptions it feeds (loop thread only)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.subs: set[Subscription] = set()
        self.reader: _Reader | None = None
        self.assigned: set[str] = set()
        self.metrics_task: asyncio.Task[None] | None = None

    def _start_offsets(self, topic: str) -> list[TopicPartition]:
        p = self.ctx.backend.platform
        n = list_topics(p.bootstrap).get(topic, 0)
        with self.ctx.backend.lock:
            return [TopicPartition(topic, i, p.fence(topic, i)) for i in range(n)]

    async def ensure_topics(self, topics: set[str]) -> None:
        new = topics - self.assigned
        if not new:
            return
        self.assigned |= new
        loop = asyncio.get_running_loop()
        if self.reader is None:
            self.reader = _Reader(self.ctx, loop, self.dispatch)
        tps: list[TopicPartition] = []
        for topic in sorted(new):
            tps += await asyncio.to_thread(self._start_offsets, topic)
        self.reader.assign(tps)
        if self.metrics_task is None:
            self.metrics_task = asyncio.create_task(self._metrics())

    def dispatch(self, frames: list[Frame]) -> None:
        for sub in list(self.subs):
            offer(self.ctx, sub, [f.text for f in frames if sub.wants(f)])

    async def _metrics(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            wanting = [s for s in self.subs if "metrics" in s.streams]
            if not wanting:
                continue
            data = await asyncio.to_thread(self.ctx.live)
            text = json.dumps({"stream": "metrics", "data": data})
            for sub in wanting:
                offer(self.ctx, sub, [text])

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.metrics_task is not None:
            self.metrics_task.cancel()


def offer(ctx: Context, sub: Subscription, texts: list[str]) -> None:
    """Queue frames for ``sub``; a client whose queue is full is dropped (never waited for)."""
    if sub.dropped:
        return
    for text in texts:
        if sub.queue.full():
            sub.dropped = True
            ctx.metrics.ws_dropped.inc()
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.get_nowait()
                sub.queue.put_nowait(None)  # wakes the sender, which closes with SLOW_CONSUMER
            return
        sub.queue.put_nowait(text)


def _ws_credentials(ws: WebSocket) -> tuple[str, str] | None:
    token = ws.query_params.get("token")
    if token:
        return ("key", token) if token.startswith("csp_") else ("token", token)
    key = ws.headers.get("x-api-key")
    if key:
        return "key", key
    auth = ws.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        v = auth[7:].strip()
        return ("key", v) if v.startswith("csp_") else ("token", v)
    return None


async def endpoint(ws: WebSocket) -> None:
    ctx: Context = ws.app.state.ctx
    client_ip = ws.client.host if ws.client else "?"
    if ctx.ip_limits.take(f"ip:{client_ip}") > 0:
        await ws.close(code=1013, reason="rate limited")
        return
    cred = _ws_credentials(ws)
    try:
        if cred is None:
            raise Problem(401, "Unauthorized", "no credentials: pass ?token=<access token or API key>")
        await asyncio.to_thread(authenticate, ctx, *cred)
    except Problem as p:
        await ws.accept()  # accepted to say why: a close before the handshake is a bare 403
        await ws.close(code=UNAUTHORIZED, reason=p.detail[:120])
        return
    await ws.accept()
    sub = Subscription(ws, asyncio.Queue(maxsize=ctx.config.ws_queue))
    ctx.metrics.ws_clients.inc()
    sender = asyncio.create_task(_send(ctx, sub))
    own: _Reader | None = None
    try:
        while True:
            try:
                msg = json.loads(await ws.receive_text())
            except json.JSONDecodeError:
                await ws.send_text(json.dumps({"error": "frames must be JSON"}))
                continue
            if not isinstance(msg, dict) or msg.get("action") not in ("subscribe", "unsubscribe", "ping"):
                await ws.send_text(json.dumps({"error": "action must be subscribe, unsubscribe or ping"}))
                continue
            if msg["action"] == "ping":
                await ws.send_text(json.dumps({"pong": int(time.time() * 1000)}))
                continue
            if msg["action"] == "unsubscribe":
                sub.streams.clear()
                sub.channel_topics.clear()
                ctx.hub.subs.discard(sub) if ctx.hub else None
                continue
            error, topics = _parse(ctx, sub, msg)
            if error:
                await ws.send_text(json.dumps({"error": error}))
                continue
            resume = msg.get("offsets") or msg.get("from") == "beginning"
            if resume:
                if own is not None:
                    own.close()
                own = _Reader(ctx, asyncio.get_running_loop(),
                              lambda frames: offer(ctx, sub, [f.text for f in frames if sub.wants(f)]))  # fmt: skip
                own.assign(await asyncio.to_thread(_resume_offsets, ctx, topics, msg))
            else:
                assert ctx.hub is not None
                await ctx.hub.ensure_topics(topics)
                ctx.hub.subs.add(sub)
            if "metrics" in sub.streams and ctx.hub is not None:
                ctx.hub.subs.add(sub)
                if ctx.hub.metrics_task is None:
                    ctx.hub.metrics_task = asyncio.create_task(ctx.hub._metrics())
            await ws.send_text(json.dumps({"subscribed": sorted(sub.streams) + sorted(sub.channel_topics),
                                           "system": sub.system, "instance": sub.instance}))  # fmt: skip
    except WebSocketDisconnect:
        pass
    except RuntimeError:  # the sender closed the socket (slow consumer)
        pass
    finally:
        if ctx.hub is not None:
            ctx.hub.subs.discard(sub)
        if own is not None:
            own.close()
        sender.cancel()
        ctx.metrics.ws_clients.dec()


def _parse(ctx: Context, sub: Subscription, msg: Mapping[str, Any]) -> tuple[str | None, set[str]]:
    chans = msg.get("channels")
    if not isinstance(chans, list) or not chans or not all(isinstance(c, str) for c in chans):
        return "channels must be a non-empty list of: events, refusals, metrics, <system>.<channel>", set()
    topics: set[str] = set()
    t = ctx.backend.platform.topics
    for c in chans:
        if c in STREAMS:
            sub.streams.add(c)
            if c == "events":
                topics.add(t.events)
            elif c == "refusals":
                topics.add(t.refusals)
        else:
            system, sep, channel = c.partition(".")
            if not sep:
                return f"unknown stream {c!r}: use events, refusals, metrics or <system>.<channel>", set()
            dep = ctx.backend.deployment(system)
            if dep is None or channel not in dep.channels:
                return f"no channel {c!r} is deployed", set()
            topic = ctx.backend.channel_topic(system, channel)
            sub.channel_topics.add(topic)
            topics.add(topic)
    for k in ("system", "instance"):
        v = msg.get(k)
        if v is not None and not isinstance(v, str):
            return f"{k} must be a string", set()
    sub.system, sub.instance = msg.get("system"), msg.get("instance")
    return None, topics


def _resume_offsets(ctx: Context, topics: set[str], msg: Mapping[str, Any]) -> list[TopicPartition]:
    offsets = msg.get("offsets") or {}
    parts = list_topics(ctx.backend.platform.bootstrap)
    out = []
    for topic in sorted(topics):
        given = offsets.get(topic, {}) if isinstance(offsets, dict) else {}
        for p in range(parts.get(topic, 0)):
            start = given.get(str(p), given.get(p)) if isinstance(given, dict) else None
            out.append(TopicPartition(topic, p, int(start) if start is not None else 0))
    return out


async def _send(ctx: Context, sub: Subscription) -> None:
    try:
        while True:
            text = await sub.queue.get()
            if text is None or sub.dropped:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sub.ws.close(code=SLOW_CONSUMER, reason=(
                        f"slow consumer: more than {ctx.config.ws_queue} messages queued")), 5)  # fmt: skip
                return
            await sub.ws.send_text(text)
            sub.sent += 1
            ctx.metrics.ws_messages.inc()
    except Exception:  # noqa: BLE001 - the client went away
        return
