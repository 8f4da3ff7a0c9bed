"""``--format text|json|csv`` on the commands that print data (no broker needed for these)."""

from __future__ import annotations

import base64
import csv
import io
import json
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.cli import app

ROOT = Path(__file__).resolve().parents[2]
BUFFER = ROOT / "examples/buffer/buffer.csp"


def csp(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env={"CSP_KAFKA_BOOTSTRAP": "", **(env or {})})


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_version() -> None:
    v = dist_version("enhanced-csp")
    assert csp("version").stdout == f"{v}\n"
    res = csp("version", "--format", "json")
    assert res.exit_code == 0 and json.loads(res.stdout) == {"name": "enhanced-csp", "version": v}
    assert rows(csp("version", "--format", "csv").stdout) == [{"name": "enhanced-csp", "version": v}]


@pytest.mark.parametrize(
    "args",
    [
        ["version"],
        ["explore", str(BUFFER), "BUFFER"],
        ["ledger", "keys", "list"],
        ["agents", "protocol", "-a", "ann", "-a", "bob"],
        ["audit", "verify-proof", "-"],
        ["unlink", "link:a.b->c.d"],  # checked before the platform is reached
    ],
)
def test_unknown_format_exits_2(args: list[str], tmp_path: Path) -> None:
    res = csp(*args, "--format", "xml", "--data-dir", str(tmp_path)) if args[0] == "ledger" else \
        csp(*args, "--format", "xml")
    assert res.exit_code == 2, res.output
    assert "error: --format 'xml': use text, json or csv" in res.stderr
    assert res.stdout == ""


def test_explore(tmp_path: Path) -> None:
    text = csp("explore", str(BUFFER), "BUFFER")
    assert text.exit_code == 0 and text.stdout.startswith("BUFFER: 16 states, 27 transitions\n")
    doc = json.loads(csp("explore", str(BUFFER), "BUFFER", "--format", "json").stdout)
    assert (doc["process"], doc["states"], doc["transitions"]) == ("BUFFER", 16, 27)
    assert len(doc["lts"]) == 16 and sum(len(s["transitions"]) for s in doc["lts"]) == 27
    assert doc["lts"][0]["state"] == "s0" and {t["event"] for t in doc["lts"][0]["transitions"]} == {
        "left.0", "left.1", "left.2"}
    got = rows(csp("explore", str(BUFFER), "BUFFER", "--format", "csv").stdout)
    assert [r["state"] for r in got] == [f"s{i}" for i in range(16)]
    assert json.loads(got[0]["transitions"]) == doc["lts"][0]["transitions"]
    both = csp("explore", str(BUFFER), "BUFFER", "--dot", "--format", "json")
    assert both.exit_code == 2 and "--dot and --format json" in both.stderr


def test_ledger_keys(tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path)]
    text = csp("ledger", "keys", "create", "alice", *d)
    assert text.exit_code == 0
    name, address = text.stdout.split()
    assert name == "alice" and address.startswith("0x")
    res = csp("ledger", "keys", "create", "bob", "--format", "json", *d)
    bob = json.loads(res.stdout)
    assert res.exit_code == 0 and bob["agent"] == "bob" and bob["address"].startswith("0x")
    carol = rows(csp("ledger", "keys", "create", "carol", "--format", "csv", *d).stdout)
    assert len(carol) == 1 and carol[0]["agent"] == "carol"
    want = {"alice": address, "bob": bob["address"], "carol": carol[0]["address"]}
    assert csp("ledger", "keys", "list", *d).stdout == "".join(f"{k} {v}\n" for k, v in sorted(want.items()))
    assert json.loads(csp("ledger", "keys", "list", "--format", "json", *d).stdout) == want
    assert json.loads(csp("ledger", "keys", "list", "--json", *d).stdout) == want  # the --json alias
    assert rows(csp("ledger", "keys", "list", "--format", "csv", *d).stdout) == [
        {"agent": k, "address": v} for k, v in sorted(want.items())]


def test_ledger_contracts() -> None:
    doc = json.loads(csp("ledger", "contracts", "--format", "json").stdout)
    assert {c["name"] for c in doc} == {"Agreement", "AuditAnchor"}
    text = csp("ledger", "contracts").stdout.splitlines()
    assert text == [f"{c['name']}: {', '.join(c['functions'])}" for c in doc]
    got = rows(csp("ledger", "contracts", "--format", "csv").stdout)
    assert [json.loads(r["functions"]) for r in got] == [c["functions"] for c in doc]


