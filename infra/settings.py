"""Platform settings, read from the environment (prefix ``CSP_``) by pydantic-settings.

The same settings drive the embedded stack and an external deployment:

* ``CSP_KAFKA_BOOTSTRAP`` — an external Kafka; when set, no local broker starts.
* ``CSP_CLICKHOUSE_URL`` — ``http(s)://host:port`` (a ClickHouse server) or
  ``chdb:///abs/path`` (embedded chdb through clickhouse-connect).
* ``CSP_SCHEMA_REGISTRY_URL`` — an optional Confluent Schema Registry.
* ``CSP_DATA_DIR`` — where the embedded stack keeps its data, ports and pids.
* ``CSP_KAFKA_SECURITY_PROTOCOL``, ``CSP_KAFKA_SASL_*``, ``CSP_KAFKA_SSL_CA_LOCATION`` —
  credentials for an external Kafka (the embedded broker is loopback-only; see
  docs/stack.md, "Security").
* ``CSP_KAFKA_FETCH_WAIT_MS`` — consumers' ``fetch.wait.max.ms`` (10): the embedded broker
  holds every fetch for this long, so it is the latency of each hop (docs/performance.md).
* ``CSP_AUDIT_KEY``, ``CSP_AUDIT_ORIGIN`` — the audit trail's checkpoint signing key and origin
  (docs/audit.md).
* ``CSP_DEPLOY_KEY`` / ``CSP_TRUSTED_KEYS`` — the deployment-signing key and the public keys
  workers trust (``processors/csp/runtime/signing.py``).
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
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the metrics endpoint binds (loopback unless configured)"
    )
    kafka_security_protocol: str | None = Field(
        default=None, description="security.protocol for an external Kafka: SASL_PLAINTEXT, SASL_SSL, SSL"
    )
    kafka_sasl_mechanism: str | None = Field(
        default=None, description="sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name")
    kafka_sasl_password: str | None = Field(default=None, description="SASL password")
    kafka_ssl_ca_location: str | None = Field(default=None, description="CA bundle for SSL/SASL_SSL")
    session_timeout_ms: int = Field(default=6000, description="Kafka consumer session.timeout.ms")
    kafka_fetch_wait_ms: int = Field(
        default=10,
        ge=1,
        description="Consumer fetch.wait.max.ms. Tansu answers a fetch only when this wait expires, so it "
        "bounds each hop's latency; Apache Kafka answers as soon as data arrives (500 is its default)",
    )
    kafka_port: int = Field(default=0, description="Local broker port (0: reuse the recorded one or pick a free one)")
    s3_port: int = Field(default=0, description="Local SeaweedFS S3 port (0: reuse the recorded one or pick a free one)")
    kafka_timeout_s: float = Field(default=30.0, description="How long to wait for Kafka before BrokerUnavailable")
    audit_key: str | None = Field(
        default=None, description="Audit checkpoint signing key (PRIVATE+KEY+...); default: <data dir>/audit/signing.key"
    )
    audit_origin: str = Field(default="enhanced-csp/audit", description="Origin line of the audit log's checkpoints")
    audit_checkpoint_every: int = Field(default=10_000, description="Audit checkpoint after this many new entries")
    audit_checkpoint_interval_s: float = Field(default=10.0, description="...or after this many seconds")

    web3_provider_url: str | None = Field(
        default=None, description="EVM JSON-RPC node for the ledger (unset: in-process eth-tester chain)"
    )
    ledger_keys: dict[str, str] = Field(
        default_factory=dict, description='Agent keys as JSON {"agent": "0x<hex key>"} (win over the data dir)'
    )

    audit_anchor_address: str | None = Field(
        default=None, description="AuditAnchor contract (default: the one `csp audit anchor-deploy` recorded)"
    )
    audit_anchor_every: int = Field(default=1, description="Anchor at least every N audit checkpoints")
    audit_anchor_interval_s: float = Field(default=60.0, description="...or when this much time passed")
    ledger_crash_after_send: int = Field(
        default=0, description="Fault injection for tests: SIGKILL the ledger worker after its N-th sent batch"
    )

    api_secret: str | None = Field(
        default=None, description="JWT signing key of `csp serve` (default: <data dir>/api/jwt.key, created 0600)"
    )

    def kafka_security(self) -> dict[str, str]:
        """librdkafka properties that authenticate to an external Kafka (empty: plaintext)."""
        props = {
            "security.protocol": self.kafka_security_protocol,
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "sasl.password": self.kafka_sasl_password,
            "ssl.ca.location": self.kafka_ssl_ca_location,
        }
        out = {key: value for key, value in props.items() if value}
        if "sasl.mechanism" in out and not out.get("security.protocol", "").startswith("SASL"):
            raise ValueError(
                "CSP_KAFKA_SASL_MECHANISM is set but CSP_KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol!r}: use SASL_PLAINTEXT or SASL_SSL"
            )
        if out.get("security.protocol", "").startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"CSP_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "CSP_KAFKA_SASL_USERNAME and CSP_KAFKA_SASL_PASSWORD"
            )
        return out
    quantum_fidelity_threshold: float = Field(default=0.85, description="Quantum results below this fidelity are flagged")
    quantum_max_qubits: int = Field(default=20, description="Largest circuit the quantum processor simulates")
    quantum_max_depth: int = Field(default=2000, description="Deepest circuit the quantum processor simulates")
    quantum_max_shots: int = Field(default=100_000, description="Most shots per quantum request")
    deploy_key: Path | None = Field(
        default=None, description="Ed25519 private key that signs deployments (default <data_dir>/keys/deploy.ed25519)"
    )
    trusted_keys: str = Field(
        default="", description="Comma-separated hex Ed25519 public keys whose deployments workers run"
    )
    openai_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint of the agents' models")
    openai_api_key: str = Field(default="local", description="API key sent to the OpenAI-compatible endpoint")
    agents_model: str = Field(default="local", description="Model of an agent that names none")
    agents_timeout_s: float = Field(default=30.0, description="Timeout of one model call")
    agents_max_attempts: int = Field(default=4, description="Model calls per request (retries on timeout/429/5xx)")
    agents_budget_s: float = Field(default=120.0, description="Time budget of one request, retries included")

    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()
