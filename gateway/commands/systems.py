"""``csp systems`` and ``csp undeploy``: deployed systems, their versions and assertion results."""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated, Any

import typer

from gateway.commands.runtime import EXIT_INPUT, EXIT_REFUSED, DataDir, Namespace, _fail, _platform


def systems(
    fmt: Annotated[str, typer.Option("--format", help="text | json | csv")] = "text",
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """List deployed systems: every version with its process, channels and assertion results."""
    if fmt not in ("text", "json", "csv"):
        raise _fail(f"--format {fmt!r}: use text, json or csv", EXIT_INPUT)
    rows: list[dict[str, Any]] = []
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
    data_dir: DataDir = None,
    namespace: Namespace = "",
) -> None:
    """Remove SYSTEM: its links and bindings, and its versions from new starts (running instances keep running)."""
    from processors.channels.routes import RouteError

    with _platform(data_dir, namespace) as platform:
        try:
            versions = platform.undeploy(system)
        except RouteError as exc:
            raise _fail(str(exc), EXIT_REFUSED) from None
    typer.echo(f"undeployed {system} (versions {', '.join(map(str, versions))})")


def register(app: typer.Typer) -> None:
    app.command()(systems)
    app.command()(undeploy)
