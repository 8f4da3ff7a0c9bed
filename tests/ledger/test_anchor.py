"""Audit anchoring on chain (anvil): checkpoints are anchored through Kafka and the ledger;
a history rewritten in ClickHouse and re-signed with the audit key passes the log's own
checks but is caught by `csp audit verify --chain`."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from typer.testing import CliRunner
from web3 import Web3

from gateway.cli import app
from infra.clickhouse import clickhouse_client
from infra.settings import Settings
from processors.ledger.anchor import anchored_roots, compare_with_chain, save_anchor_address
from processors.ledger.worker import build_anchor_engine
from projections.audit import store
from projections.audit.checkpoint import open_log
from projections.audit.log import AuditSource
from projections.audit.topic import KafkaPublisher
from streams.admin import ensure_topics
from streams.catalog import spec_for
from tests.ledger.anvil import anvil_node
from tests.ledger.ledger_helpers import running_ledger

N = 300


def _records(tampered_at: int | None = None) -> list[AuditSource]:
    out = []
    for i in range(N):
        value = f"value-{i}".encode() if i != tampered_at else b"rewritten history"
        out.append(AuditSource("csp.events", 0, i, f"k{i}".encode(), value, 1_767_225_600_000 + i))
    return out


def _fill(client: Any, settings: Settings, publisher: Any, tampered_at: int | None = None) -> None:
    log = open_log(client, settings, publisher=publisher)
    recs = _records(tampered_at)
    for i in range(0, N, 50):
        store.insert_entries(client, log.append(recs[i:i + 50]), token=f"b{i}-{tampered_at}")
    log.checkpoint_now()
    assert [c.tree_size for c in store.checkpoints(client)] == [100, 200, 300]


def test_compare_with_chain_names_each_mismatch() -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    assert compare_with_chain([(100, a), (200, a)], {100: a, 200: a}) == []
    findings = compare_with_chain([(100, a), (200, b)], {100: a, 200: a, 300: b})
    assert [f.size for f in findings] == [200, 300]
    assert "differs from the root anchored on chain" in findings[0].message
    assert "has no checkpoint in the log" in findings[1].message


def test_checkpoints_are_anchored_and_a_resigned_rewrite_is_caught(
    kafka_bootstrap: str, chdb_url: str, tmp_path: Path
) -> None:
    with anvil_node() as url, running_ledger(kafka_bootstrap, tmp_path, provider_url=url) as rig:
        deployed = rig.client.receipt(rig.client.submit("deploy", "platform", contract="AuditAnchor"), timeout_s=90)
        assert deployed is not None and deployed["status"] == "SUCCESS", deployed
        contract = deployed["contract_address"]
        save_anchor_address(tmp_path, contract, rig.client.chain_id)

        base = clickhouse_client(chdb_url)
        db = f"anchor_{uuid.uuid4().hex[:10]}"
        base.command(f"CREATE DATABASE {db}")
        client = clickhouse_client(chdb_url, database=db)
        settings = Settings(data_dir=tmp_path, kafka_bootstrap=kafka_bootstrap, web3_provider_url=url,
                            audit_checkpoint_every=100, audit_checkpoint_interval_s=3600)
        audit_topic = f"audit.anchor-test.{uuid.uuid4().hex[:8]}"
        ensure_topics(kafka_bootstrap, [spec_for("audit.log").__class__(**{**spec_for("audit.log").__dict__,
                                                                          "name": audit_topic})])
        _fill(client, settings, KafkaPublisher(kafka_bootstrap, settings, audit_topic))

        engine, _proc = build_anchor_engine(kafka_bootstrap, settings, contract, audit_topic=audit_topic)
        stop = threading.Event()
        thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
        thread.start()
        try:
            w3 = Web3(Web3.HTTPProvider(url))
            deadline = time.monotonic() + 120
            while len(anchored_roots(w3, contract)) < 3:
                assert time.monotonic() < deadline, f"anchored: {anchored_roots(w3, contract)}"
                time.sleep(0.5)
        finally:
            stop.set()
            thread.join(30)
        on_chain = anchored_roots(w3, contract)
        assert {size: root for size, root in on_chain.items()} == {
            cp.tree_size: cp.root_hash for cp in store.checkpoints(client)
        }

        args = ["audit", "verify", "--clickhouse", chdb_url, "--database", db, "--data-dir", str(tmp_path),
                "--chain", "--provider", url]
        ok = CliRunner().invoke(app, [*args, "--json"])
        assert ok.exit_code == 0, ok.output
        doc = json.loads(ok.output)
        assert doc["chain"]["anchored"] == 3 and doc["chain"]["findings"] == []

        # The forger holds the audit key: rewrite entry 150 and re-sign every checkpoint.
        client.command("DROP TABLE audit_log")
        client.command("DROP TABLE audit_checkpoints")
        _fill(client, settings, None, tampered_at=150)
        own = CliRunner().invoke(app, ["audit", "verify", "--clickhouse", chdb_url, "--database", db,
                                       "--data-dir", str(tmp_path)])
        assert own.exit_code == 0, "the rewritten log is self-consistent: only the chain can tell"
        caught = CliRunner().invoke(app, args)
        assert caught.exit_code == 1, caught.output
        assert "checkpoint at size 200" in caught.output and "checkpoint at size 300" in caught.output
        assert "checkpoint at size 100" not in caught.output
        assert "TAMPERED: the log does not match the roots anchored on chain" in caught.output
        base.command(f"DROP DATABASE IF EXISTS {db}")


def test_verify_chain_needs_a_node_and_a_contract(tmp_path: Path, chdb_url: str) -> None:
    db = f"anchor_{uuid.uuid4().hex[:10]}"
    clickhouse_client(chdb_url).command(f"CREATE DATABASE {db}")
    store.ensure_schema(clickhouse_client(chdb_url, database=db))
    open_log(clickhouse_client(chdb_url, database=db), Settings(data_dir=tmp_path), publisher=None)
    args = ["audit", "verify", "--clickhouse", chdb_url, "--database", db, "--data-dir", str(tmp_path), "--chain"]
    res = CliRunner().invoke(app, args, env={"CSP_WEB3_PROVIDER_URL": ""})
    assert res.exit_code == 2 and "--chain needs an EVM JSON-RPC node" in res.output, res.output
    res = CliRunner().invoke(app, [*args, "--provider", "http://127.0.0.1:1"])
    assert res.exit_code == 2 and "needs the AuditAnchor address" in res.output, res.output
