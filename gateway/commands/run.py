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
from rich.markup import escape
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console

    from gateway.sdk import Platform
    from processors.agents.demo import LlmDemo

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# (file, process, system name, output channels)
DEMO_SYSTEMS = (
    ("buffer/buffer.csp", "BUFFER", "buffer", ("right",)),
    ("dining/dining.csp", "SYSTEM", "dining", ("sits", "getsup", "eats", "picks", "putsdown")),
    ("agents/agents.csp", "SELLER", "agents", ("propose", "deliver")),
)  # + examples/agents/llm_negotiation.csp, driven by LLM agents (processors.agents.demo)


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    instances: int = 0
    offers: int = 0
    accepted: int = 0
    refused: int = 0
    events: int = 0
    last_error: str = ""
    teleports: int = 0  # quantum example runs (acknowledged)
    teleport_fidelity: float = 0.0  # sum over acknowledged teleports
    agreements: int = 0  # agreement example runs (negotiated, then on chain)
    agreements_executed: int = 0
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
        if self.teleports:
            text.append(f"  teleports {self.teleports} (mean fidelity {self.teleport_fidelity / self.teleports:.4f})")
        if self.agreements:
            text.append(f"  agreements {self.agreements} (executed on chain {self.agreements_executed})")
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


def _quantum_traffic(platform: Platform, stats: Stats, stop: threading.Event) -> None:
    """The quantum example (examples/quantum/teleport.csp): alice teleports states to bob."""
    from gateway import quantum_demo

    def on_round(run: quantum_demo.Relayed) -> None:
        with stats.lock:
            stats.instances += 1
            if run.acknowledged:
                stats.teleports += 1
                stats.teleport_fidelity += float(run.results[-1].get("fidelity") or 0.0)  # type: ignore[arg-type]

    from gateway.sdk import Platform

    # its own client: a Platform reads answers with one consumer and is not shared between threads
    own = Platform(platform.bootstrap, codec=platform.codec, settings=platform.settings)
    try:
        quantum_demo.demo_loop(own, "quantum", stop, on_round)
    except Exception as exc:  # shown on the status line; the rest of the demo carries on
        with stats.lock:
            stats.last_error = f"quantum: {exc}"
    finally:
        own.close()


def _agreement_traffic(platform: Platform, stats: Stats, stop: threading.Event) -> None:
    """The agreement example (examples/agreement/agreement.csp): negotiate, then sign and execute on chain."""
    from gateway import agreement_demo
    from gateway.sdk import Platform

    def on_outcome(outcome: agreement_demo.Outcome) -> None:
        with stats.lock:
            stats.agreements += 1
            stats.agreements_executed += outcome.executed

    own = Platform(platform.bootstrap, codec=platform.codec, settings=platform.settings)
    try:
        agreement_demo.demo_loop(own, stop.is_set, on_outcome)
    except Exception as exc:  # shown on the status line; the rest of the demo carries on
        with stats.lock:
            stats.last_error = f"agreement: {exc}"
    finally:
        own.close()


