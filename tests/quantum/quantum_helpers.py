"""Helpers for the quantum broker tests: a namespaced client and in-thread / subprocess workers."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared_helpers import stoppable_thread

from gateway.quantum_sdk import QuantumClient
from infra.settings import Settings
from processors.quantum.processor import QuantumProcessor
from processors.quantum.worker import build_engine
from streams.admin import ensure_topics

ROOT = Path(__file__).resolve().parents[2]


def new_client(bootstrap: str, tmp: Path) -> QuantumClient:
    ns = f"q{uuid.uuid4().hex[:8]}"
    client = QuantumClient(
        bootstrap, namespace=ns, settings=Settings(data_dir=tmp, kafka_bootstrap=bootstrap)
    )
    ensure_topics(bootstrap, client.topics.specs())
    return client


@contextmanager
def thread_worker(
    client: QuantumClient, worker_id: str = "w0", batch_size: int = 500
) -> Iterator[QuantumProcessor]:
    engine, proc = build_engine(
        client.bootstrap, client.settings, namespace=client.topics.namespace, worker_id=worker_id,
        batch_size=batch_size,
    )  # fmt: skip
    with stoppable_thread(engine.run):
        yield proc


def spawn_worker(client: QuantumClient, worker_id: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=client.bootstrap, CSP_LOG_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "processors.quantum.worker", "--bootstrap", client.bootstrap,
           "--namespace", client.topics.namespace, "--worker-id", worker_id, *extra]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
