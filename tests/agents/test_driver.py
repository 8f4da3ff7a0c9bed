"""LLM agents drive a verified protocol through Kafka: the real broker, runtime, engine and an HTTP model."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import NEGOTIATION, AgentStack, agent_stack
from confluent_kafka import Producer
from runtime_helpers import wait_until

from processors.agents.driver import Binding, bindings_param
from processors.agents.registry import AgentRegistry, AgentSpec
from streams.clients import producer_config


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentStack]:
    with agent_stack(kafka_bootstrap, tmp_path_factory.mktemp("agents")) as s:
        plan = s.platform.deploy(NEGOTIATION, "NEGOTIATION", name="nego", outputs=["deliver"])
        assert not plan.refused
        yield s


def start(stack: AgentStack, tag: str, buyer_prefers: str = "request.0, reject") -> str:
    bindings = [
        Binding("buyer", ("request", "accept", "reject"), ("timeout",),
                prompt=f"You are the buyer [[{tag}-buyer]].\nPREFER: {buyer_prefers}\n$task"),
        Binding("seller", ("propose",), ("timeout",), prompt=f"You are the seller [[{tag}-seller]].\n$task"),
    ]  # fmt: skip
    inst = stack.platform.start("nego", params={"agents": bindings_param(bindings), "task": "buy task 0"})
    return inst.instance_id


def test_agents_negotiate_to_the_end(stack: AgentStack) -> None:
    iid = start(stack, "happy")
    events = stack.wait_terminated(iid)
    assert events[0] == "request.0" and events[-1] == "✓"
    assert events[-2] in ("reject.0", "timeout.0")  # the buyer always rejects: no delivery
    prices = [int(e.split(".")[2]) for e in events if e.startswith("propose.")]
    assert prices == sorted(prices, reverse=True) and len(set(prices)) == len(prices)
    responses = stack.read(stack.topics.responses, "AgentResponse")
    mine = [r for r in responses if r["instance_id"] == iid]
    assert {r["agent"] for r in mine} == {"buyer", "seller"}
    assert all(r["status"] == "OK" and r["usage"]["total_tokens"] > 0 for r in mine)
    reqs = [r for r in stack.read(stack.topics.requests, "AgentRequest") if r["instance_id"] == iid]
    req = next(r for r in reqs if r["request_id"] == f"{iid}:0:buyer")
    assert json.loads(req["params"]["allowed"]) == ["request.0", "request.1", "request.2"]
    # no request was sent to the model twice
    for agent in ("buyer", "seller"):
        assert stack.server.calls_for(f"happy-{agent}") == len({r["request_id"] for r in reqs if r["agent"] == agent})
    # the driver and the agent processor share this process: the driver had the processor call
    # the model and put request, response and offer out in its own transaction (marked on the
    # request, which the processor passes by)
    inline = [r for r in reqs if r["params"].get("answered_by") == "driver"]
    assert inline and stack.driver.stats.inline >= len(inline) and stack.proc.stats.passed >= len(inline)
    assert stack.proc._early is None  # the driver starts the calls itself: no early reader
    assert {r["request_id"] for r in mine} == {r["request_id"] for r in reqs}  # one response per request
    # every agent event was offered with the seq it was chosen at (by the driver inline, or else
    # by the agent processor)
    offers = [c for c in stack.read(stack.platform.topics.commands, "CspCommand")
              if c["instance_id"] == iid and c["kind"] == "OFFER"]  # fmt: skip
    assert len(offers) == len(mine)
    for c in offers:
        assert c["command_id"] == "agent:" + c["offer_id"]
        assert c["params"] == {"expect_seq": c["offer_id"].split(":")[-2]}
    # each prompt's trace shows the earlier agents' events with their messages
    last = max(reqs, key=lambda r: int(r["params"]["seq"]))
    prompt = last["messages"][-1]["content"]
    earlier = [r for r in mine if int(r["request_id"].split(":")[-2]) < int(last["params"]["seq"])]
    assert len(earlier) >= 2
    for r in earlier:
        seq = int(r["request_id"].split(":")[-2]) + 1
        line = next(ln for ln in prompt.splitlines() if ln.startswith(f"{seq}. {r['event']}  "))
        assert line.endswith(f"  — {r['agent']}: {r['message']}"), (line, r)


def test_a_forbidden_event_never_reaches_csp_events(stack: AgentStack) -> None:
    # at the buyer's first answer the protocol allows accept.0 / reject.0 only:
    # the model names an output event, then another task's accept, then a legal one
    stack.server.script["bad-buyer"] = ["ok", "event:deliver.0", "event:accept.1", "ok"]
    iid = start(stack, "bad")
    events = stack.wait_terminated(iid)
    assert "deliver.0" not in events and "accept.1" not in events
    assert stack.server.calls_for("bad-buyer") >= 4
    commands = stack.read(stack.platform.topics.commands, "CspCommand")
    offered = {c["event"] for c in commands if c["instance_id"] == iid}
    assert not offered & {"deliver.0", "accept.1"}
    refusals = [r for r in stack.platform.refusals() if r["instance_id"] == iid]
    assert refusals == []  # nothing illegal was even offered
    # the rejected answers are recorded: attempts counted on the answer that got through
    resp = next(r for r in stack.read(stack.topics.responses, "AgentResponse")
                if r["instance_id"] == iid and r["request_id"].endswith(":buyer") and r["attempts"] > 1)  # fmt: skip
    assert resp["event"] in ("accept.0", "reject.0")


def test_without_inline_answers_the_early_reader_starts_every_call_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Three hops (the driver only asks): the agent processor's early reader starts each call
    as the request is produced; the processor offers the chosen event; one call per request."""
    with agent_stack(kafka_bootstrap, tmp_path, inline=False) as s:
        assert not s.platform.deploy(NEGOTIATION, "NEGOTIATION", name="nego", outputs=["deliver"]).refused
        iid = start(s, "early")
        events = s.wait_terminated(iid)
        assert events[0] == "request.0" and events[-1] == "✓"
        reqs = [r for r in s.read(s.topics.requests, "AgentRequest") if r["instance_id"] == iid]
        assert reqs and not any("answered_by" in r["params"] for r in reqs)
        assert s.driver.stats.inline == 0 and s.proc.stats.passed == 0
        reader = s.proc._early
        assert reader is not None and reader.claimed >= len(reqs) and s.proc.stats.early >= 1
        for agent in ("buyer", "seller"):
            assert s.server.calls_for(f"early-{agent}") == len({r["request_id"] for r in reqs if r["agent"] == agent})
        offers = [c for c in s.read(s.platform.topics.commands, "CspCommand")
                  if c["instance_id"] == iid and c["kind"] == "OFFER"]  # fmt: skip
        resps = [r for r in s.read(s.topics.responses, "AgentResponse") if r["instance_id"] == iid]
        assert {r["request_id"] for r in resps} == {r["request_id"] for r in reqs}
        ok = {r["request_id"] for r in resps if r["status"] == "OK" and r["event"]}
        assert ok and {c["offer_id"] for c in offers} >= ok


