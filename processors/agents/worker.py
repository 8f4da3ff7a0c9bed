"""An agents worker: ``python -m processors.agents.worker``.

Runs, each on its own engine (exactly-once), the agent processor (``agents.requests`` →
model → ``agents.responses``, journaled, and a chosen event's offer on ``csp.commands``)
and the agent driver (instances bound to agents → requests; failed answers → the
protocol's ``on_error`` event), until SIGTERM/SIGINT.
The model endpoint is ``CSP_OPENAI_BASE_URL`` with ``CSP_OPENAI_API_KEY``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

import openai

from infra.settings import Settings
from processors.agents.driver import AgentDriver
from processors.agents.early import POLL_TIMEOUT_S
from processors.agents.llm import RetryPolicy
from processors.agents.processor import AgentProcessor
from processors.agents.registry import AgentRegistry
from processors.agents.topics import AgentTopics
from processors.csp.runtime.registry import DeploymentStore
from processors.csp.runtime.topics import RuntimeTopics
from schemas.codec import codec_from_settings
from streams.admin import ensure_topics
from streams.engine import Engine, EngineConfig
from streams.logs import configure_logging


class NoModelEndpoint(RuntimeError):
    """CSP_OPENAI_BASE_URL is not set."""


def client_factory(settings: Settings, base_url: str | None = None) -> Callable[[], openai.OpenAI]:
    url = base_url or settings.openai_base_url
    if not url:
        raise NoModelEndpoint("no model endpoint: set CSP_OPENAI_BASE_URL (an OpenAI-compatible /v1 URL)")

    def make() -> openai.OpenAI:
        return openai.OpenAI(base_url=url, api_key=settings.openai_api_key, max_retries=0)

    return make


def policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.agents_max_attempts,
        timeout_s=settings.agents_timeout_s,
        budget_s=settings.agents_budget_s,
    )


def build_engines(
    bootstrap: str,
    settings: Settings,
    *,
    namespace: str = "",
    worker_id: str = "0",
    base_url: str | None = None,
    batch_size: int = 500,
    concurrency: int = 8,
    driver: bool = True,
    processor: bool = True,
    policy: RetryPolicy | None = None,
    inline: bool = True,
) -> tuple[list[Engine], AgentProcessor | None, AgentDriver | None]:
    """The agent processor's and the driver's engines (either alone: separate processes, each
    with its own interpreter, share the machine's cores; in one process they share a GIL).

    Both in one process (and ``inline``): the driver has this process's agent processor call
    the model for each request it asks and, when the answer comes while the driver's batch is
    under way, puts the request, the response and the chosen event's offer out in its own
    transaction: a protocol step is two transactional hops (runtime → driver → runtime). The
    processor then runs without an early reader: other requests (service bindings, chats)
    start when its batch reads them."""
    runtime = RuntimeTopics(namespace)
    topics = AgentTopics(namespace)
    ensure_topics(bootstrap, runtime.specs() + topics.specs())
    codec = codec_from_settings(settings)
    proc = None
    if processor:
        proc = AgentProcessor(
            bootstrap, codec, client_factory(settings, base_url), topics,
            policy=policy or policy_from(settings), default_model=settings.agents_model, concurrency=concurrency,
            # answering inline, the driver starts its requests' calls itself: an early reader
            # would add a consumer (broker polling, a thread) for the other requests' head start
            early=not (driver and inline),
        )  # fmt: skip

    def config() -> EngineConfig:
        # a protocol step crosses several hops: a lone record moves on at once (the broker-side
        # fetch wait is the platform's, CSP_KAFKA_FETCH_WAIT_MS)
        return EngineConfig(
            bootstrap=bootstrap, batch_size=batch_size, worker_id=worker_id,
            session_timeout_ms=settings.session_timeout_ms, poll_timeout_s=POLL_TIMEOUT_S,
        )  # fmt: skip

    engines = [Engine(proc, codec, config())] if proc is not None else []
    drv: AgentDriver | None = None
    if driver:
        store = DeploymentStore(bootstrap, codec, runtime)
        drv = AgentDriver(store, AgentRegistry(bootstrap, codec, topics), codec, runtime, topics,
                          default_model=settings.agents_model, answerer=proc if inline else None)  # fmt: skip
        engines.append(Engine(drv, codec, config()))
    return engines, proc, drv


def run_engines(engines: list[Engine], stop: threading.Event) -> list[BaseException]:
    """Run each engine in a thread until ``stop``; returns the errors (a failing engine stops all)."""
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            engine.run(stop)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, args=(e,), daemon=True) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="csp-agents-worker", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default: settings / embedded stack)")
    ap.add_argument("--namespace", default="", help="topic namespace (tests)")
    ap.add_argument("--worker-id", default="0")
    ap.add_argument("--base-url", default=None, help="model endpoint (default: CSP_OPENAI_BASE_URL)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8, help="model calls in flight per batch")
    ap.add_argument("--no-driver", action="store_true", help="run only the agent processor (= --only processor)")
    ap.add_argument("--only", choices=("processor", "driver"), default=None,
                    help="run one of the two engines (each in its own process: they do not share a GIL)")
    ap.add_argument("--no-inline", action="store_true",
                    help="with both engines: the driver only asks, the agent processor answers every "
                         "request (three hops per step, not two)")
    args = ap.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    if not bootstrap:
        from infra.stack import resolve_endpoints

        bootstrap = resolve_endpoints(settings).kafka_bootstrap
    try:
        engines, proc, _d = build_engines(
            bootstrap, settings, namespace=args.namespace, worker_id=args.worker_id, base_url=args.base_url,
            batch_size=args.batch_size, concurrency=args.concurrency,
            driver=not args.no_driver and args.only != "processor", processor=args.only != "driver",
            inline=not args.no_inline,
        )  # fmt: skip
    except NoModelEndpoint as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(130)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"agents worker {args.worker_id} on {bootstrap} (namespace {args.namespace or '-'})", flush=True)
    try:
        errors = run_engines(engines, stop)
    finally:
        if proc is not None:  # its call threads, early reader and journal producer
            proc.close()
    for err in errors:
        print(f"agents worker: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
