"""The app factory: ``create_app(config, platform)`` -> FastAPI, with every router under /api/v1 and /api."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api import problems
from gateway.api.access import AccessStore
from gateway.api.analytics import Analytics
from gateway.api.backend import Backend
from gateway.api.config import ApiConfig
from gateway.api.context import Context
from gateway.api.metrics import ApiMetrics
from gateway.api.problems import Problem, problem_response
from gateway.api.routes import analytics, audit, auth, ops, processes, services, verify
from gateway.api.security import RateLimiter, too_many
from gateway.api.ws import Hub, endpoint
from gateway.sdk import Platform

STATIC = Path(__file__).resolve().parent / "static"
API_ROUTERS = (auth.router, processes.router, verify.router, analytics.router, audit.router, services.router)


class Guard:
    """Per-IP rate limit, request size limit and request metrics, for every HTTP request."""

    def __init__(self, app: ASGIApp, ctx: Context) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ip = (scope.get("client") or ("?", 0))[0]
        path = scope.get("path", "")
        status = {"code": 500}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            wait = self.ctx.ip_limits.take(f"ip:{ip}")
            if wait > 0:
                raise too_many(wait, f"rate limit of client {ip} exceeded")
            limit = self.ctx.config.max_body_bytes
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise Problem(413, "Content Too Large", f"the request body is larger than {limit} bytes")
            seen = {"n": 0}

            async def limited_receive() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    seen["n"] += len(message.get("body", b""))
                    if seen["n"] > limit:
                        raise Problem(413, "Content Too Large", f"the request body is larger than {limit} bytes")
                return message

            await self.app(scope, limited_receive, counting_send)
        except Problem as p:
            status["code"] = p.status
            await problem_response(p, path)(scope, receive, send)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or ("static" if path.startswith("/ui") else "unmatched")
            self.ctx.metrics.api_requests.labels(label, scope.get("method", "?"), str(status["code"])).inc()


def create_app(config: ApiConfig, platform: Platform) -> FastAPI:
    backend = Backend(platform)
    access = AccessStore(platform.bootstrap, platform.codec, config.access_topic)
    ctx = Context(
        config=config,
        backend=backend,
        access=access,
        metrics=None,  # type: ignore[arg-type]  # set below: the gauges read the context
        analytics=Analytics(config.settings, config.clickhouse_url),
        key_limits=RateLimiter(config.key_rate, config.key_burst),
        ip_limits=RateLimiter(config.ip_rate, config.ip_burst),
    )
    ctx.metrics = ApiMetrics(ctx.processes_active, ctx.channels_open)
    ctx.hub = Hub(ctx)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if ctx.hub is not None:
                ctx.hub.close()
            backend.offers.close()

    app = FastAPI(
        title="Enhanced CSP API",
        version="1.0",
        description="Verified CSP process networks on Kafka: deploy, start, offer, observe, audit. "
        "Authenticate with `Authorization: Bearer <access token>` (POST /api/v1/auth/login) or `X-API-Key`.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    problems.install(app)
    for router in API_ROUTERS:
        app.include_router(router, prefix="/api/v1")
        app.include_router(router, prefix="/api", include_in_schema=False)  # the seed's paths
    app.include_router(ops.router)
    app.add_api_websocket_route("/ws", endpoint)
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> RedirectResponse:
        return RedirectResponse("/ui/favicon.svg")

    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "X-API-Key",
                                                                                   "Content-Type"])  # fmt: skip
    app.add_middleware(Guard, ctx=ctx)
    return app


def app_context(app: Any) -> Context:
    ctx: Context = app.state.ctx
    return ctx


def route_table(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """(method, full path, route) of every API route, including those of included routers."""
    out: list[tuple[str, str, APIRoute]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for r in routes:
            if isinstance(r, APIRoute):
                out.extend((m, prefix + r.path, r) for m in sorted(r.methods or ()))
            elif hasattr(r, "original_router") and hasattr(r, "include_context"):  # FastAPI's lazy includes
                walk(list(r.original_router.routes), prefix + r.include_context.prefix)

    walk(list(app.routes), "")
    return out