def test_a_slow_answer_is_handed_over_to_the_agent_processor(stack: AgentStack) -> None:
    """The driver waits for inline answers only while they keep coming: a slow call goes on in
    the agent processor, which answers the request from that same call (no second one)."""
    stack.server.script["slowpoke-seller"] = ["slow:0.6"]
    handed = stack.driver.stats.handed_over
    iid = start(stack, "slowpoke")
    events = stack.wait_terminated(iid)
    assert events[0] == "request.0" and events[1].startswith("propose.0.") and events[-1] == "✓"
    assert stack.driver.stats.handed_over > handed
    reqs = [r for r in stack.read(stack.topics.requests, "AgentRequest") if r["instance_id"] == iid]
    first = next(r for r in reqs if r["request_id"] == f"{iid}:1:seller")
    assert "answered_by" not in first["params"]  # asked the usual way: the processor answered it
    resps = [r for r in stack.read(stack.topics.responses, "AgentResponse") if r["request_id"] == first["request_id"]]
    assert len(resps) == 1 and resps[0]["status"] == "OK" and resps[0]["latency_ms"] >= 500
    seller_rids = {r["request_id"] for r in reqs if r["agent"] == "seller"}
    assert stack.server.calls_for("slowpoke-seller") == len(seller_rids)


def test_an_answer_for_a_state_the_instance_has_left_is_refused(stack: AgentStack) -> None:
    """The runtime, not the driver, guards against stale answers: the agent processor's offer
    carries the seq it was chosen at."""
    from confluent_kafka import Producer

    from processors.agents.driver import request_id
    from processors.csp.runtime.partitioning import partition_for
    from streams.clients import producer_config

    iid = stack.platform.start("nego", params={"task": "no agents bound"}).instance_id
    part = partition_for(iid, stack.platform.partitions)

    def ask(agent: str) -> None:  # a choice asked at seq 0, as the driver asks it
        rid = request_id(iid, 0, agent)
        req = {
            "request_id": rid, "instance_id": iid, "command_id": "agent:" + rid, "agent": agent, "model": "m",
            "messages": [{"role": "user", "content": f"choose [[stale-{agent}]]"}], "temperature": None,
            "max_tokens": None, "seed": None, "requested_at": 0,
            "params": {"mode": "choice", "allowed": json.dumps(["request.0"]), "seq": "0",
                       "offer_topic": stack.platform.topics.commands, "offer_partition": str(part)},
        }  # fmt: skip
        producer = Producer(producer_config(stack.platform.bootstrap))
        producer.produce(stack.topics.requests, key=rid.encode(), value=stack.platform.codec.encode("AgentRequest", req))
        assert producer.flush(10) == 0

    ask("first")
    wait_until(lambda: [e["event"] for e in stack.platform.events(iid)] == ["request.0"], 60, "the first answer")
    ask("late")  # answered OK as well, but the instance has moved on from seq 0
    wait_until(lambda: any(r["instance_id"] == iid for r in stack.platform.refusals()), 60, "the refusal")
    (ref,) = [r for r in stack.platform.refusals() if r["instance_id"] == iid]
    assert ref["command_id"] == "agent:" + request_id(iid, 0, "late") and ref["reason"] == "NOT_ACCEPTABLE"
    assert "moved on to seq 1" in ref["message"]
    assert [e["event"] for e in stack.platform.events(iid)] == ["request.0"]


