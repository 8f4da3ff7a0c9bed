"""/metrics (the seed's JSON, live), /analytics/performance and /sql (ClickHouse, read-only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from gateway.api.analytics import MAX_ROWS, check_read_only
from gateway.api.context import Context, ctx_of
from gateway.api.security import Principal, viewer

router = APIRouter(tags=["analytics"])
Ctx = Annotated[Context, Depends(ctx_of)]
Viewer = Annotated[Principal, Depends(viewer)]


class Sql(BaseModel):
    sql: str = Field(min_length=1, max_length=20_000, description="One read-only statement")
    limit: int = Field(default=1000, ge=1, le=MAX_ROWS)


@router.get("/metrics", summary="Live platform figures (viewer)")
def metrics(ctx: Ctx, _p: Viewer) -> dict[str, Any]:
    return ctx.live()


@router.get("/analytics/performance", summary="Throughput, refusals and offer latency from ClickHouse (viewer)")
def performance(
    ctx: Ctx, _p: Viewer,
    period: Annotated[str, Query(max_length=8, description="e.g. 15m, 1h, 7d")] = "1h",
    granularity: Annotated[str, Query(max_length=8, description="minute, hour or day")] = "minute",
) -> dict[str, Any]:
    return ctx.analytics.performance(period, granularity)


@router.post("/sql", summary="A read-only SQL query on ClickHouse (viewer)")
def sql(body: Sql, ctx: Ctx, _p: Viewer) -> dict[str, Any]:
    return ctx.analytics.query(check_read_only(body.sql), limit=body.limit)
