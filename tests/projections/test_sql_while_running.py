"""`csp sql` answers the view questions while `csp run` (what `make run` runs) drives the examples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_csp_sql_answers_the_views_while_csp_run_drives_the_examples(tmp_path: Path) -> None:
    data = tmp_path / "stack"
    env = {k: v for k, v in os.environ.items() if k not in ("CSP_KAFKA_BOOTSTRAP", "CSP_CLICKHOUSE_URL")}
    env["CSP_DATA_DIR"] = str(data)

    def csp(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)

    def sql(query: str) -> list[dict[str, Any]]:
        done = csp("sql", query, "--format", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)
        return rows

    up = csp("up", "--ephemeral")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        run = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--duration", "40"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 150
            active: list[dict[str, Any]] = []
            while time.monotonic() < deadline and run.poll() is None:
                active = sql("SELECT * FROM v_active_instances ORDER BY system")
                refused = sql("SELECT * FROM v_refusal_rate")
                if {r["system"] for r in active} >= {"buffer", "dining", "agents"} and refused:
                    break
                time.sleep(2)
            assert {r["system"] for r in active} >= {"buffer", "dining", "agents"}, active
            # every offer of `right.0` to a buffer is refused by the demo: the rate says so
            rate = sql("SELECT system, reason, refusals, refusal_rate FROM v_refusal_rate")
            assert any(r["system"] == "buffer" and r["reason"] == "NOT_ACCEPTABLE" and 0 < r["refusal_rate"] < 1
                       for r in rate), rate
            top = sql("SELECT * FROM v_top_refused_events LIMIT 1")
            assert top and top[0]["event"] == "right.0", top
            per_minute = sql("SELECT system, channel, sum(events) AS n FROM v_events_per_channel_minute GROUP BY system, channel")
            assert {(r["system"], r["channel"]) for r in per_minute} >= {("buffer", "left"), ("buffer", "right")}
            latency = sql("SELECT * FROM v_offer_latency")
            assert latency and all(r["p99_ms"] >= r["p50_ms"] >= 0 for r in latency), latency
            lifetimes = sql("SELECT count() AS n FROM v_instance_lifetimes")
            assert lifetimes[0]["n"] >= 3
            assert sql("SELECT count() AS n FROM v_dead_letters_per_topic")[0]["n"] >= 0
            dash = csp("dashboard", "--once")
            assert dash.returncode == 0, dash.stdout + dash.stderr
            assert "offer → event latency" in dash.stdout and "buffer" in dash.stdout, dash.stdout
            # the endpoint refuses writes, with a clear error and exit 2
            drop = csp("sql", "DROP TABLE events")
            assert drop.returncode == 2 and "read-only" in drop.stderr
        finally:
            run.terminate()
            out, _ = run.communicate(timeout=120)
        assert "left running" in out, out
        status = csp("status", "--format", "json")
        report = json.loads(status.stdout)
        assert report["clickhouse"]["healthy"] is True and report["clickhouse"]["rows"] > 0, report["clickhouse"]
    finally:
        down = csp("down")
        assert "projector" in down.stdout, down.stdout + down.stderr
