"""``--format text|json|csv``: the one output option of the commands that print data.

``Fmt`` is the option, ``fmt_of`` validates it (exit 2 with one ``error:`` line on an unknown
format; a ``--json`` flag, kept on some commands, means ``--format json``), ``print_json``
prints a document, ``csv_text`` / ``print_csv`` print records as CSV (a header row, then one
row per record; lists and dicts in a cell are JSON-encoded) and ``emit`` prints one record or
a list of records in json or csv. Text output stays each command's own.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

FORMATS = ("text", "json", "csv")
EXIT_INPUT = 2

Fmt = Annotated[
    str, typer.Option("--format", help="text | json | csv (csv: a header row, then one row per record)")
]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output (= --format json)")]


def fmt_of(fmt: str, as_json: bool = False) -> str:
    """The output format (``--json`` is ``--format json``); exit 2 on an unknown one."""
    if fmt not in FORMATS:
        typer.echo(f"error: --format {fmt!r}: use text, json or csv", err=True)
        raise typer.Exit(EXIT_INPUT)
    return "json" if as_json else fmt


def _cell(value: Any) -> Any:
    return json.dumps(value, default=str) if isinstance(value, (list, tuple, dict)) else value


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Records as CSV: a header (every key, in order of first appearance) and one row each (a missing
    key is an empty cell); "" for no records."""
    import csv
    import io

    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(v) for k, v in r.items()})
    return buf.getvalue()


def print_csv(rows: list[dict[str, Any]]) -> None:
    import sys

    sys.stdout.write(csv_text(rows))
    sys.stdout.flush()


def print_json(doc: Any, **dumps: Any) -> None:
    dumps.setdefault("default", str)
    typer.echo(json.dumps(doc, **dumps))


def emit(fmt: str, data: dict[str, Any] | list[dict[str, Any]], **dumps: Any) -> None:
    """One record (a dict) or several (a list) in json or csv; ``dumps`` go to ``json.dumps``."""
    if fmt == "csv":
        print_csv([data] if isinstance(data, dict) else data)
    else:
        print_json(data, **dumps)
