"""``csp ledger`` end to end: keys, a ledger worker process, deploy, call, revert, tx."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env(bootstrap: str, data_dir: Path) -> dict[str, str]:
    return {**os.environ, "CSP_KAFKA_BOOTSTRAP": bootstrap, "CSP_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}


def _csp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


def test_cli_deploy_call_revert_and_tx(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = _env(kafka_bootstrap, tmp_path)
    for agent in ("platform", "alice"):
        created = _csp(env, "ledger", "keys", "create", agent)
        assert created.returncode == 0, created.stderr
        assert re.fullmatch(rf"{agent} 0x[0-9a-fA-F]{{40}}\n", created.stdout)
    assert (tmp_path / "ledger" / "keys" / "alice.key").stat().st_mode & 0o777 == 0o600
    bad = _csp(env, "ledger", "keys", "create", "no/slash")
    assert bad.returncode == 2 and "illegal agent name" in bad.stderr

    worker = subprocess.Popen([sys.executable, "-m", "gateway.cli", "ledger", "worker"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deployed = _csp(env, "ledger", "deploy", "AuditAnchor", "--agent", "platform", "--wait", "120")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        address = re.search(r"contract=(0x[0-9a-fA-F]{40})", deployed.stdout).group(1)  # type: ignore[union-attr]

        root = "0x" + "cd" * 32
        anchored = _csp(env, "ledger", "call", f"AuditAnchor@{address}", "anchor", root, "3", "--agent", "platform")
        assert anchored.returncode == 0, anchored.stdout + anchored.stderr
        assert "event Anchored" in anchored.stdout and root in anchored.stdout

        reverted = _csp(env, "ledger", "call", f"AuditAnchor@{address}", "anchor", root, "4", "--agent", "alice",
                        "--json")
        assert reverted.returncode == 1, reverted.stdout + reverted.stderr
        receipt = json.loads(reverted.stdout)
        assert receipt["status"] == "REVERTED" and receipt["reason"] == "AuditAnchor: only the platform may anchor"

        shown = _csp(env, "ledger", "tx", receipt["tx_id"], "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["tx_hash"] == receipt["tx_hash"]
        missing = _csp(env, "ledger", "tx", "no-such-request", "--wait", "1")
        assert missing.returncode == 1 and "no receipt" in missing.stderr

        unknown = _csp(env, "ledger", "deploy", "Nope")
        assert unknown.returncode == 2 and "unknown contract 'Nope'" in unknown.stderr
        malformed = _csp(env, "ledger", "call", "AuditAnchor", "anchor")
        assert malformed.returncode == 2 and "NAME@ADDRESS" in malformed.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
