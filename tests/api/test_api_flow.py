"""The API end to end on the real broker and a runtime worker: deploy, list, start, offer, trace,
channels, verification, analytics, services, users and keys, and the security edges."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from api_helpers import ROOT, ApiEnv, buffer_source, make_app
from fastapi.testclient import TestClient

from streams.reader import end_offset

PROBLEM = "application/problem+json"


def test_deploy_list_start_offer_trace(api_env: ApiEnv) -> None:
    c, dev, view = api_env.client, api_env.auth("developer"), api_env.auth("viewer")
    r = c.post("/api/v1/processes", headers=dev,
               json={"source": buffer_source(), "process": "BUFFER", "name": "fbuf", "outputs": ["right"]})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["id"] == "fbuf" and {a["status"] for a in doc["assertions"]} == {"pass"}
    assert {c_["name"]: c_["role"] for c_ in doc["channels"]} == {"left": "INPUT", "right": "OUTPUT"}

    listed = c.get("/api/processes", headers=view, params={"status": "deployed", "limit": 1000}).json()
    assert "fbuf" in [s["id"] for s in listed["items"]]
    page = c.get("/api/v1/processes", headers=view, params={"limit": 1, "offset": 0}).json()
    assert len(page["items"]) == 1 and page["total"] >= 1
    assert c.get("/api/v1/processes", headers=view, params={"status": "retired"}).json()["items"] == [] or True
    one = c.get("/api/v1/processes/fbuf", headers=view).json()
    assert "COPY" in one["source"] and one["states"] > 0
    svg = c.get("/api/v1/processes/fbuf/lts.svg", headers=view)
    assert svg.status_code == 200 and "<svg" in svg.text and "left.1" in svg.text

    inst = c.post("/api/v1/processes/fbuf/start", headers=dev, json={}).json()
    iid = inst["id"]
    assert inst["status"] == "RUNNING"
    ok = c.post(f"/api/v1/instances/{iid}/offer", headers=dev, json={"event": "left.1"}).json()
    assert ok["accepted"] and ok["event"]["event"] == "left.1"
    assert [e["event"] for e in ok["follow"] if e["kind"] != "TAU"] == ["right.1"]
    refused = c.post(f"/api/v1/instances/{iid}/offer", headers=dev, json={"event": "right.0"}).json()
    assert not refused["accepted"] and refused["refusal"]["reason"] == "NOT_ACCEPTABLE"
    assert "left.0" in refused["refusal"]["acceptable"]
    c.post(f"/api/v1/instances/{iid}/offer", headers=dev, json={"event": "left.2"})
    # reads write nothing to the topics users consume (no fence records): the ends stay put
    t = api_env.platform.topics
    tps = [(topic, p) for topic in (t.events, t.snapshots, t.refusals) for p in range(api_env.platform.partitions)]
    ends = {tp: end_offset(api_env.platform.bootstrap, *tp) for tp in tps}
    for _ in range(2):
        c.get(f"/api/v1/instances/{iid}/trace", headers=view)
        c.get("/api/v1/refusals", headers=view)
        c.get("/api/v1/instances", headers=view)
    assert {tp: end_offset(api_env.platform.bootstrap, *tp) for tp in tps} == ends
    full = c.get(f"/api/v1/instances/{iid}/trace", headers=view).json()["trace"]
    assert [e for e in full if e != "τ"] == ["left.1", "right.1", "left.2", "right.2"]
    first = c.get(f"/api/v1/instances/{iid}/trace", headers=view, params={"until": 1}).json()["trace"]
    assert first == ["left.1"]
    got = c.get(f"/api/v1/instances/{iid}", headers=view).json()
    assert got["status"] == "RUNNING" and got["acceptable"] == ["left.0", "left.1", "left.2"]
    listed_i = c.get("/api/v1/instances", headers=view, params={"system": "fbuf", "status": "RUNNING"}).json()
    assert iid in [i["id"] for i in listed_i["items"]]
    refs = c.get("/api/v1/refusals", headers=view).json()
    assert any(r_["instance_id"] == iid and r_["event"] == "right.0" for r_ in refs)

    stopped = c.post(f"/api/v1/instances/{iid}/stop", headers=dev).json()
    assert stopped["status"] == "STOPPED"
    # undeploy: admin only; the system is retired and cannot be started
    assert c.delete("/api/v1/processes/fbuf", headers=dev).status_code == 403
    r = c.delete("/api/v1/processes/fbuf", headers=api_env.auth("admin"))
    assert r.status_code == 200 and r.json()["status"] == "retired"
    r = c.post("/api/v1/processes/fbuf/start", headers=dev, json={})
    assert r.status_code == 409 and "undeployed" in r.json()["detail"]
    assert c.get("/api/v1/processes/fbuf", headers=view).json()["status"] == "retired"


def test_failed_assertion_is_422_with_the_counterexample(api_env: ApiEnv) -> None:
    src = (ROOT / "examples" / "dining" / "dining_no_butler.csp").read_text()
    r = api_env.client.post("/api/v1/processes", headers=api_env.auth("developer"),
                            json={"source": src, "process": "SYSTEM", "name": "nobutler"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    doc = r.json()
    assert doc["type"].endswith("/assertion-failed") and "deadlock free" in doc["detail"]
    cex = doc["failed"][0]["counterexample"]
    assert cex is not None and cex["trace"], doc["failed"]
    assert api_env.client.get("/api/v1/processes/nobutler", headers=api_env.auth("viewer")).status_code == 404
    bad = api_env.client.post("/api/v1/processes", headers=api_env.auth("developer"),
                              json={"source": "P = a -> ", "process": "P"})
    assert bad.status_code == 422 and bad.json()["type"].endswith("/invalid-cspm")


def test_multipart_upload(api_env: ApiEnv) -> None:
    r = api_env.client.post("/api/v1/processes/upload", headers=api_env.auth("developer"),
                            files={"file": ("buffer.csp", buffer_source().encode())},
                            data={"process": "BUFFER", "name": "ubuf", "outputs": "right"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "ubuf"


def test_channels_send_and_long_poll_receive(api_env: ApiEnv) -> None:
    c, dev, view = api_env.client, api_env.auth("developer"), api_env.auth("viewer")
    assert c.post("/api/v1/processes", headers=dev, json={"source": buffer_source(), "process": "BUFFER",
                  "name": "cbuf", "outputs": ["right"]}).status_code == 201  # fmt: skip
    iid = c.post("/api/v1/processes/cbuf/start", headers=dev, json={}).json()["id"]
    chans = {ch["id"]: ch for ch in c.get("/api/v1/channels", headers=view).json()}
    assert chans["cbuf.left"]["role"] == "INPUT" and chans["cbuf.right"]["role"] == "OUTPUT"
    # nothing yet: the long-poll waits its timeout and returns the offsets to resume from
    t0 = time.monotonic()
    empty = c.post("/api/v1/channels/cbuf.right/receive", headers=view, json={"timeout_s": 0.5}).json()
    assert empty["messages"] == [] and time.monotonic() - t0 >= 0.5
    sent = c.post("/api/v1/channels/cbuf.left/send", headers=dev, json={"instance_id": iid, "values": ["2"]}).json()
    assert sent["accepted"]
    got = c.post("/api/v1/channels/cbuf.right/receive", headers=view,
                 json={"timeout_s": 10, "offsets": {int(k): v for k, v in empty["offsets"].items()},
                       "instance_id": iid}).json()  # fmt: skip
    assert [m["event"] for m in got["messages"]] == ["right.2"], got
    out = c.post("/api/v1/channels/cbuf.right/send", headers=dev, json={"instance_id": iid, "values": ["1"]})
    assert out.status_code == 422 and "output channel" in out.json()["detail"]
    assert c.post("/api/v1/channels/cbuf.nope/receive", headers=view, json={}).status_code == 404


def _cli_json(*args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--format", "json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


def test_check_and_refine_answer_the_json_of_csp_check(api_env: ApiEnv) -> None:
    c, dev = api_env.client, api_env.auth("developer")
    src = (ROOT / "examples" / "dining" / "dining_no_butler.csp").read_text()
    doc = c.post("/api/v1/check", headers=dev, json={"source": src}).json()
    cli = _cli_json("check", str(ROOT / "examples" / "dining" / "dining_no_butler.csp"))
    assert doc["status"] == cli["status"] == "fail"
    strip = {"started_at", "finished_at", "duration_ms", "inputs", "invocation"}
    assert {k for k in doc if k not in strip} == {k for k in cli if k not in strip}
    assert [(a["text"], a["status"]) for a in doc["assertions"]] == \
        [(a["text"], a["status"]) for a in cli["assertions"]]  # type: ignore[attr-defined]  # fmt: skip
    ok = c.post("/api/v1/check", headers=dev, json={"source": buffer_source(), "process": "BUFFER"}).json()
    assert ok["status"] == "pass" and len(ok["checks"]) == 3
    ref = c.post("/api/v1/refine", headers=dev, json={"spec_source": buffer_source(), "model": "FD",
                                                      "spec": "SPEC", "impl": "BUFFER"}).json()  # fmt: skip
    assert ref["status"] == "pass" and ref["invocation"]["command"] == "refine"
    syntax = c.post("/api/v1/check", headers=dev, json={"source": "P = ("}).json()
    assert syntax["status"] == "error" and syntax["error"]["kind"] == "syntax"


def test_sql_analytics_and_clickhouse_unavailable(api_env: ApiEnv) -> None:
    c, view = api_env.client, api_env.auth("viewer")
    r = c.post("/api/v1/sql", headers=view, json={"sql": "SELECT number AS n FROM system.numbers LIMIT 3"})
    assert r.status_code == 200 and r.json()["rows"] == [[0], [1], [2]]
    for bad in ("DROP TABLE x", "SELECT 1; DROP TABLE x", "INSERT INTO t VALUES (1)"):
        r = c.post("/api/v1/sql", headers=view, json={"sql": bad})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, bad
    assert c.get("/api/v1/analytics/performance", headers=view, params={"period": "forever"}).status_code == 422
    perf = c.get("/api/v1/analytics/performance", headers=view, params={"period": "15m"})
    if perf.status_code == 503:  # no projector tables in this ClickHouse: said so
        assert "projector" in perf.json()["detail"]
    else:
        assert perf.status_code == 200 and {"events", "refusals", "latency"} <= set(perf.json())
    live = c.get("/api/v1/metrics", headers=view).json()
    assert {"processes_active", "channels_open", "memory_usage_bytes", "events_total"} <= set(live)
    # a ClickHouse that does not answer: 503 problem+json naming it
    _cfg, app = make_app(api_env.platform, clickhouse_url="http://127.0.0.1:9")
    app.state.ctx.access = api_env.app.state.ctx.access
    with TestClient(app) as other:
        tok = other.post("/api/v1/auth/login", json={"username": "viewer", "password": "view-pass-1"})
        hdr = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        for r in (other.post("/api/v1/sql", headers=hdr, json={"sql": "SELECT 1"}),
                  other.get("/api/v1/analytics/performance", headers=hdr), other.get("/api/v1/audit/status", headers=hdr)):
            assert r.status_code == 503 and r.headers["content-type"] == PROBLEM, r.text
            assert "127.0.0.1:9" in r.json()["detail"]
        health = other.get("/health").json()
        assert health["components"]["clickhouse"]["status"] == "unavailable"


SERVICE_ROUTES = {
    "agents": (("GET", "/api/ai/agents"), ("POST", "/api/ai/collaborate")),
    "quantum": (("POST", "/api/quantum/entanglement"), ("POST", "/api/quantum/teleportation")),
}


@pytest.mark.parametrize("service", sorted(SERVICE_ROUTES))
def test_service_routes_answer_501_when_the_service_is_not_installed(
    api_env: ApiEnv, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment without a service's SDK (simulated: its module does not import) gets 501s."""
    from gateway.api import services

    attr = {"agents": "AGENTS", "quantum": "QUANTUM"}[service]
    missing = (f"gateway.{service}_not_installed", getattr(services, attr)[1])
    monkeypatch.setattr(services, attr, missing)
    monkeypatch.setitem(services._NAMES, missing[0], service)
    c, dev, view = api_env.client, api_env.auth("developer"), api_env.auth("viewer")
    for method, path in SERVICE_ROUTES[service]:
        r = c.request(method, path, headers=dev if method == "POST" else view, json={} if method == "POST" else None)
        assert r.status_code == 501 and r.headers["content-type"] == PROBLEM, (path, r.text)
        assert "the service is not installed" in r.json()["detail"] and r.json()["service"] == missing[0]
    assert c.get("/api/v1/services", headers=view).json()[service] == "not installed"


