import uuid

import pytest

from infra.ports import free_port
from streams.admin import BrokerUnavailable, ensure_topics, list_topics, wait_ready
from streams.catalog import CATALOG, TopicSpec, channel_topic


def _spec(name: str, partitions: int, input: bool = False) -> TopicSpec:
    return TopicSpec(name, partitions, "k", "bytes", "delete", -1, "test", f"{name}.dlq" if input else None, input)


def test_catalog_topics_exist_with_declared_partitions(kafka_bootstrap):
    live = list_topics(kafka_bootstrap)
    for spec in CATALOG:
        assert live.get(spec.name) == spec.partitions, spec.name


def test_ensure_topics_is_idempotent_and_explicit(kafka_bootstrap):
    name = f"adm.{uuid.uuid4().hex[:10]}"
    specs = [_spec(name, 3, input=True), _spec(name + ".b", 2)]
    created = ensure_topics(kafka_bootstrap, specs)
    assert created == [name, name + ".dlq", name + ".b"]
    live = list_topics(kafka_bootstrap)
    assert live[name] == 3 and live[name + ".b"] == 2 and live[name + ".dlq"] == 1
    assert ensure_topics(kafka_bootstrap, specs) == []
    assert list_topics(kafka_bootstrap)[name] == 3


def test_channel_topic_creation_at_deploy(kafka_bootstrap):
    spec = channel_topic(f"s{uuid.uuid4().hex[:6]}", "coin")
    assert ensure_topics(kafka_bootstrap, [spec]) == [spec.name, spec.dead_letter]
    assert list_topics(kafka_bootstrap)[spec.name] == spec.partitions


@pytest.mark.timeout(60)
@pytest.mark.parametrize("call", ["wait_ready", "ensure_topics", "list_topics"])
def test_broker_down_is_a_clear_error_not_a_hang(call):
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(BrokerUnavailable) as info:
        if call == "wait_ready":
            wait_ready(bootstrap, 2)
        elif call == "ensure_topics":
            ensure_topics(bootstrap, CATALOG, timeout_s=2)
        else:
            list_topics(bootstrap, timeout_s=2)
    message = str(info.value)
    assert bootstrap in message
    assert "unavailable" in message and "csp up" in message
