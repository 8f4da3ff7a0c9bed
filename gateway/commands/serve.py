"""``csp serve``: the HTTP/WebSocket API and the web dashboard (FastAPI + uvicorn).

Binds to loopback unless told otherwise. Uses the running stack (``csp up`` /
``csp run``) or ``CSP_KAFKA_BOOTSTRAP``; with ``--stack`` it starts the embedded
stack and a runtime worker itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind (default loopback)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port", min=0, max=65535)] = 8000,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="stack data directory")] = None,
    cors: Annotated[list[str] | None, typer.Option("--cors-origin", help="Allow this origin (CORS is off unless given)")] = None,  # fmt: skip
    namespace: Annotated[str, typer.Option("--namespace", help="Runtime topic namespace", hidden=True)] = "",
    access_topic: Annotated[str, typer.Option("--access-topic", help="Topic of users and API keys")] = "gateway.access",
    ws_queue: Annotated[int, typer.Option("--ws-queue", min=1, help="Messages queued per WebSocket client before it is dropped (close 4008)")] = 5000,  # fmt: skip
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level")] = "warning",
) -> None:
    """Serve the HTTP API (/api/v1, /docs, /health, /metrics), the WebSocket /ws and the dashboard at /."""
    import uvicorn

    from gateway.api.app import create_app
    from gateway.api.config import ApiConfig, load_secret
    from gateway.sdk import Platform
    from infra.endpoints import StackError, resolve_endpoints
    from infra.settings import Settings

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    try:
        bootstrap = resolve_endpoints(settings).kafka_bootstrap
    except StackError as exc:
        typer.echo(f"error: {exc} (start the platform with `csp up` or `csp run`, or set CSP_KAFKA_BOOTSTRAP)", err=True)
        raise typer.Exit(2) from None
    settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    config = ApiConfig(secret=load_secret(settings), settings=settings, namespace=namespace,
                       access_topic=access_topic, cors_origins=tuple(cors or ()), ws_queue=ws_queue)  # fmt: skip
    platform = Platform(bootstrap, namespace=namespace, settings=settings)
    app = create_app(config, platform)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"dashboard: http://{shown}:{port}/   API docs: http://{shown}:{port}/docs   kafka {bootstrap}")
    if not app.state.ctx.access.refresh().users:
        typer.echo("no users yet: create one with `csp users create-admin`", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=1_048_576)
    finally:
        platform.close()


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)
