from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from schemas_testkit import record, write_avsc

from schemas.compat import backward_problems, check_backward, is_backward_compatible, main
from schemas.errors import IncompatibleSchemaError
from schemas.history import load_current, load_history

# --- the enforced check: every schema change is BACKWARD compatible with the previous version ---

CURRENT = load_current()
HISTORY = load_history()


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_current_schema_is_backward_compatible_with_latest_frozen_version(name: str) -> None:
    versions = HISTORY.get(name)
    assert versions, f"{name} has no frozen version: run `python -m schemas.compat --freeze`"
    number, previous = versions[-1]
    assert backward_problems(CURRENT[name], previous) == [], f"{name} vs v{number}"


@pytest.mark.parametrize("name", sorted(HISTORY))
def test_each_frozen_version_is_backward_compatible_with_the_one_before(name: str) -> None:
    versions = HISTORY[name]
    assert [n for n, _ in versions] == list(range(1, len(versions) + 1)), "history versions must be v1..vN"
    for (_, old), (number, new) in zip(versions, versions[1:], strict=False):
        assert backward_problems(new, old) == [], f"{name} v{number}"


def test_cli_check_passes_on_the_repository() -> None:
    assert main([]) == 0


# --- the checker itself, on crafted pairs ---


def _rec(*fields: dict[str, Any], name: str = "R") -> dict[str, Any]:
    return record(name, list(fields))


def _f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


BASE = _rec(_f("a", "int"), _f("s", "string"))


def test_identical_is_compatible() -> None:
    assert is_backward_compatible(BASE, BASE)


def test_field_added_with_default_ok_without_default_not() -> None:
    assert is_backward_compatible(
        _rec(_f("a", "int"), _f("s", "string"), _f("n", ["null", "long"], default=None)), BASE
    )
    problems = backward_problems(_rec(_f("a", "int"), _f("s", "string"), _f("n", "long")), BASE)
    assert problems == ["n: field added without a default"]


def test_field_removed_ok() -> None:
    assert is_backward_compatible(_rec(_f("a", "int")), BASE)


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        ("int", "long", True),
        ("int", "float", True),
        ("int", "double", True),
        ("long", "float", True),
        ("long", "double", True),
        ("float", "double", True),
        ("string", "bytes", True),
        ("bytes", "string", True),
        ("long", "int", False),
        ("double", "float", False),
        ("string", "int", False),
        ("boolean", "int", False),
    ],
)
def test_promotions(old: str, new: str, ok: bool) -> None:
    assert is_backward_compatible(_rec(_f("x", new)), _rec(_f("x", old))) is ok


def test_union_widening_ok_narrowing_not() -> None:
    old = _rec(_f("x", ["null", "string"], default=None))
    wide = _rec(_f("x", ["null", "string", "long"], default=None))
    assert is_backward_compatible(wide, old)
    assert not is_backward_compatible(old, wide)


def test_optional_to_required_not_ok_required_to_optional_ok() -> None:
    required = _rec(_f("x", "string"))
    optional = _rec(_f("x", ["null", "string"], default=None))
    assert is_backward_compatible(optional, required)
    problems = backward_problems(required, optional)
    assert problems and "x" in problems[0] and "null" in problems[0]


def test_enum_symbols() -> None:
    def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
        return _rec(_f("k", {"type": "enum", "name": "K", "symbols": list(symbols), **extra}))

    assert is_backward_compatible(enum("A", "B", "C"), enum("A", "B"))
    problems = backward_problems(enum("A"), enum("A", "B"))
    assert len(problems) == 1 and "['B']" in problems[0] and problems[0].startswith("k:")
    assert is_backward_compatible(enum("A", "Z", default="Z"), enum("A", "B"))


def test_nested_record_change_names_the_path() -> None:
    def outer(inner_fields: list[dict[str, Any]]) -> dict[str, Any]:
        inner = {"type": "record", "name": "Inner", "fields": inner_fields}
        return _rec(
            _f("items", {"type": "array", "items": inner}), _f("m", {"type": "map", "values": "Inner"})
        )

    old = outer([_f("v", "int")])
    new = outer([_f("v", "int"), _f("w", "string")])
    assert backward_problems(new, old) == ["items[].w: field added without a default"]
    changed = outer([_f("v", "string")])
    problems = backward_problems(changed, old)
    assert problems == ["items[].v: type changed from int to string"]


def test_record_rename_needs_alias() -> None:
    old = _rec(_f("a", "int"), name="Old")
    assert not is_backward_compatible(_rec(_f("a", "int"), name="New"), old)
    renamed = dict(_rec(_f("a", "int"), name="New"), aliases=["Old"])
    assert is_backward_compatible(renamed, old)


