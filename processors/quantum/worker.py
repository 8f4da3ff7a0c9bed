"""A quantum worker: ``python -m processors.quantum.worker`` (also ``csp quantum worker``).

Joins the ``quantum`` consumer group on ``quantum.requests`` and runs the
:class:`~processors.quantum.processor.QuantumProcessor` on the engine (exactly-once)
until SIGTERM/SIGINT. Run ONE worker per namespace: the pair registry is global to the
worker (an entangle and the teleport that uses its pair may arrive on different partitions).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from infra.settings import Settings
from processors.quantum.processor import QuantumProcessor
from processors.quantum.spec import Limits
from processors.quantum.topics import QuantumTopics
from schemas.codec import codec_from_settings
from streams.admin import ensure_topics
from streams.engine import Engine, EngineConfig
from streams.logs import configure_logging

# requests per engine batch: a batch is simulated before its transaction and must stay well within the
# consumer's max.poll.interval.ms (at about 0.2 ms per shot, 100 teleports of 1024 shots take about 20 s)
DEFAULT_BATCH = 100


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_qubits=settings.quantum_max_qubits,
        max_depth=settings.quantum_max_depth,
        max_shots=settings.quantum_max_shots,
    )


def build_engine(
    bootstrap: str,
    settings: Settings,
    *,
    namespace: str = "",
    worker_id: str = "0",
    batch_size: int = DEFAULT_BATCH,
) -> tuple[Engine, QuantumProcessor]:
    topics = QuantumTopics(namespace)
    ensure_topics(bootstrap, topics.specs())
    codec = codec_from_settings(settings)
    proc = QuantumProcessor(
        codec, topics, limits=limits_from(settings), threshold=settings.quantum_fidelity_threshold
    )
    config = EngineConfig(
        bootstrap=bootstrap,
        batch_size=batch_size,
        worker_id=worker_id,
        session_timeout_ms=settings.session_timeout_ms,
        metrics_port=settings.metrics_port,
    )
    return Engine(proc, codec, config), proc


def resolve_bootstrap(settings: Settings, bootstrap: str | None) -> str:
    if bootstrap or settings.kafka_bootstrap:
        return str(bootstrap or settings.kafka_bootstrap)
    from infra.stack import resolve_endpoints

    return resolve_endpoints(settings).kafka_bootstrap


def serve(
    bootstrap: str,
    settings: Settings,
    *,
    namespace: str = "",
    worker_id: str = "0",
    batch_size: int = DEFAULT_BATCH,
) -> int:
    """Run a worker in the foreground until SIGTERM/SIGINT; returns the number of requests processed."""
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            print("quantum worker: second signal, exiting now", file=sys.stderr, flush=True)
            os._exit(130)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    engine, _proc = build_engine(
        bootstrap, settings, namespace=namespace, worker_id=worker_id, batch_size=batch_size
    )
    print(f"quantum worker {worker_id} on {bootstrap} (namespace {namespace or '-'})", flush=True)
    n = engine.run(stop)
    print(f"quantum worker {worker_id} stopped after {n} requests", flush=True)
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="csp-quantum-worker", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    ap.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default: settings / embedded stack)")
    ap.add_argument("--namespace", default="", help="topic namespace (tests)")
    ap.add_argument("--worker-id", default="0")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    args = ap.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    bootstrap = resolve_bootstrap(settings, args.bootstrap)
    serve(bootstrap, settings, namespace=args.namespace, worker_id=args.worker_id, batch_size=args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
