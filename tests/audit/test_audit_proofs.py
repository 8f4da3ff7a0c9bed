"""`csp audit prove / consistency / verify-proof`; checkpoints announced on the audit.log topic."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from typer.testing import CliRunner

from gateway.cli import app
from infra.settings import Settings
from projections.audit import store
from projections.audit.checkpoint import KafkaPublisher, open_log
from projections.audit.keys import load_signer
from projections.audit.log import AuditLog, AuditSource
from projections.audit.note import open_checkpoint
from schemas.codec import Codec
from schemas.registry import LocalRegistry
from streams.clients import consumer_config


def _fill(client: Any, settings: Settings, n: int = 150) -> AuditLog:
    log = open_log(client, settings, publisher=None)
    recs = [AuditSource("csp.events", i % 4, i, None, f"v{i}".encode(), 1_767_225_600_000 + i) for i in range(n)]
    for i in range(0, n, 30):
        store.insert_entries(client, log.append(recs[i:i + 30]))
    log.checkpoint_now()
    return log


def _csp(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def test_prove_and_verify_offline(audit_db: tuple[Any, str], audit_settings: Settings, chdb_url: str,
                                  tmp_path: Path) -> None:
    client, db = audit_db
    _fill(client, audit_settings)
    where = ["--clickhouse", chdb_url, "--database", db, "--data-dir", str(audit_settings.data_dir)]
    proof = tmp_path / "p.json"
    code, out = _csp("audit", "prove", "17", "-o", str(proof), *where)
    assert code == 0, out
    doc = json.loads(proof.read_text())
    assert doc["entry_index"] == 17 and doc["tree_size"] == 150 and doc["checkpoint"].startswith("enhanced-csp/audit\n150\n")
    vkey = (audit_settings.data_dir / "audit" / "signing.vkey").read_text().strip()
    # offline: only the file and the public key
    code, out = _csp("audit", "verify-proof", str(proof), "--vkey", vkey)
    assert code == 0, out
    assert "inclusion of entry 17 in the tree of size 150: OK" in out and "signed by enhanced-csp/audit" in out
    bad = dict(doc, proof=[base64.b64encode(b"\x00" * 32).decode(), *doc["proof"][1:]])
    proof.write_text(json.dumps(bad))
    code, out = _csp("audit", "verify-proof", str(proof), "--vkey", vkey)
    assert code == 1 and "REJECTED" in out
    forged = dict(doc, entry_index=18)
    proof.write_text(json.dumps(forged))
    code, out = _csp("audit", "verify-proof", str(proof), "--vkey", vkey)
    assert code == 1 and "REJECTED" in out
    code, out = _csp("audit", "prove", "150", *where)
    assert code == 1 and "not covered by a signed checkpoint" in out


def test_consistency_between_checkpoints(audit_db: tuple[Any, str], audit_settings: Settings, chdb_url: str,
                                         tmp_path: Path) -> None:
    client, db = audit_db
    _fill(client, audit_settings)
    sizes = [c.tree_size for c in store.checkpoints(client)]
    assert sizes == [90, 150]
    where = ["--clickhouse", chdb_url, "--database", db, "--data-dir", str(audit_settings.data_dir)]
    out_file = tmp_path / "c.json"
    code, out = _csp("audit", "consistency", "90", "150", "-o", str(out_file), *where)
    assert code == 0, out
    code, out = _csp("audit", "verify-proof", str(out_file), "--data-dir", str(audit_settings.data_dir))
    assert code == 0, out
    assert "consistency of size 90 with size 150: OK" in out and out.count("signed by") == 2
    doc = json.loads(out_file.read_text())
    doc["root1"], doc["root2"] = doc["root2"], doc["root1"]
    out_file.write_text(json.dumps(doc))
    code, out = _csp("audit", "verify-proof", str(out_file), "--data-dir", str(audit_settings.data_dir))
    assert code == 1 and "REJECTED" in out
    code, out = _csp("audit", "consistency", "0", "150", *where)
    assert code == 2


def test_checkpoint_is_announced_on_kafka(audit_db: tuple[Any, str], audit_settings: Settings,
                                          kafka_bootstrap: str, unique_topic: Any) -> None:
    client, _ = audit_db
    topic = unique_topic("audit.log")
    publisher = KafkaPublisher(kafka_bootstrap, audit_settings, topic=topic)
    log = open_log(client, audit_settings, publisher=publisher)
    store.insert_entries(client, log.append([AuditSource("csp.events", 0, i, None, b"x", 0) for i in range(5)]))
    cp = log.checkpoint_now()
    assert cp is not None and cp.size == 5
    consumer = Consumer(consumer_config(kafka_bootstrap, f"audit-test-{topic}"))
    consumer.subscribe([topic])
    try:
        msg = None
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None
        name, record = Codec(LocalRegistry.load()).decode(msg.value())
    finally:
        consumer.close()
    assert name == "AuditEntry" and record["seq"] == 5 and record["entry_hash"] == cp.root.hex()
    body = open_checkpoint(record["checkpoint"], [load_signer(audit_settings).verifier()])
    assert (body.size, body.root) == (5, log.root())


def test_verify_with_kafka_catches_a_rollback(audit_db: tuple[Any, str], audit_settings: Settings,
                                              kafka_bootstrap: str, unique_topic: Any, chdb_url: str,
                                              monkeypatch: Any) -> None:
    """Entries and their checkpoint rows deleted together: ClickHouse alone looks clean, the
    checkpoint announced on the audit topic does not."""
    client, db = audit_db
    topic = unique_topic("audit.log")
    log = open_log(client, audit_settings, publisher=KafkaPublisher(kafka_bootstrap, audit_settings, topic=topic))
    recs = [AuditSource("csp.events", 0, i, None, b"x", 0) for i in range(100)]
    store.insert_entries(client, log.append(recs[:50]))
    assert log.checkpoint_now() is not None
    store.insert_entries(client, log.append(recs[50:]))
    assert log.checkpoint_now() is not None
    client.command("ALTER TABLE audit_log DELETE WHERE entry_index >= 60 SETTINGS mutations_sync = 2")
    client.command("ALTER TABLE audit_checkpoints DELETE WHERE tree_size = 100 SETTINGS mutations_sync = 2")
    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", kafka_bootstrap)
    where = ["--clickhouse", chdb_url, "--database", db, "--data-dir", str(audit_settings.data_dir), "--json"]
    code, out = _csp("audit", "verify", *where)
    assert code == 0, out  # the rollback is invisible from ClickHouse alone
    code, out = _csp("audit", "verify", *where, "--kafka", "--audit-topic", topic)
    doc = json.loads(out)
    assert code == 1 and doc["external_checkpoints"] == 2
    assert doc["first_bad_entry"] == 60 and doc["first_bad"]["kind"] == "deleted"
