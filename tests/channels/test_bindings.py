"""Service bindings: output events on a bound channel become requests of a real service processor
(the tests' echo service on the engine); its results come back as offers on the reply channel."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from channel_helpers import runtime_and_bridge, wait_until
from echo_service import REQUESTS, SERVICE, EchoProcessor, topic_specs
from shared_helpers import new_platform, stoppable_thread

from processors.channels.routes import RouteError
from schemas.codec import codec_from_settings
from streams.admin import ensure_topics
from streams.engine import Engine, EngineConfig

ASKER = """
channel go, ask, answer, done : {0..3}
ASKER = go?x -> ask!x -> answer?y -> done!y -> ASKER
assert ASKER :[deadlock free]
"""


def test_bound_channel_round_trip_through_echo_service(kafka_bootstrap: str, tmp_path: Path) -> None:
    ensure_topics(kafka_bootstrap, topic_specs())
    platform = new_platform(kafka_bootstrap, tmp_path)
    src = tmp_path / "asker.csp"
    src.write_text(ASKER)
    with pytest.raises(RouteError):
        platform.deploy(src, "ASKER", name="asker", outputs=["ask", "done"], bind=["ask=no.such.module:X"])
    plan = platform.deploy(
        src, "ASKER", name="asker", outputs=["ask", "done"], bind=[f"ask={SERVICE}:answer"]
    )
    assert not plan.refused
    routes = platform.routes()
    assert [(b.channel, b.service, b.reply_channel) for b in routes.bindings.values()] == [
        ("ask", SERVICE, "answer")
    ]
    echo = EchoProcessor()
    engine = Engine(echo, codec_from_settings(platform.settings),
                    EngineConfig(bootstrap=kafka_bootstrap, worker_id=uuid.uuid4().hex[:6]))  # fmt: skip
    iids = [f"ask-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with platform, runtime_and_bridge(platform), stoppable_thread(engine.run):
        for iid in iids:
            platform.start("asker", instance_id=iid)
        for i, iid in enumerate(iids):
            assert platform.offer(iid, f"go.{i}").accepted
        done = platform.topics.channel("asker", "done")

        def finished() -> bool:
            return len(platform.read(done, "ChannelMessage")) >= len(iids)

        wait_until(finished, 60, "every instance's done event")
    with platform:
        only = list(platform.subscribe("done", system="asker", instance=iids[1], timeout_s=1.0))
    assert [(m["instance_id"], m["event"]) for m in only] == [
        (iids[1], "done.1")
    ]  # SDK filter on one instance
    with pytest.raises(ValueError, match="control characters"):
        platform.offer("bad\nid", "go.0")
    got = sorted((m["instance_id"], m["event"]) for m in platform.read(done, "ChannelMessage"))
    assert got == sorted((iid, f"done.{i}") for i, iid in enumerate(iids))
    for i, iid in enumerate(iids):
        trace = [e["event"] for e in platform.events(iid) if e["kind"] != "TAU"]
        assert trace == [f"go.{i}", f"ask.{i}", f"answer.{i}", f"done.{i}"]
        answer = next(e for e in platform.events(iid) if e["event"] == f"answer.{i}")
        assert answer["command_id"] == f"svc:{iid}:2"  # svc:<request_id>, request_id = <instance>:<seq>
    requests = [r for r in platform.read(REQUESTS, "ChannelMessage") if r["instance_id"] in iids]
    assert sorted((r["instance_id"], r["seq"]) for r in requests) == sorted((iid, 2) for iid in iids)
    assert echo.answered >= len(iids)
    platform.close()
