"""The projector as a component of the local stack: spawn, find, probe.

The projector (``python -m projections.projector``) owns the embedded ClickHouse (chdb
allows one process per data path) and serves read-only SQL on loopback. It writes
``<data_dir>/projector.json`` (pid, SQL endpoint) and ``<data_dir>/sql.password``.
Only process handling lives here; infra does not import the projections package.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from infra import procs
from infra.state import log_path, write_pid

NAME = "projections.projector"
STATE_FILE = "projector.json"
PASSWORD_FILE = "sql.password"
READY_S = 60.0
ROOT = Path(__file__).resolve().parents[1]


def read_projector_state(data_dir: Path) -> dict[str, Any] | None:
    """The running projector's state file, if its process is alive."""
    try:
        state: dict[str, Any] = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    return state if isinstance(pid, int) and procs.is_alive(pid, NAME) else None


EPHEMERAL_DIR = "clickhouse-ephemeral"


def start_projector(data_dir: Path, bootstrap: str, clickhouse_url: str, tie_to_parent: bool,
                    ephemeral: bool = False) -> int:
    """Spawn the projector for the stack in ``data_dir`` (reuse a live one); wait until it serves.

    ``ephemeral`` (a memory:// broker, empty at every start): the projections go to a fresh
    chdb path as well, or the sink would hold offsets the new log has not reached.
    """
    running = read_projector_state(data_dir)
    if running is not None:
        return int(running["pid"])
    if ephemeral:
        import shutil

        shutil.rmtree(data_dir / EPHEMERAL_DIR, ignore_errors=True)
        clickhouse_url = f"chdb://{data_dir / EPHEMERAL_DIR}"
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    argv = [sys.executable, "-m", NAME, "--bootstrap", bootstrap, "--clickhouse-url", clickhouse_url,
            "--data-dir", str(data_dir)]
    env = dict(os.environ, CSP_DATA_DIR=str(data_dir), CSP_KAFKA_BOOTSTRAP=bootstrap)
    pid = procs.spawn(argv, log_path(data_dir, "projector"), env=env, cwd=ROOT, tie_to_parent=tie_to_parent)
    write_pid(data_dir, "projector", pid)
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if read_projector_state(data_dir) is not None:
            return pid
        if not procs.is_alive(pid):
            raise RuntimeError(f"the projector exited during startup (log: {log_path(data_dir, 'projector')})")
        time.sleep(0.1)
    raise RuntimeError(f"the projector did not start within {READY_S:.0f}s (log: {log_path(data_dir, 'projector')})")


def sql_endpoint(data_dir: Path) -> tuple[str, str] | None:
    """(url, password) of the running projector's SQL endpoint."""
    state = read_projector_state(data_dir)
    if state is None or not state.get("sql_url"):
        return None
    try:
        password = (data_dir / PASSWORD_FILE).read_text().strip()
    except OSError:
        return None
    return str(state["sql_url"]), password


def ping(url: str, timeout_s: float) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/ping", timeout=timeout_s) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
