"""``csp agents create / list / delete / protocol / collaborate / worker``: AI agents.

Exit codes: 0 success, 1 refused (a protocol that fails its checks, an unknown agent, an
existing agent) or not finished, 2 bad input, 3 the platform is unavailable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.commands.output import Fmt, emit, fmt_of, print_csv
from gateway.commands.runtime import (
    EXIT_INPUT,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    DataDir,
    Namespace,
    _fail,
    _platform,
)

if TYPE_CHECKING:
    from gateway.agents import CollabAgent

agents_app = typer.Typer(help="AI agents: registry, collaboration protocols, the agents worker.", no_args_is_help=True)

Format = Fmt  # text | json | csv (gateway.commands.output)


def _check_format(fmt: str) -> str:
    return fmt_of(fmt)


@agents_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="agent name")],
    model: Annotated[str, typer.Option("--model", help="model name sent to the OpenAI-compatible endpoint")],
    role: Annotated[str, typer.Option("--role", help="the agent's role, used in its prompt")] = "",
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="prompt template ($name $role $task $events $trace ...)")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="replace an agent of that name")] = False,
    data_dir: DataDir = None,
    namespace: Namespace = "",
    fmt: Format = "text",
) -> None:
    """Register an agent (event-sourced on agents.registry)."""
    from processors.agents.registry import RegistryError, validate_name

    _check_format(fmt)
    try:
        validate_name(name)
    except RegistryError as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    with _platform(data_dir, namespace) as platform:
        try:
            spec = platform.agents.create(name, model=model, role=role, prompt=prompt, replace=replace)
        except RegistryError as exc:
            raise _fail(str(exc), EXIT_REFUSED) from None
    if fmt != "text":
        emit(fmt, {"name": spec.name, "model": spec.model, "role": spec.role, "prompt": spec.prompt})
        return
    typer.echo(f"created agent {spec.name} (model {spec.model}{', role ' + spec.role if spec.role else ''})")


@agents_app.command("list")
def list_agents(data_dir: DataDir = None, namespace: Namespace = "", fmt: Format = "text") -> None:
    """List the registered agents."""
    _check_format(fmt)
    with _platform(data_dir, namespace) as platform:
        agents = platform.agents.all()
    rows = [{"name": a.name, "model": a.model, "role": a.role, "prompt": a.prompt} for a in agents]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    if fmt == "csv":
        print_csv(rows)
        return
    if not agents:
        typer.echo("no agents")
    for a in agents:
        typer.echo(f"{a.name}\tmodel {a.model}\t{a.role}")


@agents_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument()], data_dir: DataDir = None, namespace: Namespace = "", fmt: Format = "text"
) -> None:
    """Delete an agent."""
    from processors.agents.registry import RegistryError

    _check_format(fmt)
    with _platform(data_dir, namespace) as platform:
        try:
            platform.agents.delete(name)
        except RegistryError as exc:
            raise _fail(str(exc), EXIT_REFUSED) from None
    if fmt != "text":
        emit(fmt, {"deleted": name})
        return
    typer.echo(f"deleted agent {name}")


def _parse_agents(specs: list[str], default_model: str) -> list[CollabAgent]:
    from gateway.agents import CollabAgent

    out = []
    for spec in specs:
        name, _, rest = spec.partition(":")
        model, _, role = rest.partition(":")
        if not name:
            raise _fail(f"--agent {spec!r}: use NAME[:MODEL[:ROLE]]", EXIT_INPUT)
        out.append(CollabAgent(name, model or default_model, role))
    return out


AgentOpt = Annotated[
    list[str], typer.Option("--agent", "-a", help="NAME[:MODEL[:ROLE]], once per agent (2-5)")
]
MethodOpt = Annotated[str, typer.Option("--method", "-m", help="consensus | leader | round_robin | debate")]
RoundsOpt = Annotated[int, typer.Option("--rounds", help="bound on the rounds (1-5)")]


@agents_app.command("protocol")
def protocol(agent: AgentOpt, method: MethodOpt = "consensus", rounds: RoundsOpt = 2, fmt: Format = "text") -> None:
    """Print the generated CSPm protocol of a collaboration and its check verdicts (no platform needed)."""
    from processors.agents.collab import CollabError, check, generate

    _check_format(fmt)
    try:
        proto = generate(method, [a.name for a in _parse_agents(agent, "local")], rounds)
    except CollabError as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    report = check(proto)
    if fmt != "text":
        emit(fmt, {"method": method, "agents": [a.name for a in _parse_agents(agent, "local")], "rounds": rounds,
                   "source": proto.source, "assertions": [{"text": t, "status": st} for t, st in report.assertions],
                   "terminates": report.terminates, "longest_trace": report.longest, "bound": proto.bound,
                   "ok": report.ok})  # fmt: skip
        if not report.ok:
            raise typer.Exit(EXIT_REFUSED)
        return
    typer.echo(proto.source)
    for text, status in report.assertions:
        typer.echo(f"-- {status}: {text}")
    typer.echo(f"-- terminates: {report.terminates} (longest trace {report.longest}, bound {proto.bound})")
    if not report.ok:
        raise typer.Exit(EXIT_REFUSED)


@agents_app.command("collaborate")
def collaborate(
    task: Annotated[str, typer.Option("--task", help="what the agents work on")],
    agent: AgentOpt,
    method: MethodOpt = "consensus",
    rounds: RoundsOpt = 2,
    model: Annotated[str, typer.Option("--model", help="model of agents that name none")] = "local",
    timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait for the end")] = 300.0,
    data_dir: DataDir = None,
    namespace: Namespace = "",
    fmt: Format = "text",
) -> None:
    """Generate, check, deploy and run a collaboration protocol; print the result and the full trace.

    Needs a runtime worker (`csp worker`) and an agents worker (`csp agents worker`)."""
    from gateway.agents import CollaborationRefused
    from gateway.sdk import PlatformError
    from processors.agents.collab import CollabError

    fmt = _check_format(fmt)
    agents = _parse_agents(agent, model)
    with _platform(data_dir, namespace) as platform:
        try:
            res = platform.agents.collaborate(task, agents, method, rounds=rounds, timeout_s=timeout)
        except CollabError as exc:
            raise _fail(str(exc), EXIT_INPUT) from None
        except CollaborationRefused as exc:
            raise _fail(str(exc), EXIT_REFUSED) from None
        except PlatformError as exc:
            raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    if fmt == "json":
        typer.echo(json.dumps(res.as_dict(), indent=2, ensure_ascii=False))
        return
    if fmt == "csv":
        print_csv([res.as_dict()])
        return
    typer.echo(f"{res.method} on {res.system} (instance {res.instance_id}): {res.outcome}")
    typer.echo(f"result: {res.result}")
    for s in res.trace:
        who = f"  [{s.agent}] {s.message}" if s.agent else ""
        typer.echo(f"  {s.seq:3d} {s.event}{who}")
    typer.echo(f"usage: {res.usage}")


@agents_app.command("worker")
def worker(
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="model endpoint (default: CSP_OPENAI_BASE_URL)")
    ] = None,
    namespace: Namespace = "",
    worker_id: Annotated[str, typer.Option("--worker-id")] = "0",
    only: Annotated[
        str | None,
        typer.Option("--only", help="processor | driver: run one of the two (e.g. one process each)"),
    ] = None,
    no_inline: Annotated[
        bool,
        typer.Option("--no-inline", help="the driver only asks; the agent processor answers every request "
                     "(three hops per step, not two)"),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Run the agent processor and the agent driver until Ctrl-C (or one of them, --only).

    In one process the driver has the processor call the model and answers in its own
    transaction (two hops per step) unless --no-inline."""
    from processors.agents.worker import main

    if only not in (None, "processor", "driver"):
        raise typer.BadParameter(f"--only must be processor or driver, not {only!r}")
    args = ["--namespace", namespace, "--worker-id", worker_id]
    if only:
        args += ["--only", only]
    if no_inline:
        args.append("--no-inline")
    if base_url:
        args += ["--base-url", base_url]
    if data_dir is not None:
        import os

        os.environ["CSP_DATA_DIR"] = str(Path(data_dir))
    raise typer.Exit(main(args))


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app, name="agents")
