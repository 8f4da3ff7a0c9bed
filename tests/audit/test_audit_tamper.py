"""`csp audit verify` on embedded ClickHouse: a clean log passes; a modified, deleted, inserted
and reordered entry — done with real ALTER TABLE ... UPDATE/DELETE and INSERTs — is detected
and the first bad entry is named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from infra.settings import Settings
from projections.audit import store
from projections.audit.checkpoint import open_log
from projections.audit.keys import load_verifier
from projections.audit.log import AUDIT_COLUMNS, AuditSource
from projections.audit.note import Signer
from projections.audit.verify import verify_log

N = 300
SYNC = "SETTINGS mutations_sync = 2"


def _fill(client: Any, settings: Settings) -> None:
    log = open_log(client, settings, publisher=None)
    recs = [AuditSource(("csp.events", "csp.commands", "agents.requests")[i % 3], i % 2, i,
                        f"k{i}".encode(), f"value-{i}".encode() * 3, 1_767_225_600_000 + i) for i in range(N)]
    for i in range(0, N, 50):
        store.insert_entries(client, log.append(recs[i:i + 50]), token=f"b{i}")
    assert log.checkpoint_now() is not None
    assert [c.tree_size for c in store.checkpoints(client)] == [100, 200, 300]


@pytest.fixture
def filled(audit_db: tuple[Any, str], audit_settings: Settings) -> tuple[Any, str, Settings]:
    client, db = audit_db
    _fill(client, audit_settings)
    return client, db, audit_settings


def _cli_verify(chdb_url: str, db: str, settings: Settings) -> tuple[int, dict[str, Any], str]:
    args = ["audit", "verify", "--clickhouse", chdb_url, "--database", db, "--data-dir", str(settings.data_dir)]
    res = CliRunner().invoke(app, [*args, "--json"])
    text = CliRunner().invoke(app, args)
    return res.exit_code, json.loads(res.output), text.output


def test_a_clean_log_verifies(filled: tuple[Any, str, Settings], chdb_url: str) -> None:
    client, db, settings = filled
    code, doc, text = _cli_verify(chdb_url, db, settings)
    assert code == 0, doc
    assert doc["ok"] and doc["entries"] == N and doc["checkpoints_verified"] == 3 and doc["covered"] == N
    assert "OK" in text


def test_modified_entry(filled: tuple[Any, str, Settings], chdb_url: str) -> None:
    client, db, settings = filled
    client.command(f"ALTER TABLE audit_log UPDATE canonical = concat(canonical, 'x') WHERE entry_index = 137 {SYNC}")
    code, doc, text = _cli_verify(chdb_url, db, settings)
    assert code == 1
    assert doc["first_bad_entry"] == 137 and doc["first_bad"]["kind"] == "modified"
    assert "first bad entry: entry 137 (modified)" in text


def test_modified_column(filled: tuple[Any, str, Settings], chdb_url: str) -> None:
    client, db, settings = filled
    client.command(f"ALTER TABLE audit_log UPDATE source_offset = 99999 WHERE entry_index = 42 {SYNC}")
    code, doc, _ = _cli_verify(chdb_url, db, settings)
    assert code == 1 and doc["first_bad_entry"] == 42 and doc["first_bad"]["kind"] == "modified"


def test_modified_entry_with_recomputed_leaf_hash(filled: tuple[Any, str, Settings], chdb_url: str) -> None:
    """The forger rewrites the value and its leaf hash: only the signed checkpoint catches it."""
    client, db, settings = filled
    forged = "concat(substring(canonical, 1, length(canonical) - 1), 'Z')"
    client.command(f"ALTER TABLE audit_log UPDATE canonical = {forged}, "
                   f"leaf_hash = SHA256(concat(char(0), {forged})) WHERE entry_index = 150 {SYNC}")
    code, doc, _ = _cli_verify(chdb_url, db, settings)
    assert code == 1
    bad = doc["first_bad"]
    assert bad["kind"] == "checkpoint" and bad["entry"] <= 150 < bad["range_end"]
    assert bad["entry"] >= 100  # the checkpoint at 100 still verifies
    assert doc["checkpoints_verified"] == 1


def test_deleted_entry(filled: tuple[Any, str, Settings], chdb_url: str) -> None:
    client, db, settings = filled
    client.command(f"ALTER TABLE audit_log DELETE WHERE entry_index = 77 {SYNC}")
    code, doc, text = _cli_verify(chdb_url, db, settings)
    assert code == 1 and doc["first_bad_entry"] == 77 and doc["first_bad"]["kind"] == "deleted"
    assert "entry 77 (deleted)" in text


def test_deleted_tail(filled: tuple[Any, str, Settings], chdb_url: str) -> None:
    client, db, settings = filled
    client.command(f"ALTER TABLE audit_log DELETE WHERE entry_index >= 290 {SYNC}")
    code, doc, _ = _cli_verify(chdb_url, db, settings)
    assert code == 1 and doc["first_bad_entry"] == 290 and doc["first_bad"]["kind"] == "deleted"


def test_inserted_entry(filled: tuple[Any, str, Settings], chdb_url: str) -> None:
    client, db, settings = filled
    cols = ", ".join(AUDIT_COLUMNS)
    # A forged row claiming index 205: the content of entry 206 with the index rewritten.
    client.command(f"INSERT INTO audit_log ({cols}) SELECT 205, source_topic, source_partition, source_offset, "
                   f"record_time, record_name, canonical, leaf_hash, appended_at FROM audit_log "
                   f"WHERE entry_index = 206")
    code, doc, text = _cli_verify(chdb_url, db, settings)
    assert code == 1 and doc["first_bad_entry"] == 205 and doc["first_bad"]["kind"] == "inserted"
    assert "entry 205 (inserted)" in text


def test_reordered_entries(filled: tuple[Any, str, Settings], chdb_url: str) -> None:
    client, db, settings = filled
    cols = ", ".join(AUDIT_COLUMNS)
    rest = ", ".join(AUDIT_COLUMNS[1:])
    client.command("CREATE TABLE swap AS audit_log")
    client.command(f"INSERT INTO swap ({cols}) SELECT {cols} FROM audit_log WHERE entry_index IN (60, 61)")
    client.command(f"ALTER TABLE audit_log DELETE WHERE entry_index IN (60, 61) {SYNC}")
    client.command(f"INSERT INTO audit_log ({cols}) SELECT 121 - entry_index, {rest} FROM swap")
    assert store.table_stats(client) == (N, N)
    code, doc, text = _cli_verify(chdb_url, db, settings)
    assert code == 1 and doc["first_bad_entry"] == 60 and doc["first_bad"]["kind"] == "reordered"
    assert "entry 60 (reordered)" in text


def test_tampered_checkpoint_row(filled: tuple[Any, str, Settings]) -> None:
    client, _, settings = filled
    client.command(f"ALTER TABLE audit_checkpoints UPDATE note = replaceOne(note, '\\n200\\n', '\\n199\\n') "
                   f"WHERE tree_size = 200 {SYNC}")
    report = verify_log(client, load_verifier(settings))
    assert not report.ok
    assert any(f.kind == "checkpoint" and "200" in f.message for f in report.findings)


def test_another_key_fails(filled: tuple[Any, str, Settings]) -> None:
    client, _, settings = filled
    other = Signer.generate(settings.audit_origin).verifier()
    report = verify_log(client, other)
    assert not report.ok and report.checkpoints_verified == 0
    assert all("no signature by a known key" in f.message for f in report.findings)


def test_forged_row_far_beyond_the_end(filled: tuple[Any, str, Settings], chdb_url: str) -> None:
    client, db, settings = filled
    cols = ", ".join(AUDIT_COLUMNS)
    rest = ", ".join(AUDIT_COLUMNS[1:])
    client.command(f"INSERT INTO audit_log ({cols}) SELECT 1000000000000, {rest} FROM audit_log WHERE entry_index = 3")
    code, doc, _ = _cli_verify(chdb_url, db, settings)
    assert code == 1 and doc["first_bad_entry"] == N and doc["first_bad"]["kind"] == "deleted"
    assert doc["checkpoints_verified"] == 3
