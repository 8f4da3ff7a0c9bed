"""One model call through the openai client, with retries, backoff and a time budget.

Retried: timeouts, connection errors, 429 (rate limit, honouring ``Retry-After`` when the
server sends one) and 5xx. Not retried: other 4xx (a bad request stays bad). When the
attempts or the budget run out the result is an ERROR (or TIMEOUT) naming what happened;
nothing raises. Token usage and latency (all attempts, backoff included) are returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import openai

OK = "OK"
ERROR = "ERROR"
TIMEOUT = "TIMEOUT"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    timeout_s: float = 30.0  # one call
    budget_s: float = 120.0  # all attempts and waits of one request
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Wait before attempt ``attempt + 1`` (attempt counts from 1): exponential, capped."""
        if retry_after is not None and retry_after >= 0:
            return float(min(retry_after, self.max_delay_s))
        return float(min(self.base_delay_s * 2.0 ** (attempt - 1), self.max_delay_s))


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def as_record(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class CallResult:
    status: str  # OK | ERROR | TIMEOUT
    content: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    latency_ms: int = 0
    error: str | None = None
    attempts: int = 0


def _retry_after(exc: openai.APIStatusError) -> float | None:
    raw = exc.response.headers.get("retry-after") if exc.response is not None else None
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def call_model(
    client: openai.OpenAI,
    model: str,
    messages: Sequence[Mapping[str, str]],
    *,
    policy: RetryPolicy | None = None,
    response_format: Mapping[str, Any] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CallResult:
    """Call ``model`` with ``messages``; retries per ``policy``; never raises for API failures."""
    policy = policy or RetryPolicy()
    started = time.monotonic()
    if client.max_retries != 0:  # retries are ours (the policy): never the client's as well
        client = client.with_options(max_retries=0)
    kwargs: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    if response_format is not None:
        kwargs["response_format"] = dict(response_format)
    if temperature is not None:
        kwargs["temperature"] = temperature
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if seed is not None:
        kwargs["seed"] = seed
    errors: list[str] = []
    last_status = ERROR
    attempt = 0
    while True:
        attempt += 1
        remaining = policy.budget_s - (time.monotonic() - started)
        timeout = max(0.05, min(policy.timeout_s, remaining))
        retry_after: float | None = None
        try:
            # a per-request timeout (with_options would copy the client on every attempt)
            resp = client.chat.completions.create(**kwargs, timeout=timeout)
        except openai.APITimeoutError:
            errors.append(f"attempt {attempt}: timed out after {timeout:.1f}s")
            last_status = TIMEOUT
        except openai.APIConnectionError as exc:
            errors.append(f"attempt {attempt}: connection error: {exc}")
            last_status = ERROR
        except openai.RateLimitError as exc:
            errors.append(f"attempt {attempt}: rate limited (429)")
            retry_after = _retry_after(exc)
            last_status = ERROR
        except openai.InternalServerError as exc:
            errors.append(f"attempt {attempt}: server error {exc.status_code}")
            last_status = ERROR
        except openai.APIStatusError as exc:  # other 4xx: not retried
            errors.append(f"attempt {attempt}: HTTP {exc.status_code}: {exc.message}")
            return _failed(ERROR, errors, started, attempt)
        except openai.OpenAIError as exc:  # e.g. a body that is not a chat completion
            errors.append(f"attempt {attempt}: {type(exc).__name__}: {exc}")
            last_status = ERROR
        else:
            return _answer(resp, started, attempt)
        if attempt >= policy.max_attempts:
            return _failed(last_status, errors, started, attempt, f"gave up after {attempt} attempts")
        wait = policy.delay(attempt, retry_after)
        if time.monotonic() - started + wait >= policy.budget_s:
            return _failed(last_status, errors, started, attempt, f"time budget of {policy.budget_s:g}s spent")
        sleep(wait)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _answer(resp: Any, started: float, attempts: int) -> CallResult:
    choices = getattr(resp, "choices", None) or []
    if not choices:
        return _failed(ERROR, ["the model returned no choices"], started, attempts)
    choice = choices[0]
    u = getattr(resp, "usage", None)
    usage = (
        Usage(int(u.prompt_tokens or 0), int(u.completion_tokens or 0), int(u.total_tokens or 0))
        if u is not None
        else None
    )
    content = choice.message.content if choice.message is not None else None
    return CallResult(OK, content, choice.finish_reason, usage, _elapsed_ms(started), None, attempts)


def _failed(status: str, errors: list[str], started: float, attempts: int, summary: str = "") -> CallResult:
    text = "; ".join(errors)
    if summary:
        text = f"{summary}: {text}"
    return CallResult(status, None, None, None, _elapsed_ms(started), text, attempts)
