"""The projector against the real broker (Tansu) and the embedded ClickHouse (chdb)."""

from __future__ import annotations

import pytest
from projection_helpers import codec, count, make_namespace, produce, projector_thread, sample, wait_for

from infra.clickhouse import clickhouse_client
from projections.projector import Projector
from projections.sink import Plan
from projections.txread import LogRecord
from streams.reader import append_fence


@pytest.fixture(scope="module")
def client(chdb_url):
    c = clickhouse_client(chdb_url)
    yield c
    c.close()


def test_every_topic_lands_in_its_table_and_aborted_transactions_do_not_count(kafka_bootstrap, client):
    c = codec()
    ns = make_namespace(kafka_bootstrap)
    ev = [c.encode("CspEvent", sample(c, "CspEvent", seq=i, instance_id="i-1", system="sys", channel="chan",
                                       offer_id=f"o{i}")) for i in range(1, 6)]
    # committed, aborted, committed: only 5 + 2 events are real
    produce(kafka_bootstrap, f"{ns}.csp.events", ev, txid=f"{ns}-t1")
    aborted = [c.encode("CspEvent", sample(c, "CspEvent", seq=100 + i, instance_id="i-ab")) for i in range(3)]
    produce(kafka_bootstrap, f"{ns}.csp.events", aborted, txid=f"{ns}-t1", abort=True)
    more = [c.encode("CspEvent", sample(c, "CspEvent", seq=6 + i, instance_id="i-1", system="sys")) for i in range(2)]
    produce(kafka_bootstrap, f"{ns}.csp.events", more, txid=f"{ns}-t1")
    produce(kafka_bootstrap, f"{ns}.csp.refusals", [c.encode("CspRefusal", sample(c, "CspRefusal", system="sys"))])
    produce(kafka_bootstrap, f"{ns}.csp.commands", [c.encode("CspCommand", sample(c, "CspCommand", kind="OFFER", offer_id="o1")),
                                                    b"\x00garbage"])
    produce(kafka_bootstrap, f"{ns}.csp.registry", [c.encode("CspRegistryRecord", sample(c, "CspRegistryRecord"))])
    produce(kafka_bootstrap, f"{ns}.csp.snapshots", [c.encode("CspSnapshot", sample(c, "CspSnapshot", instance_id="i-1", seq=7, status="TERMINATED"))])
    produce(kafka_bootstrap, f"{ns}.csp.channel.sys.chan", [c.encode("ChannelMessage", sample(c, "ChannelMessage"))])
    produce(kafka_bootstrap, f"{ns}.quantum.results", [c.encode("QuantumResult", sample(c, "QuantumResult"))])
    produce(kafka_bootstrap, f"{ns}.ledger.transactions", [c.encode("LedgerTransaction", sample(c, "LedgerTransaction"))])
    produce(kafka_bootstrap, f"{ns}.agents.responses", [c.encode("AgentResponse", sample(c, "AgentResponse"))])
    append_fence(kafka_bootstrap, f"{ns}.csp.events", 0)  # a reader's fence: no data, not a dead letter
    produce(kafka_bootstrap, f"{ns}.csp.events.dlq", [c.encode("DeadLetter", sample(c, "DeadLetter", source_topic="csp.events"))])

    projector = Projector(kafka_bootstrap, client, c, ns, audit=False, batch_ms=50)
    with projector_thread(projector):
        wait_for(lambda: count(client, "events", ns) >= 7 and count(client, "dead_letters", ns) >= 2
                 and count(client, "agent_calls", ns) >= 1, what="the projection")
    assert count(client, "events", ns) == 7
    assert count(client, "events", ns, "instance_id = 'i-ab'") == 0
    assert sorted(r[0] for r in client.query(
        f"SELECT seq FROM events WHERE topic = '{ns}.csp.events'").result_rows) == [1, 2, 3, 4, 5, 6, 7]
    for table in ("refusals", "deployments", "channel_messages", "quantum_results", "ledger_transactions", "agent_calls"):
        assert count(client, table, ns) == 1, table
    assert count(client, "commands", ns) == 1
    assert count(client, "dead_letters", ns, "source_topic LIKE '%csp.events'") == 1  # the DLQ record only
    # the garbage command is a dead letter naming the error, next to the DLQ record
    bad = client.query(f"SELECT processor, error FROM dead_letters WHERE topic = '{ns}.csp.commands'").result_rows
    assert len(bad) == 1 and bad[0][0] == "projector" and "csp.commands[0]@1" in bad[0][1]
    status = client.query(f"SELECT status, seq FROM instances FINAL WHERE topic LIKE '{ns}.%' AND instance_id = 'i-1'").result_rows
    assert status == [("TERMINATED", 7)]
    # the views answer
    lat = client.query("SELECT count() FROM v_events_per_channel_minute WHERE system = 'sys'").result_rows
    assert lat[0][0] >= 1


