"""Shared helpers of the ledger tests: a keystore, a client and a running processor."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.settings import Settings
from processors.ledger.chain import Chain
from processors.ledger.client import LedgerClient
from processors.ledger.keys import Keystore, keystore_for
from processors.ledger.processor import LedgerProcessor
from processors.ledger.worker import build_engine
from schemas.codec import codec_from_settings


@dataclass
class LedgerRig:
    settings: Settings
    keys: Keystore
    client: LedgerClient
    processor: LedgerProcessor
    chain: Chain


@contextmanager
def running_ledger(bootstrap: str, data_dir: Path, agents: tuple[str, ...] = ("platform", "alice", "bob"),
                   provider_url: str | None = None) -> Iterator[LedgerRig]:
    settings = Settings(data_dir=data_dir, kafka_bootstrap=bootstrap, web3_provider_url=provider_url)
    keys = keystore_for(data_dir)
    for agent in agents:
        keys.create(agent)
    codec = codec_from_settings(settings)
    engine, proc = build_engine(bootstrap, settings, batch_size=50)
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield LedgerRig(settings, keys, LedgerClient(bootstrap, codec, keys), proc, proc.chain)
    finally:
        stop.set()
        thread.join(30)
        proc.close()
