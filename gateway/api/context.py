"""What one app holds: its config, the platform backend, the access store, metrics, limits, the WebSocket hub."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

from gateway.api.access import AccessStore
from gateway.api.analytics import Analytics
from gateway.api.backend import Backend
from gateway.api.config import ApiConfig
from gateway.api.metrics import ApiMetrics
from gateway.api.security import RateLimiter, TokenCache

if TYPE_CHECKING:
    from gateway.api.ws import Hub


@dataclass
class Context:
    config: ApiConfig
    backend: Backend
    access: AccessStore
    metrics: ApiMetrics
    analytics: Analytics
    key_limits: RateLimiter
    ip_limits: RateLimiter
    login_failures: RateLimiter = field(default_factory=lambda: RateLimiter(0.1, 10))  # per client IP + user
    hub: Hub | None = None
    tokens: TokenCache = field(default_factory=TokenCache)  # verified access tokens, until they expire
    started: float = field(default_factory=time.time)

    def processes_active(self) -> float:
        try:
            return float(sum(1 for i in self.backend.instances() if str(i.status) == "RUNNING"))
        except Exception:  # noqa: BLE001 - a scrape must not fail when Kafka is away
            return float("nan")

    def channels_open(self) -> float:
        try:
            n = 0
            for system in self.backend.systems():
                dep = self.backend.deployment(system)
                n += len(dep.channels) if dep is not None and system not in self.access.state.retired else 0
            return float(n)
        except Exception:  # noqa: BLE001
            return float("nan")

    def live(self) -> dict[str, Any]:
        """The seed's /api/metrics shape, from live figures."""
        from gateway.api.metrics import rss_bytes

        insts = self.backend.instances()
        by_status: dict[str, int] = {}
        for i in insts:
            by_status[str(i.status)] = by_status.get(str(i.status), 0) + 1
        requests = sum(
            s.value for m in self.metrics.api_requests.collect() for s in m.samples if s.name.endswith("_total")
        )
        return {
            "timestamp": int(time.time() * 1000),
            "uptime_s": round(time.time() - self.started, 1),
            "processes_active": by_status.get("RUNNING", 0),
            "processes_total": len(insts),
            "processes_by_status": by_status,
            "systems_deployed": len([s for s in self.backend.systems() if s not in self.access.state.retired]),
            "channels_open": self.channels_open(),
            "events_total": sum(i.seq for i in insts),
            "memory_usage_bytes": rss_bytes(),
            "api_requests_total": int(requests),
            "ws_clients": int(self.metrics.ws_clients._value.get()),
        }


async def ctx_of(request: Request) -> Context:
    """Async, so FastAPI calls it on the event loop rather than hopping to its thread pool."""
    ctx: Context = request.app.state.ctx
    return ctx
