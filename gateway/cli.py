"""The ``csp`` command line: one Typer app, one sub-module per concern.

``csp NAME ...`` (``main``) builds an app holding only NAME's module: a call pays for the
imports of one concern, not all thirteen. ``gateway.cli.app`` (for embedding and tests) has
every command.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from gateway.commands import register_all, register_for
from gateway.commands.output import Fmt, emit, fmt_of


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version as _v

        typer.echo(f"csp {_v('enhanced-csp')}")
        raise typer.Exit(0)


def _main(
    show_version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    """Enhanced CSP: verified CSP process networks on Kafka."""


def version(fmt: Fmt = "text") -> None:
    """Print the platform version."""
    from importlib.metadata import version as _v

    fmt = fmt_of(fmt)
    if fmt != "text":
        emit(fmt, {"name": "enhanced-csp", "version": _v("enhanced-csp")})
        return
    typer.echo(_v("enhanced-csp"))


def make_app(argv: list[str] | None = None) -> typer.Typer:
    """The app with every command (``argv`` None), or with what ``argv``'s command needs."""
    app = typer.Typer(
        name="csp",
        help="Enhanced CSP: verified CSP process networks on Kafka.",
        no_args_is_help=True,
        add_completion=False,
    )
    if argv is None:
        register_all(app)
    else:
        register_for(app, argv)
    app.callback()(_main)
    app.command()(version)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use: `main` does not need it
        full = make_app()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    try:
        make_app(sys.argv[1:])()
    except Exception as exc:
        # a read that did not reach a partition's end: the broker is not answering (the reader
        # module is only looked up, so that commands that never read Kafka do not import it)
        reader = sys.modules.get("streams.reader")
        if reader is not None and isinstance(exc, reader.ReadTimeout):
            print(f"error: the Kafka broker did not answer in time: {exc}", file=sys.stderr)
            raise SystemExit(3) from None
        raise


if __name__ == "__main__":
    main()