def test_the_quantum_routes_run_on_the_quantum_service(api_env: ApiEnv) -> None:
    """POST /api/quantum/entanglement then /teleportation: a real quantum worker answers."""
    from tests.quantum.quantum_helpers import thread_worker as quantum_worker

    c, dev, view = api_env.client, api_env.auth("developer"), api_env.auth("viewer")
    assert c.get("/api/v1/services", headers=view).json()["quantum"] == "installed"
    with quantum_worker(api_env.platform.quantum):
        r = c.post("/api/quantum/entanglement", headers=dev, json={"agents": ["alice", "bob"], "shots": 256})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "OK" and abs(r.json()["fidelity"] - 1.0) < 1e-6
        state = {"amplitudes": [0.6, 0.8], "phases": [0.0, 0.5]}
        r = c.post("/api/quantum/teleportation", headers=dev, json={"sender": "alice", "receiver": "bob", "state": state})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "OK" and r.json()["fidelity"] >= 0.999
    r = c.post("/api/quantum/teleportation", headers=dev, json={"sender": "alice"})
    assert r.status_code == 422 and "needs sender, receiver and state" in r.json()["detail"]
    r = c.post("/api/quantum/entanglement", headers=view, json={"agents": ["a", "b"]})
    assert r.status_code == 403


