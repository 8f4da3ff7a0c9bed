"""Helpers of the API tests: a namespaced platform with a runtime worker, an app, users of each role."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from shared_helpers import stoppable_thread

from gateway.api.app import create_app
from gateway.api.config import ApiConfig
from gateway.sdk import Platform
from processors.csp.runtime.worker import build_engine

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"admin": "admin-pass-1", "developer": "dev-pass-12", "viewer": "view-pass-1"}


@contextmanager
def thread_worker(platform: Platform) -> Iterator[None]:
    """A runtime worker on the real engine, in a thread of this process."""
    engine, _proc = build_engine(platform.bootstrap, platform.settings, namespace=platform.topics.namespace,
                                 worker_id="api-test")  # fmt: skip
    with stoppable_thread(engine.run):
        yield


@dataclass
class ApiEnv:
    platform: Platform
    config: ApiConfig
    app: FastAPI
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_app(platform: Platform, **overrides: Any) -> tuple[ApiConfig, FastAPI]:
    secret = str(overrides.pop("secret", f"test-{uuid.uuid4().hex}"))
    config = ApiConfig(secret=secret, settings=platform.settings,
                       namespace=platform.topics.namespace,
                       access_topic=f"gateway.access.{platform.topics.namespace}", **overrides)  # fmt: skip
    return config, create_app(config, platform)


def make_users(app: FastAPI) -> None:
    access = app.state.ctx.access
    for role, password in PASSWORDS.items():
        access.create_user(role, password, role, actor="test")


def login(client: TestClient, role: str) -> str:
    r = client.post("/api/v1/auth/login", json={"username": role, "password": PASSWORDS[role]})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The app on a real uvicorn server in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start in 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(30)


def buffer_source() -> str:
    return (ROOT / "examples" / "buffer" / "buffer.csp").read_text()


@contextmanager
def serve_process(env: ApiEnv, tmp: Path, *extra: str) -> Iterator[str]:
    """`csp serve` in a child process on the env's namespace, access topic and secret; yields its base URL."""
    import os
    import subprocess
    import sys

    import httpx

    port = free_port()
    environ = dict(os.environ, CSP_API_SECRET=env.config.secret, CSP_KAFKA_BOOTSTRAP=env.platform.bootstrap,
                   CSP_DATA_DIR=str(tmp))  # fmt: skip
    log = (tmp / "serve.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--namespace",
         env.platform.topics.namespace, "--access-topic", env.config.access_topic, *extra],
        cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"csp serve did not come up: {(tmp / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
