"""Where the platform's Kafka and ClickHouse are: the external ones, or the running local stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra import procs, seaweed, tansu
from infra.settings import Settings
from infra.state import StackState, read_state


class StackError(RuntimeError):
    """The local stack could not be started, or is not running."""


@dataclass
class Endpoints:
    kafka_bootstrap: str
    clickhouse_url: str
    schema_registry_url: str | None
    local: bool


def clickhouse_url(settings: Settings) -> str:
    if settings.clickhouse_url:
        return settings.clickhouse_url
    return f"chdb://{settings.resolved_data_dir() / 'clickhouse'}"


def endpoints_for(settings: Settings, bootstrap: str, local: bool) -> Endpoints:
    return Endpoints(
        kafka_bootstrap=bootstrap,
        clickhouse_url=clickhouse_url(settings),
        schema_registry_url=settings.schema_registry_url,
        local=local,
    )


def component_alive(state: StackState, component: str) -> bool:
    pid = state.pids.get(component)
    return pid is not None and procs.is_alive(pid, tansu.NAME if component == "tansu" else seaweed.NAME)


def running_state(data_dir: Path) -> StackState | None:
    state = read_state(data_dir)
    if state is None or not state.running:
        return None
    needed = ["tansu"] + (["weed"] if state.mode == "durable" else [])
    return state if all(component_alive(state, c) for c in needed) else None


def is_running(settings: Settings) -> bool:
    """True if the local stack of ``settings.data_dir`` runs (its processes are alive)."""
    return running_state(settings.resolved_data_dir()) is not None


def resolve_endpoints(settings: Settings) -> Endpoints:
    """External Kafka if CSP_KAFKA_BOOTSTRAP is set, else the running local stack's addresses."""
    if settings.kafka_bootstrap:
        return endpoints_for(settings, settings.kafka_bootstrap, local=False)
    data_dir = settings.resolved_data_dir()
    running = running_state(data_dir)
    if running is None:
        raise StackError(
            f"no local stack is running in {data_dir}: run `csp up --data-dir {data_dir}` "
            "or set CSP_KAFKA_BOOTSTRAP to an external Kafka"
        )
    return endpoints_for(settings, running.bootstrap, local=True)
