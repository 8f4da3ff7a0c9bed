"""A runtime worker: ``python -m processors.csp.runtime.worker``.

Joins the runtime's consumer group on ``csp.commands`` and runs the
:class:`~processors.csp.runtime.processor.RuntimeProcessor` on the engine
(exactly-once by default) until SIGTERM/SIGINT. Workers with the same
namespace share the partitions (scale-out); a restarted worker with the same
``--worker-id`` fences its previous incarnation's transactions.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from infra.settings import Settings
from processors.csp.runtime.processor import DEFAULT_SNAPSHOT_EVERY, RuntimeProcessor, tune_gc
from processors.csp.runtime.registry import DeploymentStore
from processors.csp.runtime.step import DEFAULT_BOUND
from processors.csp.runtime.topics import RuntimeTopics
from schemas.codec import codec_from_settings
from streams.admin import ensure_topics
from streams.engine import Engine, EngineConfig
from streams.logs import configure_logging


def build_engine(
    bootstrap: str,
    settings: Settings,
    *,
    namespace: str = "",
    worker_id: str = "0",
    exactly_once: bool = True,
    batch_size: int = 5000,
    bound: int = DEFAULT_BOUND,
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
) -> tuple[Engine, RuntimeProcessor]:
    topics = RuntimeTopics(namespace)
    ensure_topics(bootstrap, topics.specs())
    codec = codec_from_settings(settings)
    store = DeploymentStore(bootstrap, codec, topics)
    proc = RuntimeProcessor(store, codec, topics, bound=bound, snapshot_every=snapshot_every)
    config = EngineConfig(
        bootstrap=bootstrap,
        exactly_once=exactly_once,
        batch_size=batch_size,
        worker_id=worker_id,
        session_timeout_ms=settings.session_timeout_ms,
        metrics_port=settings.metrics_port,
    )
    return Engine(proc, codec, config), proc


def run_worker(
    bootstrap: str,
    settings: Settings,
    stop: threading.Event,
    **kwargs: object,
) -> int:
    engine, _proc = build_engine(bootstrap, settings, **kwargs)  # type: ignore[arg-type]
    return engine.run(stop)


def start_bridge_thread(
    bootstrap: str, settings: Settings, stop: threading.Event, namespace: str, worker_id: str
) -> threading.Thread:
    """The channel bridge (processors/channels) in a thread of this worker."""
    from processors.channels.worker import build_bridge, run_bridge

    engine, bridge = build_bridge(bootstrap, settings, namespace=namespace, worker_id=worker_id)

    def run() -> None:
        try:
            run_bridge(engine, bridge, stop)
        except Exception as exc:  # the runtime keeps running; the bridge's error is logged
            print(f"channel bridge failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    t = threading.Thread(target=run, name="channel-bridge", daemon=True)
    t.start()
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="csp-runtime-worker", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    ap.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default: settings / embedded stack)")
    ap.add_argument("--namespace", default="", help="topic namespace (tests)")
    ap.add_argument("--worker-id", default="0")
    ap.add_argument("--at-least-once", action="store_true", help="no transactions")
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--bound", type=int, default=DEFAULT_BOUND, help="max τ/output steps per command")
    ap.add_argument("--snapshot-every", type=int, default=DEFAULT_SNAPSHOT_EVERY)
    ap.add_argument("--no-channels", action="store_true", help="do not run the channel bridge in this worker")
    args = ap.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    if not bootstrap:
        from infra.stack import resolve_endpoints

        bootstrap = resolve_endpoints(settings).kafka_bootstrap
    stop = threading.Event()
    tune_gc()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        if stop.is_set():  # a second signal: the graceful stop is stuck (e.g. the broker is gone)
            print("runtime worker: second signal, exiting now", file=sys.stderr, flush=True)
            os._exit(130)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"runtime worker {args.worker_id} on {bootstrap} (namespace {args.namespace or '-'})", flush=True)
    bridge = (
        None
        if args.no_channels
        else start_bridge_thread(bootstrap, settings, stop, args.namespace, args.worker_id)
    )
    n = run_worker(
        bootstrap,
        settings,
        stop,
        namespace=args.namespace,
        worker_id=args.worker_id,
        exactly_once=not args.at_least_once,
        batch_size=args.batch_size,
        bound=args.bound,
        snapshot_every=args.snapshot_every,
    )
    if bridge is not None:
        bridge.join(30)
    print(f"runtime worker {args.worker_id} stopped after {n} commands", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
