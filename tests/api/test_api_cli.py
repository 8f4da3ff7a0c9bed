"""`csp users` (create-admin, create, list, key) and `csp serve` (health, docs, dashboard) as commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from api_helpers import ROOT, ApiEnv, serve_process


def csp(env: ApiEnv, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, CSP_KAFKA_BOOTSTRAP=env.platform.bootstrap)
    if password is not None:
        environ["CSP_USER_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--access-topic", env.config.access_topic],
                          cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_users_commands(api_env: ApiEnv) -> None:
    r = csp(api_env, "users", "create-admin", "--username", "root2", password="root-pass-9")
    assert r.returncode == 0 and "created admin root2" in r.stdout, r.stdout + r.stderr
    r = csp(api_env, "users", "create", "dana", "--role", "viewer", password="dana-pass-9")
    assert r.returncode == 0, r.stderr
    again = csp(api_env, "users", "create", "dana", "--role", "viewer", password="dana-pass-9")
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = csp(api_env, "users", "create", "eve", "--role", "root", password="eve-pass-99")
    assert bad.returncode == 1 and "role 'root'" in bad.stderr
    key = csp(api_env, "users", "key", "dana")
    assert key.returncode == 0 and "csp_" in key.stdout
    listed = csp(api_env, "users", "list")
    assert "root2\tadmin" in listed.stdout and "dana\tviewer" in listed.stdout
    secret = key.stdout.strip().split()[-1]
    me = api_env.client.get("/api/v1/auth/me", headers={"X-API-Key": secret}).json()
    assert me["username"] == "dana" and me["role"] == "viewer"


def test_csp_serve_health_docs_and_dashboard(api_env: ApiEnv, tmp_path: Path) -> None:
    with serve_process(api_env, tmp_path) as base:
        health = httpx.get(base + "/health", timeout=10)
        assert health.status_code == 200
        comps = health.json()["components"]
        assert comps["kafka"]["status"] == "ok" and comps["workers"]["status"] == "ok"
        assert set(comps) == {"api", "kafka", "clickhouse", "workers", "services"}
        assert httpx.get(base + "/docs", timeout=10).status_code == 200
        spec = httpx.get(base + "/openapi.json", timeout=10).json()
        assert "/api/v1/processes" in spec["paths"] and "/api/v1/instances/{instance_id}/offer" in spec["paths"]
        page = httpx.get(base + "/", timeout=10)
        assert page.status_code == 200 and "/ui/app.js" in page.text
        assert httpx.get(base + "/ui/app.js", timeout=10).status_code == 200
        assert httpx.get(base + "/metrics", timeout=10).status_code == 401
