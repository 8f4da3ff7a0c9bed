"""A runtime worker: ``python -m processors.csp.runtime.worker``.

Joins the runtime's consumer group on ``csp.commands`` and runs the
:class:`~processors.csp.runtime.processor.RuntimeProcessor` on the engine
(exactly-once by default) until SIGTERM/SIGINT. Workers with the same
namespace share the partitions (scale-out). Each worker has a unique id by default
(``<host>-<pid>-<random>``, see :func:`default_worker_id`); transactional ids are per
input partition (``<group>-<topic>-<partition>``), so whichever worker takes a partition
over fences the previous owner of that partition and aborts its unfinished transaction.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
import uuid
from types import FrameType

from infra.settings import Settings
from processors.csp.runtime.processor import DEFAULT_SNAPSHOT_EVERY, RuntimeProcessor, tune_gc
from processors.csp.runtime.registry import DeploymentStore
from processors.csp.runtime.signing import TrustPolicy
from processors.csp.runtime.step import DEFAULT_BOUND
from processors.csp.runtime.topics import RuntimeTopics
from schemas.codec import codec_from_settings
from streams.admin import ensure_topics
from streams.engine import Engine, EngineConfig
from streams.logs import configure_logging

# a worker exits at the latest this long after SIGTERM/SIGINT (docs/runtime.md promises 10 s)
STOP_GRACE_S = 8.0
EXIT_FORCED = 143


def default_worker_id() -> str:
    """A worker id unique to this process: ``<host>-<pid>-<6 hex digits>``."""
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def build_engine(
    bootstrap: str,
    settings: Settings,
    *,
    namespace: str = "",
    worker_id: str | None = None,
    exactly_once: bool = True,
    batch_size: int = 5000,
    bound: int = DEFAULT_BOUND,
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
) -> tuple[Engine, RuntimeProcessor]:
    topics = RuntimeTopics(namespace)
    ensure_topics(bootstrap, topics.specs())
    codec = codec_from_settings(settings)
    store = DeploymentStore(
        bootstrap,
        codec,
        topics,
        trust=TrustPolicy.from_settings(settings),
        compiled_dir=settings.resolved_data_dir() / "compiled",
    )
    proc = RuntimeProcessor(store, codec, topics, bound=bound, snapshot_every=snapshot_every)
    config = EngineConfig(
        bootstrap=bootstrap,
        exactly_once=exactly_once,
        batch_size=batch_size,
        worker_id=worker_id or default_worker_id(),
        session_timeout_ms=settings.session_timeout_ms,
        metrics_port=settings.metrics_port,
        metrics_host=settings.metrics_host,
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
    ap.add_argument("--worker-id", default=None, help="default: unique (<host>-<pid>-<random>)")
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
    worker_id = args.worker_id or default_worker_id()
    stop = threading.Event()
    tune_gc()

    stopping_since: list[float] = []

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        if stop.is_set():  # a second signal: the graceful stop is stuck (e.g. the broker is gone)
            print("runtime worker: second signal, exiting now", file=sys.stderr, flush=True)
            os._exit(130)
        stopping_since.append(time.monotonic())
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"runtime worker {worker_id} on {bootstrap} (namespace {args.namespace or '-'})", flush=True)
    bridge = (
        None
        if args.no_channels
        else start_bridge_thread(bootstrap, settings, stop, args.namespace, worker_id)
    )
    # the engine runs on a thread, so this (main) thread always answers signals, even while the
    # engine waits on the broker inside a client call
    result: list[int] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(
                run_worker(
                    bootstrap,
                    settings,
                    stop,
                    namespace=args.namespace,
                    worker_id=worker_id,
                    exactly_once=not args.at_least_once,
                    batch_size=args.batch_size,
                    bound=args.bound,
                    snapshot_every=args.snapshot_every,
                )
            )
        except BaseException as exc:  # re-raised on the main thread
            failure.append(exc)

    engine_thread = threading.Thread(target=run, name="csp-runtime-engine", daemon=True)
    engine_thread.start()
    while engine_thread.is_alive():
        engine_thread.join(0.2)
        if (
            stopping_since
            and time.monotonic() - stopping_since[0] > STOP_GRACE_S
            and engine_thread.is_alive()
        ):
            print(
                f"runtime worker {worker_id}: not stopped {STOP_GRACE_S:.0f}s after the signal (the broker is "
                "not answering?); exiting now. Uncommitted work is redone by the next worker.",
                file=sys.stderr,
                flush=True,
            )
            os._exit(EXIT_FORCED)
    if bridge is not None:
        bridge.join(30)
    if failure:
        raise failure[0]
    print(f"runtime worker {worker_id} stopped after {result[0] if result else 0} commands", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
