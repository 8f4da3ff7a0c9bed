"""Running the channel bridge: ``python -m processors.channels.worker`` (``csp worker`` runs it too).

The bridge's input topics follow the registry: a live consumer on ``csp.registry`` notices new
deployments, links and bindings, and the bridge resubscribes (no fence records are written).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from confluent_kafka import Consumer, TopicPartition

from infra.settings import Settings
from processors.channels.bridge import ChannelBridge
from processors.csp.runtime.registry import DeploymentStore
from processors.csp.runtime.topics import RuntimeTopics
from schemas.codec import codec_from_settings
from streams.admin import ensure_topics, list_topics
from streams.clients import consumer_config
from streams.engine import MARKER_HEADER, Engine, EngineConfig

RECHECK_S = 5.0  # re-read the topic list this often while a routed topic is missing


def _is_marker(headers: object) -> bool:
    if isinstance(headers, dict):
        return MARKER_HEADER in headers
    return isinstance(headers, list) and any(k == MARKER_HEADER for k, _v in headers)


def build_bridge(
    bootstrap: str,
    settings: Settings,
    *,
    namespace: str = "",
    worker_id: str = "0",
    exactly_once: bool = True,
    batch_size: int = 5000,
) -> tuple[Engine, ChannelBridge]:
    topics = RuntimeTopics(namespace)
    ensure_topics(bootstrap, topics.specs())
    codec = codec_from_settings(settings)
    bridge = ChannelBridge(DeploymentStore(bootstrap, codec, topics), codec, topics)
    config = EngineConfig(
        bootstrap=bootstrap,
        exactly_once=exactly_once,
        batch_size=batch_size,
        worker_id=worker_id,
        session_timeout_ms=settings.session_timeout_ms,
    )
    return Engine(bridge, codec, config), bridge


def run_bridge(engine: Engine, bridge: ChannelBridge, stop: threading.Event, *, idle_s: float = 0.2) -> int:
    """Run until ``stop``; returns the number of records processed."""
    bootstrap = engine.config.bootstrap
    watch = Consumer(  # quiet while the broker is down, like the engine's own clients
        consumer_config(bootstrap, f"{bridge.name}-registry-watch", **{"enable.partition.eof": False},
                        **engine.client_logging())
    )
    watch.assign([TopicPartition(bridge.topics.registry, 0, 0)])
    bridge.refresh(list_topics(bootstrap))
    engine.start()
    last_check = time.monotonic()
    try:
        while not stop.is_set():
            # a new registry record (not a reader's fence: refreshing writes one)
            changed = any(
                m.error() is None and m.value() is not None and not _is_marker(m.headers())
                for m in watch.consume(1000, 0)
            )
            now = time.monotonic()
            if changed or (bridge.missing and now - last_check > RECHECK_S):
                last_check = now
                if bridge.refresh(list_topics(bootstrap)):
                    engine.resubscribe(bridge.inputs)
            if bridge.inputs:
                engine.run_once()
            else:
                stop.wait(idle_s)
    finally:
        watch.close()
        engine.close()
    return engine.processed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="csp-channel-bridge", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    ap.add_argument("--bootstrap", default=None)
    ap.add_argument("--namespace", default="")
    ap.add_argument("--worker-id", default="0")
    args = ap.parse_args(argv)
    settings = Settings()
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    if not bootstrap:
        from infra.stack import resolve_endpoints

        bootstrap = resolve_endpoints(settings).kafka_bootstrap
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    engine, bridge = build_bridge(bootstrap, settings, namespace=args.namespace, worker_id=args.worker_id)
    n = run_bridge(engine, bridge, stop)
    print(f"channel bridge {args.worker_id} stopped after {n} records", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
