"""Child process management: spawn in its own process group, probe, stop.

Each component runs in its own session (``start_new_session``) so that stopping
it signals the whole group and leaves no orphan.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from infra.private import FILE_MODE, PRIVATE_UMASK, private_dir


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _private_child() -> None:  # runs in the child between fork and exec
    os.umask(PRIVATE_UMASK)


def _private_tied_child() -> None:
    _private_child()
    _die_with_parent()


def spawn(argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, tie_to_parent: bool = False) -> int:
    """Start ``argv`` detached in a new session, stdout+stderr to ``log_path``; return its pid.

    ``tie_to_parent`` (Linux): the child gets SIGTERM if the spawning process dies, so a
    crashed test session or ``make run`` leaves no orphan broker behind.
    """
    private_dir(log_path.parent)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - argv built from fixed binaries
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd is not None else None,
            start_new_session=True,
            close_fds=True,
            # umask 077: the files a component writes (data, logs) are owner-only.
            preexec_fn=_private_tied_child if tie_to_parent and sys.platform == "linux" else _private_child,  # noqa: PLW1509
        )
    return proc.pid


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our exited child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_alive(pid: int, expect: str | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, if given, its command line contains ``expect``."""
    if pid <= 0:
        return False
    _reap(pid)
    state = _state(pid)
    if state is None or state in ("Z", "X"):
        return False
    if expect is not None:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        return expect in cmdline
    return True


def group_members(pgid: int) -> list[int]:
    """Live pids whose process group is ``pgid``."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if os.getpgid(pid) == pgid and is_alive(pid):
                out.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop(pid: int, timeout_s: float, expect: str | None = None) -> bool:
    """SIGTERM the process group led by ``pid``, wait, SIGKILL after ``timeout_s``.

    Returns True if it had to be killed. A pid that is not alive (or is a
    different program, checked with ``expect``) is left alone.
    """
    if not is_alive(pid, expect):
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(pid) and not group_members(pid):
            return False
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 5
    while time.monotonic() < kill_deadline and (is_alive(pid) or group_members(pid)):
        time.sleep(0.05)
    return True
