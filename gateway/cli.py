"""The ``csp`` command line: one Typer app, one sub-module per concern."""

from __future__ import annotations

import sys

import typer

from gateway.commands import register_all
from gateway.commands.output import Fmt, emit, fmt_of

app = typer.Typer(
    name="csp",
    help="Enhanced CSP: verified CSP process networks on Kafka.",
    no_args_is_help=True,
    add_completion=False,
)
register_all(app)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version as _v

        typer.echo(f"csp {_v('enhanced-csp')}")
        raise typer.Exit(0)


@app.callback()
def _main(
    show_version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    """Enhanced CSP: verified CSP process networks on Kafka."""


@app.command()
def version(fmt: Fmt = "text") -> None:
    """Print the platform version."""
    from importlib.metadata import version as _v

    fmt = fmt_of(fmt)
    if fmt != "text":
        emit(fmt, {"name": "enhanced-csp", "version": _v("enhanced-csp")})
        return
    typer.echo(_v("enhanced-csp"))


def main() -> None:
    from streams.reader import ReadTimeout

    try:
        app()
    except ReadTimeout as exc:  # a read that did not reach a partition's end: the broker is not answering
        print(f"error: the Kafka broker did not answer in time: {exc}", file=sys.stderr)
        raise SystemExit(3) from None


if __name__ == "__main__":
    main()
