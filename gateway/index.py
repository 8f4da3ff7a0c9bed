"""A compact, incremental index of instances for reads (``csp instances``).

The index is a SQLite file (``<data dir>/index/<namespace>.sqlite``) holding, per instance, the
latest ``(system, version, state, seq, status)`` and, per partition of ``csp.snapshots`` and
``csp.events``, the next offset to read. Each call reads only the records appended since the
previous call (partitions concurrently), so after the first call a read never goes through whole
partitions. Records of aborted transactions that the embedded broker shows are harmless here:
their commands are processed again and give identical records.

State: the event or snapshot with the highest seq; status: the newest snapshot's (every status
change writes a snapshot).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from processors.csp.runtime.encoding import EventDecoder
from processors.csp.runtime.model import Instance, Status
from processors.csp.runtime.topics import RuntimeTopics
from schemas.codec import Codec
from streams.admin import list_topics
from streams.reader import read_to_end

SCHEMA = """
CREATE TABLE IF NOT EXISTS progress (topic TEXT, part INTEGER, next INTEGER, PRIMARY KEY (topic, part));
CREATE TABLE IF NOT EXISTS instances (
  instance_id TEXT PRIMARY KEY, system TEXT, version INTEGER, state INTEGER, seq INTEGER,
  status TEXT, status_seq INTEGER, updated_at INTEGER
);
"""


class InstanceIndex:
    def __init__(self, path: Path, bootstrap: str, codec: Codec, topics: RuntimeTopics) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)
        self.bootstrap = bootstrap
        self.codec = codec
        self.topics = topics
        self.read_records = 0  # records read by the last catch_up

    def close(self) -> None:
        self.db.close()

    def _progress(self, topic: str, part: int) -> int:
        row = self.db.execute(
            "SELECT next FROM progress WHERE topic = ? AND part = ?", (topic, part)
        ).fetchone()
        return int(row[0]) if row else 0

    def _read(self, topic: str, part: int, start: int) -> tuple[int, list[Mapping[str, Any]]]:
        decode = EventDecoder(self.codec).decode if topic == self.topics.events else self.codec.decode
        nxt = start
        out: list[Mapping[str, Any]] = []
        for off, _k, value, _ts in read_to_end(self.bootstrap, topic, part, start):
            nxt = off + 1
            if value is None:
                continue
            try:
                _name, rec = decode(value)
            except Exception:
                continue
            out.append(rec)
        return nxt, out

    def catch_up(self) -> int:
        """Read what was appended since the last call; returns how many records were read."""
        counts = list_topics(self.bootstrap)
        jobs = [(t, p, self._progress(t, p)) for t in (self.topics.snapshots, self.topics.events)
                for p in range(counts.get(t, 0))]  # fmt: skip
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            results = list(pool.map(lambda j: (j[0], j[1], *self._read(*j)), jobs))
        n = 0
        with self.db:
            for topic, _part, _nxt, recs in results:
                if topic == self.topics.snapshots:
                    self._snapshots(recs)
                n += len(recs)
            for topic, part, nxt, recs in results:
                if topic == self.topics.events:
                    self._events(recs)
                self.db.execute("INSERT OR REPLACE INTO progress VALUES (?, ?, ?)", (topic, part, nxt))
        self.read_records = n
        return n

    def _snapshots(self, recs: Iterable[Mapping[str, Any]]) -> None:
        for r in recs:
            if "status" not in r or "seq" not in r:
                continue
            self.db.execute(
                """INSERT INTO instances VALUES (:i, :s, :v, :st, :q, :status, :q, :t)
                   ON CONFLICT(instance_id) DO UPDATE SET
                     status = CASE WHEN :q >= status_seq THEN :status ELSE status END,
                     status_seq = MAX(status_seq, :q),
                     state = CASE WHEN :q > seq THEN :st ELSE state END,
                     updated_at = CASE WHEN :q > seq THEN :t ELSE updated_at END,
                     seq = MAX(seq, :q)""",
                {"i": r["instance_id"], "s": r["system"], "v": r["version"], "st": r["state"], "q": r["seq"],
                 "status": r["status"], "t": r.get("timestamp") or 0},
            )  # fmt: skip

    def _events(self, recs: Iterable[Mapping[str, Any]]) -> None:
        for r in recs:
            if "state_after" not in r:
                continue
            self.db.execute(
                """INSERT INTO instances VALUES (:i, :s, :v, :st, :q, 'RUNNING', -1, :t)
                   ON CONFLICT(instance_id) DO UPDATE SET
                     state = CASE WHEN :q > seq THEN :st ELSE state END,
                     updated_at = CASE WHEN :q > seq THEN :t ELSE updated_at END,
                     seq = MAX(seq, :q)""",
                {"i": r["instance_id"], "s": r["system"], "v": r["version"], "st": r["state_after"], "q": r["seq"],
                 "t": r.get("timestamp") or 0},
            )  # fmt: skip

    def instances(self, system: str | None = None) -> list[Instance]:
        q = "SELECT instance_id, system, version, state, seq, status, updated_at FROM instances"
        rows = self.db.execute(q + (" WHERE system = ?" if system else "") + " ORDER BY instance_id",
                               (system,) if system else ()).fetchall()  # fmt: skip
        return [Instance(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), Status(r[5]), int(r[6])) for r in rows]