def run(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="stack data directory (default: CSP_DATA_DIR or .csp)")
    ] = None,
    ephemeral: Annotated[bool, typer.Option("--ephemeral", help="in-memory broker (nothing kept)")] = False,
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="deploy the examples and drive demo traffic")] = True,
    duration: Annotated[float, typer.Option("--duration", help="stop after this many seconds (0: until Ctrl-C)")] = 0,
    serve_port: Annotated[int, typer.Option("--serve-port", help="port of `csp serve`, the API and dashboard (0: none)")] = 8000,  # fmt: skip
) -> None:
    """Run the platform with a live status line: the stack and projector, the CSP runtime worker
    (with the channel bridge), the quantum, ledger and agents workers, `csp serve`; with --demo, the
    verified examples driven live (quantum and ledger through their channel bindings)."""
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
    endpoints = start_stack(settings, ephemeral=ephemeral, with_projector=True)
    state = running_state(settings.resolved_data_dir()) if endpoints.local else None
    actual = state.mode if state is not None else ("ephemeral" if ephemeral else "durable")
    mode = "external" if not endpoints.local else ("ephemeral" if actual == "ephemeral" else "durable, s3 on SeaweedFS")
    console.print(f"kafka {endpoints.kafka_bootstrap} · clickhouse {endpoints.clickhouse_url}")
    from infra.projector import sql_endpoint

    sql = sql_endpoint(settings.resolved_data_dir()) if endpoints.local else None
    if sql is not None:
        console.print(f"projector: read-only SQL on {sql[0]} (`csp sql`, `csp dashboard`)")
    run_settings = settings.model_copy(update={"kafka_bootstrap": endpoints.kafka_bootstrap})
    log_path = settings.resolved_data_dir() / "runtime-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=endpoints.kafka_bootstrap, CSP_LOG_LEVEL="INFO",
               CSP_DATA_DIR=str(settings.resolved_data_dir()))  # the worker trusts this data dir's deploy key
    worker = subprocess.Popen(
        [sys.executable, "-m", "processors.csp.runtime.worker", "--bootstrap", endpoints.kafka_bootstrap,
         "--worker-id", "run-0"],
        cwd=ROOT, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    console.print(f"runtime worker pid {worker.pid} (log {log_path})")
    quantum = subprocess.Popen(  # the quantum processor (quantum.requests -> quantum.results)
        [sys.executable, "-m", "processors.quantum.worker", "--bootstrap", endpoints.kafka_bootstrap],
        cwd=ROOT, env=env, stdout=(log_path.parent / "quantum-worker.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    console.print(f"quantum worker pid {quantum.pid} (log {log_path.parent / 'quantum-worker.log'})")
    ledger = subprocess.Popen(  # the ledger processor (ledger.transactions -> the EVM chain -> ledger.receipts)
        [sys.executable, "-m", "processors.ledger.worker", "--bootstrap", endpoints.kafka_bootstrap],
        cwd=ROOT, env=env, stdout=(log_path.parent / "ledger-worker.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    console.print(f"ledger worker pid {ledger.pid} (log {log_path.parent / 'ledger-worker.log'})")
    api = _start_serve(serve_port, env, settings.resolved_data_dir(), console) if serve_port else None
    stats = Stats()
    platform = Platform(endpoints.kafka_bootstrap, settings=run_settings)
    traffic: threading.Thread | None = None
    qtraffic: threading.Thread | None = None
    atraffic: threading.Thread | None = None
    llm: LlmDemo | None = None
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
                # escape: an assertion text such as `BUFFER :[deadlock free]` is not Rich markup
                console.print(f"deployed {name}: {escape(verdicts)}" if not plan.refused else f"[red]refused {name}[/]")
            if "quantum" not in deployed:  # qreq bound to the quantum service through the channel bridge
                from gateway import quantum_demo

                plan = platform.deploy(EXAMPLES / "quantum/teleport.csp", "SYSTEM", name="quantum",
                                       outputs=list(quantum_demo.OUTPUTS), bind=list(quantum_demo.BIND))
                verdicts = ", ".join(f"{r.status} {r.text}" for r in plan.results)
                console.print(f"deployed quantum: {escape(verdicts)} (qreq bound to the quantum service)")
            if "agreement" not in deployed:
                from gateway import agreement_demo

                console.print(f"deployed agreement: {escape(agreement_demo.deploy(platform))} (chain bound to the ledger)")
            from processors.agents.demo import start_llm_negotiations

            # LLM agents bound to a verified protocol (examples/agents/llm_negotiation.csp)
            agents_log = settings.resolved_data_dir() / "agents-worker.log"
            llm = start_llm_negotiations(endpoints.kafka_bootstrap, run_settings, agents_log)
            console.print(f"agents worker pid {llm.worker.pid}, model endpoint {llm.base_url}")
            systems = ", ".join(f"{s} v{max(v)}" for s, v in sorted(platform.systems().items())) or "-"
            stats.started = time.monotonic()
            traffic = threading.Thread(target=_demo_traffic, args=(platform, stats, stop), daemon=True)
            traffic.start()
            qtraffic = threading.Thread(target=_quantum_traffic, args=(platform, stats, stop), daemon=True)
            qtraffic.start()
            atraffic = threading.Thread(target=_agreement_traffic, args=(platform, stats, stop), daemon=True)
            atraffic.start()
        deadline = time.monotonic() + duration if duration > 0 else None

        def status() -> tuple[bool, Text]:
            alive = worker.poll() is None
            line = stats.line(endpoints.kafka_bootstrap, mode, alive, systems)
            return alive, line.append(f"  {llm.status()}") if llm is not None else line

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
        if qtraffic is not None:
            qtraffic.join(20)
        if atraffic is not None:
            atraffic.join(20)
        if llm is not None:
            llm.close()
        platform.close()
        for service in (quantum, ledger):
            if service.poll() is None:
                service.send_signal(signal.SIGTERM)
                try:
                    service.wait(30)
                except subprocess.TimeoutExpired:
                    service.kill()
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
