"""docker-compose.yml: structure, and every CSP_* variable it sets is a real setting.

No Docker engine runs in CI, so the file is validated statically.
"""

from __future__ import annotations

import re
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


_SECRETS = {
    "CSP_KAFKA_PASSWORD": "kafka-secret",
    "CSP_CLICKHOUSE_PASSWORD": "ch-secret",
    "KAFKA_ADMIN_PASSWORD": "admin-secret",
    "GRAFANA_ADMIN_PASSWORD": "grafana-secret",
}
_INTERPOLATION = re.compile(r"\$\{(\w+)(:\?[^}]*)?\}")


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:?message}`` substitution (a missing VAR is an error)."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in env, f"compose needs {name} set"
        return env[name]

    return _INTERPOLATION.sub(sub, value)


def test_settings_read_compose_values(monkeypatch: Any) -> None:
    env = _compose()["services"]["csp-runtime"]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, _interpolate(str(value), _SECRETS))
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.clickhouse_url == "http://csp:ch-secret@clickhouse:8123"
    assert settings.kafka_security() == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "csp",
        "sasl.password": "kafka-secret",
    }


def test_secrets_are_required_not_defaulted() -> None:
    """Every password comes from the operator's environment; none is written in the file."""
    text = (ROOT / "docker-compose.yml").read_text()
    for name in _SECRETS:
        assert f"${{{name}:?" in text, f"{name} must be required (${{{name}:?...}})"
    assert "password=\"" not in text.replace('password="${KAFKA_ADMIN_PASSWORD', "")


def test_kafka_and_clickhouse_authenticate() -> None:
    services = _compose()["services"]
    kafka = services["kafka"]["environment"]
    protocols = dict(item.split(":") for item in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","):
        name = listener.split("://")[0]
        assert protocols[name] in ("SASL_PLAINTEXT", "SASL_SSL"), f"Kafka listener {name} is {protocols[name]}"
    assert "SCRAM" in kafka["KAFKA_SASL_ENABLED_MECHANISMS"]
    entrypoint = "\n".join(services["kafka"]["entrypoint"])
    assert "--add-scram" in entrypoint and "name=csp" in entrypoint
    ch = services["clickhouse"]["environment"]
    assert ch["CLICKHOUSE_USER"] == "csp" and "CSP_CLICKHOUSE_PASSWORD" in ch["CLICKHOUSE_PASSWORD"]
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_published_ports_bind_loopback() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"service {name} publishes {port} on every interface"


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
