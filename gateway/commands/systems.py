"""``csp systems`` and ``csp undeploy``: deployed systems, their versions and assertion results."""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated, Any

import typer

from gateway.commands.output import Fmt, fmt_of
from gateway.commands.runtime import (
    EXIT_REFUSED,
    DataDir,
    Namespace,
    Source,
    _fail,
    _platform,
    _projection_failed,
    _reader,
)


def systems(
    fmt: Fmt = "text",
    source: Source = "auto",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """List deployed systems: every version with its process, channels and assertion results.

    From the ClickHouse projection plus the newer registry records when the projector runs; else (or --source kafka) from the registry topic."""
    fmt = fmt_of(fmt)
    rows: list[dict[str, Any]] | None = None
    reader = _reader(data_dir, namespace, source)
    if reader.projection is not None:
        from gateway.reads import ProjectionError
        from gateway.reads import systems as fast_systems

        try:
            deps, lag = fast_systems(reader.projection, reader.bootstrap, reader.topics, reader.codec)
            rows = [{"system": d.system, "version": d.version, "process": d.process, "file": d.file,
                     "deployed_at": d.deployed_at, "channels": " ".join(f"{n}:{r.lower()}" for n, r in d.channels),
                     "assertions": [{"text": t, "status": st} for t, st in d.assertions]} for d in deps]  # fmt: skip
            typer.echo(str(lag), err=True)
        except ProjectionError as exc:
            _projection_failed(reader, source, exc)
    if rows is None:
        rows = []
        with _platform(data_dir, namespace) as platform:
            for system, versions in sorted(platform.systems().items()):
                for v in versions:
                    dep = platform.store.lookup(system, v)
                    if dep is None:
                        continue
                    rows.append({
                        "system": system, "version": v, "process": dep.process, "file": dep.file_name,
                        "deployed_at": dep.deployed_at,
                        "channels": " ".join(f"{c.name}:{c.role.lower()}" for c in dep.channels.values()),
                        "assertions": [{"text": t, "status": st} for t, st in dep.assertions],
                    })  # fmt: skip
    if fmt == "json":
        typer.echo(json.dumps(rows))
        return
    if fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(["system", "version", "process", "file", "deployed_at", "channels", "assertions"])
        for r in rows:
            w.writerow([r["system"], r["version"], r["process"], r["file"], r["deployed_at"], r["channels"],
                        "; ".join(f"{a['status']} {a['text']}" for a in r["assertions"])])  # fmt: skip
        return
    for r in rows:
        passed = sum(1 for a in r["assertions"] if a["status"] == "pass")
        typer.echo(f"{r['system']} v{r['version']}  {r['process']}  {r['channels']}  "
                   f"assertions {passed}/{len(r['assertions'])} pass")  # fmt: skip
        for a in r["assertions"]:
            typer.echo(f"    {a['status']:5} {a['text']}")
    typer.echo(f"{len({r['system'] for r in rows})} system(s)", err=True)


def undeploy(
    system: Annotated[str, typer.Argument(help="Deployed system")],
    fmt: Fmt = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Remove SYSTEM: its links and bindings, and its versions from new starts (running instances keep running)."""
    from processors.channels.routes import RouteError

    fmt = fmt_of(fmt)
    with _platform(data_dir, namespace) as platform:
        try:
            versions = platform.undeploy(system)
        except RouteError as exc:
            raise _fail(str(exc), EXIT_REFUSED) from None
    if fmt == "json":
        typer.echo(json.dumps({"system": system, "versions": versions}))
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(["system", "version"])
        w.writerows([system, v] for v in versions)
    else:
        typer.echo(f"undeployed {system} (versions {', '.join(map(str, versions))})")


def register(app: typer.Typer) -> None:
    app.command()(systems)
    app.command()(undeploy)
