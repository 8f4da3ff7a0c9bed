"""The CLI registers only the invoked command's module: its name table must match the modules."""

from __future__ import annotations

import importlib
import subprocess
import sys

import typer

from gateway.commands import COMMAND_MODULES, MODULES


def _names(module: str) -> set[str]:
    app = typer.Typer()
    importlib.import_module(module).register(app)
    cmds = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    return cmds | {g.name or "" for g in app.registered_groups}


def test_every_registered_name_maps_to_its_module() -> None:
    registered = {name: module for module in MODULES for name in _names(module)}
    assert registered == COMMAND_MODULES


def test_a_command_imports_only_its_module() -> None:
    code = (
        "import sys; sys.argv = ['csp', 'check', '--help']\n"
        "from gateway.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('gateway.commands.') and m != 'gateway.commands.output'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['gateway.commands.verify']"


def test_help_and_unknown_names_see_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "--help"], capture_output=True, text=True).stdout
    for name in ("check", "deploy", "ledger", "serve", "users", "version"):
        assert name in out
    bad = subprocess.run([sys.executable, "-m", "gateway.cli", "chek"], capture_output=True, text=True)
    assert bad.returncode == 2 and "check" in bad.stderr
