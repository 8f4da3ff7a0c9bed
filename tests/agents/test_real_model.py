"""A real small local model behind the OpenAI-compatible server, choosing a protocol event.

Runs only where llama-cpp-python is installed and ``CSP_TEST_GGUF_MODEL`` names a small GGUF
file. Neither is installed by ``make test``: this machine's package index has no
llama-cpp-python distribution at all (``pip download llama-cpp-python`` finds none; on PyPI it
is a source distribution whose install compiles llama.cpp, beyond this suite's time budget on
two cores), and no package in the registry lists ships GGUF weights inside a wheel (the
candidates download them at run time; tests have no network beyond loopback).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import openai
import pytest

from processors.agents import choice as ch
from processors.agents.llm import OK, RetryPolicy, call_model
from processors.agents.localmodel import LocalModelServer, Reply

MODEL = os.environ.get("CSP_TEST_GGUF_MODEL", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or not os.path.isfile(MODEL),
        reason="needs llama-cpp-python (not in this machine's package index; a source build compiles "
        "llama.cpp) and a small GGUF model in CSP_TEST_GGUF_MODEL (no wheel ships one; no network in tests)",
    ),
]


class LlamaServer(LocalModelServer):
    def __init__(self, path: str) -> None:
        super().__init__()
        from llama_cpp import Llama

        self.llm = Llama(model_path=path, n_ctx=2048, verbose=False)

    def behaviour(self, body: Mapping[str, Any]) -> Reply:
        fmt = body.get("response_format")
        kwargs: dict[str, Any] = {"messages": body["messages"], "max_tokens": 64, "temperature": 0}
        if fmt:
            kwargs["response_format"] = {"type": "json_object", "schema": fmt["json_schema"]["schema"]}
        return Reply(200, dict(self.llm.create_chat_completion(**kwargs)))


def test_a_real_model_chooses_an_allowed_event() -> None:
    allowed = ["accept.0", "reject.0"]
    with LlamaServer(MODEL) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        r = call_model(client, "local", [{"role": "user", "content": "The price is 1. Accept or reject?"}],
                       policy=RetryPolicy(timeout_s=120, budget_s=300), response_format=ch.response_format(allowed))  # fmt: skip
    assert r.status == OK
    got = ch.parse_choice(r.content, allowed)
    assert isinstance(got, ch.Choice) and got.event in allowed
