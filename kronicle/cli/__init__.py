"""The ``kronicle`` command line: one small module per command group."""

from __future__ import annotations

import typer

from kronicle.cli import engine, kafka, server

app = typer.Typer(no_args_is_help=True, help="Kronicle: durable execution on Apache Kafka.")
app.add_typer(server.app, name="server")
app.add_typer(kafka.app, name="kafka")
app.add_typer(engine.app, name="engine")


def main() -> None:
    """Entry point of the ``kronicle`` console script."""
    app()
