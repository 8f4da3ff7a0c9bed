"""`csp audit` errors: exit 3 when ClickHouse cannot be opened, 2 on bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from gateway.cli import app


def _csp(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def test_unusable_clickhouse_exits_3(tmp_path: Path, audit_db: tuple[Any, str]) -> None:
    # audit_db opened this process's embedded ClickHouse: another path cannot be opened beside
    # it, just as the projector's path cannot be opened while the projector runs.
    other = f"chdb://{tmp_path / 'elsewhere'}"
    code, out = _csp("audit", "verify", "--clickhouse", other, "--vkey",
                     "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    assert code == 3 and "not usable" in out and "--clickhouse http://" in out
    code, out = _csp("audit", "prove", "0", "--clickhouse", "http://127.0.0.1:9")
    assert code == 3 and "127.0.0.1:9" in out


def test_bad_input_exits_2(tmp_path: Path) -> None:
    code, out = _csp("audit", "verify", "--clickhouse", "ftp://x", "--vkey", "not-a-key")
    assert code == 2 and "verifier key" in out
    code, out = _csp("audit", "prove", "0", "--clickhouse", "ftp://x")
    assert code == 2 and "CSP_CLICKHOUSE_URL" in out
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    code, out = _csp("audit", "verify-proof", str(bad))
    assert code == 2
    bad.write_text('{"type": "other", "proof": []}')
    code, out = _csp("audit", "verify-proof", str(bad), "--data-dir", str(tmp_path))
    assert code == 1 and "unknown bundle type" in out
