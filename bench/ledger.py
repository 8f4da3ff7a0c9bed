"""Ledger benchmark: signed transactions through Kafka to the chain, vs direct web3.

Both sides run the same workload in alternating rounds (so that a busy machine slows both alike), ``--tx`` signed ether transfers from ``--agents``
agents, in the same run, each on a fresh chain of the same kind (the in-process
eth-tester chain by default, or two anvil nodes with ``--anvil``):

* **raw**: sign each transaction with the agent's key and ``send_raw_transaction`` it,
  then read its receipt (what a client does without the platform);
* **kafka**: the same requests, signed by the agents, are produced to
  ``ledger.transactions`` first; the clock starts when the ledger processor (the real
  engine, exactly-once, with its write-ahead journal) is assigned its partition and stops
  when the last receipt is committed on ``ledger.receipts``.

Usage: python bench/ledger.py [--tx N] [--agents A] [--anvil] [--bootstrap HOST:PORT]
Last line: RESULT tx_per_s=... raw_tx_per_s=... ratio=...
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from engine import broker  # noqa: E402
from web3 import Web3  # noqa: E402

from infra.ports import free_port  # noqa: E402
from infra.settings import Settings  # noqa: E402
from processors.ledger.chain import Chain  # noqa: E402
from processors.ledger.client import LedgerClient  # noqa: E402
from processors.ledger.keys import keystore_for  # noqa: E402
from processors.ledger.worker import build_engine  # noqa: E402
from schemas.codec import codec_from_settings  # noqa: E402

TARGET = Web3.to_checksum_address("0x" + "42" * 20)


@contextmanager
def anvil_node() -> Iterator[str]:
    binary = ROOT / ".tools" / "node_modules" / ".bin" / "anvil"
    path = str(binary) if binary.exists() else shutil.which("anvil")
    if path is None:
        raise SystemExit("anvil is not installed: make tools")
    port = free_port()
    proc = subprocess.Popen([path, "--port", str(port), "--silent"], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        w3 = Web3(Web3.HTTPProvider(url))
        while not w3.is_connected():
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


class RawSide:
    """Direct web3: sign, send_raw_transaction, read the receipts."""

    def __init__(self, chain: Chain, accounts: list) -> None:
        self.chain, self.accounts = chain, accounts
        for account in accounts:
            chain.ensure_funded(account.address)
        self.nonces = {a.address: chain.pending_nonce(a.address) for a in accounts}
        self.seconds = 0.0

    def round(self, first: int, n: int) -> None:
        start = time.perf_counter()
        hashes = []
        for i in range(first, first + n):
            account = self.accounts[i % len(self.accounts)]
            tx = {"from": account.address, "to": TARGET, "value": 1000 + i, "gas": 21_000,
                  "gasPrice": self.chain.gas_price, "chainId": self.chain.chain_id,
                  "nonce": self.nonces[account.address]}
            self.nonces[account.address] += 1
            signed = account.sign_transaction(tx)
            self.chain.w3.eth.send_raw_transaction(signed.raw_transaction)
            hashes.append(signed.hash)
        for h in hashes:
            assert self.chain.wait_receipt("0x" + bytes(h).hex())["status"] == 1
        self.seconds += time.perf_counter() - start


class KafkaSide:
    """The same transfers as signed requests through Kafka and the ledger processor."""

    def __init__(self, bootstrap: str, data_dir: Path, chain: Chain, agents: list[str]) -> None:
        settings = Settings(data_dir=data_dir, kafka_bootstrap=bootstrap)
        self.agents = agents
        self.client = LedgerClient(bootstrap, codec_from_settings(settings), keystore_for(data_dir), chain_id="bench")
        self.engine, self.proc = build_engine(bootstrap, settings, chain=chain, batch_size=500)
        for agent in agents:
            chain.ensure_funded(self.client.keys.require(agent).address)
        self.engine.start()
        while not self.engine._assigned:  # wait for the partition (and the journal read)
            self.engine.run_once()
        self.tx_ids: list[str] = []
        self.seconds = 0.0

    def round(self, first: int, n: int) -> None:
        for i in range(first, first + n):  # produced before the clock starts
            self.tx_ids.append(self.client.submit("transfer", self.agents[i % len(self.agents)],
                                                  address=TARGET, value_wei=1000 + i))
        start = time.perf_counter()
        done = 0
        while done < n:
            done += self.engine.run_once()
        self.seconds += time.perf_counter() - start

    def close(self) -> None:
        self.engine.close()
        self.proc.close()
        receipts = {r["tx_id"]: r for r in self.client.receipts(timeout_s=2)}
        ok = sum(1 for t in self.tx_ids if receipts.get(t, {}).get("status") == "SUCCESS")
        assert ok == len(self.tx_ids), f"only {ok}/{len(self.tx_ids)} transfers succeeded"


def measure(bootstrap: str, data_dir: Path, raw_chain: Chain, kafka_chain: Chain, agents: list[str],
            n: int, rounds: int) -> tuple[float, float]:
    """Alternate raw and Kafka rounds, so that a busy machine slows both alike."""
    keys = keystore_for(data_dir)
    raw = RawSide(raw_chain, [keys.require(a) for a in agents])
    kafka = KafkaSide(bootstrap, data_dir, kafka_chain, agents)
    per = n // rounds
    for r in range(rounds):
        raw.round(r * per, per)
        kafka.round(r * per, per)
    kafka.close()
    return per * rounds / kafka.seconds, per * rounds / raw.seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tx", type=int, default=400)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5, help="alternating raw/Kafka rounds")
    ap.add_argument("--anvil", action="store_true", help="two anvil nodes instead of eth-tester chains")
    ap.add_argument("--bootstrap", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="csp-ledger-bench-") as tmp, broker(args.bootstrap) as bootstrap:
        data_dir = Path(tmp)
        keys = keystore_for(data_dir)
        agents = [f"bench-{i}" for i in range(args.agents)]
        for agent in agents:
            keys.create(agent)
        if args.anvil:
            with anvil_node() as url_raw, anvil_node() as url_kafka:
                kafka, raw = measure(bootstrap, data_dir, Chain.connect(url_raw), Chain.connect(url_kafka),
                                     agents, args.tx, args.rounds)
            kind = "anvil"
        else:
            kafka, raw = measure(bootstrap, data_dir, Chain.connect(None), Chain.connect(None), agents,
                                 args.tx, args.rounds)
            kind = "eth-tester"
    ratio = kafka / raw
    print(f"chain: {kind}, {args.tx} signed transfers from {args.agents} agents, {args.rounds} alternating rounds")
    print(f"direct web3 send_raw_transaction + receipt: {raw:,.1f} tx/s")
    print(f"through Kafka (ledger processor, exactly-once, journal): {kafka:,.1f} tx/s  ratio {ratio:.3f}")
    print(f"RESULT tx_per_s={kafka:.1f} raw_tx_per_s={raw:.1f} ratio={ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
