"""The fast reads (`gateway/reads.py`) print what the whole-log reads print, on the real broker and
a real projector: `csp instances`, `systems`, `replay` from the ClickHouse projection (caught up, and
behind the log: the newer records come from Kafka), `tail -n N` from the partitions' ends. And
`--format json|csv` on `csp start` and `csp stop`."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import ROOT, thread_worker
from typer.testing import CliRunner

from gateway.cli import app
from gateway.reads import find_projection
from gateway.sdk import Platform
from infra.settings import Settings
from streams.admin import ensure_topics
from streams.reader import end_offset

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def csp(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr without the worker's log lines)."""
    res = CliRunner().invoke(app, list(args))
    err = "\n".join(line for line in res.stderr.splitlines() if not LOG_LINE.match(line))
    out = "\n".join(line for line in res.stdout.splitlines() if not LOG_LINE.match(line))
    return res.exit_code, out, err


class Projector:
    """A real projector subprocess for one namespace and data dir."""

    def __init__(self, bootstrap: str, data: Path, namespace: str) -> None:
        self.bootstrap, self.data, self.namespace = bootstrap, data, namespace
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, batch_ms: int = 50) -> None:
        (self.data / "projector.json").unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "CSP_CLICKHOUSE_URL"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "projections.projector", "--bootstrap", self.bootstrap, "--namespace",
             self.namespace, "--data-dir", str(self.data), "--clickhouse-url", f"chdb://{self.data / 'ch'}",
             "--no-audit", "--batch-ms", str(batch_ms)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(self.data / "projector.log", "ab"),  # noqa: SIM115
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while find_projection(self.data, None, self.namespace, self.bootstrap) is None:
            assert self.proc.poll() is None, (self.data / "projector.log").read_text()
            assert time.monotonic() < deadline, "the projector did not start"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self.proc = None

    def caught_up(self, platform: Platform, timeout_s: float = 60) -> None:
        """Wait until the projection holds every record of the runtime's topics."""
        proj = find_projection(self.data, None, self.namespace, self.bootstrap)
        assert proj is not None
        t = platform.topics
        topics = (t.events, t.snapshots, t.registry)
        deadline = time.monotonic() + timeout_s
        while True:
            pos = proj.positions(topics)
            ends = {(tp, p): end_offset(self.bootstrap, tp, p) for tp in topics for p in range(platform.partitions)
                    if tp != t.registry or p == 0}  # fmt: skip
            # a partition's end may be a transaction marker past its last record
            if all(pos.get(k, 0) >= e - 1 for k, e in ends.items() if e > 0):
                return
            assert time.monotonic() < deadline, (pos, ends)
            time.sleep(0.3)


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Platform, Projector]]:
    ns = f"fr{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CSP_CLICKHOUSE_URL", raising=False)
    platform = Platform(kafka_bootstrap, namespace=ns, settings=Settings(data_dir=tmp_path, kafka_bootstrap=kafka_bootstrap))
    ensure_topics(kafka_bootstrap, platform.topics.specs())
    projector = Projector(kafka_bootstrap, tmp_path, ns)
    try:
        with platform:
            yield ns, platform, projector
    finally:
        projector.stop()


READS = [
    ("instances",), ("instances", "--format", "json"), ("instances", "--format", "csv"),
    ("instances", "--system", "buf"), ("instances", "--system", "other"),
    ("systems",), ("systems", "--format", "json"), ("systems", "--format", "csv"),
    ("replay", "b1"), ("replay", "b1", "--until", "2"), ("replay", "b2", "--format", "json"),
    ("replay", "b3", "--format", "csv"), ("replay", "o1"),
]  # fmt: skip


def same_as_kafka(ns: str, *args: str) -> str:
    """Run ARGS on the fast path and with --source kafka; assert the same exit code and stdout."""
    code, out, err = csp(*args, "--namespace", ns)
    code_k, out_k, _err_k = csp(*args, "--namespace", ns, "--source", "kafka")
    assert (code, out) == (code_k, out_k), (args, out, out_k, err)
    return err


