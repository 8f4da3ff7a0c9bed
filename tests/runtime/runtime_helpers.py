"""Helpers for the runtime's broker tests: namespaced platforms and in-process / subprocess workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from shared_helpers import stoppable_thread

from gateway.sdk import Platform
from processors.csp.runtime.processor import RuntimeProcessor
from processors.csp.runtime.worker import build_engine

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def thread_worker(platform: Platform, worker_id: str = "w0", **kwargs: object) -> Iterator[RuntimeProcessor]:
    """A runtime worker on the real engine, in a thread of this process."""
    engine, proc = build_engine(
        platform.bootstrap,
        platform.settings,
        namespace=platform.topics.namespace,
        worker_id=worker_id,
        **kwargs,  # type: ignore[arg-type]
    )
    with stoppable_thread(engine.run):
        yield proc


def spawn_worker(
    platform: Platform, worker_id: str, log: Path, *extra: str, info: bool = False
) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        CSP_KAFKA_BOOTSTRAP=platform.bootstrap,
        CSP_LOG_LEVEL="INFO" if info else "WARNING",
        CSP_DATA_DIR=str(platform.settings.resolved_data_dir()),  # trusts the platform's deploy key
    )
    cmd = [
        sys.executable,
        "-m",
        "processors.csp.runtime.worker",
        "--bootstrap",
        platform.bootstrap,
        "--namespace",
        platform.topics.namespace,
        "--worker-id",
        worker_id,
        *extra,
    ]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)
