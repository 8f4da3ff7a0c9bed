"""A ledger worker: ``python -m processors.ledger.worker`` (or ``csp ledger worker``).

Runs the :class:`~processors.ledger.processor.LedgerProcessor` on the transactional
engine until SIGTERM/SIGINT, against the in-process eth-tester chain or the JSON-RPC node
of ``CSP_WEB3_PROVIDER_URL`` / ``--provider``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType

from infra.settings import Settings
from processors.ledger.anchor import AnchorPolicy, AnchorProcessor, load_anchor_address
from processors.ledger.chain import Chain
from processors.ledger.keys import keystore_for
from processors.ledger.processor import JOURNAL_TOPIC, RECEIPTS_TOPIC, REQUESTS_TOPIC, LedgerProcessor
from schemas.codec import codec_from_settings
from streams.admin import ensure_topics
from streams.catalog import spec_for
from streams.engine import Engine, EngineConfig
from streams.logs import configure_logging


@dataclass(frozen=True)
class LedgerTopics:
    requests: str = REQUESTS_TOPIC
    receipts: str = RECEIPTS_TOPIC
    journal: str = JOURNAL_TOPIC


def build_engine(
    bootstrap: str,
    settings: Settings,
    *,
    chain: Chain | None = None,
    worker_id: str = "0",
    batch_size: int = 500,
) -> tuple[Engine, LedgerProcessor]:
    ensure_topics(bootstrap, [spec_for(t) for t in (REQUESTS_TOPIC, RECEIPTS_TOPIC, JOURNAL_TOPIC)])
    codec = codec_from_settings(settings)
    chain = chain or Chain.connect(settings.web3_provider_url)
    keys = keystore_for(settings.resolved_data_dir(), settings.ledger_keys)
    proc = LedgerProcessor(bootstrap, codec, chain, keys, crash_after_send=settings.ledger_crash_after_send)
    config = EngineConfig(
        bootstrap=bootstrap,
        batch_size=batch_size,
        worker_id=worker_id,
        session_timeout_ms=settings.session_timeout_ms,
        metrics_port=settings.metrics_port,
        metrics_host=settings.metrics_host,
    )
    return Engine(proc, codec, config), proc


def build_anchor_engine(
    bootstrap: str, settings: Settings, contract: str, *, worker_id: str = "0", audit_topic: str = "audit.log",
) -> tuple[Engine, AnchorProcessor]:
    """The anchoring processor: audit checkpoints -> AuditAnchor.anchor requests."""
    from projections.audit.keys import load_verifier

    codec = codec_from_settings(settings)
    keys = keystore_for(settings.resolved_data_dir(), settings.ledger_keys)
    keys.require("platform")
    policy = AnchorPolicy(settings.audit_anchor_every, int(settings.audit_anchor_interval_s * 1000))
    proc = AnchorProcessor(bootstrap, codec, keys, contract, [load_verifier(settings)], policy,
                           audit_topic=audit_topic)
    proc.name = f"ledger-anchor-{contract.lower()}"
    config = EngineConfig(bootstrap=bootstrap, batch_size=100, worker_id=worker_id,
                          session_timeout_ms=settings.session_timeout_ms)
    return Engine(proc, codec, config), proc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="csp-ledger-worker", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--bootstrap", default=None)
    ap.add_argument("--provider", default=None, help="EVM JSON-RPC URL (default: CSP_WEB3_PROVIDER_URL or eth-tester)")
    ap.add_argument("--worker-id", default="0")
    ap.add_argument("--anchor", action="store_true",
                    help="also anchor audit checkpoints on chain (AuditAnchor: csp audit anchor-deploy)")
    args = ap.parse_args(argv)
    settings = Settings()
    if args.provider:
        settings = settings.model_copy(update={"web3_provider_url": args.provider})
    configure_logging(settings.log_level)
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    if not bootstrap:
        from infra.stack import resolve_endpoints

        bootstrap = resolve_endpoints(settings).kafka_bootstrap
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    engine, proc = build_engine(bootstrap, settings, worker_id=args.worker_id)
    print(f"ledger worker {args.worker_id} on {bootstrap}, chain {proc.chain.key}", flush=True)
    anchor_thread: threading.Thread | None = None
    if args.anchor:
        contract = load_anchor_address(settings.resolved_data_dir(), settings.audit_anchor_address)
        if contract is None:
            print("error: --anchor needs an AuditAnchor contract: csp audit anchor-deploy, or "
                  "CSP_AUDIT_ANCHOR_ADDRESS", file=sys.stderr)
            return 2
        anchor_engine, _anchor = build_anchor_engine(bootstrap, settings, contract, worker_id=args.worker_id)
        anchor_thread = threading.Thread(target=anchor_engine.run, args=(stop,), name="anchor", daemon=True)
        anchor_thread.start()
        print(f"anchoring audit checkpoints on {contract}", flush=True)
    try:
        engine.run(stop)
    finally:
        stop.set()
        proc.close()
        if anchor_thread is not None:
            anchor_thread.join(30)
    print(f"ledger worker stopped ({proc.submitted} transactions submitted)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
