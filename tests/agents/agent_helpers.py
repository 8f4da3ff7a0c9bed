"""A namespaced platform with a runtime worker, an agents worker (processor + driver) and the fake model."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fake_openai import FakeOpenAI
from runtime_helpers import thread_worker, wait_until
from shared_helpers import new_platform

from gateway.sdk import Platform
from processors.agents.driver import AgentDriver
from processors.agents.llm import RetryPolicy
from processors.agents.processor import AgentProcessor
from processors.agents.topics import AgentTopics
from processors.agents.worker import build_engines

ROOT = Path(__file__).resolve().parents[2]
NEGOTIATION = ROOT / "examples" / "agents" / "llm_negotiation.csp"
FAST = RetryPolicy(max_attempts=3, timeout_s=1.0, budget_s=10, base_delay_s=0.01, max_delay_s=0.05)


@dataclass
class AgentStack:
    platform: Platform
    server: FakeOpenAI
    proc: AgentProcessor
    driver: AgentDriver

    @property
    def topics(self) -> AgentTopics:
        return AgentTopics(self.platform.topics.namespace)

    def read(self, topic: str, schema: str) -> list[dict[str, Any]]:
        return self.platform.read(topic, schema)

    def wait_terminated(self, iid: str, timeout_s: float = 60) -> list[str]:
        """The instance's trace once it has terminated (✓)."""
        got: list[str] = []

        def done() -> bool:
            got[:] = [e["event"] for e in self.platform.events(iid)]
            return bool(got) and got[-1] == "✓"

        wait_until(done, timeout_s, f"instance {iid} to terminate", every_s=0.3)
        return got


@contextmanager
def agent_stack(bootstrap: str, tmp: Path, *, inline: bool = True) -> Iterator[AgentStack]:
    platform = new_platform(bootstrap, tmp)
    with FakeOpenAI() as server, thread_worker(platform):
        engines, proc, driver = build_engines(
            bootstrap, platform.settings, namespace=platform.topics.namespace, base_url=server.base_url,
            batch_size=100, policy=FAST, inline=inline,
        )  # fmt: skip
        assert driver is not None
        stop = threading.Event()
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                engines[i].run(stop)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(engines))]
        for t in threads:
            t.start()
        try:
            yield AgentStack(platform, server, proc, driver)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
            proc.close()
            platform.close()
            assert not errors, errors