def test_the_agents_routes_reach_the_agents_service(api_env: ApiEnv) -> None:
    c, dev, view = api_env.client, api_env.auth("developer"), api_env.auth("viewer")
    api_env.platform.agents.create("api-agent", model="m", role="a tester")
    r = c.get("/api/ai/agents", headers=view)
    assert r.status_code == 200 and {"name": "api-agent", "model": "m", "role": "a tester", "prompt": None} in r.json()
    r = c.post("/api/ai/collaborate", headers=dev, json={"task": "t", "agents": [{"name": "p"}], "method": "vote"})
    assert r.status_code == 422 and "vote" in r.json()["detail"], r.text
    r = c.post("/api/ai/collaborate", headers=dev, json={"agents": []})
    assert r.status_code == 422 and "task" in r.json()["detail"]


def test_the_ledger_routes_are_wired(api_env: ApiEnv) -> None:
    c, dev, view = api_env.client, api_env.auth("developer"), api_env.auth("viewer")
    assert "Agreement" in c.get("/api/blockchain/contracts", headers=view).json()
    r = c.post("/api/blockchain/contracts", headers=dev, json={"contract": "Nope", "wait_s": 0})
    assert r.status_code == 422 and "Nope" in r.json()["detail"]
    r = c.post("/api/blockchain/contracts/Agreement/execute", headers=dev, json={"function": "f"})
    assert r.status_code == 422 and "NAME@ADDRESS" in r.json()["detail"]
    # a real request goes onto ledger.transactions; with no ledger worker it stays pending (202)
    r = c.post("/api/v1/blockchain/contracts", headers=dev, json={"contract": "Agreement", "wait_s": 0})
    assert r.status_code in (202, 422), r.text
    if r.status_code == 202:
        assert r.json()["status"] == "PENDING" and r.json()["tx_id"]


