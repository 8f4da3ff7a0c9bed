"""``csp link / unlink / routes / bind / dlq / kcat``: links, service bindings, dead letters, kcat.

Exit codes as the runtime commands: 0 ok, 1 refused (a link whose check fails), 2 bad input,
3 the platform is unavailable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.commands.output import Fmt, emit, fmt_of
from gateway.commands.runtime import (
    EXIT_INPUT,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    DataDir,
    Namespace,
    _fail,
    _platform,
)

Format = Fmt  # text | json | csv (gateway.commands.output)


def _check_format(fmt: str) -> None:
    fmt_of(fmt)


def link(
    src: Annotated[str, typer.Argument(help="SRC_SYSTEM.output_channel")],
    dst: Annotated[str, typer.Argument(help="DST_SYSTEM.input_channel")],
    instance_map: Annotated[
        str,
        typer.Option(
            "--instance-map", help="same (the source's instance id) or N (the N-th message value, 1-based)"
        ),
    ] = "same",
    force: Annotated[bool, typer.Option("--force", help="Link even if a check fails")] = False,
    fmt: Format = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Link SRC.out to DST.in: each output event becomes an offer to the linked instance, exactly once.

    The pair SRC [| {|link|} |] DST must satisfy the property assertions each side declares
    (deadlock freedom, ...); a failing link is refused with its counterexample unless --force."""
    from processors.channels.routes import RouteError

    _check_format(fmt)
    platform = _platform(data_dir, namespace)
    try:
        plan = platform.link(src, dst, instance_map=instance_map, force=force)
    except RouteError as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    finally:
        platform.close()
    if fmt != "text":
        emit(fmt, {
            "route_id": plan.link.route_id, "linked": not plan.refused, "forced": plan.link.forced,
            "checks": [{"text": c.text, "status": c.status, "trace": list(c.trace)} for c in plan.checks],
        })  # fmt: skip
    else:
        for c in plan.checks:
            typer.echo(f"  {c.status:5} {c.text}")
            if not c.passed:
                typer.echo(f"        counterexample: {c.message}")
        if not plan.checks:
            typer.echo("  (neither side declares a property assertion: nothing to check)")
    if plan.refused:
        raise _fail(
            f"link {plan.link.route_id} refused: a check failed (use --force to link anyway)", EXIT_REFUSED
        )
    if fmt == "text":
        typer.echo(f"linked {plan.link.route_id} (instance map {plan.link.instance_map})")


