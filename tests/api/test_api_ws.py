"""WebSocket /ws on a real uvicorn server: live events filtered by instance, resume from offsets,
refusals, metrics, auth, and a slow client dropped with close code 4008 while a fast one keeps up."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import ApiEnv, buffer_source, make_app, serve_process, served
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


@pytest.fixture(scope="module")
def server(api_env: ApiEnv) -> Iterator[tuple[str, Any]]:
    _cfg, app = make_app(api_env.platform, ws_queue=1000, secret=api_env.config.secret)
    app.state.ctx.access = api_env.app.state.ctx.access
    with served(app) as url:
        yield url.replace("http://", "ws://"), app


def frames(ws: ClientConnection, n: int, timeout_s: float = 30.0, stream: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        try:
            f = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        if "stream" in f and (stream is None or f["stream"] == stream):
            out.append(f)
    return out


def subscribe(ws: ClientConnection, **msg: Any) -> dict[str, Any]:
    ws.send(json.dumps({"action": "subscribe", **msg}))
    while True:
        f = json.loads(ws.recv(timeout=30))
        if "subscribed" in f or "error" in f:
            return dict(f)


def test_live_filtered_resumable(api_env: ApiEnv, server: tuple[str, Any]) -> None:
    url, _app = server
    c, dev = api_env.client, api_env.auth("developer")
    assert c.post("/api/v1/processes", headers=dev, json={"source": buffer_source(), "process": "BUFFER",
                  "name": "wbuf", "outputs": ["right"]}).status_code == 201  # fmt: skip
    a = c.post("/api/v1/processes/wbuf/start", headers=dev, json={}).json()["id"]
    b = c.post("/api/v1/processes/wbuf/start", headers=dev, json={}).json()["id"]
    token = api_env.tokens["viewer"]
    with connect(f"{url}/ws?token={token}") as ws, connect(f"{url}/ws?token={token}") as chan:
        ack = subscribe(ws, channels=["events", "refusals"], instance=a)
        assert ack["instance"] == a and "events" in ack["subscribed"]
        assert "error" not in subscribe(chan, channels=["wbuf.right"])
        c.post(f"/api/v1/instances/{b}/offer", headers=dev, json={"event": "left.0"})
        c.post(f"/api/v1/instances/{a}/offer", headers=dev, json={"event": "left.1"})
        c.post(f"/api/v1/instances/{a}/offer", headers=dev, json={"event": "right.1"})  # refused
        got = frames(ws, 4)
        assert {f["record"]["instance_id"] for f in got} == {a}  # b's events filtered out
        events = [f["record"]["event"] for f in got if f["stream"] == "events"]
        assert [e for e in events if e != "τ"] == ["left.1", "right.1"]
        assert [f["record"]["event"] for f in got if f["stream"] == "refusals"] == ["right.1"]
        msgs = frames(chan, 2, stream="channel")
        assert sorted(m["record"]["event"] for m in msgs) == ["right.0", "right.1"]
        first = next(f for f in got if f["stream"] == "events")
    # resume: from the first event's offset, a new connection sees the same events again
    with connect(f"{url}/ws?token={token}") as again:
        topic = first["topic"]
        subscribe(again, channels=["events"], instance=a,
                  offsets={topic: {str(first["partition"]): first["offset"]}})
        replay = frames(again, 3)
        assert [f["offset"] for f in replay][0] == first["offset"]
        assert [f["record"]["event"] for f in replay if f["record"]["event"] != "τ"][:2] == ["left.1", "right.1"]
    with connect(f"{url}/ws?token={token}") as m:
        subscribe(m, channels=["metrics"])
        metric = frames(m, 1, stream="metrics")
        assert metric and "processes_active" in metric[0]["data"]


def test_ws_needs_a_valid_token(api_env: ApiEnv, server: tuple[str, Any]) -> None:
    url, _app = server
    for q in ("", "?token=nonsense"):
        with connect(f"{url}/ws{q}") as ws, pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    with connect(f"{url}/ws?token={api_env.tokens['viewer']}") as ws:
        assert "error" in subscribe(ws, channels=["nope"])


def test_slow_client_is_dropped_fast_client_keeps_up(api_env: ApiEnv, tmp_path: Path) -> None:
    """On `csp serve` (a child process, so the clients here do not share its interpreter)."""
    c, dev = api_env.client, api_env.auth("developer")
    assert c.post("/api/v1/processes", headers=dev, json={"source": buffer_source(), "process": "BUFFER",
                  "name": "sbuf", "outputs": ["right"]}).status_code == 201  # fmt: skip
    iid = c.post("/api/v1/processes/sbuf/start", headers=dev, json={}).json()["id"]
    token = api_env.tokens["viewer"]
    with serve_process(api_env, tmp_path, "--ws-queue", "1500") as base:
        url = base.replace("http://", "ws://")
        _slow_and_fast(api_env, url, token, iid)
        metrics = httpx.get(base + "/metrics", headers=api_env.auth("viewer")).text
        assert "csp_ws_dropped_total 1.0" in metrics


def _raw_ws(host: str, port: int, path: str, first: dict[str, Any]) -> socket.socket:
    """A WebSocket client that sends its subscription and then reads nothing (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())  # fmt: skip
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = json.dumps(first).encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i + 2 <= len(data):
        op, ln = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if ln == 126:
            ln, i = struct.unpack(">H", data[i : i + 2])[0], i + 2
        elif ln == 127:
            ln, i = struct.unpack(">Q", data[i : i + 8])[0], i + 8
        out.append((op, data[i : i + ln]))
        i += ln
    return out


def _slow_and_fast(api_env: ApiEnv, url: str, token: str, iid: str) -> None:
    host, port = url.removeprefix("ws://").split(":")
    slow = _raw_ws(host, int(port), f"/ws?token={token}", {"action": "subscribe", "channels": ["events"],
                                                           "instance": iid})  # fmt: skip
    n = 3500  # ~10k frames: more than the server socket buffer (~4 MB) plus the 1500 queued
    with connect(f"{url}/ws?token={token}") as fast:
        subscribe(fast, channels=["events"], instance=iid)
        time.sleep(1.0)  # the slow client's subscription is in place too
        for chunk in range(0, n, 100):  # a sustained rate, not one burst
            api_env.platform.send_many((iid, "OFFER", {"event": f"left.{i % 3}", "offer_id": f"o{i}"})
                                       for i in range(chunk, chunk + 100))  # fmt: skip
            time.sleep(0.1)
        got = frames(fast, 3 * n, timeout_s=120)  # each offer: the input, τ and the output
        assert len([f for f in got if f["record"]["event"].startswith("left")]) == n
    # the slow client was dropped: after what was buffered, a close frame 4008, then EOF
    slow.settimeout(30)
    data = b""
    while True:
        chunk_ = slow.recv(1 << 20)
        if not chunk_:
            break
        data += chunk_
    slow.close()
    frames_ = _frames(data)
    closes = [body for op, body in frames_ if op == 0x8]
    assert closes and struct.unpack(">H", closes[0][:2])[0] == 4008, frames_[-3:]
    assert b"slow consumer" in closes[0]
    assert len([op for op, _b in frames_ if op == 0x1]) < 3 * n
