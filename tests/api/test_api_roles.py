"""The role matrix: every API route x (no token, expired token, forged token, viewer, developer, admin).

Routes are enumerated from the app itself, so a new route without a guard fails here.
Handlers run for real (a runtime worker, the session's broker); the matrix checks that
an insufficient role gets 403, missing/expired/forged credentials get 401 (problem+json),
and a sufficient role gets past the guard.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from api_helpers import ApiEnv, buffer_source
from fastapi.routing import APIRoute

from gateway.api.access import ROLE_RANK
from gateway.api.app import route_table
from gateway.api.security import RoleGuard, issue

PUBLIC = {"/auth/login", "/auth/refresh"}
ZERO = "0x" + "0" * 40


def guard_of(route: APIRoute) -> RoleGuard | None:
    found = []
    stack = list(route.dependant.dependencies)
    while stack:
        d = stack.pop()
        if isinstance(d.call, RoleGuard):
            found.append(d.call)
        stack += d.dependencies
    assert len(found) <= 1, f"{route.path}: several guards"
    return found[0] if found else None


def api_routes(env: ApiEnv, prefix: str) -> list[tuple[str, str, APIRoute]]:
    out = []
    for m, path, r in route_table(env.app):
        if path.startswith(prefix + "/") or (prefix == "" and path == "/metrics"):
            if prefix == "/api" and path.startswith("/api/v1/"):
                continue
            if prefix == "" and path != "/metrics":
                continue
            out.append((m, path, r))
    return out


def test_every_route_is_guarded_or_deliberately_public(api_env: ApiEnv) -> None:
    routes = api_routes(api_env, "/api/v1") + api_routes(api_env, "/api") + api_routes(api_env, "")
    assert len(routes) > 60
    for _m, path, route in routes:
        tail = path.removeprefix("/api/v1").removeprefix("/api")
        guard = guard_of(route)
        assert (guard is None) == (tail in PUBLIC), f"{path}: guard {guard}"
    # the seed's /api paths are the same handlers with the same guards as /api/v1
    v1 = {(m, p.removeprefix("/api/v1")): guard_of(r) for m, p, r in api_routes(api_env, "/api/v1")}
    alias = {(m, p.removeprefix("/api")): guard_of(r) for m, p, r in api_routes(api_env, "/api")}
    assert v1 == alias


@pytest.fixture(scope="module")
def world(api_env: ApiEnv) -> dict[str, str]:
    c = api_env.client
    r = c.post("/api/v1/processes", headers=api_env.auth("developer"),
               json={"source": buffer_source(), "process": "BUFFER", "name": "rbuf", "outputs": ["right"]})
    assert r.status_code == 201, r.text
    r = c.post("/api/v1/processes/rbuf/start", headers=api_env.auth("developer"), json={})
    assert r.status_code == 201, r.text
    return {"system": "rbuf", "instance_id": r.json()["id"], "ref": "rbuf.left", "key_id": "nokey", "entry": "0",
            "contract_id": f"Agreement@{ZERO}"}


BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/auth/login"): {"username": "viewer", "password": "view-pass-1"},
    ("POST", "/processes"): {"source": "", "process": "BUFFER"},  # invalid: 422 after the guard
    ("POST", "/processes/{system}/start"): {"timeout_s": 10},
    ("POST", "/instances/{instance_id}/offer"): {"event": "left.1", "timeout_s": 10},
    ("POST", "/channels/{ref}/send"): {"instance_id": "nobody", "values": ["1"], "timeout_s": 2},
    ("POST", "/channels/{ref}/receive"): {"timeout_s": 0.1},
    ("POST", "/check"): {"source": "P = a -> P\nchannel a\nassert P :[deadlock free]"},
    ("POST", "/refine"): {"spec_source": "channel a\nSPEC = a -> SPEC\nIMPL = a -> IMPL", "model": "T"},
    ("POST", "/sql"): {"sql": "SELECT 1"},
    ("POST", "/users"): {"username": "x", "password": "short", "role": "nope"},  # invalid: 422 after the guard
    ("POST", "/keys"): {"username": "nobody"},
    ("POST", "/blockchain/contracts"): {"contract": "NoSuchContract", "wait_s": 0},
    ("POST", "/blockchain/contracts/{contract_id}/execute"): {"function": "f", "wait_s": 0},
    ("POST", "/ai/collaborate"): {},
    ("POST", "/quantum/entanglement"): {},
    ("POST", "/quantum/teleportation"): {},
}
QUERIES = {"/audit/consistency": {"old": 1, "new": 2}}


def call(env: ApiEnv, world: dict[str, str], method: str, path: str, headers: dict[str, str]) -> Any:
    tail = path.removeprefix("/api/v1")
    url = path
    for k, v in world.items():
        url = url.replace("{" + k + "}", v)
    kwargs: dict[str, Any] = {"headers": headers, "params": QUERIES.get(tail, {})}
    if (method, tail) in BODIES:
        kwargs["json"] = BODIES[(method, tail)]
    return env.client.request(method, url, **kwargs)


def bad_credentials(env: ApiEnv) -> dict[str, dict[str, str]]:
    secret = env.config.secret
    expired = issue(secret, "admin", "admin", "access", 60, now=time.time() - 3600)
    forged = issue("not-the-secret-but-long-enough-for-hs256", "admin", "admin", "access", 3600)
    unsigned = jwt.encode({"sub": "admin", "role": "admin", "typ": "access", "iss": "enhanced-csp",
                           "iat": int(time.time()), "exp": int(time.time()) + 3600}, key=None, algorithm="none")  # type: ignore[arg-type]  # fmt: skip
    refresh = issue(secret, "admin", "admin", "refresh", 3600)
    return {
        "no token": {},
        "expired token": {"Authorization": f"Bearer {expired}"},
        "forged token": {"Authorization": f"Bearer {forged}"},
        "alg none token": {"Authorization": f"Bearer {unsigned}"},
        "refresh as access": {"Authorization": f"Bearer {refresh}"},
        "forged API key": {"X-API-Key": "csp_abc_def"},
    }


def test_role_matrix(api_env: ApiEnv, world: dict[str, str]) -> None:
    routes = api_routes(api_env, "/api/v1") + api_routes(api_env, "")
    failures: list[str] = []
    checked = 0
    for method, path, route in routes:
        guard = guard_of(route)
        if guard is None:
            continue
        for what, headers in bad_credentials(api_env).items():
            r = call(api_env, world, method, path, headers)
            checked += 1
            if r.status_code != 401 or r.headers["content-type"] != "application/problem+json":
                failures.append(f"{method} {path} {what}: {r.status_code} {r.text[:120]}")
        for role in ("viewer", "developer", "admin"):
            r = call(api_env, world, method, path, api_env.auth(role))
            checked += 1
            allowed = ROLE_RANK[role] >= ROLE_RANK[guard.min_role]
            if allowed and r.status_code in (401, 403):
                failures.append(f"{method} {path} as {role}: refused {r.status_code} {r.text[:160]}")
            if not allowed and (r.status_code != 403 or "role" not in r.json()["detail"]):
                failures.append(f"{method} {path} as {role}: {r.status_code}, expected 403")
    assert checked > 300
    assert not failures, "\n".join(failures)


def test_the_guards_follow_the_issue(api_env: ApiEnv) -> None:
    """viewer reads; developer deploys, starts and offers; admin manages users, keys and undeploys."""
    want = {
        ("GET", "/processes"): "viewer", ("POST", "/processes"): "developer",
        ("POST", "/processes/{system}/start"): "developer", ("POST", "/instances/{instance_id}/offer"): "developer",
        ("DELETE", "/processes/{system}"): "admin", ("POST", "/users"): "admin", ("GET", "/users"): "admin",
        ("POST", "/keys"): "admin", ("DELETE", "/keys/{key_id}"): "admin", ("GET", "/instances/{instance_id}/trace"): "viewer",
        ("POST", "/sql"): "viewer", ("GET", "/audit/verify"): "viewer",
    }  # fmt: skip
    got = {(m, p.removeprefix("/api/v1")): guard_of(r) for m, p, r in api_routes(api_env, "/api/v1")}
    for k, role in want.items():
        g = got[k]
        assert g is not None and g.min_role == role, (k, g and g.min_role)
