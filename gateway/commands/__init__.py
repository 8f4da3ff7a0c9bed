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
    "gateway.commands.channels",  # csp link / unlink / routes / bind / dlq
    "gateway.commands.systems",  # csp systems
    "gateway.commands.serve",  # csp serve: the HTTP/WebSocket API and the dashboard
    "gateway.commands.users",  # csp users create-admin / create / list / key
)


def register_all(app: typer.Typer) -> None:
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app)
