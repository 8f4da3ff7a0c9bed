"""Platform settings, read from the environment (prefix ``CSP_``) by pydantic-settings.

The same settings drive the embedded stack and an external deployment:

* ``CSP_KAFKA_BOOTSTRAP`` — an external Kafka; when set, no local broker starts.
* ``CSP_CLICKHOUSE_URL`` — ``http(s)://host:port`` (a ClickHouse server) or
  ``chdb:///abs/path`` (embedded chdb through clickhouse-connect).
* ``CSP_SCHEMA_REGISTRY_URL`` — an optional Confluent Schema Registry.
* ``CSP_DATA_DIR`` — where the embedded stack keeps its data, ports and pids.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSP_", extra="ignore")

    data_dir: Path = Field(default=Path(".csp"), description="Embedded stack data directory")
    kafka_bootstrap: str | None = Field(default=None, description="External Kafka bootstrap servers")
    clickhouse_url: str | None = Field(default=None, description="http(s):// server or chdb:///abs/path")
    schema_registry_url: str | None = Field(default=None, description="Confluent Schema Registry URL")
    log_level: str = Field(default="INFO", description="structlog level")
    metrics_port: int = Field(default=0, description="Prometheus metrics port for processors (0: off)")
    session_timeout_ms: int = Field(default=6000, description="Kafka consumer session.timeout.ms")
    kafka_port: int = Field(default=0, description="Local broker port (0: reuse the recorded one or pick a free one)")
    s3_port: int = Field(default=0, description="Local SeaweedFS S3 port (0: reuse the recorded one or pick a free one)")
    kafka_timeout_s: float = Field(default=30.0, description="How long to wait for Kafka before BrokerUnavailable")
    openai_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint of the agents' models")
    openai_api_key: str = Field(default="local", description="API key sent to the OpenAI-compatible endpoint")
    agents_model: str = Field(default="local", description="Model of an agent that names none")
    agents_timeout_s: float = Field(default=30.0, description="Timeout of one model call")
    agents_max_attempts: int = Field(default=4, description="Model calls per request (retries on timeout/429/5xx)")
    agents_budget_s: float = Field(default=120.0, description="Time budget of one request, retries included")

    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()