def test_fast_reads_match_the_whole_log(stack: tuple[str, Platform, Projector]) -> None:
    ns, platform, projector = stack
    buffer = str(ROOT / "examples/buffer/buffer.csp")
    assert csp("deploy", buffer, "-p", "BUFFER", "--name", "buf", "--outputs", "right", "--namespace", ns)[0] == 0
    assert csp("deploy", buffer, "-p", "BUFFER", "--name", "other", "--outputs", "right", "--namespace", ns)[0] == 0
    assert csp("deploy", buffer, "-p", "BUFFER", "--name", "buf", "--outputs", "right", "--namespace", ns)[0] == 0
    projector.start()
    with thread_worker(platform):
        for iid, system in (("b1", "buf"), ("b2", "buf"), ("b3", "buf"), ("o1", "other")):
            assert csp("start", system, "--id", iid, "--namespace", ns)[0] == 0
        for iid, ev in (("b1", "left.1"), ("b1", "left.2"), ("b2", "left.0"), ("o1", "left.2"), ("b1", "right.0")):
            csp("offer", iid, ev, "--namespace", ns)
        assert csp("stop", "b3", "--namespace", ns)[0] == 0
        code, out, _ = csp("undeploy", "other", "--format", "json", "--namespace", ns)
        assert code == 0 and json.loads(out) == {"system": "other", "versions": [1]}, out
        projector.caught_up(platform)
        for args in READS:
            err = same_as_kafka(ns, *args)
            assert "read from the ClickHouse projection" in err, (args, err)
        code, out, _ = csp("instances", "--namespace", ns)
        assert code == 0 and "b3  buf v2  state 0  seq 0  STOPPED" in out and "o1  other v1" in out, out
        code, out, _ = csp("systems", "--namespace", ns)
        assert "buf v1" in out and "buf v2" in out and "other" not in out, out  # undeployed

        # the projection behind the log: a projector that never flushes (batches of an hour)
        projector.stop()
        projector.start(batch_ms=3_600_000)
        assert csp("start", "buf", "--id", "b4", "--namespace", ns)[0] == 0  # new instance
        csp("offer", "b4", "left.1", "--namespace", ns)
        csp("offer", "b2", "left.1", "--namespace", ns)  # new events of a projected instance
        assert csp("stop", "b1", "--namespace", ns)[0] == 0  # a new status
        assert csp("deploy", buffer, "-p", "BUFFER", "--name", "late", "--outputs", "right", "--namespace", ns)[0] == 0
        for args in [*READS, ("replay", "b4"), ("instances", "--system", "buf")]:
            err = same_as_kafka(ns, *args)
            assert "read from the ClickHouse projection" in err, (args, err)
            if args[0] == "instances" or args in (("replay", "b4"), ("replay", "b1")):
                assert re.search(r"; [1-9]\d* newer record\(s\) read from Kafka", err), (args, err)
        code, out, _ = csp("instances", "--namespace", ns)
        assert "b1  buf v2  state 0  seq 6  STOPPED" in out and "b4  buf v2  state 0  seq 3  RUNNING" in out, out
        assert "late v1" in csp("systems", "--namespace", ns)[1]

        # tail -n N: the bounded read gives what the whole read gives
        for args in (("tail", "-n", "4"), ("tail", "-n", "1"), ("tail", "-n", "100"), ("tail", "-o", "-3"),
                     ("tail", "-n", "2", "--instance", "b1"), ("tail", "-n", "2", "--system", "other"),
                     ("tail", "--refusals", "-n", "1"), ("tail", "-n", "3", "--format", "json")):  # fmt: skip
            same_as_kafka(ns, *args)
        code, out, _ = csp("tail", "-n", "2", "--instance", "b1", "--namespace", ns)
        assert [line.split()[1] for line in out.splitlines()] == ["#5", "#6"], out
        assert len(csp("tail", "-n", "100", "--namespace", ns)[1].splitlines()) == 18  # every event

        # no projection: --source projection exits 3, auto reads Kafka
        projector.stop()
        assert csp("instances", "--source", "projection", "--namespace", ns)[0] == 3
        code, out, err = csp("instances", "--namespace", ns)
        assert code == 0 and "projection" not in err and "b4  buf v2" in out


def test_start_and_stop_print_json_and_csv(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = f"fmt{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))
    platform = Platform(kafka_bootstrap, namespace=ns, settings=Settings(data_dir=tmp_path, kafka_bootstrap=kafka_bootstrap))
    ensure_topics(kafka_bootstrap, platform.topics.specs())
    buffer = str(ROOT / "examples/buffer/buffer.csp")
    assert csp("deploy", buffer, "-p", "BUFFER", "--name", "buf", "--outputs", "right", "--namespace", ns)[0] == 0
    with platform, thread_worker(platform):
        code, out, _ = csp("start", "buf", "--id", "j1", "--format", "json", "--namespace", ns)
        assert code == 0 and json.loads(out) == {"instance_id": "j1", "system": "buf", "version": 1, "state": 0,
                                                 "status": "RUNNING"}, out  # fmt: skip
        code, out, _ = csp("start", "buf", "--id", "c1", "--format", "csv", "--namespace", ns)
        assert code == 0 and list(csv.DictReader(io.StringIO(out))) == [
            {"instance_id": "c1", "system": "buf", "version": "1", "state": "0", "status": "RUNNING"}], out
        code, out, _ = csp("stop", "j1", "--format", "json", "--namespace", ns)
        assert code == 0 and json.loads(out) == {"instance_id": "j1", "stopped": True, "status": "STOPPED",
                                                 "state": 0, "seq": 0}, out  # fmt: skip
        code, out, _ = csp("stop", "c1", "--format", "csv", "--namespace", ns)
        assert code == 0 and list(csv.DictReader(io.StringIO(out)))[0]["status"] == "STOPPED", out
        code, out, _ = csp("start", "nosuch", "--format", "json", "--namespace", ns)
        assert code == 1
        assert csp("stop", "j1", "--format", "yaml", "--namespace", ns)[0] == 2
