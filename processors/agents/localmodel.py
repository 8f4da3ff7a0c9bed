"""A local OpenAI-compatible chat-completions server with a deterministic "model" (no ML).

It serves ``POST /v1/chat/completions`` on 127.0.0.1. For a structured-output request
whose JSON schema has an ``event`` enum (:mod:`.choice`) it answers
``{"event": ..., "message": ...}``, choosing among the enum by a hash of the conversation,
or the first event matching a ``PREFER: p1, p2`` line of the system prompt; otherwise it
echoes the last user message. It exists so that ``csp run``, the examples and the
benchmark run without a real model; tests add bad answers on purpose on top of it.

    with LocalModelServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Reply:
    """What the server sends back: a status, a body (JSON or raw text), headers, a delay."""

    status: int = 200
    body: Any = None  # dict: JSON; str: raw text
    headers: Mapping[str, str] | None = None
    delay_s: float = 0.0


def completion(model: str, content: str, prompt_tokens: int = 0) -> dict[str, Any]:
    completion_tokens = max(1, len(content.split()))
    return {
        "id": "chatcmpl-" + hashlib.sha1(content.encode()).hexdigest()[:12],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def enum_of(body: Mapping[str, Any]) -> list[str] | None:
    fmt = body.get("response_format") or {}
    try:
        return list(fmt["json_schema"]["schema"]["properties"]["event"]["enum"])
    except (KeyError, TypeError):
        return None


def prompt_tokens(body: Mapping[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])


def choose(body: Mapping[str, Any], events: list[str]) -> str:
    """The deterministic policy: a PREFER line of the system prompt, else a hash of the conversation."""
    messages = body.get("messages") or []
    for m in messages:
        if m.get("role") != "system":
            continue
        for line in str(m.get("content", "")).splitlines():
            if line.strip().upper().startswith("PREFER:"):
                for pat in line.split(":", 1)[1].split(","):
                    pat = pat.strip()
                    for e in events:
                        if pat and (e == pat or e.startswith(pat + ".")):
                            return e
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
    return events[int.from_bytes(digest[:4], "big") % len(events)]


def default_reply(body: Mapping[str, Any]) -> Reply:
    model = str(body.get("model") or "local")
    events = enum_of(body)
    if events:
        event = choose(body, events)
        content = json.dumps({"event": event, "message": f"I choose {event}."})
    else:
        users = [str(m.get("content", "")) for m in body.get("messages") or [] if m.get("role") == "user"]
        content = f"ok: {users[-1][:200] if users else ''}"
    return Reply(200, completion(model, content, prompt_tokens(body)))


class LocalModelServer:
    """The server in a background thread; ``behaviour`` may override the reply per request."""

    def __init__(self, port: int = 0, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stalls)

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(Reply(400, {"error": {"message": "request body is not JSON"}}))
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(Reply(404, {"error": {"message": f"no route {self.path}"}}))
                    return
                with server.lock:
                    server.calls.append(body)
                reply = server.behaviour(body)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                delay = reply.delay_s or server.delay_s
                if delay:
                    time.sleep(delay)
                data = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()
                try:
                    self.send_response(reply.status)
                    ctype = "text/plain" if isinstance(reply.body, str) else "application/json"
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(data)))
                    for k, v in (reply.headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def behaviour(self, body: Mapping[str, Any]) -> Reply:
        return default_reply(body)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="csp-local-model", description="A local OpenAI-compatible test model.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds per answer")
    args = ap.parse_args(argv)
    server = LocalModelServer(args.port, args.delay)
    print(f"local model on {server.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.httpd.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
