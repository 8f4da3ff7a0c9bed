"""BACKWARD compatibility of Avro schemas, by the Avro schema-resolution rules.

BACKWARD: a consumer using the *new* (reader) schema can read data written with the *old*
(writer) schema. Hence: a reader field missing from the writer needs a default; removing a
field is fine; int->long->float->double and string<->bytes promote; a union may widen; an
enum may gain symbols but may lose some only when the reader declares an enum ``default``.
Stricter than plain resolution in one way: a changed ``logicalType`` is refused, since the
bytes would still read but mean something else.

CLI: ``python -m schemas.compat`` checks every current schema (``schemas/avro``) against its
latest frozen version (``schemas/history``) and every frozen version against the one before;
``--freeze`` then snapshots the changed schemas as new history versions and assigns their ids.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from schemas.avro_names import definition_fullname, deref, describe, kind_of, logical_type, named_types
from schemas.errors import IncompatibleSchemaError

PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)
"""(writer kind, reader kind) pairs a reader resolves by promotion."""

_Named = Mapping[str, tuple[Mapping[str, Any], str]]


class _Side:
    """One schema's name table (reader or writer)."""

    def __init__(self, schema: Any) -> None:
        self.named: _Named = named_types(schema)


def backward_problems(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
    """Why data written with ``old`` cannot be read with ``new`` (empty: BACKWARD compatible)."""
    problems: list[str] = []
    _compare(new, "", _Side(new), old, "", _Side(old), "", set(), problems)
    return problems


def is_backward_compatible(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    return not backward_problems(new, old)


def check_backward(new: Mapping[str, Any], old: Mapping[str, Any], label: str = "") -> None:
    """Raise :class:`IncompatibleSchemaError` listing every problem, if any."""
    problems = backward_problems(new, old)
    if problems:
        prefix = f"{label}: " if label else ""
        raise IncompatibleSchemaError(prefix + "not BACKWARD compatible: " + "; ".join(problems))


def _at(path: str) -> str:
    return path or "<root>"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _names_match(reader: Mapping[str, Any], rns: str, writer: Mapping[str, Any], wns: str) -> bool:
    wfull = definition_fullname(writer, wns)
    rfull = definition_fullname(reader, rns)
    if rfull == wfull:
        return True
    aliases = {definition_fullname({"name": a}, rfull.rpartition(".")[0]) for a in reader.get("aliases", [])}
    return wfull in aliases


def _compare(
    r: Any,
    rns: str,
    rside: _Side,
    w: Any,
    wns: str,
    wside: _Side,
    path: str,
    seen: set[tuple[str, str]],
    out: list[str],
) -> None:
    r, rns = deref(r, rns, rside.named)
    w, wns = deref(w, wns, wside.named)
    rk, wk = kind_of(r), kind_of(w)
    if wk == "union":
        for branch in w:
            _compare(r, rns, rside, branch, wns, wside, path, seen, out)
        return
    if rk == "union":
        _compare_reader_union(r, rns, rside, w, wns, wside, path, seen, out)
        return
    if rk != wk:
        if (wk, rk) not in PROMOTIONS:
            out.append(f"{_at(path)}: type changed from {describe(w)} to {describe(r)}")
        return
    if logical_type(r) != logical_type(w):
        # Readable bytes, different meaning (e.g. timestamp-millis -> timestamp-micros): refuse.
        out.append(f"{_at(path)}: logical type changed from {describe(w)} to {describe(r)}")
        return
    if rk in ("record", "enum", "fixed") and not _names_match(r, rns, w, wns):
        out.append(f"{_at(path)}: {rk} renamed from {describe(w)} to {describe(r)} (no alias)")
        return
    if rk == "record":
        key = (definition_fullname(r, rns), definition_fullname(w, wns))
        if key in seen:
            return
        seen.add(key)
        _compare_records(r, rns, rside, w, wns, wside, path, seen, out)
    elif rk == "enum":
        removed = [s for s in w["symbols"] if s not in r["symbols"]]
        if removed and "default" not in r:
            out.append(f"{_at(path)}: {describe(r)} symbols removed {removed} (reader has no enum default)")
    elif rk == "fixed":
        if int(r["size"]) != int(w["size"]):
            out.append(f"{_at(path)}: {describe(r)} size changed from {w['size']} to {r['size']}")
    elif rk == "array":
        _compare(r["items"], rns, rside, w["items"], wns, wside, f"{path}[]", seen, out)
    elif rk == "map":
        _compare(r["values"], rns, rside, w["values"], wns, wside, f"{path}{{}}", seen, out)


def _compare_records(
    r: Mapping[str, Any],
    rns: str,
    rside: _Side,
    w: Mapping[str, Any],
    wns: str,
    wside: _Side,
    path: str,
    seen: set[tuple[str, str]],
    out: list[str],
) -> None:
    writer_fields = {str(f["name"]): f for f in w["fields"]}
    for field in r["fields"]:
        name = str(field["name"])
        fpath = _join(path, name)
        candidates = [name, *[str(a) for a in field.get("aliases", [])]]
        match = next((writer_fields[c] for c in candidates if c in writer_fields), None)
        if match is None:
            if "default" not in field:
                out.append(f"{fpath}: field added without a default")
            continue
        _compare(field["type"], rns, rside, match["type"], wns, wside, fpath, seen, out)


def _compare_reader_union(
    r: list[Any],
    rns: str,
    rside: _Side,
    w: Any,
    wns: str,
    wside: _Side,
    path: str,
    seen: set[tuple[str, str]],
    out: list[str],
) -> None:
    wk = kind_of(w)
    ranked = sorted(r, key=lambda b: kind_of(deref(b, rns, rside.named)[0]) != wk)
    first_problems: list[str] | None = None
    for branch in ranked:
        trial: list[str] = []
        _compare(branch, rns, rside, w, wns, wside, path, set(seen), trial)
        if not trial:
            return
        if first_problems is None:
            first_problems = trial
    same_kind = first_problems if ranked and kind_of(deref(ranked[0], rns, rside.named)[0]) == wk else None
    if same_kind:
        out.extend(same_kind)
    else:
        out.append(
            f"{_at(path)}: writer type {describe(w)} is not readable by any branch of the reader union"
        )


def main(argv: Sequence[str] | None = None) -> int:
    from schemas import history as store
    from schemas.lint import lint_schema

    parser = argparse.ArgumentParser(prog="python -m schemas.compat", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--freeze", action="store_true", help="snapshot changed schemas as new history versions"
    )
    parser.add_argument("--root", type=Path, default=store.SCHEMAS_DIR, help="schemas directory")
    args = parser.parse_args(argv)

    current = store.load_current(args.root)
    history = store.load_history(args.root)
    failures = 0
    for name, raw in current.items():
        for problem in lint_schema(raw):
            print(f"INVALID {name}: {problem}")
            failures += 1
    for name, versions in sorted(history.items()):
        for (prev_n, prev), (n, raw) in zip(versions, versions[1:], strict=False):
            for problem in backward_problems(raw, prev):
                print(f"INCOMPATIBLE {name} v{n} vs v{prev_n}: {problem}")
                failures += 1
    pending = {name for name, _, _ in store.pending_versions(current, history)}
    for name, raw in sorted(current.items()):
        versions = history.get(name, [])
        if not versions:
            print(f"NEW {name}: no frozen version yet")
            continue
        latest_n, latest = versions[-1]
        problems = backward_problems(raw, latest)
        for problem in problems:
            print(f"INCOMPATIBLE {name} vs v{latest_n}: {problem}")
        failures += len(problems)
        if not problems:
            state = "changed, compatible" if name in pending else "unchanged"
            print(f"OK {name}: {state} since v{latest_n}")
    if failures:
        print(f"{failures} problem(s); nothing frozen" if args.freeze else f"{failures} problem(s)")
        return 1
    if args.freeze:
        written = store.freeze(args.root)
        for name, version in written:
            print(f"FROZEN {name} v{version}")
        if not written:
            print("nothing to freeze")
    elif pending:
        print(f"{len(pending)} schema(s) changed since their last frozen version: run with --freeze")
    return 0


if __name__ == "__main__":
    sys.exit(main())
