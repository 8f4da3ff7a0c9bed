"""Audit-trail fixtures: a fresh ClickHouse database on the session's embedded chdb path."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.clickhouse import clickhouse_client
from infra.settings import Settings


@pytest.fixture
def audit_db(chdb_url: str) -> Iterator[tuple[Any, str]]:
    """(client, database): a clickhouse-connect chdb client on a database of its own."""
    base = clickhouse_client(chdb_url)
    db = f"audit_{uuid.uuid4().hex[:10]}"
    base.command(f"CREATE DATABASE {db}")
    try:
        yield clickhouse_client(chdb_url, database=db), db
    finally:
        base.command(f"DROP DATABASE IF EXISTS {db}")


@pytest.fixture
def audit_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", kafka_bootstrap=None, clickhouse_url=None,
                    audit_checkpoint_every=64, audit_checkpoint_interval_s=3600)
