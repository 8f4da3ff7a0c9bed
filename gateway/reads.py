"""Fast reads for the CLI: ``csp instances``, ``csp systems``, ``csp tail -n N`` and ``csp replay``
at any number of instances, without reading whole partitions per call.

* **From the ClickHouse projection** (``instances``, ``systems``, ``replay``), when the projector
  of this data dir and namespace runs (its SQL endpoint answers) or ``CSP_CLICKHOUSE_URL`` is a
  ClickHouse server. The projection answers up to the offsets it holds (``projector_batches``:
  the last committed batch of each partition); the records after those offsets are read from
  Kafka and folded in the same way as the full read folds them, so the answer is exact, and
  :class:`Lag` says how far behind the projection was.
* **Bounded Kafka reads** (``tail -n N``): the last records of each partition by offset, read
  backwards in growing windows until N records match (or the partition's start is reached);
  end offsets come from the fetch path (:func:`streams.reader.end_offset`), not ListOffsets.

The exact path (``--source kafka``) reads whole partitions as before; tests compare the two.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.reader import end_offset, read_ranges

if TYPE_CHECKING:
    from processors.csp.runtime.fold import Replay
    from processors.csp.runtime.model import Deployment
    from processors.csp.runtime.topics import RuntimeTopics
    from schemas.codec import Codec

Key = tuple[str, int]  # (topic, partition)
# what `csp instances` prints of an instance: (instance_id, system, version, state, seq, status)
InstanceRow = tuple[str, str, int, int, int, str]
Lookup = Callable[[str, int | None], "Deployment | None"]


class ProjectionError(RuntimeError):
    """The projection's SQL endpoint did not answer, or refused a query."""


@dataclass
class Lag:
    """How far behind the log the projection was: the records read from Kafka after its offsets."""

    where: str
    positions: dict[Key, int] = field(default_factory=dict)  # next offset the projection lacks
    records: int = 0  # records read from Kafka after those offsets

    def __str__(self) -> str:
        offsets = " ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(self.positions.items()))
        return (f"read from the ClickHouse projection ({self.where}) as of offsets {offsets or '-'}; "
                f"{self.records} newer record(s) read from Kafka")  # fmt: skip


