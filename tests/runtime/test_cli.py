"""The runtime CLI against the real broker: deploy (refused with a counterexample, versions), start,
offer, stop, tail, instances, replay, conform."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from runtime_helpers import ROOT, thread_worker
from typer.testing import CliRunner

from gateway.cli import app
from gateway.sdk import Platform
from infra.settings import Settings


@pytest.fixture
def cli_env(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))
    return f"cli{uuid.uuid4().hex[:8]}", tmp_path


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def csp(*args: str) -> tuple[int, str]:
    """Run the CLI in-process; the output without the in-process worker's log lines."""
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, "\n".join(line for line in res.output.splitlines() if not LOG_LINE.match(line))


def test_cli_end_to_end(cli_env: tuple[str, Path], kafka_bootstrap: str) -> None:
    ns, tmp = cli_env
    code, out = csp("deploy", str(ROOT / "examples/dining/dining_no_butler.csp"), "--process", "SYSTEM",
                    "--name", "college", "--namespace", ns)  # fmt: skip
    assert code == 1
    assert "deadlock" in out and "counterexample" in out and "picks." in out and "refused" in out
    code, out = csp("deploy", str(ROOT / "examples/buffer/buffer.csp"), "--process", "BUFFER", "--name", "buf",
                    "--outputs", "right", "--namespace", ns)  # fmt: skip
    assert code == 0, out
    assert "deployed buf v1" in out and "right:output" in out
    code, out = csp("deploy", str(ROOT / "examples/buffer/buffer.csp"), "--process", "BUFFER", "--name", "buf",
                    "--outputs", "nosuch", "--namespace", ns)  # fmt: skip
    assert code == 2 and "nosuch" in out
    platform = Platform(
        kafka_bootstrap, namespace=ns, settings=Settings(data_dir=tmp, kafka_bootstrap=kafka_bootstrap)
    )
    with platform, thread_worker(platform):
        code, out = csp("start", "buf", "--id", "b1", "--namespace", ns)
        assert code == 0 and out.splitlines()[0] == "b1", out
        code, out = csp("offer", "b1", "left.2", "--namespace", ns)
        assert code == 0 and "accepted left.2" in out and "right.2" in out
        code, out = csp("offer", "b1", "left.7", "--namespace", ns)
        assert code == 1 and "MALFORMED" in out
        code, out = csp("offer", "b1", "right.1", "--namespace", ns)
        assert code == 1 and "NOT_ACCEPTABLE" in out and "left.0, left.1, left.2" in out
        code, out = csp("offer", "b1", "left.1", "--expect-seq", "0", "--namespace", ns)  # b1 is at seq 3
        assert code == 1 and "NOT_ACCEPTABLE" in out and "moved on to seq 3" in out
        code, out = csp("deploy", str(ROOT / "examples/buffer/buffer.csp"), "--process", "BUFFER", "--name", "buf",
                        "--outputs", "right", "--namespace", ns)  # fmt: skip
        assert code == 0 and "deployed buf v2" in out
        code, out = csp("start", "buf", "--id", "b2", "--namespace", ns)
        assert code == 0 and "v2" in out
        code, out = csp("offer", "b1", "left.0", "--namespace", ns)  # b1 keeps running v1
        assert code == 0
        code, out = csp("tail", "--namespace", ns)
        assert code == 0 and out.count("b1 #") == 6
        code, out = csp("tail", "--refusals", "--namespace", ns)
        assert "MALFORMED" in out and "NOT_ACCEPTABLE" in out
        code, out = csp("tail", "--channel", "buf.right", "--namespace", ns)
        assert [line.split()[2] for line in out.splitlines()] == ["right.2", "right.0"]
        code, out = csp("replay", "b1", "--until", "4", "--namespace", ns)
        assert code == 0 and "after seq 4" in out and out.count("#") == 4
        code, out = csp("stop", "b1", "--namespace", ns)
        assert code == 0 and "STOPPED" in out
        code, out = csp("instances", "--namespace", ns)
        assert "b1  buf v1" in out and "STOPPED" in out and "b2  buf v2" in out
        spec = tmp / "spec.csp"
        spec.write_text(
            "channel left, right : {0..2}\nSPEC = left?x -> right!x -> SPEC\nODD = left.1 -> ODD\n"
        )
        code, out = csp("conform", "buf", str(spec), "SPEC", "--namespace", ns)
        assert code == 0 and "2 of 2 instance(s) of buf conform" in out
        code, out = csp("conform", "buf", str(spec), "ODD", "--namespace", ns)
        assert code == 1 and "VIOLATION b1" in out and "left.2" in out