def test_refused_answers_then_the_protocol_timeout_fires(stack: AgentStack) -> None:
    # three answers outside the protocol: the request is refused; the binding's on_error offers timeout.0
    stack.server.script["refuse-buyer"] = ["ok", "event:deliver.0", "malformed", "event:propose.0.1"]
    iid = start(stack, "refuse")
    events = stack.wait_terminated(iid)
    assert events[-2:] == ["timeout.0", "✓"] and not {"deliver.0", "propose.0.1"} & set(events[2:])
    refused = [r for r in stack.read(stack.topics.responses, "AgentResponse")
               if r["instance_id"] == iid and r["status"] == "ERROR"]  # fmt: skip
    assert refused and refused[0]["event"] is None and "refused: 3 answers outside the protocol" in refused[0]["error"]


def test_server_errors_and_timeouts_end_in_a_clear_error_and_the_timeout_event(stack: AgentStack) -> None:
    stack.server.script["down-seller"] = ["429", "500", "timeout:3"]
    iid = start(stack, "down")
    assert stack.wait_terminated(iid) == ["request.0", "timeout.0", "✓"]
    err = next(r for r in stack.read(stack.topics.responses, "AgentResponse")
               if r["instance_id"] == iid and r["agent"] == "seller")  # fmt: skip
    assert err["status"] == "TIMEOUT" and err["attempts"] == 3
    assert "rate limited (429)" in err["error"] and "server error 500" in err["error"]


