import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from infra import procs
from infra.ports import free_port
from infra.settings import Settings
from infra.stack import (
    StackError,
    StackPorts,
    resolve_endpoints,
    running_stack,
    stack_status,
    start_stack,
    stop_stack,
)
from infra.state import pid_path, read_pids, read_state, write_pid, write_state
from infra.tansu import tansu_command
from streams.admin import BrokerUnavailable, ensure_topics, list_topics
from streams.catalog import CATALOG, spec_for

CSP = str(Path(sys.executable).parent / "csp")


def _local(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, kafka_bootstrap=None)


def _csp(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSP_")}
    env.update(env_extra or {})
    return subprocess.run([CSP, *args], capture_output=True, text=True, env=env, timeout=300)


def test_ephemeral_lifecycle_status_and_no_orphans(tmp_path):
    settings = _local(tmp_path / "eph")
    endpoints = start_stack(settings, ephemeral=True)
    try:
        assert endpoints.local
        assert endpoints.clickhouse_url == f"chdb://{tmp_path / 'eph' / 'clickhouse'}"
        state = read_state(settings.resolved_data_dir())
        assert state is not None and state.running and state.mode == "ephemeral"
        pid = state.pids["tansu"]
        assert procs.is_alive(pid, "tansu")
        assert read_pids(settings.resolved_data_dir()) == {"tansu": pid}
        # idempotent: a second up reuses the running broker
        again = start_stack(settings, ephemeral=True)
        assert again.kafka_bootstrap == endpoints.kafka_bootstrap
        assert read_state(settings.resolved_data_dir()).pids["tansu"] == pid
        assert resolve_endpoints(settings).kafka_bootstrap == endpoints.kafka_bootstrap

        report = json.loads(json.dumps(stack_status(settings)))
        assert report["running"] is True and report["mode"] == "ephemeral"
        assert report["kafka"]["bootstrap"] == endpoints.kafka_bootstrap
        assert report["kafka"]["healthy"] is True
        assert report["clickhouse"]["url"] == endpoints.clickhouse_url
        assert report["catalog_missing"] == []
        assert {s.name for s in CATALOG} <= set(report["topics"])
    finally:
        assert stop_stack(settings) == ["tansu"]
    assert not procs.is_alive(pid)
    assert procs.group_members(pid) == []
    assert not pid_path(settings.resolved_data_dir(), "tansu").exists()
    report = stack_status(settings)
    assert report["running"] is False and report["kafka"]["healthy"] is False
    with pytest.raises(StackError, match="no local stack is running"):
        resolve_endpoints(settings)
    with pytest.raises(BrokerUnavailable):
        list_topics(endpoints.kafka_bootstrap, timeout_s=1)


def test_down_removes_stale_pid_files(tmp_path):
    settings = _local(tmp_path / "stale")
    data_dir = settings.resolved_data_dir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_pid(data_dir, "tansu", dead.pid)
    write_pid(data_dir, "weed", dead.pid)
    assert stop_stack(settings) == []
    assert read_pids(data_dir) == {}


def test_up_replaces_stale_pid_files(tmp_path):
    settings = _local(tmp_path / "stale-up")
    data_dir = settings.resolved_data_dir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_pid(data_dir, "tansu", dead.pid)
    with running_stack(settings, ephemeral=True):
        pids = read_pids(data_dir)
        assert pids["tansu"] != dead.pid and procs.is_alive(pids["tansu"], "tansu")
    assert read_pids(data_dir) == {}


def test_external_bootstrap_starts_no_broker(tmp_path, kafka_bootstrap):
    data_dir = tmp_path / "ext"
    settings = Settings(data_dir=data_dir, kafka_bootstrap=kafka_bootstrap)
    with running_stack(settings) as endpoints:
        assert endpoints.local is False
        assert endpoints.kafka_bootstrap == kafka_bootstrap
        assert resolve_endpoints(settings).kafka_bootstrap == kafka_bootstrap
        assert read_state(data_dir.resolve()) is None
        assert read_pids(data_dir.resolve()) == {}
        live = list_topics(kafka_bootstrap)
        assert all(live.get(s.name) == s.partitions for s in CATALOG)
        report = stack_status(settings)
        assert report["mode"] == "external" and report["kafka"]["external"] is True
        assert report["kafka"]["bootstrap"] == kafka_bootstrap
    assert stop_stack(settings) == []
    assert list_topics(kafka_bootstrap)  # the external broker is untouched


def test_cli_topics_lists_the_catalog():
    result = _csp("topics", "--offline", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == [s.name for s in CATALOG]
    assert {"name", "partitions", "key", "value_schema", "cleanup_policy", "retention_ms", "purpose"} <= set(rows[0])
    text = _csp("topics", "--offline")
    assert text.returncode == 0 and "csp.events" in text.stdout and "audit.log" in text.stdout


def test_cli_unknown_topic_is_a_clear_error():
    result = _csp("topics", "no.such.topic", "--offline")
    assert result.returncode == 2
    assert "unknown topic 'no.such.topic'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(120)
def test_cli_up_against_a_down_broker_fails_clearly(tmp_path):
    bootstrap = f"127.0.0.1:{free_port()}"
    result = _csp(
        "up", "--data-dir", str(tmp_path),
        env_extra={"CSP_KAFKA_BOOTSTRAP": bootstrap, "CSP_KAFKA_TIMEOUT_S": "3"},
    )
    assert result.returncode == 1
    assert bootstrap in result.stderr and "unavailable" in result.stderr
    assert "Traceback" not in result.stderr
    assert read_pids(tmp_path.resolve()) == {}


def test_cli_up_status_down_ephemeral(tmp_path):
    data_dir = str(tmp_path / "cli")
    up = _csp("up", "--data-dir", data_dir, "--ephemeral", "--format", "json")
    assert up.returncode == 0, up.stderr
    first = json.loads(up.stdout)
    bootstrap = first["kafka"]["bootstrap"]
    assert first["already_running"] is False and first["mode"] == "ephemeral"
    try:
        again = _csp("up", "--data-dir", data_dir, "--format", "json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["already_running"] is True
        assert json.loads(again.stdout)["kafka"]["bootstrap"] == bootstrap
        status = _csp("status", "--data-dir", data_dir, "--format", "json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["kafka"]["bootstrap"] == bootstrap
        assert report["clickhouse"]["url"].startswith("chdb:///")
        assert report["kafka"]["healthy"] is True
        pid = report["kafka"]["pid"]
        assert procs.is_alive(pid, "tansu")
    finally:
        down = _csp("down", "--data-dir", data_dir)
    assert down.returncode == 0 and "tansu" in down.stdout
    assert not procs.is_alive(pid)
    stopped = _csp("status", "--data-dir", data_dir, "--format", "json")
    assert stopped.returncode == 3
    assert json.loads(stopped.stdout)["running"] is False


@pytest.mark.slow
def test_durable_stack_status_ports_recorded_and_reused(durable_stack):
    kafka_port = free_port()
    settings = durable_stack.settings("durable-status")
    _, endpoints = durable_stack.start(settings, ports=StackPorts(kafka=kafka_port))
    assert endpoints.kafka_bootstrap == f"127.0.0.1:{kafka_port}"
    data_dir = settings.resolved_data_dir()
    state = read_state(data_dir)
    assert state is not None and state.mode == "durable" and state.kafka_port == kafka_port
    assert state.seaweed_ports is not None and len(set(state.seaweed_ports.values())) == len(state.seaweed_ports)
    report = stack_status(settings)
    assert report["running"] is True and report["mode"] == "durable", report
    assert report["kafka"]["healthy"] is True, report
    assert report["storage"]["healthy"] is True, report
    assert report["storage"]["s3_endpoint"] == f"http://127.0.0.1:{state.seaweed_ports['s3']}"
    assert report["catalog_missing"] == [], report
    pids = dict(state.pids)
    assert set(pids) == {"tansu", "weed"}
    assert sorted(durable_stack.stop(settings)) == ["tansu", "weed"]
    for pid in pids.values():
        assert not procs.is_alive(pid) and procs.group_members(pid) == []
    # the next `up` reuses the recorded ports (they are free again)
    _, again = durable_stack.start(settings)
    restarted = read_state(data_dir)
    assert again.kafka_bootstrap == endpoints.kafka_bootstrap, restarted
    assert restarted.seaweed_ports == state.seaweed_ports, (restarted, state)


def test_explicit_busy_kafka_port_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = _local(tmp_path / "busy")
        with pytest.raises(StackError, match=f"127.0.0.1:{port} is already in use"):
            start_stack(settings, ephemeral=True, ports=StackPorts(kafka=port))
    assert read_pids(settings.resolved_data_dir()) == {}
    assert stack_status(settings)["running"] is False


CRASHING_OWNER = """
import os, sys
from infra.settings import Settings
from infra.stack import running_stack
from infra.state import read_state
settings = Settings(data_dir=sys.argv[1], kafka_bootstrap=None)
with running_stack(settings, ephemeral=True):
    print(read_state(settings.resolved_data_dir()).pids["tansu"], flush=True)
    os._exit(9)
"""


@pytest.mark.timeout(120)
def test_running_stack_owner_crash_leaves_no_orphan(tmp_path):
    import time

    result = subprocess.run(
        [sys.executable, "-c", CRASHING_OWNER, str(tmp_path / "owned")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 9, result.stderr
    pid = int(result.stdout.strip())
    while procs.is_alive(pid):  # SIGTERM from the kernel (PR_SET_PDEATHSIG); hang-guarded by timeout
        time.sleep(0.05)
    assert not procs.is_alive(pid)
    assert stack_status(_local(tmp_path / "owned"))["running"] is False


def test_status_reports_catalog_topics_with_wrong_partition_counts(tmp_path):
    # A catalog topic created earlier with another partition count (e.g. auto-created by a
    # producer) cannot be fixed in place (no CreatePartitions): status must say so.
    settings = _local(tmp_path / "mismatch")
    data_dir = settings.resolved_data_dir()
    with running_stack(settings, ephemeral=True) as endpoints:
        assert stack_status(settings)["partition_mismatch"] == {}
        state = read_state(data_dir)
        procs.stop(state.pids["tansu"], 10)
        pid = procs.spawn(tansu_command(state.kafka_port, None), data_dir / "logs" / "t2.log", tie_to_parent=True)
        try:
            events = replace(spec_for("csp.events"), partitions=2, dead_letter=None, input=False)
            ensure_topics(endpoints.kafka_bootstrap, [events])
            state.pids["tansu"] = pid
            write_state(data_dir, state)
            report = stack_status(settings)
            assert report["partition_mismatch"] == {"csp.events": {"declared": 4, "actual": 2}}
        finally:
            procs.stop(pid, 10)


def test_explicit_busy_seaweed_port_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = _local(tmp_path / "busy-s3")
        with pytest.raises(StackError, match=f"already in use: s3 127.0.0.1:{port}"):
            start_stack(settings, ports=StackPorts(seaweed={"s3": port}))
    assert read_pids(settings.resolved_data_dir()) == {}
