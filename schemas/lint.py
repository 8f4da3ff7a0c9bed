"""Project rules for a record schema, beyond "fastavro can parse it"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.avro_names import deref, kind_of, logical_type, named_types
from schemas.records import NAMESPACE
from schemas.registry import parse
from schemas.validate import check_value


def lint_schema(raw: Mapping[str, Any]) -> list[str]:
    """Problems with a top-level record schema (empty when fine).

    * fastavro must parse it; the namespace is ``io.enhancedcsp``;
    * every default is a valid value of its field (of the first branch, for a union);
    * a union with a null branch lists ``null`` first (so ``default: null`` is possible);
    * ``timestamp-millis`` annotates a ``long``.
    """
    problems: list[str] = []
    try:
        parse(raw)
    except ValueError as err:
        return [str(err)]
    if raw.get("namespace") != NAMESPACE:
        problems.append(f"namespace must be {NAMESPACE!r}, is {raw.get('namespace')!r}")
    named = named_types(raw)
    for full, (definition, ns) in sorted(named.items()):
        if kind_of(definition) != "record":
            continue
        for field in definition["fields"]:
            where = f"{full}.{field['name']}"
            ftype = field["type"]
            node, _ = deref(ftype, ns, named)
            if kind_of(node) == "union":
                kinds = [kind_of(deref(b, ns, named)[0]) for b in node]
                if "null" in kinds and kinds[0] != "null":
                    problems.append(f"{where}: put 'null' first in the union")
                if "default" in field:
                    problem = check_value(node[0], ns, named, field["default"])
                    if problem:
                        problems.append(f"{where}: default does not match the first union branch: {problem}")
            elif "default" in field:
                problem = check_value(ftype, ns, named, field["default"])
                if problem:
                    problems.append(f"{where}: invalid default: {problem}")
            if "logicalType" in field:
                problems.append(f"{where}: logicalType belongs inside the type, not on the field")
            if logical_type(node) == "timestamp-millis" and kind_of(node) != "long":
                problems.append(f"{where}: timestamp-millis must annotate a long")
    return problems
