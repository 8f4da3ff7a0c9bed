"""The LLM negotiation demo (``examples/agents/llm_negotiation.csp``) as ``csp run`` drives it.

:func:`start_llm_negotiations` deploys the negotiation (verified first), starts a local
model server unless ``CSP_OPENAI_BASE_URL`` names one, starts an agents worker subprocess
(agent processor + driver) and a thread that keeps a few negotiations running: each is an
instance whose buyer and seller are LLM agents choosing only among the events the protocol
allows them. :meth:`LlmDemo.status` is a short line for the live status; :meth:`close`
stops what it started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from processors.agents.driver import Binding, bindings_param
from processors.agents.localmodel import LocalModelServer

if TYPE_CHECKING:
    from gateway.sdk import Platform
    from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NEGOTIATION = ROOT / "examples" / "agents" / "llm_negotiation.csp"
SYSTEM = "llm-negotiation"
BUYER_STYLES = ("request.0, accept", "request.1, reject", "request.2", "request.0, reject, accept")


def negotiation_bindings(k: int) -> str:
    """Buyer and seller bindings of negotiation ``k`` (the buyer's style varies with k)."""
    return bindings_param(
        [
            Binding("buyer", ("request", "accept", "reject"), ("timeout",),
                    prompt=f"You are $name, $role.\nPREFER: {BUYER_STYLES[k % len(BUYER_STYLES)]}\nTask: $task"),
            Binding("seller", ("propose",), ("timeout",), role="a seller who starts high and concedes slowly"),
        ]
    )  # fmt: skip


@dataclass
class LlmDemo:
    platform: Platform
    worker: subprocess.Popen[bytes]
    server: LocalModelServer | None
    base_url: str
    stop: threading.Event = field(default_factory=threading.Event)
    started: int = 0
    finished: int = 0
    delivered: int = 0
    last_error: str = ""
    thread: threading.Thread | None = None

    def status(self) -> str:
        alive = "up" if self.worker.poll() is None else "DOWN"
        return (
            f"llm negotiations {self.started} (done {self.finished}, delivered {self.delivered}, "
            f"agents worker {alive})"
        )

    def drive(self, max_active: int = 2, every_s: float = 1.0) -> None:
        from gateway.sdk import PlatformError

        active: list[str] = []
        while not self.stop.is_set():
            try:
                for iid in list(active):
                    events = [e["event"] for e in self.platform.events(iid)]
                    if events and events[-1] == "✓":
                        active.remove(iid)
                        self.finished += 1
                        self.delivered += any(e.startswith("deliver.") for e in events)
                if len(active) < max_active:
                    inst = self.platform.start(SYSTEM, params={
                        "agents": negotiation_bindings(self.started), "task": "agree on a price for a task"})  # fmt: skip
                    active.append(inst.instance_id)
                    self.started += 1
            except PlatformError as exc:
                self.last_error = str(exc)
            self.stop.wait(every_s)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(20)
        if self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(10)
        if self.server is not None:
            self.server.stop()
        self.platform.close()


def start_llm_negotiations(
    bootstrap: str, settings: Settings, log_path: Path, *, namespace: str = "", drive: bool = True
) -> LlmDemo:
    """Deploy the negotiation, start the model server (if needed), the agents worker and the driving thread.

    The demo has its own :class:`~gateway.sdk.Platform` client (clients are not shared across threads)."""
    from gateway.sdk import Platform

    platform = Platform(bootstrap, namespace=namespace, settings=settings)
    if SYSTEM not in platform.systems():
        plan = platform.deploy(NEGOTIATION, "NEGOTIATION", name=SYSTEM, outputs=["deliver"])
        if plan.refused:
            raise RuntimeError(f"{NEGOTIATION}: the protocol failed its checks")
    server: LocalModelServer | None = None
    base_url = platform.settings.openai_base_url
    if not base_url:
        server = LocalModelServer()
        server.start()
        base_url = server.base_url
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=platform.bootstrap, CSP_LOG_LEVEL="WARNING")
    worker = subprocess.Popen(
        [sys.executable, "-m", "processors.agents.worker", "--bootstrap", platform.bootstrap,
         "--namespace", platform.topics.namespace, "--base-url", base_url, "--worker-id", "run-0"],
        cwd=ROOT, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    demo = LlmDemo(platform, worker, server, base_url)
    if drive:
        demo.thread = threading.Thread(target=demo.drive, daemon=True)
        demo.thread.start()
    return demo
