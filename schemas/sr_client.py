"""A Confluent Schema Registry client over its HTTP API (stdlib ``urllib``), and a registry
adapter that registers the local schemas there and uses the ids it assigns.

Endpoints used: ``POST /subjects/{subject}/versions``, ``POST /subjects/{subject}``,
``GET /schemas/ids/{id}``, ``GET /subjects``, ``GET /subjects/{subject}/versions/latest``,
``POST /compatibility/subjects/{subject}/versions/latest``.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from schemas.avro_names import short_name
from schemas.errors import SchemaRegistryError, UnknownSchemaError
from schemas.fingerprint import canonical_json
from schemas.records import subject_for
from schemas.registry import LocalRegistry, parse

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403


class SchemaRegistryClient:
    """Minimal Confluent Schema Registry client. ``url`` may carry ``user:password@`` for basic auth."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SchemaRegistryError(f"schema registry url must be http(s)://host[:port], got {url!r}")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self._base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._auth: str | None = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._timeout = timeout

    @property
    def url(self) -> str:
        return self._base

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self._base + path, data=data, method=method)
        request.add_header("Accept", CONTENT_TYPE)
        if data is not None:
            request.add_header("Content-Type", CONTENT_TYPE)
        if self._auth is not None:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as err:
            raise _registry_error(method, path, err) from None
        except (urllib.error.URLError, OSError) as err:
            raise SchemaRegistryError(f"schema registry {self._base} unreachable: {err}") from err
        try:
            return json.loads(payload) if payload else None
        except json.JSONDecodeError as err:
            raise SchemaRegistryError(f"{method} {path}: response is not JSON: {payload[:80]!r}") from err

    @staticmethod
    def _subject(subject: str) -> str:
        return urllib.parse.quote(subject, safe="")

    def register(self, subject: str, schema: Mapping[str, Any]) -> int:
        """Register ``schema`` under ``subject`` (idempotent); the registry's global schema id."""
        result = self._request(
            "POST", f"/subjects/{self._subject(subject)}/versions", {"schema": canonical_json(schema)}
        )
        return _int_field(result, "id")

    def lookup(self, subject: str, schema: Mapping[str, Any]) -> int | None:
        """Id of ``schema`` if already registered under ``subject``, else ``None``."""
        try:
            result = self._request(
                "POST", f"/subjects/{self._subject(subject)}", {"schema": canonical_json(schema)}
            )
        except SchemaRegistryError as err:
            if err.status == 404:
                return None
            raise
        return _int_field(result, "id")

    def get_schema(self, schema_id: int) -> dict[str, Any]:
        """The Avro schema registered with ``schema_id``; :class:`UnknownSchemaError` if none."""
        try:
            result = self._request("GET", f"/schemas/ids/{int(schema_id)}")
        except SchemaRegistryError as err:
            if err.status == 404:
                raise UnknownSchemaError(f"unknown schema id {schema_id} in {self._base}") from err
            raise
        if not isinstance(result, dict) or not isinstance(result.get("schema"), str):
            raise SchemaRegistryError(f"GET /schemas/ids/{schema_id}: unexpected response {result!r}")
        if result.get("schemaType", "AVRO") != "AVRO":
            raise UnknownSchemaError(f"schema id {schema_id} is a {result['schemaType']} schema, not Avro")
        schema = json.loads(result["schema"])
        if not isinstance(schema, dict):
            raise UnknownSchemaError(f"schema id {schema_id} is not a record schema")
        return schema

    def subjects(self) -> list[str]:
        result = self._request("GET", "/subjects")
        if not isinstance(result, list):
            raise SchemaRegistryError(f"GET /subjects: unexpected response {result!r}")
        return [str(s) for s in result]

    def latest(self, subject: str) -> tuple[int, int, dict[str, Any]]:
        """(schema id, subject version, schema) of the latest version under ``subject``."""
        result = self._request("GET", f"/subjects/{self._subject(subject)}/versions/latest")
        return _int_field(result, "id"), _int_field(result, "version"), json.loads(result["schema"])

    def is_compatible(self, subject: str, schema: Mapping[str, Any]) -> bool:
        """The registry's verdict on ``schema`` against the latest version under ``subject``."""
        try:
            result = self._request(
                "POST",
                f"/compatibility/subjects/{self._subject(subject)}/versions/latest",
                {"schema": canonical_json(schema)},
            )
        except SchemaRegistryError as err:
            if err.status == 404:
                return True  # nothing registered yet
            raise
        return bool(isinstance(result, dict) and result.get("is_compatible"))


def _int_field(result: Any, key: str) -> int:
    if not isinstance(result, dict) or not isinstance(result.get(key), int):
        raise SchemaRegistryError(f"unexpected schema registry response (no {key!r}): {result!r}")
    return int(result[key])


def _registry_error(method: str, path: str, err: urllib.error.HTTPError) -> SchemaRegistryError:
    code: int | None = None
    message = err.reason if isinstance(err.reason, str) else str(err)
    try:
        body = json.loads(err.read() or b"null")
        if isinstance(body, dict):
            code = body.get("error_code") if isinstance(body.get("error_code"), int) else None
            message = str(body.get("message", message))
    except (json.JSONDecodeError, OSError):
        pass
    return SchemaRegistryError(f"{method} {path}: HTTP {err.code}: {message}", err.code, code)


class RemoteRegistry:
    """The codec's schema source on a Schema Registry: local schemas, registry-assigned ids.

    ``connect`` registers every version of every local record (history first, so the registry's
    own compatibility check sees the evolution) under :func:`schemas.records.subject_for`.
    Ids written by other producers are fetched on first use and cached.
    """

    def __init__(
        self,
        client: SchemaRegistryClient,
        local: LocalRegistry,
        ids: Mapping[str, int],
        known: Mapping[int, tuple[str, Mapping[str, Any]]],
    ) -> None:
        self._client = client
        self._local = local
        self._ids = dict(ids)
        self._known: dict[int, tuple[str, Mapping[str, Any]]] = dict(known)

    @classmethod
    def connect(cls, client: SchemaRegistryClient, local: LocalRegistry) -> RemoteRegistry:
        ids: dict[str, int] = {}
        known: dict[int, tuple[str, Mapping[str, Any]]] = {}
        for name in local.names():
            subject = subject_for(name)
            for version in local.versions(name):
                schema_id = client.register(subject, version.raw)
                known[schema_id] = (name, version.raw)
                ids[name] = schema_id
        return cls(client, local, ids, known)

    @property
    def client(self) -> SchemaRegistryClient:
        return self._client

    def names(self) -> list[str]:
        return self._local.names()

    def id_for(self, name: str) -> int:
        if name not in self._ids:
            raise UnknownSchemaError(f"unknown schema {name!r}")
        return self._ids[name]

    def raw_schema(self, name: str) -> Mapping[str, Any]:
        return self._local.raw_schema(name)

    def schema(self, name: str) -> dict[str, Any]:
        return self._local.schema(name)

    def raw_by_id(self, schema_id: int) -> tuple[str, Mapping[str, Any]]:
        found = self._known.get(schema_id)
        if found is None:
            raw = self._client.get_schema(schema_id)
            found = (short_name(str(raw.get("name", ""))), raw)
            self._known[schema_id] = found
        return found

    def by_id(self, schema_id: int) -> tuple[str, dict[str, Any]]:
        name, raw = self.raw_by_id(schema_id)
        return name, parse(raw)
