"""Read-only SQL over ClickHouse's HTTP interface, for the embedded ClickHouse (chdb).

chdb opens a data path in one process only, and the projector is that process; this
server lets everything else query it. It speaks the part of ClickHouse's HTTP interface
that clients use: ``GET /?query=...``, ``POST /`` with the query in the body (after the
``query`` parameter, if any), ``FORMAT`` clauses and ``default_format``, ``param_x`` query
parameters, settings as URL parameters, ``database``, ``GET /ping`` and ``/``, and the
three ways to authenticate (``X-ClickHouse-User``/``X-ClickHouse-Key`` headers, HTTP
Basic, ``user``/``password`` parameters). So clickhouse-connect's ``http://`` client,
``curl`` and Grafana's ClickHouse datasource work against it unchanged.

Only loopback, only one user (``csp``) with a password, and only reads: every query runs
with ClickHouse's ``readonly=2`` (reads and session settings only), and a few statement
kinds and table functions that would reach outside the database are refused up front.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

USER = "csp"

# HTTP parameters that are not settings.
_CONTROL = frozenset({
    "query", "database", "default_format", "user", "password", "query_id", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "enable_http_compression",
    "client_protocol_version", "buffer_size", "wait_end_of_query", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
    "add_http_cors_header", "quota_key", "role", "output_format_json_quote_64bit_integers",
    "date_time_output_format", "http_response_headers", "max_result_rows", "result_overflow_mode",
})
_FORMAT_RE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)
_FIRST_WORD = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*\(*\s*([A-Za-z]+)", re.DOTALL)
_READ_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
# Table functions that read or write outside the database (files, URLs, other servers).
_OUTSIDE = re.compile(
    r"\b(file|url|s3|s3Cluster|hdfs|remote|remoteSecure|mysql|postgresql|jdbc|odbc|executable|"
    r"azureBlobStorage|gcs|cluster|clusterAllReplicas|python)\s*\(|\bINTO\s+OUTFILE\b",
    re.IGNORECASE,
)


class QueryRefused(ValueError):
    """A statement this read-only endpoint does not run."""


def check_read_only(query: str) -> None:
    """Raise :class:`QueryRefused` naming the problem unless ``query`` only reads."""
    m = _FIRST_WORD.match(query)
    word = m.group(1).upper() if m else ""
    if word not in _READ_STATEMENTS:
        raise QueryRefused(
            f"read-only endpoint: {word or 'empty'} statements are refused "
            "(only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS); the projector owns writes"
        )
    outside = _OUTSIDE.search(query)
    if outside:
        raise QueryRefused(f"read-only endpoint: {outside.group(0).strip()} is refused (reaches outside the database)")


def split_format(query: str, default: str) -> tuple[str, str]:
    """(query without a trailing FORMAT clause, format)."""
    m = _FORMAT_RE.search(query)
    if m is None:
        return query.rstrip().rstrip(";"), default
    return query[: m.start()].rstrip(), m.group(1)


# (query, format, parameters, settings, database) -> bytes
Executor = Callable[[str, str, dict[str, str], dict[str, str], str | None], bytes]


@dataclass
class _Error(Exception):
    status: int
    code: int
    message: str


_CONTENT_TYPES = {
    "JSON": "application/json", "JSONCompact": "application/json", "JSONEachRow": "application/x-ndjson",
    "CSV": "text/csv", "CSVWithNames": "text/csv", "TabSeparated": "text/tab-separated-values",
    "TSV": "text/tab-separated-values", "TabSeparatedWithNames": "text/tab-separated-values",
}


MAX_BODY = 64 * 1024 * 1024  # queries are small; larger bodies are inserts, refused anyway


def _make_handler(password: str, execute: Executor, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "csp-clickhouse-http"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            return

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, err: _Error) -> None:
            body = f"Code: {err.code}. DB::Exception: {err.message}. ({_NAMES.get(err.code, 'UNKNOWN')})\n"
            self._send(err.status, body.encode(), {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(err.code),
            })

        def _authenticate(self, params: dict[str, str]) -> None:
            user = self.headers.get("X-ClickHouse-User")
            key = self.headers.get("X-ClickHouse-Key")
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                try:
                    user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    user, key = None, None
            user = params.get("user", user)
            key = params.get("password", key)
            if user not in (USER, None, "", "default") or key is None or not hmac.compare_digest(key.encode(), password.encode()):
                raise _Error(HTTPStatus.FORBIDDEN, 516,
                             f"{user or 'default'}: Authentication failed: password is incorrect, or there is no user with such name")

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            self._handle(b"")

        def _read_body(self) -> bytes | None:
            """The request body, Content-Length or chunked (clickhouse-connect streams inserts in
            chunks: a body left unread would be parsed as the next request on the connection).
            None, and the connection closed, when it is larger than MAX_BODY."""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts: list[bytes] = []
                total = 0
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(parts)
                    total += size
                    if total > MAX_BODY:
                        self.close_connection = True
                        return None
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()  # the CRLF after each chunk
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                return None
            return self.rfile.read(length) if length else b""

        def do_POST(self) -> None:  # noqa: N802
            body = self._read_body()
            if body is None:
                self._error(_Error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, 0, f"request body over {MAX_BODY} bytes"))
                return
            encoding = self.headers.get("Content-Encoding", "").lower()
            if encoding:
                # a compressed body is insert data: refuse on the statement before decoding
                params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
                try:
                    self._authenticate(params)
                    check_read_only(params.get("query", ""))
                except QueryRefused as exc:
                    self._error(_Error(HTTPStatus.FORBIDDEN, 164, str(exc)))
                    return
                except _Error as exc:
                    self._error(exc)
                    return
                if encoding != "gzip":
                    self._error(_Error(HTTPStatus.BAD_REQUEST, 48, f"Content-Encoding {encoding} is not supported"))
                    return
                body = gzip.decompress(body)
            self._handle(body)

        def _handle(self, body: bytes) -> None:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            if url.path in ("/ping", "/") and not params.get("query") and not body:
                self._send(HTTPStatus.OK, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            if url.path not in ("/", ""):
                self._error(_Error(HTTPStatus.NOT_FOUND, 0, f"there is no handler {url.path}"))
                return
            try:
                self._authenticate(params)
                query = params.get("query", "")
                if body:
                    query = f"{query}\n{body.decode('utf-8')}" if query else body.decode("utf-8")
                check_read_only(query)
                sql, fmt = split_format(query, params.get("default_format") or "TabSeparated")
                bind = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
                settings = {k: v for k, v in params.items() if k not in _CONTROL and not k.startswith("param_")}
                settings["readonly"] = "2"
                with lock:
                    out = execute(sql, fmt, bind, settings, params.get("database") or None)
            except QueryRefused as exc:
                self._error(_Error(HTTPStatus.FORBIDDEN, 164, str(exc)))
                return
            except _Error as exc:
                self._error(exc)
                return
            except UnicodeDecodeError as exc:
                self._error(_Error(HTTPStatus.BAD_REQUEST, 27, f"query is not UTF-8: {exc}"))
                return
            except Exception as exc:  # noqa: BLE001 - ClickHouse's error goes back to the client
                text = str(exc)
                m = re.search(r"Code: (\d+)\. DB::Exception: (.*?)(?: \(([A-Z_]+)\))?(?: \(version [^)]*\))?\.?\s*$", text, re.DOTALL)
                code = int(m.group(1)) if m else 1002
                msg = m.group(2) if m else text
                self._error(_Error(HTTPStatus.INTERNAL_SERVER_ERROR if code != 164 else HTTPStatus.FORBIDDEN, code, msg))
                return
            self._send(HTTPStatus.OK, out, {
                "Content-Type": _CONTENT_TYPES.get(fmt, "application/octet-stream"),
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Timezone": "UTC",
                "X-ClickHouse-Query-Id": params.get("query_id") or str(uuid.uuid4()),
                "X-ClickHouse-Summary": json.dumps({"read_rows": "0", "read_bytes": "0", "written_rows": "0",
                                                    "written_bytes": "0", "total_rows_to_read": "0",
                                                    "result_rows": "0", "result_bytes": str(len(out))}),
            })

    return Handler


_NAMES = {164: "READONLY", 516: "AUTHENTICATION_FAILED", 27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
          48: "NOT_IMPLEMENTED", 62: "SYNTAX_ERROR", 60: "UNKNOWN_TABLE", 47: "UNKNOWN_IDENTIFIER"}


def chdb_executor(client: Any) -> Executor:
    """Runs queries on a clickhouse-connect client of the projector's chdb. Give it a client of
    its own: a query's ``readonly`` setting stays on that client's session."""

    def run(sql: str, fmt: str, bind: dict[str, str], settings: dict[str, str], database: str | None) -> bytes:
        if database and database != "default":
            raise QueryRefused(f"database {database!r}: the projections live in database 'default'")
        out: bytes = client.raw_query(sql, parameters=bind or None, settings=settings, fmt=fmt)
        return out

    return run


@dataclass
class SqlServer:
    """A ThreadingHTTPServer on 127.0.0.1; ``port`` 0 picks a free one."""

    password: str
    execute: Executor
    lock: threading.Lock
    port: int = 0
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self._httpd = ThreadingHTTPServer((self.host, self.port), _make_handler(self.password, self.execute, self.lock))
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="csp-sql", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SqlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