def test_field_rename_with_alias() -> None:
    old = _rec(_f("a", "int"))
    assert not is_backward_compatible(_rec(_f("b", "int")), old)
    assert is_backward_compatible(_rec(_f("b", "int", aliases=["a"])), old)


def test_array_map_fixed() -> None:
    arr = lambda t: _rec(_f("x", {"type": "array", "items": t}))  # noqa: E731
    assert is_backward_compatible(arr("long"), arr("int"))
    assert not is_backward_compatible(arr("int"), arr("long"))
    mp = lambda t: _rec(_f("x", {"type": "map", "values": t}))  # noqa: E731
    assert is_backward_compatible(mp("double"), mp("float"))
    assert not is_backward_compatible(mp("string"), mp("long"))
    fx = lambda n: _rec(_f("x", {"type": "fixed", "name": "F", "size": n}))  # noqa: E731
    assert is_backward_compatible(fx(4), fx(4))
    assert not is_backward_compatible(fx(8), fx(4))
    assert not is_backward_compatible(arr("int"), mp("int"))


def test_recursive_records_terminate() -> None:
    node = _rec(_f("v", "int"), _f("next", ["null", "R"], default=None))
    assert is_backward_compatible(node, node)


def test_check_backward_raises_with_every_problem() -> None:
    new = _rec(_f("a", "string"), _f("z", "int"))
    with pytest.raises(IncompatibleSchemaError) as info:
        check_backward(new, BASE, "R")
    assert "a: type changed from int to string" in str(info.value)
    assert "z: field added without a default" in str(info.value)


# --- the CLI on a private copy of the schema tree ---


def _fresh_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "avro").mkdir(parents=True)
    write_avsc(root, record("Thing", [_f("a", "int")]))
    return root


def test_cli_freeze_then_compatible_change_then_incompatible_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _fresh_tree(tmp_path)
    assert main(["--root", str(root)]) == 0
    assert "NEW Thing" in capsys.readouterr().out
    assert main(["--root", str(root), "--freeze"]) == 0
    assert (root / "history" / "Thing" / "v1.avsc").exists()
    ids = json.loads((root / "ids.json").read_text())["schemas"]
    assert [(e["id"], e["name"], e["version"]) for e in ids] == [(1, "Thing", 1)]

    write_avsc(root, record("Thing", [_f("a", "long"), _f("b", ["null", "string"], default=None)]))
    assert main(["--root", str(root), "--freeze"]) == 0
    assert (root / "history" / "Thing" / "v2.avsc").exists()
    assert main(["--root", str(root), "--freeze"]) == 0
    assert "nothing to freeze" in capsys.readouterr().out
    ids = json.loads((root / "ids.json").read_text())["schemas"]
    assert [(e["id"], e["version"]) for e in ids] == [(1, 1), (2, 2)]

    write_avsc(root, record("Thing", [_f("a", "int")]))
    assert main(["--root", str(root), "--freeze"]) == 1
    out = capsys.readouterr().out
    assert "INCOMPATIBLE Thing vs v2: a: type changed from long to int" in out
    assert not (root / "history" / "Thing" / "v3.avsc").exists()


@pytest.mark.parametrize(
    "field",
    [
        _f("a", "int", default="zero"),
        _f("a", ["null", "string"], default="x"),
        _f("a", ["string", "null"], default="x"),
        _f("a", "long", logicalType="timestamp-millis"),
        _f("a", {"type": "int", "logicalType": "timestamp-millis"}),
    ],
)
def test_cli_rejects_schemas_breaking_project_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: dict[str, Any]
) -> None:
    root = _fresh_tree(tmp_path)
    write_avsc(root, record("Thing", [field]))
    assert main(["--root", str(root), "--freeze"]) == 1
    assert "INVALID Thing" in capsys.readouterr().out
    assert not (root / "history").exists()


def test_logical_type_change_is_refused() -> None:
    millis = _rec(_f("t", {"type": "long", "logicalType": "timestamp-millis"}))
    micros = _rec(_f("t", {"type": "long", "logicalType": "timestamp-micros"}))
    plain = _rec(_f("t", "long"))
    assert is_backward_compatible(millis, millis)
    assert backward_problems(micros, millis) == [
        "t: logical type changed from long (timestamp-millis) to long (timestamp-micros)"
    ]
    assert not is_backward_compatible(plain, millis)


def test_module_entry_point() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "schemas.compat"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK CspEvent: unchanged since v" in done.stdout
