"""/auth (login, refresh, me), /users and /keys (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from gateway.api.access import AccessError
from gateway.api.context import Context, ctx_of
from gateway.api.problems import Problem
from gateway.api.security import Principal, admin, decode, issue, too_many, unauthorized, viewer

router = APIRouter(tags=["auth"])
Ctx = Annotated[Context, Depends(ctx_of)]


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Refresh(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class NewUser(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    password: str = Field(min_length=8, max_length=1024)
    role: str = Field(pattern=r"^(admin|developer|viewer)$")


class NewKey(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")


def _tokens(ctx: Context, username: str, role: str) -> dict[str, Any]:
    c = ctx.config
    return {
        "access_token": issue(c.secret, username, role, "access", c.access_ttl_s),
        "refresh_token": issue(c.secret, username, role, "refresh", c.refresh_ttl_s),
        "token_type": "bearer",
        "expires_in": c.access_ttl_s,
        "username": username,
        "role": role,
    }


@router.post("/auth/login", summary="Log in: an access and a refresh token (public; 10 failures, then 1 per 10 s)")
def login(body: Login, ctx: Ctx, request: Request) -> dict[str, Any]:
    key = f"{request.client.host if request.client else '?'}/{body.username}"
    wait = ctx.login_failures.wait(key)
    if wait > 0:
        raise too_many(wait, f"too many failed logins of {body.username!r} from this address")
    user = ctx.access.authenticate(body.username, body.password)
    if user is None:
        ctx.login_failures.take(key)
        raise unauthorized("wrong user name or password")
    return _tokens(ctx, user.username, user.role)


@router.post("/auth/refresh", summary="New tokens from a refresh token (public)")
def refresh(body: Refresh, ctx: Ctx) -> dict[str, Any]:
    claims = decode(ctx.config.secret, body.refresh_token, "refresh")
    user = ctx.access.refresh().users.get(str(claims["sub"]))
    if user is None or user.disabled:
        raise unauthorized("the user of this refresh token no longer exists or is disabled")
    return _tokens(ctx, user.username, user.role)


@router.get("/auth/me", summary="Who am I (viewer)")
def me(p: Annotated[Principal, Depends(viewer)]) -> dict[str, str]:
    return {"username": p.name, "role": p.role, "via": p.via}


@router.get("/users", summary="List users (admin)")
def users(ctx: Ctx, _p: Annotated[Principal, Depends(admin)]) -> list[dict[str, Any]]:
    st = ctx.access.refresh()
    return [{"username": u.username, "role": u.role, "created_at": u.created_at, "disabled": u.disabled,
             "keys": sorted(k.key_id for k in st.keys.values() if k.username == u.username and not k.revoked)}
            for u in sorted(st.users.values(), key=lambda u: u.username)]  # fmt: skip


@router.post("/users", status_code=201, summary="Create a user (admin)")
def create_user(body: NewUser, ctx: Ctx, p: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
    try:
        u = ctx.access.create_user(body.username, body.password, body.role, actor=p.name)
    except AccessError as exc:
        raise Problem(409, "Conflict", str(exc), kind="user") from None
    return {"username": u.username, "role": u.role, "created_at": u.created_at}


@router.get("/keys", summary="List API keys (admin; never the keys themselves)")
def keys(ctx: Ctx, _p: Annotated[Principal, Depends(admin)]) -> list[dict[str, Any]]:
    return [{"key_id": k.key_id, "username": k.username, "created_at": k.created_at, "revoked": k.revoked}
            for k in ctx.access.refresh().keys.values()]  # fmt: skip


@router.post("/keys", status_code=201, summary="Create an API key (admin); the key is shown once")
def create_key(body: NewKey, ctx: Ctx, p: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
    try:
        rec, key = ctx.access.create_key(body.username, actor=p.name)
    except AccessError as exc:
        raise Problem(404, "Not Found", str(exc), kind="user") from None
    return {"key_id": rec.key_id, "username": rec.username, "key": key}


@router.delete("/keys/{key_id}", summary="Revoke an API key (admin)")
def revoke_key(key_id: str, ctx: Ctx, p: Annotated[Principal, Depends(admin)], request: Request) -> dict[str, Any]:
    try:
        rec = ctx.access.revoke_key(key_id, actor=p.name)
    except AccessError as exc:
        raise Problem(404, "Not Found", str(exc), kind="key") from None
    return {"key_id": rec.key_id, "revoked": rec.revoked}