def unlink(
    route_id: Annotated[
        list[str], typer.Argument(help="Route ids (csp routes): link:A.out->B.in, bind:A.chan")
    ],
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Remove links or service bindings."""
    fmt = fmt_of(fmt)
    platform = _platform(data_dir, namespace)
    try:
        n = platform.unlink(*route_id)
    finally:
        platform.close()
    if n < len(route_id):
        raise _fail(f"{len(route_id) - n} of the route ids are not routes (see csp routes)", EXIT_REFUSED)
    if fmt != "text":
        emit(fmt, {"removed": n, "route_ids": list(route_id)})
        return
    typer.echo(f"removed {n} route(s)")


def routes(fmt: Format = "text", data_dir: DataDir = None, namespace: Namespace = "") -> None:
    """List links and service bindings."""
    _check_format(fmt)
    platform = _platform(data_dir, namespace)
    try:
        r = platform.routes()
    finally:
        platform.close()
    rows = [{"route_id": rid, "kind": "link", "from": f"{lk.src_system}.{lk.src_channel}",
             "to": f"{lk.dst_system}.{lk.dst_channel}", "instance_map": lk.instance_map, "forced": lk.forced}
            for rid, lk in sorted(r.links.items())]  # fmt: skip
    rows += [{"route_id": rid, "kind": "binding", "from": f"{b.system}.{b.channel}", "to": b.service,
              "reply_channel": b.reply_channel} for rid, b in sorted(r.bindings.items())]  # fmt: skip
    if fmt != "text":
        emit(fmt, rows)
        return
    for row in rows:
        extra = f" reply {row['reply_channel']}" if row.get("reply_channel") else ""
        typer.echo(f"{row['route_id']}  {row['from']} -> {row['to']}{extra}")


def bind(
    channel: Annotated[str, typer.Argument(help="SYSTEM.output_channel")],
    service: Annotated[str, typer.Argument(help="quantum | ledger | agents | module:ATTR")],
    reply: Annotated[
        str | None, typer.Option("--reply", help="Input channel the results come back on")
    ] = None,
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Bind a system's output channel to a service (as `csp deploy --bind` does at deploy time)."""
    from processors.channels.routes import RouteError, parse_endpoint

    fmt = fmt_of(fmt)
    platform = _platform(data_dir, namespace)
    try:
        system, ch = parse_endpoint(channel)
        b = platform.bind(system, ch, service, reply)
    except RouteError as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    finally:
        platform.close()
    if fmt != "text":
        emit(fmt, {"system": b.system, "channel": b.channel, "service": b.service,
                   "reply_channel": b.reply_channel if reply else None})  # fmt: skip
        return
    typer.echo(
        f"bound {b.system}.{b.channel} -> {b.service}" + (f" (replies on {b.reply_channel})" if reply else "")
    )


def dlq(
    topic: Annotated[
        str | None,
        typer.Argument(help="A topic (its <topic>.dlq is read) or a .dlq topic; default: every .dlq topic"),
    ] = None,
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Print dead letters with their reasons: records a processor could not use (nothing is dropped)."""
    import csv
    import sys

    from streams.admin import list_topics

    fmt = fmt_of(fmt)
    platform = _platform(data_dir, namespace)
    try:
        existing = list_topics(platform.bootstrap)
        if topic is not None:
            names = [topic if topic.endswith(".dlq") else f"{topic}.dlq"]
            if names[0] not in existing:
                raise _fail(f"no topic {names[0]}", EXIT_REFUSED)
        else:
            prefix = f"{namespace}." if namespace else ""
            names = [t for t in existing if t.endswith(".dlq") and t.startswith(prefix)]
        rows = []
        for name in names:
            for r in platform.read(name, "DeadLetter"):
                rows.append({
                    "dlq": name, "source": f"{r['source_topic']}[{r['source_partition']}]@{r['source_offset']}",
                    "key": (r["key"] or b"").decode("utf-8", "replace"), "error": r["error"],
                    "processor": r["processor"], "value_hex": (r["value"] or b"").hex(),
                })  # fmt: skip
    finally:
        platform.close()
    if fmt == "json":
        for row in rows:
            typer.echo(json.dumps(row))
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=["dlq", "source", "key", "error", "processor", "value_hex"])
        w.writeheader()
        w.writerows(rows)
    else:
        for row in rows:
            typer.echo(f"{row['source']} key={row['key']!r}: {row['error']} ({row['processor']})")


def kcat(
    ctx: typer.Context,
    data_dir: DataDir = None,
) -> None:
    """Run the system's kcat on the librdkafka confluent-kafka ships (2.16), with -b defaulting
    to the platform's broker; every other argument goes to kcat unchanged.

    Debian's kcat links librdkafka 2.0.2, which cannot talk to the embedded Tansu broker
    ("Read underflow" on ApiVersions); the same kcat on the bundled library can. Example:
    csp kcat -C -t csp.channel.buffer.right -o beginning -e"""
    import os
    import shutil

    from streams.librdkafka import tool_env

    exe = shutil.which("kcat")
    if exe is None:
        raise _fail("kcat is not installed (Debian: apt-get install kcat)", EXIT_INPUT)
    args = list(ctx.args)
    if not any(a == "-b" or (a.startswith("-b") and len(a) > 2) for a in args):
        from infra.endpoints import StackError, resolve_endpoints
        from infra.settings import Settings

        settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
        try:
            args = ["-b", resolve_endpoints(settings).kafka_bootstrap, *args]
        except StackError as exc:
            raise _fail(f"{exc} (or pass -b BROKERS)", EXIT_UNAVAILABLE) from None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "enhanced-csp"
    os.execve(exe, [exe, *args], tool_env(os.environ, cache))


def register(app: typer.Typer) -> None:
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(kcat)
    app.command()(dlq)
    app.command()(link)
    app.command()(unlink)
    app.command()(routes)
    app.command()(bind)
