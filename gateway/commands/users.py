"""``csp users create-admin`` / ``create`` / ``list`` / ``key``: the API's users, event-sourced on Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.output import Fmt, emit, fmt_of

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


def _create(username: str, password: str, role: str, data_dir: Path | None, topic: str, fmt: str) -> None:
    from gateway.api.access import AccessError

    try:
        user = _store(data_dir, topic).create_user(username, password, role, actor="cli")
    except AccessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if fmt != "text":
        emit(fmt, {"username": user.username, "role": user.role})
        return
    typer.echo(f"created {user.role} {user.username}")


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option("--username", help="User name")] = "admin",
    password: Password = "", data_dir: DataDir = None, topic: Topic = "gateway.access", fmt: Fmt = "text",
) -> None:
    """Create an admin user."""
    _create(username, password, "admin", data_dir, topic, fmt_of(fmt))


@app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="User name")],
    role: Annotated[str, typer.Option("--role", help="admin, developer or viewer")] = "viewer",
    password: Password = "", data_dir: DataDir = None, topic: Topic = "gateway.access", fmt: Fmt = "text",
) -> None:
    """Create a user with a role."""
    _create(username, password, role, data_dir, topic, fmt_of(fmt))


@app.command("list")
def list_(data_dir: DataDir = None, topic: Topic = "gateway.access", fmt: Fmt = "text") -> None:
    """List users (and their active API keys)."""
    fmt = fmt_of(fmt)
    st = _store(data_dir, topic).refresh()
    rows: list[dict[str, Any]] = [{"username": u.username, "role": u.role, "disabled": u.disabled,
             "keys": sorted(k.key_id for k in st.keys.values() if k.username == u.username and not k.revoked)}
            for u in sorted(st.users.values(), key=lambda u: u.username)]  # fmt: skip
    if fmt != "text":
        emit(fmt, rows)
        return
    if not rows:
        typer.echo("no users (create one with `csp users create-admin`)")
    for r in rows:
        flag = " (disabled)" if r["disabled"] else ""
        typer.echo(f"{r['username']}\t{r['role']}{flag}\tkeys: {', '.join(r['keys']) or '-'}")


@app.command("key")
def key(
    username: Annotated[str, typer.Argument(help="User the key acts as")],
    data_dir: DataDir = None, topic: Topic = "gateway.access", fmt: Fmt = "text",
) -> None:
    """Create an API key for a user; prints it once (only its hash is stored)."""
    from gateway.api.access import AccessError

    fmt = fmt_of(fmt)
    try:
        rec, secret = _store(data_dir, topic).create_key(username, actor="cli")
    except AccessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if fmt != "text":
        emit(fmt, {"key_id": rec.key_id, "username": rec.username, "key": secret})
        return
    typer.echo(f"key {rec.key_id} for {rec.username}: {secret}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="users")
