"""call_model and parse_choice against the tests' local OpenAI-compatible server (real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from fake_openai import FakeOpenAI

from processors.agents import choice as ch
from processors.agents.llm import ERROR, OK, TIMEOUT, RetryPolicy, call_model

FAST = RetryPolicy(max_attempts=3, timeout_s=0.5, budget_s=10, base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as s:
        yield s


def client(s: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=s.base_url, api_key="test", max_retries=0)


def ask(tag: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"hello [[{tag}]]"}]


def test_ok_answer_with_usage_and_latency(server: FakeOpenAI) -> None:
    r = call_model(client(server), "m", ask("a"), policy=FAST)
    assert r.status == OK and r.content == "ok: hello [[a]]" and r.attempts == 1
    assert r.usage is not None and r.usage.total_tokens > 0 and r.latency_ms >= 0


def test_429_then_ok_is_retried(server: FakeOpenAI) -> None:
    server.script["r"] = ["429", "ok"]
    r = call_model(client(server), "m", ask("r"), policy=FAST)
    assert r.status == OK and r.attempts == 2 and server.calls_for("r") == 2


def test_5xx_until_the_attempts_run_out_is_a_clear_error(server: FakeOpenAI) -> None:
    server.script["e"] = ["500"]
    r = call_model(client(server), "m", ask("e"), policy=FAST)
    assert r.status == ERROR and r.attempts == 3 and server.calls_for("e") == 3
    assert r.error is not None and "gave up after 3 attempts" in r.error and "server error 500" in r.error


def test_timeout_is_retried_then_reported(server: FakeOpenAI) -> None:
    server.script["t"] = ["timeout:2"]
    r = call_model(client(server), "m", ask("t"), policy=FAST)
    assert r.status == TIMEOUT and r.attempts == 3 and "timed out" in (r.error or "")


def test_budget_stops_retries(server: FakeOpenAI) -> None:
    server.script["b"] = ["timeout:2"]
    policy = RetryPolicy(max_attempts=10, timeout_s=0.3, budget_s=0.5, base_delay_s=0.1, max_delay_s=0.1)
    r = call_model(client(server), "m", ask("b"), policy=policy)
    assert r.status == TIMEOUT and r.attempts < 10 and "budget" in (r.error or "")


def test_structured_choice_round_trip(server: FakeOpenAI) -> None:
    allowed = ["accept.0", "reject.0"]
    r = call_model(client(server), "m", ask("c"), policy=FAST, response_format=ch.response_format(allowed))
    got = ch.parse_choice(r.content, allowed)
    assert isinstance(got, ch.Choice) and got.event in allowed
    assert ch.allowed_from_schema(server.calls[-1]["response_format"]) == allowed


def test_parse_choice_rejects_bad_answers() -> None:
    allowed = ["accept.0", "reject.0"]
    bad = ch.parse_choice('{"event": "deliver.0"}', allowed)
    assert isinstance(bad, ch.Rejected) and bad.reason == "NOT_ALLOWED" and "deliver.0" in bad.detail
    mal = ch.parse_choice("accept it {", allowed)
    assert isinstance(mal, ch.Rejected) and mal.reason == "MALFORMED"
    assert isinstance(ch.parse_choice('["accept.0"]', allowed), ch.Rejected)
    assert ch.parse_choice('{"event": "accept.0", "message": "fine"}', allowed) == ch.Choice("accept.0", "fine")
