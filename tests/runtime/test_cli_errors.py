"""Bad input to the runtime CLI gives one `error: ...` line and exit 1, never a traceback."""

from __future__ import annotations

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
