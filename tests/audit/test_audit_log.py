"""AuditLog: rows, canonical bytes, idempotence, recovery from ClickHouse."""

from __future__ import annotations

from typing import Any

from infra.settings import Settings
from projections.audit import canonical, store
from projections.audit.checkpoint import open_log, restore_log
from projections.audit.log import AUDIT_COLUMNS, AUDIT_DDL, AuditLog, AuditSource
from projections.audit.merkle import leaf_hash, root_of


def _records(n: int, start: int = 0) -> list[AuditSource]:
    return [AuditSource("csp.events" if i % 3 else "csp.commands", i % 2, start + i,
                        None if i % 5 == 0 else f"k{i}".encode(), bytes([i % 256]) * (i % 7),
                        1_767_225_600_000 + i) for i in range(n)]


def test_rows_canonical_bytes_and_leaf_hashes() -> None:
    log = AuditLog()
    rows = log.append(_records(10))
    assert [r["entry_index"] for r in rows] == list(range(10))
    assert set(rows[0]) == set(AUDIT_COLUMNS)
    for r, src in zip(rows, _records(10), strict=True):
        c = canonical.decode(r["canonical"])
        assert (c.topic, c.partition, c.offset, c.key, c.value, c.timestamp_ms) == (
            src.topic, src.partition, src.offset, src.key, src.value, src.timestamp_ms)
        assert r["leaf_hash"] == leaf_hash(r["canonical"])
        assert r["record_name"] == ("CspEvent" if src.topic == "csp.events" else "CspCommand")
    assert log.root() == root_of([r["leaf_hash"] for r in rows])
    assert len(log.frontier.hashes) == bin(10).count("1")


def test_replayed_records_add_nothing_and_tuples_are_accepted() -> None:
    log = AuditLog()
    recs = _records(6)
    assert len(log.append(recs)) == 6
    assert log.append(recs) == []
    as_tuples = [(r.topic, r.partition, r.offset + 100, r.key, r.value, r.timestamp_ms) for r in recs]
    assert len(log.append(as_tuples)) == 6
    assert log.size == 12


def test_state_from_size_and_frontier_continues_identically() -> None:
    whole = AuditLog()
    whole.append(_records(50))
    part = AuditLog()
    part.append(_records(21))
    resumed = AuditLog(part.size, part.frontier.hashes, part.offsets)
    resumed.append(_records(29, start=21)[:])  # offsets continue
    again = AuditLog()
    again.append(_records(21) + _records(29, start=21))
    assert resumed.root() == again.root()


def test_open_resumes_from_clickhouse_and_checkpoints(audit_db: tuple[Any, str], audit_settings: Settings) -> None:
    client, _ = audit_db
    for ddl in AUDIT_DDL:  # idempotent
        client.command(ddl)
    log = open_log(client, audit_settings, publisher=None)
    recs = _records(200)
    for i in range(0, 200, 40):
        store.insert_entries(client, log.append(recs[i:i + 40]), token=f"t{i}")
    cps = store.checkpoints(client)
    assert [c.tree_size for c in cps] == [80, 160]  # every 64, checked at the start of append
    assert log.checkpoint_now() is not None
    assert [c.tree_size for c in store.checkpoints(client)][-1] == 200
    resumed = restore_log(client)
    assert (resumed.size, resumed.root()) == (200, log.root())
    assert resumed.append(recs[:50]) == []  # already there
    rows = resumed.append(_records(3, start=1000))
    assert [r["entry_index"] for r in rows] == [200, 201, 202]


def test_checkpoint_policy_ignores_the_logs_own_topic() -> None:
    from projections.audit.log import CheckpointPolicy
    from projections.audit.note import Signer

    log = AuditLog(policy=CheckpointPolicy(every=2, interval_s=3600))
    log.append(_records(3))
    assert log.checkpoint_due()
    log.mark_checkpointed(log.checkpoint(Signer.generate("o")))
    assert not log.checkpoint_due()
    log.append([AuditSource("audit.log", 0, i, None, b"cp", 0) for i in range(5)])
    assert not log.checkpoint_due()  # only the checkpoints' own records arrived
    log.append(_records(1, start=500))
    assert log.checkpoint_due()


def test_restore_refuses_a_damaged_table(audit_db: tuple[Any, str]) -> None:
    import pytest

    from projections.audit.checkpoint import AuditIntegrityError

    client, _ = audit_db
    log = restore_log(client)
    store.insert_entries(client, log.append(_records(20)))
    client.command("ALTER TABLE audit_log DELETE WHERE entry_index = 7 SETTINGS mutations_sync = 2")
    with pytest.raises(AuditIntegrityError, match="expected entry 7"):
        restore_log(client)


def test_the_documented_example_entry() -> None:
    """docs/audit.md shows these canonical bytes and this leaf hash."""
    row = AuditLog().append([AuditSource("csp.events", 2, 41, b"i-7", bytes.fromhex("000000000668656c6c6f"),
                                         1_767_225_600_000)])[0]
    assert row["canonical"].hex() == (
        "43535041010000000000000000000a6373702e6576656e74730000000200000000000000290000019b76daa800"
        "0100000003692d37010000000a000000000668656c6c6f")
    assert row["leaf_hash"].hex() == "218b3e1d44e647818894f60e83971fa9a0277ffde725a527df3e03fe91ac1cc5"
