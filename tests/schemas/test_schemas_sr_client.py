from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from schemas_fake_sr import SrState, fake_schema_registry
from schemas_testkit import write_avsc

from infra.settings import Settings
from schemas.codec import Codec, codec_from_settings
from schemas.errors import DecodeError, SchemaRegistryError, UnknownSchemaError
from schemas.history import freeze
from schemas.records import subject_for
from schemas.registry import LocalRegistry
from schemas.samples import sample_record
from schemas.sr_client import RemoteRegistry, SchemaRegistryClient
from schemas.wire import frame


@pytest.fixture
def sr() -> Iterator[tuple[str, SrState]]:
    with fake_schema_registry() as server:
        yield server


def _rec(name: str, fields: list[dict[str, object]]) -> dict[str, object]:
    return {"type": "record", "name": name, "namespace": "io.enhancedcsp", "fields": fields}


def test_register_is_idempotent_and_get_by_id(sr: tuple[str, SrState]) -> None:
    url, _ = sr
    client = SchemaRegistryClient(url)
    schema = _rec("T", [{"name": "a", "type": "int"}])
    first = client.register("t-value", schema)
    assert client.register("t-value", schema) == first
    assert client.get_schema(first) == schema
    assert client.lookup("t-value", schema) == first
    assert client.lookup("t-value", _rec("T", [{"name": "b", "type": "int"}])) is None
    assert client.subjects() == ["t-value"]
    assert client.latest("t-value") == (first, 1, schema)


def test_incompatible_registration_is_refused(sr: tuple[str, SrState]) -> None:
    client = SchemaRegistryClient(sr[0])
    client.register("t-value", _rec("T", [{"name": "a", "type": "int"}]))
    bad = _rec("T", [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}])
    good = _rec("T", [{"name": "a", "type": "long"}])
    assert client.is_compatible("t-value", good)
    assert not client.is_compatible("t-value", bad)
    with pytest.raises(SchemaRegistryError) as info:
        client.register("t-value", bad)
    assert info.value.status == 409 and "incompatible" in str(info.value)


def test_unknown_id_and_unreachable(sr: tuple[str, SrState]) -> None:
    with pytest.raises(UnknownSchemaError):
        SchemaRegistryClient(sr[0]).get_schema(4242)
    with pytest.raises(SchemaRegistryError, match="unreachable"):
        SchemaRegistryClient("http://127.0.0.1:9", timeout=2).subjects()
    with pytest.raises(SchemaRegistryError):
        SchemaRegistryClient("ftp://x")


def test_basic_auth_from_url(sr: tuple[str, SrState]) -> None:
    url, state = sr
    client = SchemaRegistryClient(url.replace("http://", "http://user:p%40ss@"))
    client.subjects()
    assert state.auth[-1] == "Basic dXNlcjpwQHNz"  # base64("user:p@ss")


def test_remote_registry_uses_registry_ids_on_the_wire(sr: tuple[str, SrState]) -> None:
    url, state = sr
    local = LocalRegistry.load()
    remote = RemoteRegistry.connect(SchemaRegistryClient(url), local)
    assert set(state.subjects) == {subject_for(n) for n in local.names()}
    assert "csp.events-value" in state.subjects
    codec = Codec(remote)
    rec = sample_record(local.raw_schema("CspEvent"))
    data = codec.encode("CspEvent", rec)
    sr_id = struct.unpack(">I", data[1:5])[0]
    assert sr_id == remote.id_for("CspEvent") >= 1001
    assert sr_id == state.subjects["csp.events-value"][-1]
    assert codec.decode(data) == ("CspEvent", rec)
    # a second connection gets the same ids (registration is idempotent)
    again = RemoteRegistry.connect(SchemaRegistryClient(url), local)
    assert {n: again.id_for(n) for n in local.names()} == {n: remote.id_for(n) for n in local.names()}


def test_remote_registry_fetches_ids_it_did_not_register(sr: tuple[str, SrState]) -> None:
    url, _ = sr
    local = LocalRegistry.load()
    remote = RemoteRegistry.connect(SchemaRegistryClient(url), local)
    # another producer registers an older CspCommand (no `offer_id`) and writes with it
    old_raw = dict(local.raw_schema("CspCommand"))
    old_raw["fields"] = [f for f in old_raw["fields"] if f["name"] != "offer_id"]
    other_id = SchemaRegistryClient(url).register("other-subject", old_raw)
    old_record = {k: v for k, v in sample_record(old_raw).items()}
    written = Codec(_OneSchema(other_id, old_raw)).encode("CspCommand", old_record)

    name, decoded = Codec(remote).decode(written)
    assert name == "CspCommand" and decoded == dict(old_record, offer_id=None)
    assert remote.by_id(other_id)[0] == "CspCommand"
    with pytest.raises(DecodeError, match="unknown schema id"):
        Codec(remote).decode(frame(987_654, b""))


def test_codec_from_settings(sr: tuple[str, SrState]) -> None:
    url, state = sr
    local_codec = codec_from_settings(Settings(schema_registry_url=None))
    assert isinstance(local_codec.registry, LocalRegistry)
    remote_codec = codec_from_settings(Settings(schema_registry_url=url))
    assert isinstance(remote_codec.registry, RemoteRegistry)
    assert remote_codec.schema_id("CspEvent") == state.subjects["csp.events-value"][-1]
    rec = sample_record(LocalRegistry.load().raw_schema("AuditEntry"))
    assert remote_codec.decode(remote_codec.encode("AuditEntry", rec)) == ("AuditEntry", rec)


class _OneSchema:
    """A schema source holding one schema under a given id (stands in for another producer)."""

    def __init__(self, schema_id: int, raw: dict[str, object]) -> None:
        self._id, self._raw = schema_id, raw

    def names(self) -> list[str]:
        return ["CspCommand"]

    def id_for(self, name: str) -> int:
        return self._id

    def raw_schema(self, name: str) -> dict[str, object]:
        return self._raw

    def raw_by_id(self, schema_id: int) -> tuple[str, dict[str, object]]:
        return "CspCommand", self._raw


def test_history_is_registered_in_order(sr: tuple[str, SrState], schema_tree: Path) -> None:
    url, state = sr
    raw = dict(LocalRegistry.load(schema_tree).raw_schema("CspSnapshot"))
    old_remote = RemoteRegistry.connect(SchemaRegistryClient(url), LocalRegistry.load(schema_tree))
    old_record = sample_record(raw)
    old_bytes = Codec(old_remote).encode("CspSnapshot", old_record)

    raw["fields"] = [*raw["fields"], {"name": "note", "type": ["null", "string"], "default": None}]
    write_avsc(schema_tree, raw)
    freeze(schema_tree)
    local = LocalRegistry.load(schema_tree)
    remote = RemoteRegistry.connect(SchemaRegistryClient(url), local)
    ids = state.subjects["csp.snapshots-value"]
    assert len(ids) == len(local.versions("CspSnapshot")) and ids[-1] == remote.id_for("CspSnapshot")
    assert remote.id_for("CspSnapshot") != old_remote.id_for("CspSnapshot")
    assert Codec(remote).decode(old_bytes) == ("CspSnapshot", dict(old_record, note=None))
