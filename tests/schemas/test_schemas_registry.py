from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from schemas_testkit import record, write_avsc

from schemas.codec import Codec
from schemas.errors import SchemaError, UnknownSchemaError
from schemas.history import SCHEMAS_DIR, freeze, load_ids
from schemas.lint import lint_schema
from schemas.registry import LocalRegistry
from schemas.samples import sample_record


def test_every_version_has_a_persisted_id(registry: LocalRegistry) -> None:
    assert registry.unassigned() == [], "run `python -m schemas.compat --freeze` to persist ids"


def test_ids_are_unique_and_cover_every_name(registry: LocalRegistry) -> None:
    ids = [registry.id_for(name) for name in registry.names()]
    assert len(set(ids)) == len(ids)
    assert all(i > 0 for i in ids)


def test_ids_are_stable_across_loads_and_processes(registry: LocalRegistry) -> None:
    again = LocalRegistry.load()
    assert {n: again.id_for(n) for n in again.names()} == {n: registry.id_for(n) for n in registry.names()}
    script = (
        "import json; from schemas.registry import LocalRegistry as R; r = R.load(); "
        "print(json.dumps({n: r.id_for(n) for n in r.names()}))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {n: registry.id_for(n) for n in registry.names()}


def test_ids_match_ids_json(registry: LocalRegistry) -> None:
    persisted = {(e.name, e.fingerprint): e.id for e in load_ids()}
    for name in registry.names():
        for version in registry.versions(name):
            assert persisted[(name, version.fingerprint)] == version.id


def test_by_id_and_schema(registry: LocalRegistry) -> None:
    for name in registry.names():
        got_name, parsed = registry.by_id(registry.id_for(name))
        assert got_name == name
        assert parsed is registry.schema(name)
        assert parsed["name"] == f"io.enhancedcsp.{name}"
    with pytest.raises(UnknownSchemaError):
        registry.by_id(10**9)
    with pytest.raises(UnknownSchemaError):
        registry.schema("Nope")
    with pytest.raises(UnknownSchemaError):
        registry.id_for("Nope")


@pytest.mark.parametrize("name", LocalRegistry.load().names())
def test_schema_follows_project_rules(registry: LocalRegistry, name: str) -> None:
    assert lint_schema(registry.raw_schema(name)) == []
    assert (SCHEMAS_DIR / "avro" / f"{name}.avsc").exists()


def test_file_name_must_be_record_name(tmp_path: Path) -> None:
    (tmp_path / "avro").mkdir()
    (tmp_path / "avro" / "Wrong.avsc").write_text(json.dumps(record("Right", [{"name": "a", "type": "int"}])))
    with pytest.raises(SchemaError, match="file name"):
        LocalRegistry.load(tmp_path)


def test_evolution_keeps_old_ids_and_old_records_decode(schema_tree: Path) -> None:
    before = LocalRegistry.load(schema_tree)
    old_id = before.id_for("CspSnapshot")
    old_record = sample_record(before.raw_schema("CspSnapshot"))
    old_bytes = Codec(before).encode("CspSnapshot", old_record)

    raw = dict(before.raw_schema("CspSnapshot"))
    raw["fields"] = [
        *raw["fields"],
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "retries", "type": "int", "default": 0},
    ]
    write_avsc(schema_tree, raw)
    unfrozen = LocalRegistry.load(schema_tree)
    assert [v.name for v in unfrozen.unassigned()] == ["CspSnapshot"]
    provisional = unfrozen.id_for("CspSnapshot")
    assert provisional > max(e.id for e in load_ids(schema_tree))

    assert freeze(schema_tree) == [("CspSnapshot", before.version_of("CspSnapshot") + 1)]
    after = LocalRegistry.load(schema_tree)
    assert after.unassigned() == []
    assert after.id_for("CspSnapshot") == provisional
    assert {n: after.id_for(n) for n in after.names() if n != "CspSnapshot"} == {
        n: before.id_for(n) for n in before.names() if n != "CspSnapshot"
    }
    assert after.by_id(old_id)[0] == "CspSnapshot"

    name, decoded = Codec(after).decode(old_bytes)
    assert name == "CspSnapshot"
    assert decoded == dict(old_record, note=None, retries=0)
    new_bytes = Codec(after).encode("CspSnapshot", dict(old_record, note="n", retries=2))
    assert new_bytes[1:5] == provisional.to_bytes(4, "big")
    # a consumer still on the old registry cannot know the new id
    with pytest.raises(SchemaError):
        Codec(before).decode(new_bytes)


def test_reverting_a_schema_reuses_its_id(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "avro").mkdir(parents=True)
    v1 = record("Thing", [{"name": "a", "type": "int"}])
    v2 = record("Thing", [{"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0}])
    for raw in (v1, v2, v1):
        write_avsc(root, raw)
        freeze(root)
    registry = LocalRegistry.load(root)
    assert [(v.version, v.id) for v in registry.versions("Thing")] == [(1, 1), (2, 2), (3, 1)]
    assert registry.id_for("Thing") == 1 and registry.unassigned() == []