def _inclusion_bundle(path: Path, good: bool = True) -> Path:
    from projections.audit.merkle import leaf_hash
    from projections.audit.proofs import INCLUSION

    leaf = base64.b64encode(leaf_hash(b"entry")).decode()
    root = leaf if good else base64.b64encode(leaf_hash(b"other")).decode()
    path.write_text(json.dumps({"type": INCLUSION, "entry_index": 0, "tree_size": 1, "leaf_hash": leaf,
                                "root": root, "proof": []}))  # fmt: skip
    return path


def test_audit_verify_proof(tmp_path: Path) -> None:
    ok = _inclusion_bundle(tmp_path / "ok.json")
    d = ["--data-dir", str(tmp_path)]
    text = csp("audit", "verify-proof", str(ok), *d)
    assert text.exit_code == 0 and text.stdout.startswith("inclusion of entry 0 in the tree of size 1: OK\n")
    res = csp("audit", "verify-proof", str(ok), "--format", "json", *d)
    doc = json.loads(res.stdout)
    assert res.exit_code == 0 and doc["ok"] is True and doc["error"] is None
    assert doc["checked"] == text.stdout.splitlines()
    got = rows(csp("audit", "verify-proof", str(ok), "--format", "csv", *d).stdout)
    assert len(got) == 1 and got[0]["ok"] == "True" and json.loads(got[0]["checked"]) == doc["checked"]
    bad = _inclusion_bundle(tmp_path / "bad.json", good=False)
    assert csp("audit", "verify-proof", str(bad), *d).stdout.startswith("REJECTED: ")
    res = csp("audit", "verify-proof", str(bad), "--format", "json", *d)
    doc = json.loads(res.stdout)
    assert res.exit_code == 1 and doc["ok"] is False and doc["error"]


def test_agents_protocol() -> None:
    args = ["agents", "protocol", "-a", "ann", "-a", "bob", "--method", "consensus"]
    text = csp(*args)
    assert text.exit_code == 0
    res = csp(*args, "--format", "json")
    doc = json.loads(res.stdout)
    assert res.exit_code == 0 and doc["ok"] is True and doc["agents"] == ["ann", "bob"]
    assert text.stdout.startswith(doc["source"])
    assert [f"-- {a['status']}: {a['text']}" for a in doc["assertions"]] == \
        [line for line in text.stdout.splitlines() if line.startswith("-- pass") or line.startswith("-- fail")]
    got = rows(csp(*args, "--format", "csv").stdout)
    assert len(got) == 1 and got[0]["source"] == doc["source"]
    assert json.loads(got[0]["assertions"]) == doc["assertions"]


def test_down_without_a_stack(tmp_path: Path) -> None:
    external = {"CSP_KAFKA_BOOTSTRAP": "localhost:1"}
    doc = json.loads(csp("down", "--format", "json", env=external).stdout)
    assert doc == {"external": True, "kafka_bootstrap": "localhost:1", "stopped": []}
    res = csp("down", "--data-dir", str(tmp_path / "never"), "--format", "csv")
    assert res.exit_code == 0, res.output
    assert rows(res.stdout) == [{"external": "False", "kafka_bootstrap": "", "stopped": "[]"}]


COMMANDS = [
    ["down"], ["explore"], ["unlink"], ["bind"], ["version"], ["link"], ["routes"], ["dlq"], ["systems"],
    ["ledger", "deploy"], ["ledger", "call"], ["ledger", "transfer"], ["ledger", "tx"], ["ledger", "contracts"],
    ["ledger", "keys", "list"], ["ledger", "keys", "create"],
    ["audit", "verify"], ["audit", "prove"], ["audit", "consistency"], ["audit", "verify-proof"],
    ["audit", "anchor-deploy"],
    ["quantum", "entangle"], ["quantum", "teleport"], ["quantum", "run"], ["quantum", "correct"],
    ["agents", "create"], ["agents", "delete"], ["agents", "protocol"], ["agents", "list"], ["agents", "collaborate"],
    ["users", "create-admin"], ["users", "create"], ["users", "list"], ["users", "key"],
]
WITH_JSON_ALIAS = {("ledger", "deploy"), ("ledger", "call"), ("ledger", "transfer"), ("ledger", "tx"),
                   ("ledger", "keys", "list"), ("audit", "verify"), ("quantum", "entangle"), ("quantum", "teleport"),
                   ("quantum", "run"), ("quantum", "correct")}  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_data_command_has_format(command: list[str]) -> None:
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "--format" in res.stdout and "csv" in res.stdout
    assert ("--json" in res.stdout) == (tuple(command) in WITH_JSON_ALIAS)


def test_csv_helper() -> None:
    from gateway.commands.output import csv_text

    assert csv_text([]) == ""
    got = rows(csv_text([{"a": 1, "b": [1, 2]}, {"a": 2, "c": {"x": None}}]))
    assert got == [{"a": "1", "b": "[1, 2]", "c": ""}, {"a": "2", "b": "", "c": '{"x": null}'}]
