"""docker-compose.yml: structure, and every CSP_* variable it sets is a real setting.

No Docker engine runs in CI, so the file is validated statically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_required_services_present() -> None:
    services = _compose()["services"]
    for name in ("kafka", "clickhouse", "prometheus", "grafana", "csp-runtime"):
        assert name in services, f"docker-compose.yml lacks service {name!r}"
    kafka_env = services["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"], "Kafka must run in KRaft mode"
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kafka_env


def test_every_csp_env_var_is_a_setting() -> None:
    fields = {f"CSP_{name.upper()}" for name in Settings.model_fields}
    seen = set()
    for name, service in _compose()["services"].items():
        for var in (service.get("environment") or {}):
            if var.startswith("CSP_"):
                seen.add(var)
                assert var in fields, f"service {name} sets {var}, which is not a setting ({sorted(fields)})"
    assert {"CSP_KAFKA_BOOTSTRAP", "CSP_CLICKHOUSE_URL"} <= seen


def test_settings_read_compose_values(monkeypatch: Any) -> None:
    env = _compose()["services"]["csp-runtime"]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.clickhouse_url == "http://clickhouse:8123"


def test_mounted_files_exist() -> None:
    for name, service in _compose()["services"].items():
        for vol in service.get("volumes") or []:
            src = vol.split(":", 1)[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), f"service {name} mounts missing {src}"
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).exists()


def test_grafana_has_clickhouse_datasource() -> None:
    ds = yaml.safe_load((ROOT / "infra/grafana/provisioning/datasources/clickhouse.yml").read_text())
    types = {d["type"] for d in ds["datasources"]}
    assert "grafana-clickhouse-datasource" in types


def test_platform_commands_exist() -> None:
    """Every `csp ...` command the compose file runs is a real CLI command."""
    from typer.main import get_command

    from gateway.cli import app

    names = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name, service in _compose()["services"].items():
        cmd = service.get("command")
        if isinstance(cmd, list) and cmd and cmd[0] == "csp":
            assert cmd[1] in names, f"service {name} runs unknown command {cmd[1]!r}"