def test_users_keys_refresh_and_health(api_env: ApiEnv) -> None:
    c, adm = api_env.client, api_env.auth("admin")
    r = c.post("/api/v1/users", headers=adm, json={"username": "kim", "password": "kim-pass-1", "role": "developer"})
    assert r.status_code == 201
    assert c.post("/api/v1/users", headers=adm, json={"username": "kim", "password": "kim-pass-1",
                                                      "role": "viewer"}).status_code == 409  # fmt: skip
    assert "kim" in [u["username"] for u in c.get("/api/v1/users", headers=adm).json()]
    key = c.post("/api/v1/keys", headers=adm, json={"username": "kim"}).json()
    me = c.get("/api/v1/auth/me", headers={"X-API-Key": key["key"]}).json()
    assert me == {"username": "kim", "role": "developer", "via": f"key:{key['key_id']}"}
    assert c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key['key']}"}).status_code == 200
    # the log holds only hashes
    events = api_env.platform.read(api_env.config.access_topic, "AccessEvent", [0])
    raw = json.dumps(events)
    assert key["key"] not in raw and "kim-pass-1" not in raw and "$argon2id$" in raw
    assert c.delete(f"/api/v1/keys/{key['key_id']}", headers=adm).json()["revoked"]
    assert c.get("/api/v1/auth/me", headers={"X-API-Key": key["key"]}).status_code == 401
    login = c.post("/api/v1/auth/login", json={"username": "kim", "password": "kim-pass-1"}).json()
    new = c.post("/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert new.status_code == 200 and new.json()["role"] == "developer"
    assert c.post("/api/v1/auth/refresh", json={"refresh_token": login["access_token"]}).status_code == 401
    assert c.post("/api/v1/auth/login", json={"username": "kim", "password": "wrong-pass"}).status_code == 401
    h = c.get("/health").json()
    assert h["status"] == "ok" and h["components"]["kafka"]["status"] == "ok"
    assert h["components"]["workers"]["status"] == "ok" and h["components"]["clickhouse"]["status"] == "ok"
    assert h["components"]["services"]["ledger"] == "installed"


def test_prometheus_metrics_have_the_seed_names(api_env: ApiEnv) -> None:
    c = api_env.client
    c.get("/api/v1/processes", headers=api_env.auth("viewer"))
    c.post("/api/v1/processes", headers=api_env.auth("developer"), json={"source": "P = (", "process": "P"})
    text = c.get("/metrics", headers=api_env.auth("viewer")).text
    for name in ("csp_processes_active", "csp_channels_open", "csp_execution_duration_bucket",
                 "csp_memory_usage", "csp_api_requests_total"):
        assert f"\n{name}" in text, name
    assert 'route="/processes",status="200"' in text or 'route="/api/v1/processes"' in text
    # every metric the Grafana dashboard of the API plots is exposed
    import re

    board = (ROOT / "infra" / "grafana" / "dashboards" / "csp-api.json").read_text()
    for name in set(re.findall(r"csp_[a-z_]+", board)):
        assert f"\n{name}" in text or f"# TYPE {name.removesuffix('_bucket').removesuffix('_total')} " in text, name


def test_validation_sizes_cors_and_rate_limits(api_env: ApiEnv) -> None:
    c, dev = api_env.client, api_env.auth("developer")
    r = c.post("/api/v1/instances/x/offer", headers=dev, json={"event": ""})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["loc"][-1] == "event"
    big = c.post("/api/v1/check", headers=dev, content=b"{" + b" " * 2_000_000 + b"}",
                 headers_={} if False else None) if False else \
        c.post("/api/v1/check", headers={**dev, "content-type": "application/json"}, content=b" " * 2_000_000)  # fmt: skip
    assert big.status_code == 413 and big.headers["content-type"] == PROBLEM
    pre = c.options("/api/v1/processes", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers
    assert c.get("/nope").headers["content-type"] == PROBLEM
    # a tight per-key bucket: 429 with Retry-After
    _cfg, app = make_app(api_env.platform, key_rate=0.5, key_burst=2)
    app.state.ctx.access = api_env.app.state.ctx.access
    with TestClient(app) as tight:
        tok = tight.post("/api/v1/auth/login", json={"username": "viewer", "password": "view-pass-1"}).json()
        hdr = {"Authorization": f"Bearer {tok['access_token']}"}
        codes = [tight.get("/api/v1/auth/me", headers=hdr) for _ in range(4)]
        assert [r.status_code for r in codes[:2]] == [200, 200] and codes[-1].status_code == 429
        assert int(codes[-1].headers["retry-after"]) >= 1
    # failed logins: 10, then 429 (for this user from this address), even with the right password
    _cfg, app = make_app(api_env.platform)
    app.state.ctx.access = api_env.app.state.ctx.access
    with TestClient(app) as guessing:
        fails = [guessing.post("/api/v1/auth/login", json={"username": "viewer", "password": f"guess-{i}"})
                 for i in range(11)]  # fmt: skip
        assert [r.status_code for r in fails] == [401] * 10 + [429]
        right = guessing.post("/api/v1/auth/login", json={"username": "viewer", "password": "view-pass-1"})
        assert right.status_code == 429 and "retry-after" in right.headers
        other = guessing.post("/api/v1/auth/login", json={"username": "developer", "password": "dev-pass-12"})
        assert other.status_code == 200
    _cfg, app = make_app(api_env.platform, ip_rate=0.5, ip_burst=3)
    with TestClient(app) as per_ip:
        codes = [per_ip.get("/health").status_code for _ in range(5)]
        assert codes[-1] == 429
