"""`csp status` on a data dir where no stack ever ran: exit 3, no Python `None` in the text."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app


def test_status_of_a_never_started_data_dir(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["status", "--data-dir", str(tmp_path / "never")], env={"CSP_KAFKA_BOOTSTRAP": ""}
    )
    assert res.exit_code == 3, res.output
    assert "None" not in res.output, res.output
    assert "mode       stopped (not running)" in res.output
    assert "kafka      DOWN  -\n" in res.output
