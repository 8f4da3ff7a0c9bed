"""The local schema registry: every record type's current schema and its frozen history, with ids.

Ids follow Confluent semantics: one id per schema *version*. They are persisted in
``schemas/ids.json`` keyed by (record name, fingerprint), so they never change across runs;
a changed schema gets a new id when it is frozen (``python -m schemas.compat --freeze``).
A current schema that was not frozen yet gets a provisional id (after every persisted one)
and is listed by :meth:`LocalRegistry.unassigned`; a test keeps that list empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from schemas import history as store
from schemas.errors import SchemaError, UnknownSchemaError
from schemas.fingerprint import fingerprint


@dataclass(frozen=True)
class SchemaVersion:
    """One version of a record schema."""

    name: str
    version: int
    id: int
    fingerprint: str
    raw: Mapping[str, Any]
    frozen: bool
    """True when the version is in ``history/`` and its id persisted in ``ids.json``."""


def parse(raw: Mapping[str, Any]) -> dict[str, Any]:
    """fastavro-parse a raw schema in its own name space (no sharing between schemas)."""
    try:
        parsed = fastavro.parse_schema(dict(raw), named_schemas={})
    except Exception as err:  # fastavro raises several types for malformed schemas
        raise SchemaError(f"invalid Avro schema {raw.get('name')!r}: {err}") from err
    if not isinstance(parsed, dict):
        raise SchemaError(f"schema {raw.get('name')!r} is not a record")
    return parsed


def build_versions(
    current: Mapping[str, Mapping[str, Any]],
    history: Mapping[str, list[tuple[int, dict[str, Any]]]],
    ids: list[store.IdEntry],
) -> dict[str, list[SchemaVersion]]:
    """Pure: every version of every record name (history ascending, then current if unfrozen)."""
    persisted = {(e.name, e.fingerprint): e.id for e in ids}
    next_id = max((e.id for e in ids), default=0) + 1
    out: dict[str, list[SchemaVersion]] = {}
    for name in sorted(set(current) | set(history)):
        versions: list[SchemaVersion] = []
        for number, raw in history.get(name, []):
            fp = fingerprint(raw)
            sid = persisted.get((name, fp))
            if sid is None:
                sid, next_id = next_id, next_id + 1
            versions.append(SchemaVersion(name, number, sid, fp, raw, (name, fp) in persisted))
        if name in current:
            fp = fingerprint(current[name])
            if not versions or versions[-1].fingerprint != fp:
                number = versions[-1].version + 1 if versions else 1
                sid = persisted.get((name, fp))
                if sid is None:
                    sid, next_id = next_id, next_id + 1
                versions.append(SchemaVersion(name, number, sid, fp, current[name], False))
        out[name] = versions
    return out


class LocalRegistry:
    """Schemas from ``schemas/avro`` + ``schemas/history``; immutable once loaded."""

    def __init__(self, current: Mapping[str, Mapping[str, Any]], versions: Mapping[str, list[SchemaVersion]]):
        self._names = sorted(current)
        self._latest: dict[str, SchemaVersion] = {name: versions[name][-1] for name in self._names}
        self._versions = {name: tuple(vs) for name, vs in versions.items()}
        self._by_id: dict[int, SchemaVersion] = {}
        for vs in versions.values():
            for v in vs:
                other = self._by_id.get(v.id)
                if other is not None and (other.name, other.fingerprint) != (v.name, v.fingerprint):
                    raise SchemaError(f"schema id {v.id} used by two different schemas")
                self._by_id[v.id] = v  # a reverted schema is the same schema: same id
        self._parsed: dict[int, dict[str, Any]] = {sid: parse(v.raw) for sid, v in self._by_id.items()}

    @classmethod
    def load(cls, root: Path | None = None) -> LocalRegistry:
        """Load the tree under ``root`` (default: this package's directory)."""
        base = root if root is not None else store.SCHEMAS_DIR
        current = store.load_current(base)
        versions = build_versions(current, store.load_history(base), store.load_ids(base))
        return cls(current, versions)

    def names(self) -> list[str]:
        return list(self._names)

    def _latest_version(self, name: str) -> SchemaVersion:
        try:
            return self._latest[name]
        except KeyError:
            raise UnknownSchemaError(f"unknown schema {name!r}; known: {', '.join(self._names)}") from None

    def schema(self, name: str) -> dict[str, Any]:
        """fastavro-parsed schema of the latest version of ``name``."""
        return self._parsed[self._latest_version(name).id]

    def raw_schema(self, name: str) -> Mapping[str, Any]:
        """The raw (JSON) schema of the latest version of ``name``."""
        return self._latest_version(name).raw

    def id_for(self, name: str) -> int:
        return self._latest_version(name).id

    def version_of(self, name: str) -> int:
        return self._latest_version(name).version

    def _version_by_id(self, schema_id: int) -> SchemaVersion:
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise UnknownSchemaError(f"unknown schema id {schema_id}") from None

    def by_id(self, schema_id: int) -> tuple[str, dict[str, Any]]:
        """(record name, fastavro-parsed schema) of any version, current or historical."""
        return self._version_by_id(schema_id).name, self._parsed[schema_id]

    def raw_by_id(self, schema_id: int) -> tuple[str, Mapping[str, Any]]:
        v = self._version_by_id(schema_id)
        return v.name, v.raw

    def versions(self, name: str) -> list[SchemaVersion]:
        """Every version of ``name``, oldest first; the last one is the current schema."""
        self._latest_version(name)
        return list(self._versions[name])

    def unassigned(self) -> list[SchemaVersion]:
        """Versions whose id is provisional (not frozen/persisted yet)."""
        return [v for v in self._by_id.values() if not v.frozen]
