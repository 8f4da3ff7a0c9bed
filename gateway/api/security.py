"""Authentication (JWT access/refresh tokens, API keys), roles, and rate limits.

Every API route depends on a :class:`RoleGuard`: viewer reads, developer deploys,
starts and offers, admin manages users, keys and undeploys. Tokens are HS256 JWTs
signed with the app's secret; API keys (``csp_<id>_<secret>``) come in
``X-API-Key`` or as a bearer token.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from gateway.api.access import KEY_PREFIX, ROLE_RANK
from gateway.api.problems import Problem

if TYPE_CHECKING:
    from gateway.api.context import Context

ALGORITHM = "HS256"
ISSUER = "enhanced-csp"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    via: str  # "token" or "key:<id>"

    @property
    def limit_key(self) -> str:
        return self.via if self.via.startswith("key:") else f"user:{self.name}"


def issue(secret: str, username: str, role: str, kind: str, ttl_s: int, now: float | None = None) -> str:
    t = int(now if now is not None else time.time())
    claims = {"iss": ISSUER, "sub": username, "role": role, "typ": kind, "iat": t, "nbf": t,
              "exp": t + ttl_s, "jti": uuid.uuid4().hex}  # fmt: skip
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(secret: str, token: str, kind: str) -> dict[str, Any]:
    """The claims of a valid token of ``kind``; a 401 Problem naming what is wrong otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "typ", "role"]},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise unauthorized("the token has expired: log in again or use the refresh token") from None
    except jwt.InvalidSignatureError:
        raise unauthorized("the token's signature is not valid") from None
    except jwt.PyJWTError as exc:
        raise unauthorized(f"the token is not valid: {exc}") from None
    if claims.get("typ") != kind:
        raise unauthorized(f"a {claims.get('typ')} token was given where an {kind} token is needed")
    if claims.get("role") not in ROLE_RANK:
        raise unauthorized("the token names no known role")
    return claims


class TokenCache:
    """Claims of access tokens already verified, until they expire (bounded, least recently used
    out first). Verifying an HS256 token costs PyJWT ~0.1 ms per request; a token that was valid
    stays valid until its ``exp`` (tokens are not revocable: see docs/api.md), so a hit is
    equivalent to a check. Only successes are cached."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._claims: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def decode(self, secret: str, token: str, kind: str) -> dict[str, Any]:
        key = (secret, token)  # a token verified under one secret says nothing under another
        with self._lock:
            claims = self._claims.get(key)
            if claims is not None:
                if claims["exp"] > time.time() and claims["typ"] == kind:
                    self._claims.move_to_end(key)
                    return claims
                del self._claims[key]
        claims = decode(secret, token, kind)  # raises the 401 naming what is wrong
        with self._lock:
            self._claims[key] = claims
            while len(self._claims) > self.size:
                self._claims.popitem(last=False)
        return claims


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="csp"'})


def credentials(request: Request) -> tuple[str, str] | None:
    """("key", key) or ("token", jwt) from the request's headers (or ?token= on WebSockets)."""
    key = request.headers.get("x-api-key")
    if key:
        return "key", key
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        value = auth[7:].strip()
        return ("key", value) if value.startswith(KEY_PREFIX) else ("token", value)
    return None


def authenticate(ctx: Context, kind: str, value: str) -> Principal:
    if kind == "key":
        user = ctx.access.user_of_key(value)
        if user is None:
            raise unauthorized("the API key is not valid (unknown, revoked, or its user is disabled)")
        from gateway.api.access import parse_key

        return Principal(user.username, user.role, f"key:{parse_key(value)}")
    claims = ctx.tokens.decode(ctx.config.secret, value, "access")
    user = ctx.access.state.users.get(str(claims["sub"]))  # the fold as last read: no I/O here
    if user is not None and user.disabled:
        raise unauthorized(f"the user {user.username} is disabled")
    return Principal(str(claims["sub"]), str(claims["role"]), "token")


class RoleGuard:
    """A FastAPI dependency: authenticates the caller, checks the role and the per-key rate limit."""

    def __init__(self, min_role: str) -> None:
        if min_role not in ROLE_RANK:
            raise ValueError(f"unknown role {min_role!r}")
        self.min_role = min_role

    async def __call__(self, request: Request) -> Principal:
        # async: a sync dependency costs a thread-pool hop per request. Tokens are checked on
        # the event loop (pure CPU, microseconds); API keys may refresh the access topic, which
        # blocks, so only they go to the thread pool.
        ctx: Context = request.app.state.ctx
        cred = credentials(request)
        if cred is None:
            raise unauthorized("no credentials: send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'")
        if cred[0] == "key":
            principal = await run_in_threadpool(authenticate, ctx, *cred)
        else:
            principal = authenticate(ctx, *cred)
        wait = ctx.key_limits.take(principal.limit_key)
        if wait > 0:
            raise too_many(wait, f"rate limit of {principal.limit_key} exceeded")
        if ROLE_RANK[principal.role] < ROLE_RANK[self.min_role]:
            raise Problem(403, "Forbidden", f"this needs the {self.min_role} role; {principal.name} is a {principal.role}")
        request.state.principal = principal
        return principal


def too_many(wait_s: float, detail: str) -> Problem:
    retry = max(1, math.ceil(wait_s))
    return Problem(429, "Too Many Requests", f"{detail}: retry after {retry} s", kind="rate-limited",
                   headers={"Retry-After": str(retry)})  # fmt: skip


viewer = RoleGuard("viewer")
developer = RoleGuard("developer")
admin = RoleGuard("admin")


class RateLimiter:
    """Token buckets by key: ``rate`` per second sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, key: str, now: float | None = None) -> float:
        """Seconds until a token is available for ``key`` (0: now), without taking one."""
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, t))
        tokens = min(self.burst, tokens + (t - last) * self.rate)
        return 0.0 if tokens >= 1.0 else ((1.0 - tokens) / self.rate if self.rate > 0 else 3600.0)

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed (a token is taken); else the seconds until a token is available."""
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, t))
            tokens = min(self.burst, tokens + (t - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, t)
                if len(self._buckets) > self.max_keys:
                    self._buckets.pop(next(iter(self._buckets)))
                return 0.0
            self._buckets[key] = (tokens, t)
            return (1.0 - tokens) / self.rate if self.rate > 0 else 3600.0
