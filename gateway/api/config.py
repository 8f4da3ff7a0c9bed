"""Configuration of one API app (``csp serve`` fills it from its options and the settings)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from infra.settings import Settings


@dataclass(frozen=True)
class ApiConfig:
    secret: str  # HMAC key of the JWTs
    settings: Settings = field(default_factory=Settings)
    namespace: str = ""  # runtime topic namespace (tests)
    access_topic: str = "gateway.access"
    access_ttl_s: int = 900
    refresh_ttl_s: int = 7 * 24 * 3600
    # token buckets: sustained requests/s and burst, per API key or user, and per client IP
    key_rate: float = 200.0
    key_burst: int = 400
    ip_rate: float = 400.0
    ip_burst: int = 800
    cors_origins: tuple[str, ...] = ()  # CORS off unless origins are given
    max_body_bytes: int = 1_048_576
    ws_queue: int = 5000  # messages buffered per WebSocket client before it is dropped
    clickhouse_url: str | None = None  # None: settings.clickhouse_url, the projector's endpoint, or chdb
    offer_timeout_s: float = 30.0


def load_secret(settings: Settings) -> str:
    """``CSP_API_SECRET``, else ``<data dir>/api/jwt.key`` (created 0600 on first use)."""
    if settings.api_secret:
        return settings.api_secret
    path = settings.resolved_data_dir() / "api" / "jwt.key"
    return _file_secret(path)


def _file_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value
