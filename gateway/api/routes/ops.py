"""/health (public: each component's health) and /metrics (Prometheus text; viewer)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from gateway.api import services
from gateway.api.context import Context, ctx_of
from gateway.api.security import Principal, viewer

router = APIRouter(tags=["operations"])
Ctx = Annotated[Context, Depends(ctx_of)]


def kafka_health(bootstrap: str) -> dict[str, Any]:
    from streams.admin import list_topics

    t0 = time.perf_counter()
    try:
        topics = list_topics(bootstrap, timeout_s=3)
    except Exception as exc:  # noqa: BLE001 - BrokerUnavailable and librdkafka errors
        return {"status": "unavailable", "bootstrap": bootstrap, "detail": str(exc).splitlines()[0]}
    return {"status": "ok", "bootstrap": bootstrap, "topics": len(topics),
            "latency_ms": round((time.perf_counter() - t0) * 1000, 1)}  # fmt: skip


def workers_health(bootstrap: str, group: str) -> dict[str, Any]:
    """The runtime workers' consumer group: its state and members (DescribeGroups)."""
    from confluent_kafka.admin import AdminClient

    from streams.clients import admin_config

    try:
        admin = AdminClient(admin_config(bootstrap))
        desc = admin.describe_consumer_groups([group], request_timeout=3)[group].result(timeout=4)
        members = len(desc.members)
        state = str(getattr(desc.state, "name", desc.state))
    except Exception as exc:  # noqa: BLE001
        return {"status": "unknown", "group": group, "detail": str(exc).splitlines()[0] if str(exc) else repr(exc)}
    # Tansu reports a STABLE group without its members: the state is what tells
    up = members > 0 or state in ("STABLE", "COMPLETING_REBALANCING", "PREPARING_REBALANCING")
    return {"status": "ok" if up else "none", "group": group, "state": state, "members": members}


@router.get("/health", summary="Health of each component: Kafka, ClickHouse, runtime workers, services (public)")
def health(ctx: Ctx) -> JSONResponse:
    platform = ctx.backend.platform
    ns = platform.topics.namespace
    kafka = kafka_health(platform.bootstrap)
    workers = workers_health(platform.bootstrap, f"{ns}.csp-runtime" if ns else "csp-runtime") \
        if kafka["status"] == "ok" else {"status": "unknown", "detail": "Kafka is unavailable"}  # fmt: skip
    doc = {
        "status": "ok" if kafka["status"] == "ok" else "degraded",
        "components": {
            "api": {"status": "ok", "uptime_s": round(time.time() - ctx.started, 1)},
            "kafka": kafka,
            "clickhouse": ctx.analytics.health(),
            "workers": workers,
            "services": services.status(),
        },
    }
    return JSONResponse(doc, status_code=200 if kafka["status"] == "ok" else 503)


@router.get("/metrics", summary="Prometheus metrics (viewer)", response_class=Response)
def prometheus(ctx: Ctx, _p: Annotated[Principal, Depends(viewer)]) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
