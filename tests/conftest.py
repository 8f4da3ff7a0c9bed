"""Shared fixtures: a real Tansu broker, durable SeaweedFS-backed stacks, fresh topics, chdb paths.

* ``kafka_bootstrap`` (session): an ephemeral (memory://) Tansu broker on a free
  port with the catalog topics, or ``CSP_KAFKA_BOOTSTRAP`` when set.
* ``durable_stack`` (function): a factory starting SeaweedFS + Tansu stacks; every
  stack it started is stopped at teardown.
* ``unique_topic`` (function): ``unique_topic(prefix, partitions=1)`` creates a fresh,
  uniquely named topic explicitly and returns its name.
* ``chdb_url`` (session): ``chdb:///tmp/.../clickhouse`` for the embedded ClickHouse.

Consumers in tests should use ``session.timeout.ms`` 6000: ``streams.clients.consumer_config`` does.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infra.settings import Settings
from infra.stack import Endpoints, StackPorts, running_stack, start_stack, stop_stack
from streams.admin import ensure_topics
from streams.catalog import CATALOG, TopicSpec


def local_settings(data_dir: Path, **kwargs: Any) -> Settings:
    """Settings for a local stack in ``data_dir``, ignoring any CSP_KAFKA_BOOTSTRAP in the env."""
    return Settings(data_dir=data_dir, kafka_bootstrap=None, **kwargs)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("CSP_KAFKA_BOOTSTRAP")
    if external:
        ensure_topics(external, CATALOG, timeout_s=60)
        yield external
        return
    settings = local_settings(tmp_path_factory.mktemp("tansu-ephemeral"))
    with running_stack(settings, ephemeral=True) as endpoints:
        yield endpoints.kafka_bootstrap


@dataclass
class DurableStacks:
    """Factory for SeaweedFS-backed stacks; ``start`` may be called again on a stopped data dir."""

    base: Path
    started: list[Settings] = field(default_factory=list)

    def settings(self, name: str = "stack") -> Settings:
        return local_settings(self.base / name)

    def start(self, settings: Settings | None = None, ports: StackPorts | None = None) -> tuple[Settings, Endpoints]:
        settings = settings or self.settings(f"stack-{len(self.started)}")
        if settings not in self.started:
            self.started.append(settings)
        return settings, start_stack(settings, ephemeral=False, ports=ports)

    def stop(self, settings: Settings) -> list[str]:
        return stop_stack(settings)

    def close(self) -> None:
        for settings in self.started:
            stop_stack(settings)


@pytest.fixture
def durable_stack(tmp_path: Path) -> Iterator[DurableStacks]:
    stacks = DurableStacks(base=tmp_path)
    try:
        yield stacks
    finally:
        stacks.close()


@pytest.fixture
def unique_topic(kafka_bootstrap: str) -> Callable[..., str]:
    def make(prefix: str = "test", partitions: int = 1) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        spec = TopicSpec(
            name=name,
            partitions=partitions,
            key="test",
            value_schema="bytes",
            cleanup_policy="delete",
            retention_ms=-1,
            purpose="test topic",
            dead_letter=None,
            input=False,
        )
        ensure_topics(kafka_bootstrap, [spec], timeout_s=30)
        return name

    return make


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"chdb://{tmp_path_factory.mktemp('chdb') / 'clickhouse'}"