def test_the_same_batch_inserted_twice_counts_once(kafka_bootstrap, client):
    c = codec()
    projector = Projector(kafka_bootstrap, client, c, "dup-ns", audit=False)
    topic = "dup-ns.csp.refusals"
    recs = [LogRecord(topic, 0, o, b"k", c.encode("CspRefusal", sample(c, "CspRefusal", command_id=f"c{o}")), 1_767_225_600_000)
            for o in range(10, 20)]
    plan = Plan(topic, 0, 10, 19, False)
    assert projector.sink.write(plan, recs) == 10
    projector.sink.write(plan, recs)  # a retried batch
    projector.sink.write(plan, recs, recovering=True)  # a replayed batch after a crash
    assert count(client, "refusals", "dup-ns") == 10
    assert projector.sink.plans()[(topic, 0)] == Plan(topic, 0, 10, 19, True, f"{topic}:0:10-19")


def test_events_decoded_by_clickhouse_equal_the_python_path(kafka_bootstrap, client):
    c = codec()
    recs: dict[str, list[LogRecord]] = {}
    for ns in ("slowpath", "fastpath"):
        topic = f"{ns}.csp.events"
        recs[ns] = [
            LogRecord(topic, 1, 100 + i, b"k", c.encode("CspEvent", sample(
                c, "CspEvent", instance_id=f"{ns}-i-{i % 7}", seq=i // 7 + 1, system="sys", version=3,
                channel=None if i % 5 == 0 else "left", offer_id=None if i % 3 else f"o{i}", payload=[str(i), "x"],
                kind=("INPUT", "OUTPUT", "TAU", "TICK")[i % 4], timestamp=1_767_225_600_000 + i,
                choice={"seed": i, "options": 3, "chosen": i % 3} if i % 4 == 1 else None,
                command_offset=None if i % 6 == 0 else i)), 1_767_225_700_000 + i)
            for i in range(150)
        ]
    slow = Projector(kafka_bootstrap, client, c, "slowpath", audit=False, fast=False)
    fast = Projector(kafka_bootstrap, client, c, "fastpath", audit=False)
    assert slow.sink.decoder is None and fast.sink.decoder is not None
    slow.sink.write(Plan("slowpath.csp.events", 1, 100, 249, False), recs["slowpath"])
    fast.sink.write(Plan("fastpath.csp.events", 1, 100, 249, False), recs["fastpath"])
    assert fast.sink.fast_records == 150 and slow.sink.fast_records == 0
    for table, order in (("events", "offset"), ("instances", "instance_id")):
        cols = [n for (n,) in client.query(f"SELECT name FROM system.columns WHERE table = '{table}'"
                                           " AND database = 'default' AND name NOT IN ('topic', 'projected_at')").result_rows]
        # instance ids of their own per namespace: `instances` (ReplacingMergeTree by instance_id)
        # would merge the two namespaces' rows away; compared without their prefix
        rows = {ns: client.query(
            "SELECT " + ", ".join(f"replaceOne(toString(`{n}`), '{ns}-', '')" for n in cols)
            + f" FROM {table} WHERE topic = '{ns}.csp.events' ORDER BY {order}").result_rows
                for ns in ("slowpath", "fastpath")}
        assert len(rows["slowpath"]) == (150 if table == "events" else 7)
        assert rows["fastpath"] == rows["slowpath"], table
