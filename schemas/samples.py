"""Deterministic sample records generated from a schema (for tests and smoke checks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.avro_names import deref, kind_of, logical_type, named_types

SAMPLE_TIMESTAMP_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def sample_record(schema: Mapping[str, Any], *, nulls: bool = False) -> dict[str, Any]:
    """A record valid for ``schema``: every field set; unions take their first non-null branch,
    or ``null`` when ``nulls`` is true; arrays and maps hold one element."""
    named = named_types(schema)
    value = _sample(schema, "", named, nulls, "record", set())
    assert isinstance(value, dict)
    return value


def _sample(
    node: Any,
    ns: str,
    named: Mapping[str, tuple[Mapping[str, Any], str]],
    nulls: bool,
    hint: str,
    active: set[str],
) -> Any:
    node, ns = deref(node, ns, named)
    kind = kind_of(node)
    if kind == "union":
        branches = [deref(b, ns, named) for b in node]
        kinds = [kind_of(b) for b, _ in branches]
        if "null" in kinds and (nulls or all(k == "null" for k in kinds)):
            return None
        branch, bns = next((b, bns) for b, bns in branches if kind_of(b) != "null")
        return _sample(branch, bns, named, nulls, hint, active)
    if kind == "record":
        name = str(node["name"])
        if name in active:
            return None
        inner = active | {name}
        return {
            str(f["name"]): _sample(f["type"], ns, named, nulls, str(f["name"]), inner)
            for f in node["fields"]
        }
    if kind == "enum":
        return node["symbols"][0]
    if kind == "array":
        return [_sample(node["items"], ns, named, nulls, hint, active)]
    if kind == "map":
        return {"k": _sample(node["values"], ns, named, nulls, hint, active)}
    if kind == "fixed":
        return bytes(int(node["size"]))
    return _primitive(kind, logical_type(node), hint)


def _primitive(kind: str, logical: str | None, hint: str) -> Any:
    if logical is not None and logical.startswith("timestamp-millis"):
        return SAMPLE_TIMESTAMP_MS
    values: dict[str, Any] = {
        "null": None,
        "boolean": True,
        "int": 7,
        "long": 1_234_567_890_123,
        "float": 1.5,
        "double": 2.25,
        "bytes": hint.encode("utf-8") + b"\x00\xff",
        "string": f"{hint}-\u00e9",
    }
    return values[kind]
