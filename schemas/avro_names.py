"""Pure helpers over raw (JSON) Avro schemas: type kinds, full names, named-type tables.

A schema node is a ``str`` (primitive or reference to a named type), a ``list`` (union)
or a ``dict`` (complex type, or a primitive carrying a ``logicalType``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})
COMPLEX_KINDS = NAMED_KINDS | {"array", "map"}

Named = Mapping[str, Mapping[str, Any]]


def fullname(name: str, namespace: str) -> str:
    """The full name of ``name`` seen from ``namespace``."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def short_name(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _own_namespace(node: Mapping[str, Any], enclosing: str) -> str:
    name = str(node["name"])
    if "." in name:
        return name.rsplit(".", 1)[0]
    ns = node.get("namespace")
    return str(ns) if ns is not None else enclosing


def definition_fullname(node: Mapping[str, Any], enclosing: str) -> str:
    """Full name of a named type definition met inside ``enclosing`` namespace."""
    return fullname(short_name(str(node["name"])), _own_namespace(node, enclosing))


def named_types(schema: Any, namespace: str = "") -> dict[str, tuple[Mapping[str, Any], str]]:
    """Every named type defined in ``schema``: full name -> (definition, its namespace)."""
    out: dict[str, tuple[Mapping[str, Any], str]] = {}
    _collect(schema, namespace, out)
    return out


def _collect(node: Any, ns: str, out: dict[str, tuple[Mapping[str, Any], str]]) -> None:
    if isinstance(node, list):
        for branch in node:
            _collect(branch, ns, out)
        return
    if not isinstance(node, Mapping):
        return
    kind = node.get("type")
    if isinstance(kind, list | Mapping):
        _collect(kind, ns, out)
        return
    if kind in NAMED_KINDS:
        own_ns = _own_namespace(node, ns)
        out[definition_fullname(node, ns)] = (node, own_ns)
        if kind in ("record", "error"):
            for field in node.get("fields", []):
                _collect(field["type"], own_ns, out)
    elif kind == "array":
        _collect(node["items"], ns, out)
    elif kind == "map":
        _collect(node["values"], ns, out)


def deref(node: Any, ns: str, named: Mapping[str, tuple[Mapping[str, Any], str]]) -> tuple[Any, str]:
    """Follow references and ``{"type": <node>}`` wrappers down to a concrete node.

    Returns the node and the namespace its contents resolve in (a named type's own one)."""
    for _ in range(64):
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node, ns
            full = fullname(node, ns)
            if full not in named and node in named:
                full = node
            if full not in named:
                raise KeyError(f"unknown named type {node!r} (namespace {ns!r})")
            definition, def_ns = named[full]
            return definition, def_ns
        if isinstance(node, Mapping):
            kind = node.get("type")
            if isinstance(kind, list | Mapping) or (
                isinstance(kind, str) and kind not in PRIMITIVES and kind not in COMPLEX_KINDS
            ):
                node = kind
                continue
            if kind in NAMED_KINDS and "name" in node:
                return node, _own_namespace(node, ns)
        return node, ns
    raise KeyError("schema reference chain too deep")


def kind_of(node: Any) -> str:
    """``null``..``string``, ``record``, ``enum``, ``array``, ``map``, ``fixed`` or ``union`` of a dereferenced node."""
    if isinstance(node, list):
        return "union"
    if isinstance(node, str):
        return node
    kind = str(node.get("type"))
    return "record" if kind == "error" else kind


def logical_type(node: Any) -> str | None:
    if isinstance(node, Mapping):
        lt = node.get("logicalType")
        return str(lt) if lt is not None else None
    return None


def describe(node: Any, ns: str = "") -> str:
    """A short human name of a dereferenced node, for messages."""
    kind = kind_of(node)
    if kind in NAMED_KINDS:
        return f"{kind} {short_name(str(node['name']))}"
    if kind == "union":
        return "union"
    lt = logical_type(node)
    return f"{kind} ({lt})" if lt else kind
