"""`csp run` (what `make run` starts): stack, worker, verified examples, demo traffic, clean stop."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_csp_run_brings_up_the_platform_and_stops_cleanly(tmp_path: Path) -> None:
    import os

    data = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--data-dir", str(data), "--ephemeral", "--duration", "12"],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "400"},  # one status line per print
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for system in ("buffer", "dining", "agents", "quantum", "agreement"):
        assert f"deployed {system}: " in out, out
    assert "pass " in out  # the examples' assertions were checked before deploying
    assert "dashboard: http://127.0.0.1:8000/" in out  # `csp serve` started beside the worker
    last = re.findall(r"offers (\d+) \(accepted (\d+), refused (\d+)\)", out)
    assert last, out
    offers, accepted, refused = map(int, last[-1])
    assert accepted > 0 and offers == accepted + refused
    assert "stopped: runtime worker, projector, tansu" in out
    # nothing left running: the stack's pid files are gone
    assert not list((data / "run").glob("*.pid")) if (data / "run").exists() else True


def test_csp_run_leaves_a_running_stack_running_and_honours_data_dir(tmp_path: Path) -> None:
    """`csp run` on a stack from `csp up` stops only its worker; --data-dir wins over CSP_DATA_DIR."""
    import os

    data = tmp_path / "up"
    env = {k: v for k, v in os.environ.items() if k != "CSP_KAFKA_BOOTSTRAP"}
    env["CSP_DATA_DIR"] = str(tmp_path / "elsewhere")
    env["COLUMNS"] = "400"  # one status line per print

    def csp(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    up = csp("up", "--ephemeral", "--data-dir", str(data))
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        run = csp("run", "--data-dir", str(data), "--no-demo", "--duration", "2")
        out = run.stdout + run.stderr
        assert run.returncode == 0, out
        assert f"using the running stack in {data}" in out, out
        assert "left running" in out and "(ephemeral)" in out, out
        status = csp("status", "--data-dir", str(data))
        assert status.returncode == 0, status.stdout + status.stderr
        assert not (tmp_path / "elsewhere").exists()
    finally:
        down = csp("down", "--data-dir", str(data))
        assert down.returncode == 0, down.stdout + down.stderr
