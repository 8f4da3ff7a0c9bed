"""Versioned, idempotent DDL: the projected tables, the projector's bookkeeping and the views.

:func:`statements` lists every statement in order; each is idempotent (``IF NOT EXISTS``,
``CREATE OR REPLACE VIEW``), so applying them again at every projector start is safe.
``SCHEMA_VERSION`` is recorded in ``schema_migrations`` once applied; bump it whenever the
list changes (new tables and views are added with new statements, never by editing a
created table's columns in place).
"""

from __future__ import annotations

from projections.tables import TABLES

SCHEMA_VERSION = 3  # 2: the routes table (CspRoute records of csp.registry); 3: completions
# How many recent insert tokens each table remembers (ClickHouse's own Kafka connector
# pattern): a batch inserted again with the same token within this window is dropped.
DEDUP_WINDOW = 10_000

BOOKKEEPING = [
    """CREATE TABLE IF NOT EXISTS schema_migrations (
  `version` UInt32, `applied_at` DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = MergeTree ORDER BY version""",
    # One row per batch the projector planned (done = 0, written before the batch's inserts)
    # and finished (done = 1); `round`: the insert token of the batches written together.
    # The last row of a topic-partition is where it resumes.
    f"""CREATE TABLE IF NOT EXISTS projector_batches (
  `topic` LowCardinality(String), `partition` UInt16,
  `first_offset` UInt64, `last_offset` UInt64, `rows` UInt32, `done` UInt8, `round` String,
  `at` DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = MergeTree ORDER BY (topic, partition, last_offset, done)
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
]

VIEWS: dict[str, str] = {
    "v_events_per_channel_minute": """
SELECT toStartOfMinute(time) AS minute, system, channel, count() AS events
FROM events WHERE channel IS NOT NULL
GROUP BY minute, system, channel""",
    "v_refusal_rate": """
WITH offers AS (
    SELECT system, version, count() AS accepted FROM events
    WHERE offer_id IS NOT NULL GROUP BY system, version
), refused AS (
    SELECT system, version, reason, count() AS refusals FROM refusals GROUP BY system, version, reason
), refused_total AS (
    SELECT system, version, count() AS total FROM refusals GROUP BY system, version
)
SELECT r.system AS system, r.version AS version, r.reason AS reason, r.refusals AS refusals,
       t.total + o.accepted AS offers,
       round(r.refusals / (t.total + o.accepted), 4) AS refusal_rate
FROM refused AS r
INNER JOIN refused_total AS t ON r.system = t.system AND r.version = t.version
LEFT JOIN offers AS o ON r.system = o.system AND r.version = o.version""",
    # the event's Kafka timestamp is when the runtime produced it (its `time` is the command's)
    "v_offer_latency": """
SELECT e.system AS system,
       count() AS offers,
       quantile(0.5)(dateDiff('microsecond', c.issued_at, e.kafka_time) / 1000) AS p50_ms,
       quantile(0.9)(dateDiff('microsecond', c.issued_at, e.kafka_time) / 1000) AS p90_ms,
       quantile(0.99)(dateDiff('microsecond', c.issued_at, e.kafka_time) / 1000) AS p99_ms,
       max(dateDiff('microsecond', c.issued_at, e.kafka_time) / 1000) AS max_ms
FROM events AS e
INNER JOIN (SELECT DISTINCT offer_id, issued_at FROM commands WHERE kind = 'OFFER' AND offer_id IS NOT NULL) AS c
    ON e.offer_id = c.offer_id
WHERE e.offer_id IS NOT NULL
GROUP BY system""",
    "v_instance_lifetimes": """
SELECT i.instance_id AS instance_id, i.system AS system, i.status AS status,
       e.first_time AS started_at, e.last_time AS last_event_at,
       dateDiff('millisecond', e.first_time, e.last_time) / 1000 AS lifetime_s, e.events AS events
FROM (SELECT * FROM instances FINAL) AS i
LEFT JOIN (SELECT instance_id, min(time) AS first_time, max(time) AS last_time, uniqExact(seq) AS events
           FROM events GROUP BY instance_id) AS e ON i.instance_id = e.instance_id""",
    "v_active_instances": """
SELECT system, countIf(status = 'RUNNING') AS active, count() AS total
FROM instances FINAL GROUP BY system""",
    "v_top_refused_events": """
SELECT system, event, reason, count() AS refusals, max(time) AS last_refused
FROM refusals GROUP BY system, event, reason ORDER BY refusals DESC""",
    "v_dead_letters_per_topic": """
SELECT source_topic, count() AS dead_letters, uniqExact(processor) AS processors,
       max(time) AS last_at, argMax(error, time) AS last_error
FROM dead_letters GROUP BY source_topic""",
}


def statements(extra: list[str] | None = None) -> list[str]:
    """Every DDL statement, in order (``extra``: the audit trail's DDL, when present)."""
    out = list(BOOKKEEPING)
    out += [t.ddl(DEDUP_WINDOW) for t in TABLES]
    out += list(extra or [])
    out += [f"CREATE OR REPLACE VIEW {name} AS{sql}" for name, sql in VIEWS.items()]
    return out
