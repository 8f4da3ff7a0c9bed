"""A small real HTTP server speaking the Confluent Schema Registry endpoints the client uses.

Ids are global and shared across subjects (same schema text -> same id), as in Confluent's
registry; they start at 1001 so tests can tell them from local ids. Registering under a
subject runs a BACKWARD check against the subject's latest version (the registry default).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from schemas.compat import backward_problems
from schemas.fingerprint import canonical_json

CT = "application/vnd.schemaregistry.v1+json"


@dataclass
class SrState:
    schemas: dict[int, str] = field(default_factory=dict)  # id -> canonical schema text
    subjects: dict[str, list[int]] = field(default_factory=dict)  # subject -> ids by version
    requests: list[tuple[str, str]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def id_of(self, text: str) -> int | None:
        return next((i for i, t in self.schemas.items() if t == text), None)


def _handler(state: SrState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", CT)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, code: int, message: str) -> None:
            self._send(status, {"error_code": code, "message": message})

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length) or b"{}")

        def _parts(self) -> list[str]:
            path = urllib.parse.urlsplit(self.path).path
            return [urllib.parse.unquote(p) for p in path.strip("/").split("/")]

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            state.auth.append(self.headers.get("Authorization"))
            parts = self._parts()
            with state.lock:
                if parts == ["subjects"]:
                    return self._send(200, sorted(state.subjects))
                if len(parts) == 3 and parts[:2] == ["schemas", "ids"]:
                    text = state.schemas.get(int(parts[2]))
                    if text is None:
                        return self._error(404, 40403, "Schema not found")
                    return self._send(200, {"schema": text})
                if len(parts) == 4 and parts[0] == "subjects" and parts[2:] == ["versions", "latest"]:
                    ids = state.subjects.get(parts[1])
                    if not ids:
                        return self._error(404, 40401, "Subject not found")
                    return self._send(
                        200,
                        {
                            "subject": parts[1],
                            "version": len(ids),
                            "id": ids[-1],
                            "schema": state.schemas[ids[-1]],
                        },
                    )
            return self._error(404, 404, "Not found")

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path))
            state.auth.append(self.headers.get("Authorization"))
            parts = self._parts()
            try:
                schema = json.loads(self._body()["schema"])
            except (KeyError, json.JSONDecodeError):
                return self._error(422, 42201, "Invalid schema")
            text = canonical_json(schema)
            with state.lock:
                if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
                    ids = state.subjects.setdefault(parts[1], [])
                    known = state.id_of(text)
                    if known is not None and known in ids:
                        return self._send(200, {"id": known})
                    if ids and backward_problems(schema, json.loads(state.schemas[ids[-1]])):
                        return self._error(
                            409, 409, "Schema being registered is incompatible with an earlier schema"
                        )
                    if known is None:
                        known = 1001 + len(state.schemas)
                        state.schemas[known] = text
                    ids.append(known)
                    return self._send(200, {"id": known})
                if len(parts) == 2 and parts[0] == "subjects":
                    ids = state.subjects.get(parts[1])
                    if ids is None:
                        return self._error(404, 40401, "Subject not found")
                    known = state.id_of(text)
                    if known is None or known not in ids:
                        return self._error(404, 40403, "Schema not found")
                    return self._send(
                        200, {"subject": parts[1], "id": known, "version": ids.index(known) + 1}
                    )
                if parts[:2] == ["compatibility", "subjects"] and parts[3:] == ["versions", "latest"]:
                    ids = state.subjects.get(parts[2])
                    if not ids:
                        return self._error(404, 40401, "Subject not found")
                    ok = not backward_problems(schema, json.loads(state.schemas[ids[-1]]))
                    return self._send(200, {"is_compatible": ok})
            return self._error(404, 404, "Not found")

    return Handler


@contextmanager
def fake_schema_registry() -> Iterator[tuple[str, SrState]]:
    state = SrState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
