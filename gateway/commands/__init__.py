"""CLI command groups. Each module exposes ``register(app)``.

Modules that are not present yet are skipped, so each concern can land on its own.
"""

from __future__ import annotations

import importlib

import typer

MODULES = (
    "gateway.commands.stack",  # csp up / down / status / topics / run
    "gateway.commands.verify",  # csp typecheck / check / refine / explore
    "gateway.commands.runtime",  # csp deploy / start / offer / tail / instances / replay / conform
    "gateway.commands.run",  # csp run: the main job in the foreground
    "gateway.commands.ledger",  # csp ledger deploy / call / transfer / tx / keys / worker
    "gateway.commands.audit",  # csp audit verify / prove / consistency / verify-proof
    "gateway.commands.quantum",  # csp quantum entangle / teleport / run / correct / worker
    "gateway.commands.analytics",  # csp sql / dashboard: SQL over the ClickHouse projections
    "gateway.commands.agents",  # csp agents create / list / delete / protocol / collaborate / worker
    "gateway.commands.channels",  # csp link / unlink / routes / bind / dlq / kcat
    "gateway.commands.systems",  # csp systems
    "gateway.commands.serve",  # csp serve: the HTTP/WebSocket API and the dashboard
    "gateway.commands.users",  # csp users create-admin / create / list / key
)


# The top-level names each module registers: ``csp NAME ...`` imports and registers only
# NAME's module (a CLI call pays for one module's imports, not all thirteen). A test checks
# this table against what the modules register.
COMMAND_MODULES: dict[str, str] = {
    **dict.fromkeys(("up", "down", "status", "topics"), "gateway.commands.stack"),
    **dict.fromkeys(("typecheck", "check", "refine", "explore"), "gateway.commands.verify"),
    **dict.fromkeys(
        ("deploy", "start", "offer", "stop", "tail", "instances", "replay", "conform", "worker"),
        "gateway.commands.runtime",
    ),
    "run": "gateway.commands.run",
    "ledger": "gateway.commands.ledger",
    "audit": "gateway.commands.audit",
    "quantum": "gateway.commands.quantum",
    **dict.fromkeys(("sql", "dashboard"), "gateway.commands.analytics"),
    "agents": "gateway.commands.agents",
    **dict.fromkeys(("dlq", "link", "unlink", "routes", "bind", "kcat"), "gateway.commands.channels"),
    **dict.fromkeys(("systems", "undeploy"), "gateway.commands.systems"),
    "serve": "gateway.commands.serve",
    "users": "gateway.commands.users",
}


def register_for(app: typer.Typer, argv: list[str], own: frozenset[str] = frozenset({"version"})) -> None:
    """Register the module of the command ``argv`` names, none for the app's ``own`` commands,
    or every module (no command, an option such as ``--help`` first, or an unknown name: the
    full list and its suggestions)."""
    first = argv[0] if argv else ""
    if first in own:
        return
    module = COMMAND_MODULES.get(first)
    if module is None:
        register_all(app)
        return
    importlib.import_module(module).register(app)


def register_all(app: typer.Typer) -> None:
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app)
