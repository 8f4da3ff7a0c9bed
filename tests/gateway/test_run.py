"""`csp run` (what `make run` starts): stack, worker, verified examples, demo traffic, clean stop."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_csp_run_brings_up_the_platform_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--data-dir", str(data), "--ephemeral", "--duration", "12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for system in ("buffer", "dining", "agents"):
        assert f"deployed {system}: " in out, out
    assert "pass " in out  # the examples' assertions were checked before deploying
    last = re.findall(r"offers (\d+) \(accepted (\d+), refused (\d+)\)", out)
    assert last, out
    offers, accepted, refused = map(int, last[-1])
    assert accepted > 0 and offers == accepted + refused
    assert "stopped: runtime worker, tansu" in out
    # nothing left running: the stack's pid files are gone
    assert not list((data / "run").glob("*.pid")) if (data / "run").exists() else True