class Projection:
    """A read-only ClickHouse HTTP endpoint holding the projections (``FORMAT JSONCompact``)."""

    def __init__(self, url: str, user: str, password: str, database: str | None, where: str,
                 timeout_s: float = 30.0) -> None:  # fmt: skip
        self.url = url.rstrip("/")
        self.user, self.password, self.database = user, password, database
        self.where = where
        self.timeout_s = timeout_s

    def query(self, sql: str, **params: str) -> list[list[Any]]:
        """Rows of ``sql`` (JSONCompact)."""
        data: list[list[Any]] = json.loads(self._post(sql + "\nFORMAT JSONCompact", params))["data"]
        return data

    def text(self, sql: str, **params: str) -> str:
        """The result of ``sql`` as TabSeparated text (one line per row)."""
        return self._post(sql + "\nFORMAT TabSeparated", params).decode()

    def _post(self, sql: str, params: Mapping[str, str]) -> bytes:
        args = {f"param_{k}": v for k, v in params.items()}
        if self.database:
            args["database"] = self.database
        req = urllib.request.Request(
            f"{self.url}/?{urllib.parse.urlencode(args)}", data=sql.encode(),
            headers={"X-ClickHouse-User": self.user, "X-ClickHouse-Key": self.password},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - http(s) only
                body: bytes = resp.read()
        except urllib.error.HTTPError as exc:
            raise ProjectionError(f"{self.where}: {exc.read().decode(errors='replace').strip()}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ProjectionError(f"{self.where} does not answer: {exc}") from None
        return body

    def positions(self, topics: Sequence[str]) -> dict[Key, int]:
        """Per partition of ``topics``: the first offset the projection does not hold."""
        names = {f"t{i}": t for i, t in enumerate(topics)}
        cond = ", ".join(f"{{{k}:String}}" for k in names)
        rows = self.query(
            f"SELECT topic, partition, max(last_offset) FROM projector_batches WHERE done = 1 AND topic IN ({cond}) "
            "GROUP BY topic, partition", **names)  # fmt: skip
        return {(str(t), int(p)): int(last) + 1 for t, p, last in rows}


def find_projection(data_dir: Path, clickhouse_url: str | None, namespace: str, bootstrap: str) -> Projection | None:
    """The projection of this stack and namespace: the ClickHouse server of ``CSP_CLICKHOUSE_URL``
    (``http(s)://``), else the SQL endpoint of the projector running for ``data_dir`` when it
    projects ``bootstrap`` and ``namespace``; None when there is none."""
    if clickhouse_url and clickhouse_url.startswith(("http://", "https://")):
        parts = urllib.parse.urlsplit(clickhouse_url)
        port = parts.port or (8443 if parts.scheme == "https" else 8123)
        return Projection(f"{parts.scheme}://{parts.hostname}:{port}", urllib.parse.unquote(parts.username or "default"),
                          urllib.parse.unquote(parts.password or ""), parts.path.strip("/") or None,
                          f"{parts.scheme}://{parts.hostname}:{port}")  # fmt: skip
    from infra.projector import PASSWORD_FILE, read_projector_state

    state = read_projector_state(data_dir)
    if state is None or not state.get("sql_url"):
        return None
    if (state.get("namespace") or "") != namespace or state.get("bootstrap") != bootstrap:
        return None
    try:
        password = (data_dir / PASSWORD_FILE).read_text().strip()
    except OSError:
        return None
    return Projection(str(state["sql_url"]), "csp", password, None, str(state["sql_url"]))


def _decoded(codec: Codec, value: bytes | None, schema: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        name, rec = codec.decode(value)
    except Exception:  # noqa: BLE001 - skipped, as the full read skips it
        return None
    return rec if name == schema else None


def _suffix(bootstrap: str, starts: Mapping[Key, int], topics: tuple[str, ...], codec: Callable[[], Codec],
            lag: Lag, every_partition: bool = True) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Topic -> the decoded records after the projection's offsets (``topics``: events, snapshots);
    ``every_partition``: also the partitions ``starts`` does not name, from offset 0."""
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}
    raw = list(read_ranges(bootstrap, starts, topics=topics if every_partition else ()))
    lag.records += len(raw)
    if not raw:
        return out
    c = codec()
    for topic, _p, _off, value, _ts in raw:
        schema = "CspEvent" if topic == topics[0] else "CspSnapshot"
        rec = _decoded(c, value, schema)
        if rec is not None:
            out[topic].append(rec)
    return out


def _synth_snapshot(row: InstanceRow, updated_at: int = 0) -> dict[str, Any]:
    iid, system, version, state, seq, status = row
    return {"instance_id": iid, "system": system, "version": version, "state": state, "seq": seq,
            "status": status, "timestamp": updated_at, "command_offset": None}  # fmt: skip


# The current row of each instance: the highest row_version (snapshots outrank the event of their
# seq); ReplacingMergeTree's FINAL keeps the last inserted of equal versions, i.e. the later record.
_CURRENT = """SELECT COLUMNS FROM instances FINAL WHERE topic IN ({ev:String}, {snap:String}) WHERE_MORE
ORDER BY instance_id"""
_ROW = "instance_id, system, version, state, seq, status"
# what `csp instances` prints (text), rendered by ClickHouse
_TEXT = ("concat(instance_id, '  ', system, ' v', toString(version), '  state ', toString(state), '  seq ', "
         "toString(seq), '  ', status)")  # fmt: skip


def _current(columns: str = _ROW, where: str = "") -> str:
    return _CURRENT.replace("COLUMNS", columns).replace("WHERE_MORE", where)


def _tsv_field(value: str) -> str:
    """A TabSeparated field's value (ClickHouse escapes backslash, tab, newline, ...)."""
    if "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"t": "\t", "n": "\n", "r": "\r", "0": "\0", "b": "\b", "f": "\f"}.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _rows(projection: Projection, sql: str, **params: str) -> list[InstanceRow]:
    out: list[InstanceRow] = []
    for line in projection.text(sql, **params).split("\n"):
        if not line:
            continue
        iid, system, version, state, seq, status = (_tsv_field(f) for f in line.split("\t"))
        out.append((iid, system, int(version), int(state), int(seq), status))
    return out


@dataclass
class Instances:
    """The instances read: ``rows``, or (text output, nothing to fold in) ``text``, the lines
    ClickHouse rendered; ``count``: how many."""

    rows: list[InstanceRow] | None
    text: str | None
    count: int
    lag: Lag


def instances(
    projection: Projection, bootstrap: str, topics: RuntimeTopics, codec: Callable[[], Codec],
    lookup: Callable[[], Lookup], system: str | None = None, text: bool = False,
) -> Instances:  # fmt: skip
    """Every instance (of ``system``) from the projection's ``instances`` table, with the records
    after its offsets folded in: the content of the full read's fold (``Platform.instances``).
    ``text``: when there is nothing to fold in, return the lines of ``csp instances`` as
    ClickHouse renders them (no rows are parsed)."""
    lag = Lag(projection.where)
    lag.positions = projection.positions([topics.events, topics.snapshots])
    got = _suffix(bootstrap, lag.positions, (topics.events, topics.snapshots), codec, lag)
    snaps, evs = got[topics.snapshots], got[topics.events]
    params = {"ev": topics.events, "snap": topics.snapshots}
    where = ""
    if system is not None:
        params["sys"] = system
        where = "AND system = {sys:String}"
    if text and not snaps and not evs:
        blob = projection.text(_current(_TEXT, where), **params)
        if "\\" not in blob:  # nothing escaped: the lines as they print
            return Instances(None, blob, blob.count("\n"), lag)
    base = {r[0]: r for r in _rows(projection, _current(where=where), **params)}
    if not snaps and not evs:
        return Instances(list(base.values()), None, len(base), lag)
    from processors.csp.runtime import fold

    touched = {r["instance_id"] for r in snaps} | {r["instance_id"] for r in evs}
    if system is not None:  # instances of other systems may be in the suffix: their base is needed too
        others = [i for i in touched if i not in base]
        if others:
            for r in _rows(projection, _current(where=f"AND instance_id IN ({_literals(others)})"), **params):
                base[r[0]] = r
    synth = [_synth_snapshot(base[i]) for i in touched if i in base]
    folded = fold.recover(synth + snaps, evs, None, lookup(), strict=False)
    added = False
    for iid, inst in folded.items():
        added = added or iid not in base
        base[iid] = (iid, inst.system, inst.version, inst.state, inst.seq, inst.status.value)
    out = sorted(base.values()) if added else list(base.values())
    rows = [r for r in out if system is None or r[1] == system]
    return Instances(rows, None, len(rows), lag)


def _literals(values: Iterable[str]) -> str:
    """ClickHouse string literals, comma-separated (in the query's body: no URL length limit)."""
    return ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


_EVENT_COLS = ("seq", "event", "kind", "channel", "payload", "offer_id", "command_id", "state_before",
               "state_after", "timestamp", "command_offset", "system", "version")  # fmt: skip


def replay(
    projection: Projection, bootstrap: str, topics: RuntimeTopics, codec: Callable[[], Codec],
    lookup: Callable[[], Lookup], instance_id: str, partition: int, until: int | None,
) -> tuple[Replay | None, Lag]:  # fmt: skip
    """``instance_id`` rebuilt from its events in the projection plus the records of its partition
    after the projection's offsets (None: no such instance). Same fold as ``Platform.replay``."""
    from processors.csp.runtime import fold

    pool = ThreadPoolExecutor(max_workers=1)
    deployments = pool.submit(lookup)  # the registry is read while the projection and Kafka answer
    try:
        return _replay(projection, bootstrap, topics, codec, instance_id, partition, until, fold, deployments.result)
    finally:
        pool.shutdown(wait=True)


def _replay(
    projection: Projection, bootstrap: str, topics: RuntimeTopics, codec: Callable[[], Codec],
    instance_id: str, partition: int, until: int | None, fold: Any, lookup: Callable[[], Lookup],
) -> tuple[Replay | None, Lag]:  # fmt: skip
    lag = Lag(projection.where)
    pos = projection.positions([topics.events, topics.snapshots])
    lag.positions = {k: v for k, v in pos.items() if k[1] == partition}
    starts = {(t, partition): lag.positions.get((t, partition), 0) for t in (topics.events, topics.snapshots)}
    with ThreadPoolExecutor(max_workers=1) as pool:  # Kafka's part while the projection answers
        suffix = pool.submit(_suffix, bootstrap, starts, (topics.events, topics.snapshots), codec, lag, False)
        evs, snaps = _projected_instance(projection, topics, instance_id)
        got = suffix.result()
    snaps += [s for s in got[topics.snapshots] if s["instance_id"] == instance_id]
    evs += [e for e in got[topics.events] if e["instance_id"] == instance_id]
    if not snaps and not evs:
        return None, lag
    rep: Replay = fold.replay(instance_id, snaps, evs, lookup(), until)
    return rep, lag


def _projected_instance(
    projection: Projection, topics: RuntimeTopics, instance_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An instance's events in the projection and its current row (as a snapshot record)."""
    rows = projection.query(
        "SELECT seq, event, kind, channel, payload, offer_id, command_id, state_before, state_after, "
        "toUnixTimestamp64Milli(time), command_offset, system, version FROM events "
        "WHERE topic = {ev:String} AND instance_id = {i:String} ORDER BY seq, partition, offset LIMIT 1 BY seq",
        ev=topics.events, i=instance_id)  # fmt: skip
    evs: list[dict[str, Any]] = []
    for r in rows:
        e = dict(zip(_EVENT_COLS, r, strict=True))
        e["instance_id"] = instance_id
        for k in ("seq", "state_before", "state_after", "timestamp", "version"):
            e[k] = int(e[k])
        evs.append(e)
    cur = _rows(projection, _current(where="AND instance_id = {i:String}"),
                ev=topics.events, snap=topics.snapshots, i=instance_id)  # fmt: skip
    return evs, [_synth_snapshot(r) for r in cur]


@dataclass(frozen=True)
class SystemVersion:
    """What ``csp systems`` prints of a deployed version."""

    system: str
    version: int
    process: str
    file: str
    deployed_at: int
    channels: tuple[tuple[str, str], ...]  # (name, role)
    assertions: tuple[tuple[str, str], ...]  # (text, status)


def systems(projection: Projection, bootstrap: str, topics: RuntimeTopics,
            codec: Callable[[], Codec]) -> tuple[list[SystemVersion], Lag]:  # fmt: skip
    """Deployed versions (first record of each (system, version) wins; versions deployed before
    the system's last undeploy are gone), as ``DeploymentStore.systems`` gives them."""
    lag = Lag(projection.where)
    lag.positions = projection.positions([topics.registry])
    deps: dict[tuple[str, int], SystemVersion] = {}
    for s, v, proc, file, at, chans, asserts in projection.query(
        "SELECT system, version, process, file_name, toUnixTimestamp64Milli(deployed_at), channels, assertions "
        "FROM deployments WHERE topic = {reg:String} ORDER BY partition, offset", reg=topics.registry):  # fmt: skip
        deps.setdefault((str(s), int(v)), SystemVersion(
            str(s), int(v), str(proc), str(file), int(at),
            tuple((str(c["name"]), str(c["role"])) for c in (chans or {}).get("channels", [])),
            tuple((str(a["text"]), str(a["status"])) for a in (asserts or {}).get("assertions", []))))  # fmt: skip
    gone: dict[str, int] = {
        str(s): int(t) for s, t in projection.query(
            "SELECT src_system, max(toUnixTimestamp64Milli(created_at)) FROM routes "
            "WHERE topic = {reg:String} AND kind = 'UNDEPLOY' GROUP BY src_system", reg=topics.registry)  # fmt: skip
    }
    raw = list(read_ranges(bootstrap, lag.positions, topics=(topics.registry,)))
    lag.records = len(raw)
    if raw:
        c = codec()
        for _t, _p, _o, value, _ts in raw:
            if value is None:
                continue
            try:
                name, rec = c.decode(value)
            except Exception:  # noqa: BLE001 - skipped, as the registry store skips it
                continue
            if name == "CspRoute" and rec.get("kind") == "UNDEPLOY":
                gone[rec["src_system"]] = max(gone.get(rec["src_system"], 0), int(rec["created_at"]))
            elif name == "CspRegistryRecord":
                deps.setdefault((rec["system"], int(rec["version"])), SystemVersion(
                    rec["system"], int(rec["version"]), rec["process"], rec.get("file_name", ""),
                    int(rec.get("deployed_at") or 0), tuple((c["name"], c["role"]) for c in rec["channels"]),
                    tuple((a["text"], a["status"]) for a in rec.get("assertions", []))))  # fmt: skip
    out = [d for (s, _v), d in sorted(deps.items()) if s not in gone or d.deployed_at > gone[s]]
    return out, lag


# -- tail -n N: bounded Kafka reads ------------------------------------------------------------


def tail(
    bootstrap: str, topic: str, partitions: Sequence[int], decode: Callable[[bytes], dict[str, Any] | None],
    key: Callable[[Mapping[str, Any]], tuple[str, int]], wanted: Callable[[Mapping[str, Any]], bool], n: int,
    *, bounded: bool = True,
) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """The last ``n`` matching records of ``topic``: the last ``n`` distinct (by ``key``; the
    latest copy counts) matching records of each partition by offset, of which the ``n`` newest
    by (Kafka timestamp, partition, offset), oldest first. Returns them and how many records
    were read. ``bounded``: read backwards in growing windows from each partition's end (else
    read whole partitions: the reference)."""
    if n <= 0 or not partitions:
        return [], 0

    def one(p: int) -> tuple[list[tuple[int, int, int, dict[str, Any]]], int]:
        found: dict[tuple[str, int], tuple[int, int, int, dict[str, Any]]] = {}
        read = 0
        stop = end_offset(bootstrap, topic, p) if bounded else None
        window = max(64, 2 * n)
        while True:
            start = 0 if stop is None else max(0, stop - window)
            got: dict[tuple[str, int], tuple[int, int, int, dict[str, Any]]] = {}
            for _t, _p, off, value, ts in read_ranges(
                    bootstrap, {(topic, p): start}, None if stop is None else {(topic, p): stop}):  # fmt: skip
                read += 1
                rec = None if value is None else decode(value)
                if rec is None or not wanted(rec):
                    continue
                got[key(rec)] = (ts, p, off, rec)  # the latest copy in the window
            for k, v in got.items():
                found.setdefault(k, v)  # windows go backwards: a later window's copy is the latest
            if stop is None or start == 0 or len(found) >= n:
                break
            stop, window = start, window * 4
        newest = sorted(found.values(), key=lambda x: x[2])[-n:]
        return newest, read

    with ThreadPoolExecutor(max_workers=len(partitions)) as pool:
        results = list(pool.map(one, partitions))
    merged = sorted((x for chunk, _r in results for x in chunk), key=lambda x: (x[0], x[1], x[2]))
    return [x[3] for x in merged[-n:]], sum(r for _c, r in results)