def test_registry_supplies_model_and_role(stack: AgentStack, tmp_path: Path) -> None:
    reg = AgentRegistry(stack.platform.bootstrap, stack.platform.codec, stack.topics)
    reg.create(AgentSpec("reg-buyer", "model-b", "a frugal buyer", "Registry buyer, $role [[reg-buyer]].\nPREFER: request.1, accept"))
    reg.create(AgentSpec("reg-seller", "model-s", "a seller"))
    bindings = [Binding("reg-buyer", ("request", "accept", "reject")), Binding("reg-seller", ("propose",))]
    iid = stack.platform.start("nego", params={"agents": bindings_param(bindings)}).instance_id
    events = stack.wait_terminated(iid)
    assert events[0] == "request.1" and events[-3:-1] == ["accept.1", "deliver.1"]
    reqs = [r for r in stack.read(stack.topics.requests, "AgentRequest") if r["instance_id"] == iid]
    assert {(r["agent"], r["model"]) for r in reqs} == {("reg-buyer", "model-b"), ("reg-seller", "model-s")}
    buyer = next(r for r in reqs if r["agent"] == "reg-buyer")
    assert buyer["messages"][0]["content"].startswith("Registry buyer, a frugal buyer [[reg-buyer]].")


def test_collaboration_consensus_runs_and_returns_the_full_trace(stack: AgentStack) -> None:
    from gateway.agents import CollabAgent

    agents = [CollabAgent("ann", "m1", "an optimist"), CollabAgent("bob", "m2", "a sceptic"),
              CollabAgent("cy", "m3", "a mediator")]  # fmt: skip
    res = stack.platform.agents.collaborate("pick a name [[collab]]", agents, "consensus", rounds=2, timeout_s=120)
    events = [s.event for s in res.trace]
    assert events[-1] == "✓"
    votes = [s for s in res.trace if s.event.startswith("vote.")]
    assert votes and all(s.agent == ("ann", "bob", "cy")[int(s.event.split(".")[1])] for s in votes)
    assert all(s.message for s in votes)
    final = events[-2]
    if final.startswith("agreed."):
        assert res.outcome == f"agreed in round {final.split('.')[1]}"
        assert all(e.endswith(".yes") for e in events[-5:-2])
    else:
        assert final == "failed" and res.outcome == "no consensus" and len(votes) == 6
    assert res.checks.ok and res.usage["model_calls"] >= len(votes)
    assert "COLLAB :[deadlock free]" in res.protocol


def _json_line(output: str, start: str) -> Any:
    """The CLI's JSON document: the engines running in this test process log to the same stdout."""
    import re

    text = "\n".join(line for line in output.splitlines() if not re.match(r"\d{4}-\d\d-\d\d \d\d:", line))
    return json.loads(text[text.index(start):])


def test_cli_registry_and_collaborate(stack: AgentStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gateway.cli import app

    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", stack.platform.bootstrap)
    # the platform's data dir: deployments are signed with its key, which the worker trusts
    monkeypatch.setenv("CSP_DATA_DIR", str(stack.platform.settings.resolved_data_dir()))
    ns = ["--namespace", stack.platform.topics.namespace]
    runner = CliRunner()
    r = runner.invoke(app, ["agents", "create", "cli-agent", "--model", "mm", "--role", "a tester", *ns])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["agents", "create", "cli-agent", "--model", "mm", *ns]).exit_code == 1
    r = runner.invoke(app, ["agents", "list", "--format", "json", *ns])
    assert {"name": "cli-agent", "model": "mm", "role": "a tester", "prompt": None} in _json_line(r.output, "[")
    assert runner.invoke(app, ["agents", "delete", "cli-agent", *ns]).exit_code == 0
    assert runner.invoke(app, ["agents", "delete", "cli-agent", *ns]).exit_code == 1
    assert runner.invoke(app, ["agents", "create", "9bad", "--model", "m", *ns]).exit_code == 2
    r = runner.invoke(app, ["agents", "collaborate", "--task", "t", "-a", "p:m", "-a", "q:m", "-m", "round_robin",
                            "--rounds", "1", "--format", "json", *ns])  # fmt: skip
    assert r.exit_code == 0, r.output
    out = _json_line(r.output, "{")
    assert [s["event"] for s in out["trace"]] == ["say.0.1", "say.1.1", "done", "✓"]
    assert [s["agent"] for s in out["trace"][:2]] == ["p", "q"]
    assert runner.invoke(app, ["agents", "collaborate", "--task", "t", "-a", "p", "-m", "vote", *ns]).exit_code == 2


