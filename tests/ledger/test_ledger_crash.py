"""A ledger worker SIGKILLed after sending a batch, before committing its receipts.

Runs against anvil (a JSON-RPC node that outlives the worker; npm ``@foundry-rs/anvil``,
installed by ``make test`` into ``.tools``). The restarted worker must not submit any
request a second time: each agent's on-chain nonce equals the number of distinct requests
it made, and every request's receipts name one transaction.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import Web3

from infra.settings import Settings
from processors.ledger.client import LedgerClient
from processors.ledger.keys import keystore_for
from schemas.codec import codec_from_settings
from tests.ledger.anvil import anvil_node

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anvil_url():
    with anvil_node() as url:
        yield url


def _worker(bootstrap: str, data_dir: Path, url: str, crash_after: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CSP_DATA_DIR": str(data_dir), "CSP_WEB3_PROVIDER_URL": url,
           "CSP_LEDGER_CRASH_AFTER_SEND": str(crash_after), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "processors.ledger.worker", "--bootstrap", bootstrap],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sigkill_between_send_and_commit_submits_nothing_twice(kafka_bootstrap: str, tmp_path: Path,
                                                               anvil_url: str) -> None:
    settings = Settings(data_dir=tmp_path, kafka_bootstrap=kafka_bootstrap)
    keys = keystore_for(tmp_path)
    agents = ["crash-a", "crash-b"]
    for agent in agents:
        keys.create(agent)
    client = LedgerClient(kafka_bootstrap, codec_from_settings(settings), keys, chain_id=f"crash-{tmp_path.name}")
    target = Web3.to_checksum_address("0x" + "11" * 20)
    tx_ids = [client.submit("transfer", agents[i % 2], address=target, value_wei=1000 + i) for i in range(40)]
    # Producers retry too: the same request a second time (a duplicate tx_id).
    client.send(client.build("transfer", agents[0], address=target, value_wei=1, tx_id=tx_ids[0]))

    first = _worker(kafka_bootstrap, tmp_path, anvil_url, crash_after=1)
    assert first.wait(120) == -signal.SIGKILL, "the worker did not crash where it was told to"
    w3 = Web3(Web3.HTTPProvider(anvil_url))
    sent_before_restart = sum(w3.eth.get_transaction_count(keys.require(a).address) for a in agents)
    assert sent_before_restart > 0, "the crash came before anything was sent (the test would prove nothing)"

    second = _worker(kafka_bootstrap, tmp_path, anvil_url, crash_after=0)
    try:
        wanted = set(tx_ids)
        deadline = time.monotonic() + 180
        receipts: dict[str, set[str]] = {}
        while time.monotonic() < deadline and set(receipts) < wanted:
            for r in client.receipts(timeout_s=2):
                if r["tx_id"] in wanted:
                    receipts.setdefault(r["tx_id"], set()).add(r["tx_hash"])
        assert set(receipts) == wanted, f"{len(wanted - set(receipts))} requests got no receipt"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert all(len(hashes) == 1 and None not in hashes for hashes in receipts.values()), receipts
    # No double submission: each agent's nonce counts exactly its distinct requests.
    for index, agent in enumerate(agents):
        mine = [t for i, t in enumerate(tx_ids) if i % 2 == index]
        assert w3.eth.get_transaction_count(keys.require(agent).address) == len(mine), agent
    assert w3.eth.get_balance(target) == sum(1000 + i for i in range(40))
