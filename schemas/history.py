"""Reading and writing the schema tree on disk (the I/O edge of the local registry).

Layout under the ``schemas/`` package directory:

* ``avro/<Name>.avsc`` — the current schema of each record type;
* ``history/<Name>/v<N>.avsc`` — frozen versions, ``N`` = 1, 2, ...;
* ``ids.json`` — the persisted schema ids: one entry per (name, fingerprint), never renumbered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.avro_names import short_name
from schemas.errors import SchemaError
from schemas.fingerprint import fingerprint

SCHEMAS_DIR = Path(__file__).resolve().parent
IDS_FILE = "ids.json"
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class IdEntry:
    id: int
    name: str
    version: int
    fingerprint: str


def read_schema_file(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SchemaError(f"{path}: cannot read schema: {err}") from err
    if not isinstance(raw, dict) or raw.get("type") != "record" or "name" not in raw:
        raise SchemaError(f"{path}: top-level schema must be a named record")
    return raw


def load_current(root: Path = SCHEMAS_DIR) -> dict[str, dict[str, Any]]:
    """``avro/*.avsc``: record name -> raw schema; the file stem must be the record name."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((root / "avro").glob("*.avsc")):
        raw = read_schema_file(path)
        name = short_name(str(raw["name"]))
        if name != path.stem:
            raise SchemaError(f"{path}: file name must be the record name {name!r}")
        out[name] = raw
    return out


def load_history(root: Path = SCHEMAS_DIR) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """``history/<Name>/v<N>.avsc``: record name -> [(N, raw schema)] ascending by N."""
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    base = root / "history"
    if not base.is_dir():
        return out
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        versions: list[tuple[int, dict[str, Any]]] = []
        for path in folder.glob("*.avsc"):
            match = _VERSION_FILE.match(path.name)
            if match is None:
                raise SchemaError(f"{path}: history files must be named v<N>.avsc")
            raw = read_schema_file(path)
            if short_name(str(raw["name"])) != folder.name:
                raise SchemaError(f"{path}: record name must be {folder.name!r}")
            versions.append((int(match.group(1)), raw))
        if versions:
            out[folder.name] = sorted(versions, key=lambda item: item[0])
    return out


def load_ids(root: Path = SCHEMAS_DIR) -> list[IdEntry]:
    path = root / IDS_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = [
            IdEntry(int(e["id"]), str(e["name"]), int(e["version"]), str(e["fingerprint"]))
            for e in data["schemas"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SchemaError(f"{path}: malformed ids file: {err}") from err
    seen: set[int] = set()
    for entry in entries:
        if entry.id in seen:
            raise SchemaError(f"{path}: schema id {entry.id} assigned twice")
        seen.add(entry.id)
    return entries


def write_ids(entries: Iterable[IdEntry], root: Path = SCHEMAS_DIR) -> None:
    ordered = sorted(entries, key=lambda e: e.id)
    data = {
        "comment": "Schema ids, one per (name, fingerprint). Append only: never renumber or remove.",
        "schemas": [
            {"id": e.id, "name": e.name, "version": e.version, "fingerprint": e.fingerprint} for e in ordered
        ],
    }
    (root / IDS_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_schema_file(path: Path, raw: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def history_path(name: str, version: int, root: Path = SCHEMAS_DIR) -> Path:
    return root / "history" / name / f"v{version}.avsc"


def pending_versions(
    current: Mapping[str, Mapping[str, Any]],
    history: Mapping[str, list[tuple[int, dict[str, Any]]]],
) -> list[tuple[str, int, Mapping[str, Any]]]:
    """Current schemas that differ from their latest frozen version: (name, next version, raw)."""
    out: list[tuple[str, int, Mapping[str, Any]]] = []
    for name in sorted(current):
        versions = history.get(name, [])
        if versions and fingerprint(versions[-1][1]) == fingerprint(current[name]):
            continue
        out.append((name, versions[-1][0] + 1 if versions else 1, current[name]))
    return out


def assign_ids(existing: Iterable[IdEntry], wanted: Iterable[tuple[str, int, str]]) -> list[IdEntry]:
    """Existing entries plus a new id (max + 1, in order) for each (name, version, fingerprint) not yet known."""
    entries = list(existing)
    known = {(e.name, e.fingerprint) for e in entries}
    next_id = max((e.id for e in entries), default=0) + 1
    for name, version, fp in wanted:
        if (name, fp) in known:
            continue
        entries.append(IdEntry(next_id, name, version, fp))
        known.add((name, fp))
        next_id += 1
    return entries


def freeze(root: Path = SCHEMAS_DIR) -> list[tuple[str, int]]:
    """Snapshot every changed current schema as a new history version and persist its id.

    Returns the (name, version) pairs written. Compatibility is the caller's concern
    (``python -m schemas.compat --freeze`` checks before freezing).
    """
    current = load_current(root)
    history = load_history(root)
    pending = pending_versions(current, history)
    for name, version, raw in pending:
        write_schema_file(history_path(name, version, root), raw)
    history = load_history(root)
    wanted = [(name, version, fingerprint(raw)) for name in sorted(history) for version, raw in history[name]]
    write_ids(assign_ids(load_ids(root), wanted), root)
    return [(name, version) for name, version, _ in pending]
