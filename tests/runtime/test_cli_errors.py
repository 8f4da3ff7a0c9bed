"""Bad input to the runtime CLI gives one `error: ...` line and exit 1, never a traceback."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from runtime_helpers import ROOT
from typer.testing import CliRunner

from gateway.cli import app


def csp(*args: str) -> tuple[int, str, BaseException | None]:
    res = CliRunner().invoke(app, list(args))
    exc = res.exception if not isinstance(res.exception, SystemExit) else None
    return res.exit_code, res.output, exc


@pytest.fixture
def ns(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))
    ns = f"err{uuid.uuid4().hex[:8]}"
    code, out, exc = csp("deploy", str(ROOT / "examples/buffer/buffer.csp"), "--process", "BUFFER", "--name", "buf",
                         "--outputs", "right", "--namespace", ns)  # fmt: skip
    assert code == 0 and exc is None, out
    return ns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tail", "--channel", "nosuch"), "no deployed system has a channel 'nosuch'"),
        (("tail", "--channel", "buf.nosuch"), "system buf has no channel 'nosuch' (channels: "),
        (("tail", "--channel", "right", "--system", "nosys"), "no deployed system 'nosys' (deployed: buf)"),
        (
            ("conform", "nosys", str(ROOT / "examples/buffer/buffer.csp"), "SPEC"),
            "no deployed system 'nosys'",
        ),
    ],
)
def test_unknown_channel_or_system(ns: str, args: tuple[str, ...], message: str) -> None:
    code, out, exc = csp(*args, "--namespace", ns)
    assert exc is None, exc
    assert code == 1, out
    assert out.startswith("error: ") and message in out and len(out.strip().splitlines()) == 1, out


def test_known_channel_still_tails(ns: str) -> None:
    code, out, exc = csp("tail", "--channel", "buf.right", "--namespace", ns)
    assert (code, out, exc) == (0, "", None)
    code, out, exc = csp("tail", "--channel", "right", "--namespace", ns)
    assert (code, out, exc) == (0, "", None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "args",
    [
        ("worker",),
        ("deploy", str(ROOT / "examples/buffer/buffer.csp"), "--process", "BUFFER"),
        ("start", "BUFFER"),
        ("offer", "x", "left.1"),
        ("stop", "x"),
        ("tail",),
        ("instances",),
        ("replay", "x"),
    ],
)
def test_broker_down_is_one_line_exit_3(
    args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", f"127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("CSP_KAFKA_TIMEOUT_S", "1")
    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))
    code, out, exc = csp(*args)
    assert exc is None, exc
    assert code == 3, out
    assert out.startswith("error: Kafka broker at 127.0.0.1:") and "unavailable" in out, out


def test_worker_without_stack_is_one_line_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CSP_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))
    code, out, exc = csp("worker")
    assert exc is None, exc
    assert code == 3 and out.startswith("error: no local stack is running in"), out


def test_worker_passes_bound_and_snapshot_every(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import processors.csp.runtime.worker as worker_mod

    got: list[list[str]] = []

    def fake_main(argv: list[str] | None = None) -> int:
        got.append(list(argv or []))
        return 0

    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setattr(worker_mod, "main", fake_main)
    code, out, exc = csp("worker", "--bound", "7", "--snapshot-every", "3")
    assert (code, exc) == (0, None), out
    argv = got[0]
    assert argv[argv.index("--bound") + 1] == "7" and argv[argv.index("--snapshot-every") + 1] == "3"
    assert argv[argv.index("--bootstrap") + 1] == kafka_bootstrap


@pytest.mark.parametrize(
    "args", [("start", "buf"), ("offer", "b1", "left.1"), ("stop", "b1")], ids=["start", "offer", "stop"]
)
def test_no_worker_is_one_line_exit_3(ns: str, args: tuple[str, ...]) -> None:
    """Nobody consumes this namespace's commands: a timeout, reported as 'platform unavailable'."""
    code, out, exc = csp(*args, "--timeout", "1", "--namespace", ns)
    assert exc is None, exc
    assert code == 3, out
    if args[0] == "start":  # the id it asked for comes first (stdout), so the orphan can be found
        iid, _, out = out.partition("\n")
        assert iid.startswith("buf-"), iid
    assert out.startswith("error: no answer to command") and "csp worker" in out, out


def test_worker_that_loses_its_broker_exits_3_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import processors.csp.runtime.worker as worker_mod
    import streams.admin as admin
    from streams.reader import ReadTimeout

    probes: list[str] = []

    def wait_ready(bootstrap: str, timeout_s: float) -> None:
        probes.append(bootstrap)
        if len(probes) > 1:  # up at start, gone after the worker failed
            raise admin.BrokerUnavailable(f"Kafka broker at {bootstrap} is unavailable")

    def fake_main(argv: list[str] | None = None) -> int:
        raise ReadTimeout("csp.registry[0]: fence not seen within 30.0s")

    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setattr(admin, "wait_ready", wait_ready)
    monkeypatch.setattr(worker_mod, "main", fake_main)
    code, out, exc = csp("worker", "--worker-id", "w9")
    assert exc is None, exc
    assert code == 3, out
    assert out.strip() == (
        "error: runtime worker w9 stopped: lost the Kafka broker at 127.0.0.1:9 "
        "(ReadTimeout: csp.registry[0]: fence not seen within 30.0s)"
    ), out


def test_worker_failure_with_a_live_broker_keeps_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import processors.csp.runtime.worker as worker_mod
    import streams.admin as admin

    def fake_main(argv: list[str] | None = None) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setattr(admin, "wait_ready", lambda bootstrap, timeout_s: None)
    monkeypatch.setattr(worker_mod, "main", fake_main)
    res = CliRunner().invoke(app, ["worker"])
    assert isinstance(res.exception, ZeroDivisionError)


@pytest.mark.parametrize("args", [("instances",), ("tail",), ("worker",), ("start", "buf")])
def test_illegal_namespace_is_bad_input(args: tuple[str, ...], tmp_path: Path) -> None:
    code, out, exc = csp(*args, "--namespace", "bad ns", "--data-dir", str(tmp_path))
    assert exc is None, exc
    assert code == 2, out
    assert out.startswith("error: --namespace 'bad ns': use letters, digits"), out


def test_replay_until_must_not_be_negative(tmp_path: Path) -> None:
    code, out, _exc = csp("replay", "x", "--until", "-1", "--data-dir", str(tmp_path))
    assert code == 2 and "--until" in out, out


def test_second_signal_stops_a_stuck_worker(tmp_path: Path) -> None:
    """A worker whose broker is gone may be stuck in recovery reads; a second SIGTERM ends it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from infra.settings import Settings
    from infra.stack import start_stack, stop_stack

    settings = Settings(data_dir=tmp_path / "stack", kafka_bootstrap=None)
    endpoints = start_stack(settings, ephemeral=True)
    env = dict(os.environ, CSP_DATA_DIR=str(tmp_path / "stack"), CSP_LOG_LEVEL="WARNING")
    env.pop("CSP_KAFKA_BOOTSTRAP", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "processors.csp.runtime.worker", "--bootstrap", endpoints.kafka_bootstrap],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(4)  # joined the group, recovering or idle
        stop_stack(settings)
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(3)  # a graceful stop may already succeed
        except subprocess.TimeoutExpired:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(10)
        assert code in (0, 3, 130)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        stop_stack(settings)
