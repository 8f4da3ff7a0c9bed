"""Offers through the API's offer pump (gateway/api/offers.py): many in flight at once, every
partition, refusals, timeouts; and the access-token cache."""

from __future__ import annotations

import asyncio
import time

import httpx
from api_helpers import ApiEnv, buffer_source, login, served
from fastapi.testclient import TestClient

from gateway.api.security import TokenCache, issue
from gateway.sdk import NoAnswer
from processors.csp.runtime.partitioning import partition_for


def _deploy(env: ApiEnv, name: str) -> None:
    r = env.client.post("/api/v1/processes", headers=env.auth("developer"),
                        json={"source": buffer_source(), "process": "BUFFER", "name": name, "outputs": ["right"]})  # fmt: skip
    assert r.status_code == 201, r.text


def test_concurrent_offers_on_every_partition(api_env: ApiEnv) -> None:
    """Instances on every partition, offered to by 16 clients at once over real HTTP: each offer
    gets its own event (and what followed) or its own refusal, none is lost or mixed up."""
    _deploy(api_env, "pbuf")
    c, dev = api_env.client, api_env.auth("developer")
    parts = api_env.platform.partitions
    ids: list[str] = []
    while {partition_for(i, parts) for i in ids} != set(range(parts)) or len(ids) < 8:
        ids.append(c.post("/api/v1/processes/pbuf/start", headers=dev, json={}).json()["id"])

    async def run(base: str) -> list[tuple[str, str, dict[str, object]]]:
        async with httpx.AsyncClient(base_url=base, headers=dev, timeout=60) as http:
            async def one(iid: str, ev: str) -> tuple[str, str, dict[str, object]]:
                r = await http.post(f"/api/v1/instances/{iid}/offer", json={"event": ev})
                assert r.status_code == 200, r.text
                return iid, ev, r.json()

            # per instance: left.1 (accepted), then right.0 (refused: right.1 is due)
            first = await asyncio.gather(*(one(i, "left.1") for i in ids))
            second = await asyncio.gather(*(one(i, "right.0") for i in ids))
            return [*first, *second]

    with served(api_env.app) as base:
        results = asyncio.run(run(base))
    offer_ids = set()
    for iid, ev, doc in results:
        offer_ids.add(doc["offer_id"])
        if ev == "left.1":
            assert doc["accepted"] and doc["event"]["instance_id"] == iid, doc  # type: ignore[index]
            assert [e["event"] for e in doc["follow"] if e["kind"] != "TAU"] == ["right.1"]  # type: ignore[attr-defined]
        else:
            assert not doc["accepted"] and doc["refusal"]["instance_id"] == iid, doc  # type: ignore[index]
            assert doc["refusal"]["reason"] == "NOT_ACCEPTABLE"  # type: ignore[index]
    assert len(offer_ids) == len(results)
    # an offer with a seq precondition: the instance is at its last event's seq
    doc = next(d for i, ev, d in results if i == ids[0] and ev == "left.1")
    seq = doc["follow"][-1]["seq"]  # type: ignore[index]
    stale = c.post(f"/api/v1/instances/{ids[0]}/offer", headers=dev, json={"event": "left.0", "expect_seq": 0})
    assert stale.status_code == 200 and f"moved on to seq {seq}" in stale.json()["refusal"]["message"], stale.text
    ok = c.post(f"/api/v1/instances/{ids[0]}/offer", headers=dev, json={"event": "left.0", "expect_seq": seq})
    assert ok.status_code == 200 and ok.json()["accepted"], ok.text
    pump = api_env.app.state.ctx.backend.offers
    assert not pump._by_id and not pump._by_pos and not pump._early  # nothing left behind


def test_an_offer_without_a_worker_times_out_with_504(api_env: ApiEnv) -> None:
    pump = api_env.app.state.ctx.backend.offers
    # an instance id nobody started, on a namespace whose worker runs: refused, not a timeout
    r = api_env.client.post("/api/v1/instances/nobody-here/offer", headers=api_env.auth("developer"),
                            json={"event": "left.1"})  # fmt: skip
    assert r.status_code == 200 and r.json()["refusal"]["reason"] == "UNKNOWN_INSTANCE", r.text
    # a bad instance id is a 422 naming it
    r = api_env.client.post("/api/v1/instances/a%01b/offer", headers=api_env.auth("developer"), json={"event": "x"})
    assert r.status_code == 422 and "instance id" in r.json()["detail"], r.text

    async def too_quick() -> None:
        await pump.offer("nobody-here", "left.1", timeout_s=0.001)

    try:
        asyncio.run(too_quick())
        raise AssertionError("no timeout")
    except NoAnswer as exc:
        assert "no answer to command" in str(exc)
    assert not pump._by_id


def test_token_cache_rechecks_expiry_and_kind() -> None:
    cache = TokenCache(size=2)
    secret = "s" * 40
    tok = issue(secret, "ann", "viewer", "access", 1)
    assert cache.decode(secret, tok, "access")["sub"] == "ann"
    assert cache.decode(secret, tok, "access")["sub"] == "ann"  # a hit
    for sec, kind in (("t" * 40, "access"), (secret, "refresh")):  # another secret, another kind
        try:
            cache.decode(sec, tok, kind)
        except Exception as exc:  # noqa: BLE001 - the Problem
            assert getattr(exc, "status", None) == 401, exc
        else:
            raise AssertionError(f"accepted with {sec[:1]} / {kind}")
    time.sleep(max(0.0, cache.decode(secret, tok, "access")["exp"] - time.time()) + 0.05)
    try:
        cache.decode(secret, tok, "access")  # expired since it was cached
    except Exception as exc:  # noqa: BLE001
        assert getattr(exc, "status", None) == 401 and "expired" in str(getattr(exc, "detail", exc))
    else:
        raise AssertionError("an expired token was accepted from the cache")
    for i in range(3):  # bounded
        cache.decode(secret, issue(secret, f"u{i}", "viewer", "access", 60), "access")
    assert len(cache._claims) == 2


def test_a_disabled_user_token_is_refused(api_env: ApiEnv) -> None:
    access = api_env.app.state.ctx.access
    access.create_user("soon-gone", "gone-pass-1", "viewer", actor="test")
    r = api_env.client.post("/api/v1/auth/login", json={"username": "soon-gone", "password": "gone-pass-1"})
    hdr = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert api_env.client.get("/api/v1/processes", headers=hdr).status_code == 200
    access.append("USER_DISABLED", "soon-gone", actor="test")
    r = api_env.client.get("/api/v1/processes", headers=hdr)
    assert r.status_code == 401 and "disabled" in r.json()["detail"], r.text
    assert isinstance(api_env.client, TestClient) and login(api_env.client, "viewer")
