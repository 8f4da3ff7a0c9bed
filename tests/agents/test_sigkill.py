"""SIGKILL of the agent processor: a request already answered is never sent to the model again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent_helpers import ROOT
from confluent_kafka import Producer
from fake_openai import FakeOpenAI
from runtime_helpers import wait_until

from infra.settings import Settings
from processors.agents.topics import AgentTopics
from schemas.codec import codec_from_settings
from streams.admin import ensure_topics
from streams.clients import producer_config
from streams.reader import read_to_end


def request(rid: str, tag: str) -> dict[str, Any]:
    return {
        "request_id": rid, "instance_id": None, "command_id": None, "agent": "a", "model": "m",
        "messages": [{"role": "user", "content": f"answer [[{tag}]]"}], "temperature": None,
        "max_tokens": None, "seed": None, "params": {}, "requested_at": int(time.time() * 1000),
    }  # fmt: skip


def spawn(bootstrap: str, ns: str, base_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=bootstrap, CSP_LOG_LEVEL="INFO", CSP_AGENTS_TIMEOUT_S="120",
               CSP_AGENTS_BUDGET_S="300")  # fmt: skip
    cmd = [sys.executable, "-m", "processors.agents.worker", "--bootstrap", bootstrap, "--namespace", ns,
           "--base-url", base_url, "--no-driver", "--worker-id", "k1"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_sigkill_after_an_answer_causes_no_second_model_call(kafka_bootstrap: str, tmp_path: Path) -> None:
    ns = f"k{os.urandom(4).hex()}"
    topics = AgentTopics(ns)
    ensure_topics(kafka_bootstrap, topics.specs())
    codec = codec_from_settings(Settings(data_dir=tmp_path, kafka_bootstrap=kafka_bootstrap))

    def read(topic: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for p in range(2):
            for _o, _k, v, _t in read_to_end(kafka_bootstrap, topic, p):
                if v is not None:
                    _n, rec = codec.decode(v)
                    out.setdefault(rec["request_id"], rec)
        return out

    # A is answered at once; B (same partition, same batch) hangs until the kill
    producer = Producer(producer_config(kafka_bootstrap))
    for rid, tag in (("A", "fast"), ("B", "hang")):
        producer.produce(topics.requests, key=rid.encode(), value=codec.encode("AgentRequest", request(rid, tag)),
                         partition=0)  # fmt: skip
    assert producer.flush(30) == 0
    log = tmp_path / "agents.log"
    with FakeOpenAI({"hang": ["slow:60", "ok"]}) as server:
        worker = spawn(kafka_bootstrap, ns, server.base_url, log)
        try:
            wait_until(lambda: "A" in read(topics.journal), 90, "A's answer in the journal")
            wait_until(lambda: server.calls_for("hang") == 1, 30, "B's call in flight")
            assert read(topics.responses) == {}, "the batch committed before the kill: A and B not in one batch"
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            assert server.calls_for("fast") == 1
            journaled = read(topics.journal)["A"]
            worker = spawn(kafka_bootstrap, ns, server.base_url, log)
            wait_until(lambda: {"A", "B"} <= set(read(topics.responses)), 90, "both responses after the restart")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        responses = read(topics.responses)
        assert server.calls_for("fast") == 1, "A was answered before the kill: no second call"
        assert server.calls_for("hang") == 2, "B was not answered before the kill: called again"
        assert responses["A"]["content"] == journaled["content"] == "ok: answer [[fast]]"
        assert responses["A"]["timestamp"] == journaled["timestamp"]  # the recorded answer, replayed
        assert responses["B"]["status"] == "OK"
        logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert {e.get("request_id") for e in logged if e["event"] == "agents.replayed"} == {"A"}
