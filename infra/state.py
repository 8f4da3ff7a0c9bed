"""What the embedded stack records in its data dir: ports, pids, mode (``stack.json``), pid files."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.private import FILE_MODE, private_dir, write_private

STATE_FILE = "stack.json"


@dataclass
class StackState:
    mode: str  # "durable" | "ephemeral"
    kafka_port: int
    seaweed_ports: dict[str, int] | None
    pids: dict[str, int] = field(default_factory=dict)
    running: bool = False
    started_at: float | None = None
    startup_s: float | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def s3_endpoint(self) -> str | None:
        return f"http://127.0.0.1:{self.seaweed_ports['s3']}" if self.seaweed_ports else None


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def pid_path(data_dir: Path, component: str) -> Path:
    return data_dir / "run" / f"{component}.pid"


def log_path(data_dir: Path, component: str) -> Path:
    return data_dir / "logs" / f"{component}.log"


def read_state(data_dir: Path) -> StackState | None:
    path = state_path(data_dir)
    if not path.exists():
        return None
    raw: dict[str, Any] = json.loads(path.read_text())
    return StackState(
        mode=str(raw["mode"]),
        kafka_port=int(raw["kafka_port"]),
        seaweed_ports={k: int(v) for k, v in raw["seaweed_ports"].items()} if raw.get("seaweed_ports") else None,
        pids={k: int(v) for k, v in raw.get("pids", {}).items()},
        running=bool(raw.get("running", False)),
        started_at=raw.get("started_at"),
        startup_s=raw.get("startup_s"),
    )


def write_state(data_dir: Path, state: StackState) -> None:
    private_dir(data_dir)
    write_private(state_path(data_dir), json.dumps(asdict(state), indent=2, sort_keys=True))


def write_pid(data_dir: Path, component: str, pid: int) -> None:
    write_private(pid_path(data_dir, component), f"{pid}\n")


def read_pids(data_dir: Path) -> dict[str, int]:
    run = data_dir / "run"
    out: dict[str, int] = {}
    if run.is_dir():
        for path in run.glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                out[path.stem] = int(path.read_text().strip())
    return out


def remove_pid(data_dir: Path, component: str) -> None:
    pid_path(data_dir, component).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Serialise ``up``/``down`` on one data dir across processes."""
    private_dir(data_dir)
    fd = os.open(data_dir / ".lock", os.O_WRONLY | os.O_CREAT, FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
