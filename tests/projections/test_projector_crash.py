"""SIGKILL between insert and commit; the SQL endpoint through clickhouse-connect's http client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from projection_helpers import codec, make_namespace, produce, sample, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _spawn(data_dir: Path, bootstrap: str, ns: str, log: Path, hold: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CSP_KAFKA_BOOTSTRAP", None)
    if hold is not None:
        env["CSP_PROJECTOR_HOLD_BEFORE_COMMIT"] = str(hold)
    return subprocess.Popen(
        [sys.executable, "-m", "projections.projector", "--bootstrap", bootstrap, "--data-dir", str(data_dir),
         "--clickhouse-url", f"chdb://{data_dir / 'clickhouse'}", "--namespace", ns, "--no-audit", "--batch-ms", "50"],
        cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )


def _sql_client(data_dir: Path, proc: subprocess.Popen[bytes]) -> clickhouse_connect.driver.Client:
    state_file = data_dir / "projector.json"

    def ready() -> bool:
        assert proc.poll() is None, "projector exited"
        return state_file.exists() and json.loads(state_file.read_text()).get("pid") == proc.pid

    wait_for(ready, 120, "the projector's SQL endpoint")
    url = json.loads(state_file.read_text())["sql_url"]
    port = int(url.rsplit(":", 1)[1])
    password = (data_dir / "sql.password").read_text().strip()
    return clickhouse_connect.get_client(host="127.0.0.1", port=port, username="csp", password=password)


def _events(client: clickhouse_connect.driver.Client, ns: str) -> int:
    return int(client.query(f"SELECT count() FROM events WHERE topic = '{ns}.csp.events'").result_rows[0][0])


def test_sigkill_between_insert_and_commit_does_not_count_twice(kafka_bootstrap, tmp_path):
    c = codec()
    ns = make_namespace(kafka_bootstrap)
    topic = f"{ns}.csp.events"
    produce(kafka_bootstrap, topic, [c.encode("CspEvent", sample(c, "CspEvent", seq=i)) for i in range(40)], txid=f"{ns}-a")
    produce(kafka_bootstrap, topic, [c.encode("CspEvent", sample(c, "CspEvent", seq=900 + i)) for i in range(5)],
            txid=f"{ns}-a", abort=True)
    # another partition: the held round holds two batches, and the recovery redoes both together
    produce(kafka_bootstrap, topic, [c.encode("CspEvent", sample(c, "CspEvent", seq=40 + i)) for i in range(10)],
            partition=1)
    hold = tmp_path / "held"
    log = tmp_path / "projector.log"
    first = _spawn(tmp_path, kafka_bootstrap, ns, log, hold)
    try:
        wait_for(lambda: hold.exists() or first.poll() is not None, 120, "a batch inserted but not committed")
        assert first.poll() is None, log.read_text()
        held_token = hold.read_text()
        os.kill(first.pid, signal.SIGKILL)  # between the inserts and the commit row
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    second = _spawn(tmp_path, kafka_bootstrap, ns, log)
    try:
        client = _sql_client(tmp_path, second)
        wait_for(lambda: _events(client, ns) >= 50, 120, "the projection after the restart")
        produce(kafka_bootstrap, topic, [c.encode("CspEvent", sample(c, "CspEvent", seq=50 + i)) for i in range(5)],
                partition=2)
        wait_for(lambda: _events(client, ns) >= 55, 120, "records produced after the restart")
        time.sleep(1.0)
        assert _events(client, ns) == 55
        seqs = client.query(f"SELECT seq FROM events WHERE topic = '{topic}' ORDER BY seq").result_rows
        assert [s for (s,) in seqs] == list(range(55))  # aborted 900.. absent, no duplicates
        topic_, partition, rng = held_token.rsplit(":", 2)
        first_off, last_off = (int(x) for x in rng.split("-"))
        states = client.query(
            "SELECT done FROM projector_batches WHERE topic = {t:String} AND first_offset = {f:UInt64}"
            " AND last_offset = {l:UInt64} ORDER BY done",
            parameters={"t": topic_, "f": first_off, "l": last_off}).result_rows
        assert states == [(0,), (1,)]  # planned by the killed process, committed by the recovery
        rounds = client.query("SELECT round, groupUniqArray(done) FROM projector_batches WHERE topic = {t:String}"
                              " GROUP BY round", parameters={"t": topic}).result_rows
        assert all(sorted(d) == [0, 1] for _r, d in rounds), rounds  # every round planned, then committed

        # the endpoint is read-only and password-protected
        with pytest.raises(DatabaseError, match="read-only"):
            client.command("DROP TABLE events")
        with pytest.raises(DatabaseError, match="read-only"):
            client.insert("events", [["x"]], column_names=["instance_id"])
        with pytest.raises(DatabaseError, match="Authentication failed"):
            clickhouse_connect.get_client(host="127.0.0.1", port=client.url and int(client.url.rsplit(":", 1)[1]),
                                          username="csp", password="wrong")
        views = client.query("SELECT name FROM system.tables WHERE database = 'default' AND name LIKE 'v_%'").result_rows
        assert {"v_refusal_rate", "v_offer_latency", "v_dead_letters_per_topic"} <= {v for (v,) in views}
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(60)
        except subprocess.TimeoutExpired:
            second.kill()
