"""``csp run``: the platform's main job on the embedded stack, in the foreground.

Starts the stack (durable SeaweedFS-backed Tansu by default, ``--ephemeral``
for in-memory), a CSP runtime worker, deploys the examples (each verified
first), and drives demo traffic through the SDK while a live status line
shows what flows. Ctrl-C (or ``--duration``) stops everything it started.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console

    from gateway.sdk import Platform

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# (file, process, system name, output channels)
DEMO_SYSTEMS = (
    ("buffer/buffer.csp", "BUFFER", "buffer", ("right",)),
    ("dining/dining.csp", "SYSTEM", "dining", ("sits", "getsup", "eats", "picks", "putsdown")),
    ("agents/agents.csp", "SELLER", "agents", ("propose", "deliver")),
)


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    instances: int = 0
    offers: int = 0
    accepted: int = 0
    refused: int = 0
    events: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def line(self, bootstrap: str, mode: str, worker_alive: bool, systems: str) -> Text:
        up = time.monotonic() - self.started
        rate = self.offers / up if up > 0 else 0.0
        text = Text()
        text.append("● ", style="green" if worker_alive else "red")
        text.append(f"kafka {bootstrap} ({mode})  ")
        text.append(f"worker {'up' if worker_alive else 'DOWN'}  ", style="bold" if worker_alive else "bold red")
        text.append(f"systems {systems}  ")
        text.append(
            f"instances {self.instances}  offers {self.offers} (accepted {self.accepted}, refused {self.refused})  "
            f"events {self.events}  {rate:.1f} offers/s  up {up:.0f}s"
        )
        if self.last_error:
            text.append(f"  last error: {self.last_error[:80]}", style="yellow")
        return text


def _demo_traffic(platform: Platform, stats: Stats, stop: threading.Event) -> None:
    """Drive the deployed examples: buffers get values, philosophers get hungry,
    buyers request and accept. Offers that the process cannot accept come back
    as refusals and are counted, not hidden."""
    from gateway.sdk import PlatformError

    versions = {name: max(vs) for name, vs in platform.systems().items()}  # pin: no registry read per start
    buffers: list[str] = []
    dinings: list[str] = []
    counter = itertools.count()
    while not stop.is_set():
        n = next(counter)
        try:
            if len(buffers) < 5:
                buffers.append(platform.start("buffer", version=versions["buffer"]).instance_id)
                with stats.lock:
                    stats.instances += 1
            if len(dinings) < 2:
                dinings.append(platform.start("dining", version=versions["dining"]).instance_id)
                with stats.lock:
                    stats.instances += 1
            if n % 10 == 9:  # an output event cannot be offered: shows a refusal
                target, event = buffers[n % len(buffers)], "right.0"
            elif n % 3 == 0:
                target, event = buffers[n % len(buffers)], f"left.{n % 3}"
            elif n % 3 == 1:
                target, event = dinings[n % len(dinings)], f"hungry.{n % 3}"
            else:
                inst = platform.start("agents", version=versions["agents"])
                with stats.lock:
                    stats.instances += 1
                target, event = inst.instance_id, "request.0"
            res = platform.offer(target, event, timeout_s=15)
            with stats.lock:
                stats.offers += 1
                if res.accepted:
                    stats.accepted += 1
                    stats.events += 1 + len(res.follow)
                else:
                    stats.refused += 1
        except PlatformError as exc:
            with stats.lock:
                stats.last_error = str(exc)
            stop.wait(1.0)
        stop.wait(0.05)


def run(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="stack data directory (default: CSP_DATA_DIR or .csp)")
    ] = None,
    ephemeral: Annotated[bool, typer.Option("--ephemeral", help="in-memory broker (nothing kept)")] = False,
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="deploy the examples and drive demo traffic")] = True,
    duration: Annotated[float, typer.Option("--duration", help="stop after this many seconds (0: until Ctrl-C)")] = 0,
    serve_port: Annotated[int, typer.Option("--serve-port", help="port of `csp serve`, the API and dashboard (0: none)")] = 8000,  # fmt: skip
) -> None:
    """Run the platform: stack + CSP runtime worker (+ demo traffic), with a live status line."""
    from rich.console import Console
    from rich.live import Live

    from gateway.sdk import Platform
    from infra.endpoints import running_state
    from infra.settings import Settings
    from infra.stack import is_running, start_stack, stop_stack

    console = Console()
    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    # a stack that was already running (`csp up`, an external Kafka) is left running at the end
    already = settings.kafka_bootstrap is not None or is_running(settings)
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    what = "using the running stack" if already else f"starting the {'ephemeral' if ephemeral else 'durable'} stack"
    console.print(f"[bold]Enhanced CSP[/] — {what} in {settings.resolved_data_dir()}")
    endpoints = start_stack(settings, ephemeral=ephemeral)
    state = running_state(settings.resolved_data_dir()) if endpoints.local else None
    actual = state.mode if state is not None else ("ephemeral" if ephemeral else "durable")
    mode = "external" if not endpoints.local else ("ephemeral" if actual == "ephemeral" else "durable, s3 on SeaweedFS")
    console.print(f"kafka {endpoints.kafka_bootstrap} · clickhouse {endpoints.clickhouse_url}")
    run_settings = settings.model_copy(update={"kafka_bootstrap": endpoints.kafka_bootstrap})
    log_path = settings.resolved_data_dir() / "runtime-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=endpoints.kafka_bootstrap, CSP_LOG_LEVEL="INFO")
    worker = subprocess.Popen(
        [sys.executable, "-m", "processors.csp.runtime.worker", "--bootstrap", endpoints.kafka_bootstrap,
         "--worker-id", "run-0"],
        cwd=ROOT, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    console.print(f"runtime worker pid {worker.pid} (log {log_path})")
    api = _start_serve(serve_port, env, settings.resolved_data_dir(), console) if serve_port else None
    stats = Stats()
    platform = Platform(endpoints.kafka_bootstrap, settings=run_settings)
    traffic: threading.Thread | None = None
    systems = "-"
    code = 0
    try:
        if demo:
            deployed = platform.systems()
            for rel, process, name, outputs in DEMO_SYSTEMS:
                if name in deployed:
                    continue
                plan = platform.deploy(EXAMPLES / rel, process, name=name, outputs=list(outputs))
                verdicts = ", ".join(f"{r.status} {r.text}" for r in plan.results) or "no assertions"
                console.print(f"deployed {name}: {verdicts}" if not plan.refused else f"[red]refused {name}[/]")
            systems = ", ".join(f"{s} v{max(v)}" for s, v in sorted(platform.systems().items())) or "-"
            stats.started = time.monotonic()
            traffic = threading.Thread(target=_demo_traffic, args=(platform, stats, stop), daemon=True)
            traffic.start()
        deadline = time.monotonic() + duration if duration > 0 else None

        def status() -> tuple[bool, Text]:
            alive = worker.poll() is None
            return alive, stats.line(endpoints.kafka_bootstrap, mode, alive, systems)

        def running() -> bool:
            return not stop.is_set() and (deadline is None or time.monotonic() < deadline)

        if console.is_terminal:
            with Live(status()[1], console=console, refresh_per_second=4) as live:
                while running():
                    alive, line = status()
                    live.update(line)
                    if not alive:
                        code = 1
                        break
                    stop.wait(0.25)
        else:  # not a terminal: a status line every 2 s
            while running():
                alive, line = status()
                console.print(line)
                if not alive:
                    code = 1
                    break
                stop.wait(2.0)
            console.print(status()[1])
    finally:
        stop.set()
        if traffic is not None:
            traffic.join(20)
        platform.close()
        if api is not None and api.poll() is None:
            api.terminate()
            api.wait(30)
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
        if already:
            console.print("stopped: runtime worker (the stack was running before `csp run`: left running)")
        else:
            stopped = stop_stack(settings)
            console.print(f"stopped: runtime worker, {', '.join(stopped) or 'no local components'}")
    if code:
        console.print(f"[red]the runtime worker exited with {worker.returncode}; see {log_path}[/]")
        raise typer.Exit(code)


def _start_serve(port: int, env: dict[str, str], data_dir: Path, console: Console) -> subprocess.Popen[bytes]:
    """`csp serve` beside the worker: the HTTP API and the dashboard (its log: <data dir>/serve.log)."""
    log = data_dir / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--data-dir",
                             str(data_dir)], cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)  # fmt: skip
    console.print(f"dashboard: http://127.0.0.1:{port}/  (API docs /docs; users: `csp users create-admin`; log {log})")
    return proc


def register(app: typer.Typer) -> None:
    app.command(name="run")(run)
