"""`make run` (csp run) drives the LLM negotiation: LLM agents finish negotiations through Kafka."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_csp_run_drives_llm_negotiations(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CSP_KAFKA_BOOTSTRAP", "CSP_OPENAI_BASE_URL")}
    env["COLUMNS"] = "400"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--data-dir", str(tmp_path / "run"), "--ephemeral",
         "--duration", "35"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "deployed" in out and "llm-negotiation v1" in out, out
    found = re.findall(r"llm negotiations (\d+) \(done (\d+), delivered (\d+), agents worker up\)", out)
    assert found, out
    started, done, _delivered = map(int, found[-1])
    assert done >= 1 and started >= done, out
