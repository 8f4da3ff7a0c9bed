"""``csp users create-admin`` / ``create`` / ``list`` / ``key``: the API's users, event-sourced on Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gateway.api.access import AccessStore

app = typer.Typer(help="Users and API keys of the HTTP API (stored on the gateway.access topic).",
                  no_args_is_help=True)  # fmt: skip
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="stack data directory")]
Topic = Annotated[str, typer.Option("--access-topic", help="Topic of users and API keys")]
Password = Annotated[str, typer.Option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
                                       envvar="CSP_USER_PASSWORD", help="Password (prompted; or CSP_USER_PASSWORD)")]  # fmt: skip


def _store(data_dir: Path | None, topic: str) -> AccessStore:
    from gateway.api.access import AccessStore
    from infra.endpoints import StackError, resolve_endpoints
    from infra.settings import Settings
    from schemas.codec import codec_from_settings

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    try:
        bootstrap = resolve_endpoints(settings).kafka_bootstrap
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return AccessStore(bootstrap, codec_from_settings(settings), topic)


def _create(username: str, password: str, role: str, data_dir: Path | None, topic: str) -> None:
    from gateway.api.access import AccessError

    try:
        user = _store(data_dir, topic).create_user(username, password, role, actor="cli")
    except AccessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {user.role} {user.username}")


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option("--username", help="User name")] = "admin",
    password: Password = "", data_dir: DataDir = None, topic: Topic = "gateway.access",
) -> None:
    """Create an admin user."""
    _create(username, password, "admin", data_dir, topic)


@app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="User name")],
    role: Annotated[str, typer.Option("--role", help="admin, developer or viewer")] = "viewer",
    password: Password = "", data_dir: DataDir = None, topic: Topic = "gateway.access",
) -> None:
    """Create a user with a role."""
    _create(username, password, role, data_dir, topic)


@app.command("list")
def list_(data_dir: DataDir = None, topic: Topic = "gateway.access") -> None:
    """List users (and their active API keys)."""
    st = _store(data_dir, topic).refresh()
    if not st.users:
        typer.echo("no users (create one with `csp users create-admin`)")
    for u in sorted(st.users.values(), key=lambda u: u.username):
        keys = sorted(k.key_id for k in st.keys.values() if k.username == u.username and not k.revoked)
        flag = " (disabled)" if u.disabled else ""
        typer.echo(f"{u.username}\t{u.role}{flag}\tkeys: {', '.join(keys) or '-'}")


@app.command("key")
def key(
    username: Annotated[str, typer.Argument(help="User the key acts as")],
    data_dir: DataDir = None, topic: Topic = "gateway.access",
) -> None:
    """Create an API key for a user; prints it once (only its hash is stored)."""
    from gateway.api.access import AccessError

    try:
        rec, secret = _store(data_dir, topic).create_key(username, actor="cli")
    except AccessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"key {rec.key_id} for {rec.username}: {secret}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="users")