def test_bad_requests_go_to_the_dead_letter_topic(stack: AgentStack) -> None:
    from confluent_kafka import Producer
    from runtime_helpers import wait_until

    from streams.clients import producer_config

    codec = stack.platform.codec
    producer = Producer(producer_config(stack.platform.bootstrap))
    producer.produce(stack.topics.requests, key=b"junk", value=b"not avro at all")
    wrong = codec.encode("AgentRegistryRecord", {"name": "x", "action": "DELETE", "timestamp": 0})
    producer.produce(stack.topics.requests, key=b"wrong", value=wrong)
    assert producer.flush(30) == 0
    dlq = stack.topics.requests + ".dlq"

    def dead() -> list[dict[str, object]]:
        return [r for r in stack.read(dlq, "DeadLetter") if r["key"] in (b"junk", b"wrong")]

    wait_until(lambda: len(dead()) == 2, 60, "two dead letters")
    errors = sorted(str(r["error"]) for r in dead())
    assert "expected an AgentRequest record" in errors[0] + errors[1]
    assert any("undecodable" in e or "wire format" in e for e in errors)


def test_a_request_marked_inline_by_hand_is_answered(stack: AgentStack) -> None:
    """``params.answered_by = driver`` is the driver's mark, checked against the journal: a
    request that carries it without a recorded answer is answered like any other."""
    rid = f"forged-{os.urandom(4).hex()}"
    req = {
        "request_id": rid, "instance_id": None, "command_id": None, "agent": "a", "model": "m",
        "messages": [{"role": "user", "content": f"answer [[{rid}]]"}], "temperature": None, "max_tokens": None,
        "seed": None, "params": {"answered_by": "driver"}, "requested_at": int(time.time() * 1000),
    }  # fmt: skip
    unverified = stack.proc.stats.unverified
    producer = Producer(producer_config(stack.platform.bootstrap))
    producer.produce(stack.topics.requests, key=rid.encode(), value=stack.platform.codec.encode("AgentRequest", req))
    assert producer.flush(30) == 0
    del producer  # no client left to outlive the module's broker

    def answered() -> list[dict[str, Any]]:
        return [r for r in stack.read(stack.topics.responses, "AgentResponse") if r["request_id"] == rid]

    wait_until(lambda: bool(answered()), 60, f"a response to the hand-made request {rid}")
    got = answered()
    assert len(got) == 1 and got[0]["status"] == "OK" and got[0]["content"] == f"ok: answer [[{rid}]]"
    assert stack.server.calls_for(rid) == 1 and stack.proc.stats.unverified == unverified + 1


def test_an_agent_command_id_made_by_hand_does_not_hold_the_instance(stack: AgentStack) -> None:
    """An event whose command id names an agent's request the driver never asked (here the
    seller's, at the buyer's turn) waits for no response: the agents go on to the end."""
    stack.server.script["forged-buyer"] = ["slow:2"]  # the buyer's first answer comes late
    iid = start(stack, "forged")
    wait_until(lambda: stack.server.calls_for("forged-buyer") >= 1, 30, "the buyer asked at seq 0")
    stack.platform.send(iid, "OFFER", command_id=f"agent:{iid}:0:seller", event="request.0")
    events = stack.wait_terminated(iid)
    assert events[0] == "request.0" and events[1].startswith("propose.0.") and events[-1] == "✓"
    first = next(e for e in stack.platform.events(iid) if int(e["seq"]) == 1)
    assert first["command_id"] == f"agent:{iid}:0:seller"  # the hand-made command performed request.0
    reqs = [r for r in stack.read(stack.topics.requests, "AgentRequest") if r["instance_id"] == iid]
    assert f"{iid}:1:seller" in {r["request_id"] for r in reqs}  # the seller was asked next
