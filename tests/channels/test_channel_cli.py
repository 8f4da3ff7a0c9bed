"""The CLI a Kafka user expects: --version, link/routes/unlink, deploy --bind, systems, dlq, tail's kcat
options, instance id validation, start without a worker prints the id."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from channel_helpers import runtime_and_bridge
from confluent_kafka import Producer
from echo_service import SERVICE, topic_specs
from typer.testing import CliRunner

from gateway.cli import app
from gateway.sdk import Platform
from infra.settings import Settings
from streams.admin import ensure_topics

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")
SRC = "channel feed, out : {0..2}\nSRC = feed?x -> out!x -> SRC\nassert SRC :[deadlock free]\n"
PICKY = "channel inp : {0..2}\nPICKY = inp?x -> (if x == 2 then STOP else PICKY)\n"
ASKER = "channel go, ask, answer : {0..2}\nASKER = go?x -> ask!x -> answer?y -> ASKER\n"


def csp(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, "\n".join(line for line in res.output.splitlines() if not LOG_LINE.match(line))


@pytest.fixture
def ns(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))
    return f"cli{uuid.uuid4().hex[:8]}"


def test_version() -> None:
    code, out = csp("--version")
    assert code == 0 and re.match(r"^csp \d+\.\d+", out)


def test_channel_commands(ns: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    for name, text in (("src", SRC), ("picky", PICKY), ("asker", ASKER)):
        (tmp_path / f"{name}.csp").write_text(text)
    ensure_topics(kafka_bootstrap, topic_specs())
    assert (
        csp(
            "deploy",
            str(tmp_path / "src.csp"),
            "-p",
            "SRC",
            "--name",
            "src",
            "--outputs",
            "out",
            "--namespace",
            ns,
        )[0]
        == 0
    )
    assert (
        csp("deploy", str(tmp_path / "picky.csp"), "-p", "PICKY", "--name", "picky", "--namespace", ns)[0]
        == 0
    )
    code, out = csp("deploy", str(tmp_path / "asker.csp"), "-p", "ASKER", "--name", "asker", "--outputs", "ask",
                    "--bind", f"ask={SERVICE}:answer", "--namespace", ns)  # fmt: skip
    assert code == 0, out
    code, out = csp("deploy", str(tmp_path / "asker.csp"), "-p", "ASKER", "--name", "asker2", "--outputs", "ask",
                    "--bind", "ask=nosuch", "--namespace", ns)  # fmt: skip
    assert code == 2 and "unknown service" in out
    # a link that breaks the pair's deadlock freedom: refused with its counterexample, then forced
    code, out = csp("link", "src.out", "picky.inp", "--namespace", ns)
    assert code == 1 and "fail" in out and "counterexample: deadlock" in out and "refused" in out
    code, out = csp("link", "src.out", "picky.inp", "--force", "--format", "json", "--namespace", ns)
    assert code == 0 and json.loads(out)["linked"] is True
    code, out = csp("link", "src.feed", "picky.inp", "--namespace", ns)
    assert code == 2 and "not an output channel" in out
    code, out = csp("deploy", str(tmp_path / "src.csp"), "-p", "SRC", "--name", "src", "--outputs", "out",
                    "--format", "json", "--namespace", ns)  # fmt: skip
    assert (
        code == 0 and json.loads(out)["version"] == 2 and json.loads(out)["assertions"][0]["status"] == "pass"
    )
    code, out = csp("routes", "--format", "json", "--namespace", ns)
    assert code == 0 and {r["route_id"] for r in json.loads(out)} == {
        "link:src.out->picky.inp",
        "bind:asker.ask",
    }
    assert csp("unlink", "link:src.out->picky.inp", "--namespace", ns)[0] == 0
    assert "link:" not in csp("routes", "--namespace", ns)[1]
    # systems, with versions and assertion results; csv too
    code, out = csp("systems", "--namespace", ns)
    assert code == 0 and "src v1" in out and "src v2" in out and "pass  SRC :[deadlock free]" in out
    code, out = csp("systems", "--format", "csv", "--namespace", ns)
    assert code == 0 and out.splitlines()[0].startswith("system,version,process")
    # instance ids are Kafka-key-safe
    code, out = csp("start", "src", "--id", "x" * 201, "--namespace", ns)
    assert code == 2 and "at most 200" in out
    code, out = csp("offer", "", "feed.1", "--namespace", ns)
    assert code == 2 and "empty" in out
    # no worker: the id still printed (the START stays on the log)
    code, out = csp("start", "src", "--id", "orphan-1", "--timeout", "2", "--namespace", ns)
    assert code == 3 and out.splitlines()[0] == "orphan-1"
    platform = Platform(
        kafka_bootstrap, namespace=ns, settings=Settings(data_dir=tmp_path, kafka_bootstrap=kafka_bootstrap)
    )
    with platform, runtime_and_bridge(platform):
        platform.start("src", instance_id="s1")
        for v in (0, 1, 2, 0):
            assert platform.offer("s1", f"feed.{v}").accepted
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(platform.topics.channel("src", "feed"), key=b"s1", value=b"\x09junk")
        producer.flush(10)
        code, out = csp("tail", "-o", "-2", "--instance", "s1", "--namespace", ns)
        assert code == 0 and [line.split()[2] for line in out.splitlines()] == ["INPUT", "OUTPUT"]
        assert "feed.0" in out.splitlines()[0] and "out.0" in out.splitlines()[1]
        code, out = csp("tail", "-c", "3", "-e", "--system", "src", "--namespace", ns)
        assert code == 0 and len(out.splitlines()) == 3 and "#1 " in out.splitlines()[0]
        code, out = csp("tail", "--channel", "src.out", "-o", "beginning", "-c", "2", "--namespace", ns)
        assert code == 0 and [line.split()[2] for line in out.splitlines()] == ["out.0", "out.1"]

        # --format on the commands that print data
        code, out = csp("instances", "--format", "csv", "--system", "src", "--namespace", ns)
        assert code == 0 and out.splitlines()[0] == "instance_id,system,version,state,seq,status"
        assert any(line.startswith("s1,src,2,") for line in out.splitlines())
        code, out = csp("replay", "s1", "--format", "json", "--namespace", ns)
        assert code == 0 and json.loads(out)["trace"][:2] == ["feed.0", "out.0"]
        code, out = csp("tail", "--instance", "s1", "-c", "2", "--format", "csv", "--namespace", ns)
        assert code == 0 and out.splitlines()[0].startswith("instance_id,") and len(out.splitlines()) == 3
        code, out = csp(
            "conform", "src", str(tmp_path / "src.csp"), "SRC", "--format", "json", "--namespace", ns
        )
        assert code == 0 and json.loads(out)["violations"] == [], out
        code, out = csp("offer", "s1", "feed.9", "--format", "json", "--namespace", ns)
        assert code == 1 and json.loads(out)["refusal"]["reason"] in ("MALFORMED", "UNKNOWN_EVENT")

        # undeploy: gone from systems, no new starts, its link and binding removed
        code, out = csp("undeploy", "asker", "--namespace", ns)
        assert code == 0 and "undeployed asker" in out
        assert (
            "asker" not in csp("systems", "--namespace", ns)[1]
            and "bind:" not in csp("routes", "--namespace", ns)[1]
        )
        code, out = csp("start", "asker", "--id", "a-after", "--timeout", "20", "--namespace", ns)
        assert code == 1 and "UNKNOWN_SYSTEM" in out, out
        assert csp("undeploy", "asker", "--namespace", ns)[0] == 1

        def dead() -> str:
            return csp("dlq", platform.topics.channel("src", "feed"), "--format", "json", "--namespace", ns)[
                1
            ]

        from channel_helpers import wait_until

        wait_until(lambda: "undecodable" in dead(), 30, "the dead letter")
        row = json.loads(dead().splitlines()[0])
        assert row["key"] == "s1" and row["value_hex"] == b"\x09junk".hex()
    platform.close()
