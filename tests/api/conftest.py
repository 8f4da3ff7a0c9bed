"""One platform + worker + app per API test module (the broker is the session's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import ApiEnv, login, make_app, make_users, thread_worker
from fastapi.testclient import TestClient
from shared_helpers import new_platform


@pytest.fixture(scope="module")
def api_env(kafka_bootstrap: str, chdb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    tmp: Path = tmp_path_factory.mktemp("api")
    platform = new_platform(kafka_bootstrap, tmp)
    config, app = make_app(platform, clickhouse_url=chdb_url)
    make_users(app)
    with thread_worker(platform), TestClient(app) as client:
        env = ApiEnv(platform, config, app, client)
        env.tokens = {role: login(client, role) for role in ("admin", "developer", "viewer")}
        yield env
    platform.close()
